"""Deterministic sum of partial rows: the last step of every weight-gradient launcher.

Weight-gradient kernels write one row of float32 partial sums per program (no atomics);
:func:`sum_rows` adds the rows in a fixed order, so gradients are bit-identical from run to run.
"""

from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

from . import launch

__all__ = ["sum_rows", "sum_rows_kernel"]

SUM_ROWS_BLOCK = 1024
SUM_ROWS_WARPS = 4


@triton.jit
def sum_rows_kernel(part_ptr, out_ptr, n_rows, row_len, BLOCK: tl.constexpr):
    """out[i] = sum_{r < n_rows} part[r, i], added in order r = 0, 1, ... (float32)."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < row_len
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    ptrs = part_ptr + offs
    for _ in range(0, n_rows):
        acc += tl.load(ptrs, mask=ok, other=0.0)
        ptrs += row_len
    tl.store(out_ptr + offs, acc, mask=ok)


def sum_rows(partials: Tensor) -> Tensor:
    """The column sums of ``partials`` (rows, row_len), float32 contiguous, as a (row_len,)
    float32 tensor, rows added in order."""
    rows, row_len = partials.shape
    out = launch.empty((row_len,), partials.dtype, partials.device)
    sum_rows_kernel[(triton.cdiv(row_len, SUM_ROWS_BLOCK),)](
        partials, out, rows, row_len, BLOCK=SUM_ROWS_BLOCK, num_warps=SUM_ROWS_WARPS
    )
    return out
