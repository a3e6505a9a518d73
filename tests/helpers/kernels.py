"""Set-up shared by the kernel and op tests: NaN-poisoned launcher buffers with guard zones.

Every buffer a launcher allocates (:func:`wdsr_fast.kernels.launch.empty`) starts as NaN, so an
element a kernel fails to write shows up as an error, and is followed by a guard zone filled
with a sentinel value, so a write past its end shows up as a changed guard (in the Triton
interpreter such a write would otherwise corrupt the host's memory silently). The buffer itself
starts at offset 0 of its storage, as a fresh allocation does.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from wdsr_fast.kernels import launch

GUARD_ELEMENTS = 4096
SENTINEL = -7.25  # exact in float16, bfloat16 and float32


class GuardedBuffers(list):
    """The buffers allocated so far (a list of tensors), and a check of their guards."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: list[tuple[Tensor, int]] = []

    def assert_guards_intact(self) -> None:
        for storage, numel in self.storages:
            changed = (storage[numel:] != SENTINEL).nonzero().flatten().tolist()
            assert not changed, f"a kernel wrote past its buffer: guard elements {changed}"


def poison_allocations(monkeypatch: pytest.MonkeyPatch) -> GuardedBuffers:
    """Make every launcher allocation NaN-filled and guarded; returns the list the allocated
    buffers are added to (call its ``assert_guards_intact`` after the kernels ran)."""
    buffers = GuardedBuffers()

    def guarded_empty(
        shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> Tensor:
        numel = math.prod(shape)
        storage = torch.full((numel + GUARD_ELEMENTS,), SENTINEL, dtype=dtype, device=device)
        strides = torch.empty(shape, device="meta", memory_format=memory_format).stride()
        t = storage.as_strided(shape, strides).fill_(float("nan"))
        buffers.append(t)
        buffers.storages.append((storage, numel))
        return t

    monkeypatch.setattr(launch, "empty", guarded_empty)
    return buffers


@pytest.fixture
def guarded_buffers(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Poisoned launcher buffers with guards, for one test; the guards are checked after it."""
    buffers = poison_allocations(monkeypatch)
    yield buffers
    buffers.assert_guards_intact()
