"""The arithmetic of a model and the CPU's sgemm rate, to state CPU timings as rates.

``model_flops_per_pixel`` counts 2 * C_in * C_out * k * k per LR pixel for every convolution
of a WDSR model (all of them run at LR resolution); ReLUs, adds and shuffles are left out.
``sgemm_rate`` is the machine's float32 matrix-product rate at a thread count: the median of
five 2048x2048x2048 ``torch.mm`` calls, measured once per thread count and process.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["model_flops_per_pixel", "sgemm_rate", "threads"]

SGEMM_SIZE = 2048


def model_flops_per_pixel(model: nn.Module) -> int:
    """FLOP per LR pixel of every convolution in ``model`` (``nn.Conv2d`` and wdsr_fast's
    ``WeightNormConv2d``: modules with ``in_channels``, ``out_channels`` and ``kernel_size``)."""
    total = 0
    for module in model.modules():
        if all(hasattr(module, a) for a in ("in_channels", "out_channels", "kernel_size")):
            kh, kw = torch.nn.modules.utils._pair(module.kernel_size)
            total += 2 * module.in_channels * module.out_channels * kh * kw
    return total


@functools.cache
def sgemm_rate(thread_count: int) -> float:
    """FLOP/s of a float32 2048^3 matrix product on ``thread_count`` threads (median of 5)."""
    with threads(thread_count):
        a = torch.randn(SGEMM_SIZE, SGEMM_SIZE)
        b = torch.randn(SGEMM_SIZE, SGEMM_SIZE)
        out = torch.empty(SGEMM_SIZE, SGEMM_SIZE)
        torch.mm(a, b, out=out)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - start)
    return 2 * SGEMM_SIZE**3 / sorted(times)[2]


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """``torch.set_num_threads(count)`` inside the block, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
