"""Set-up shared by the kernel and op tests: NaN-poisoned launcher buffers."""

from __future__ import annotations

import pytest
from torch import Tensor

from wdsr_fast.kernels import launch


def poison_allocations(monkeypatch: pytest.MonkeyPatch) -> list[Tensor]:
    """Make every buffer the launchers allocate (:func:`wdsr_fast.kernels.launch.empty`) start
    as NaN, so an element a kernel fails to write shows up as an error; returns the list the
    allocated buffers are added to."""
    allocated: list[Tensor] = []
    real_empty = launch.empty

    def nan_empty(*args, **kwargs) -> Tensor:
        t = real_empty(*args, **kwargs).fill_(float("nan"))
        allocated.append(t)
        return t

    monkeypatch.setattr(launch, "empty", nan_empty)
    return allocated

