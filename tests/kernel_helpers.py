"""Set-up shared by the kernel and op tests: NaN-poisoned launcher buffers, input layouts."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch
from torch import Tensor


def poison_allocations(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[Tensor]:
    """Make every buffer ``module._empty`` allocates start as NaN (so an element a kernel fails
    to write shows up as an error); returns the list the allocated buffers are added to."""
    allocated: list[Tensor] = []
    real_empty = module._empty

    def nan_empty(*args, **kwargs) -> Tensor:
        t = real_empty(*args, **kwargs).fill_(float("nan"))
        allocated.append(t)
        return t

    monkeypatch.setattr(module, "_empty", nan_empty)
    return allocated


def in_layout(t: Tensor, layout: str) -> Tensor:
    """``t``'s values as NCHW-contiguous, channels_last, or a non-contiguous strided view."""
    if layout == "nchw":
        return t.contiguous()
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    n, c, h, w = t.shape
    big = torch.zeros(n, 2 * c, h + 1, w + 3, dtype=t.dtype, device=t.device)
    view = big[:, 1::2, 1:, 2 : w + 2]
    view.copy_(t)
    assert not view.is_contiguous() and not view.is_contiguous(memory_format=torch.channels_last)
    return view
