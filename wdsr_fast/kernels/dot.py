"""Shared ``tl.dot`` helpers of the kernels: channel padding, input precision, TF32 rounding, bias
accumulators."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


def padded_channels(n: int) -> int:
    """Channel count padded for ``tl.dot``: the next power of two, at least 16 (plain Python:
    ``triton.next_power_of_2`` costs a couple of microseconds per call on the host)."""
    return max(16, 1 << max(n - 1, 0).bit_length())


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


@triton.jit
def tf32_rounded(x):
    """float32 ``x`` rounded to the nearest TF32 value (10 mantissa bits; ties away from zero),
    NaN and infinities kept. The tensor cores read a float32 operand of a TF32 product by
    dropping its low 13 mantissa bits, i.e. rounding toward zero, which biases the products
    (on an H200, truncated operands gave 2.6 times the error of cuDNN's TF32 convolutions).
    The Triton interpreter, which multiplies in float32, computes the same rounded products."""
    bits = x.to(tl.int32, bitcast=True)
    rounded = ((bits + 0x1000) & -0x2000).to(tl.float32, bitcast=True)
    return tl.where(x == x, rounded, x)


@triton.jit
def _operands(a, b, PRECISION: tl.constexpr):
    """The operands of a product at input ``PRECISION``: rounded to the nearest TF32 value for
    TF32 (:func:`tf32_rounded`), else as they are."""
    if PRECISION == "tf32":
        return tf32_rounded(a), tf32_rounded(b)
    return a, b


@triton.jit
def mma(a, b, acc, PRECISION: tl.constexpr):
    """``acc + a @ b`` on the tensor cores at input ``PRECISION`` (:func:`dot_precision`), a
    float32 accumulator; a TF32 product's operands are rounded to the nearest TF32 value first."""
    a, b = _operands(a, b, PRECISION)
    return tl.dot(a, b, acc, input_precision=PRECISION)


@triton.jit
def product(a, b, PRECISION: tl.constexpr):
    """``a @ b`` in float32, as :func:`mma` computes it without an accumulator."""
    a, b = _operands(a, b, PRECISION)
    return tl.dot(a, b, input_precision=PRECISION)


@triton.jit
def bias_accumulator(ROWS: tl.constexpr, bias_ptr, offs, ok, dtype: tl.constexpr):
    """[ROWS, len(offs)] float32: the bias at ``offs`` (0 where not ``ok``) in every row, the
    start of an accumulator. For 16-bit operands the tensor cores make it (``ones_column`` times
    ``bias_rows``: no per-value add); a float32 bias is broadcast instead, since a float32
    product would round it to TF32."""
    if dtype == tl.float32:
        bias = tl.load(bias_ptr + offs, mask=ok, other=0.0).to(tl.float32)
        return tl.zeros((ROWS, offs.shape[0]), tl.float32) + bias[None, :]
    return tl.dot(ones_column(ROWS, dtype), bias_rows(bias_ptr, offs, ok))
