"""Shared ``tl.dot`` helpers of the kernels: channel padding, input precision, bias products."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


def padded_channels(n: int) -> int:
    """Channel count padded for ``tl.dot``: the next power of two, at least 16."""
    return max(16, triton.next_power_of_2(n))


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision: TF32 for float32 only when cuDNN may use it (the reference's
    convolutions follow ``torch.backends.cudnn.allow_tf32``), else full precision."""
    if dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "ieee"


@triton.jit
def ones_column(ROWS: tl.constexpr, dtype: tl.constexpr):
    """[ROWS, 16] of ``dtype``: 1 in column 0, 0 elsewhere. ``tl.dot(ones_column(...),
    bias_rows(...))`` is the bias broadcast to every row, made by the tensor cores: an
    accumulator that starts there needs no per-value add."""
    return (tl.arange(0, 16)[None, :] == 0).to(dtype) + tl.zeros((ROWS, 16), dtype)


@triton.jit
def bias_rows(bias_ptr, offs, ok):
    """[16, len(offs)]: row 0 the bias at ``offs`` (0 where not ``ok``), rows 1-15 zero."""
    rows = tl.arange(0, 16)[:, None]
    return tl.load(bias_ptr + offs[None, :] + rows * 0, mask=(rows == 0) & ok[None, :], other=0.0)
