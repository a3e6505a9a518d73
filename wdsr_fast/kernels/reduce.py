"""Deterministic sums of partial rows into the final gradients: the last step of every
weight-gradient launcher.

Weight-gradient kernels write one row of float32 partial sums per program (no atomics);
:func:`gradients_from_partials` adds the rows in a fixed order, so gradients are bit-identical
from run to run, and in the same launch scales them, casts them to their dtype and scatters
them into separate output tensors in their final layout (a row may hold a gradient padded,
permuted or transposed, see :class:`RowView`). One launch replaces the sum, the scaling, the
slicing and the per-gradient copies a launcher would otherwise make.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import launch

__all__ = [
    "MAX_OUTPUTS",
    "RowView",
    "contiguous_views",
    "gradients_from_partials",
    "gradients_from_partials_kernel",
]

REDUCE_BLOCK = 1024
REDUCE_WARPS = 4
# Output slots of the kernel: the most any launcher makes (the WDSR-B block's six weight
# gradients). A target packs its output's index above the element's position in it.
MAX_OUTPUTS = 6
_POSITION_BITS = 24
_POSITION_MASK = (1 << _POSITION_BITS) - 1


class RowView(NamedTuple):
    """Where one gradient lies in a partial row: its element ``idx`` (of ``shape``) is column
    ``offset + sum(idx[d] * strides[d])``. Columns no view covers (padding) are dropped."""

    shape: tuple[int, ...]
    offset: int
    strides: tuple[int, ...]


def contiguous_views(shapes: Sequence[tuple[int, ...]], start: int = 0) -> list[RowView]:
    """Views of gradients of ``shapes`` stored one after the other, each contiguous, from
    column ``start`` on."""
    views = []
    for shape in shapes:
        strides = tuple(math.prod(shape[d + 1 :]) for d in range(len(shape)))
        views.append(RowView(tuple(shape), start, strides))
        start += math.prod(shape)
    return views


@triton.jit
def _owned_by(index: tl.constexpr, out_ptr, position, owner, addresses):
    """``out_ptr + position`` where ``owner`` is output ``index``, else ``addresses``."""
    return tl.where(owner == index, out_ptr + position, addresses)


@triton.jit
def gradients_from_partials_kernel(
    part_ptr, target_ptr, n_rows, row_len, scale, scaled_from,
    out0_ptr, out1_ptr, out2_ptr, out3_ptr, out4_ptr, out5_ptr,
    OUTPUTS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """For each column i of the (n_rows, row_len) float32 partials: s = sum_r part[r, i],
    added in order r = 0, 1, ...; t = target[i] (int32) is -1 for a dropped column, else
    output t >> 24 (the first ``OUTPUTS`` of out0..out5, all of one dtype), at flat position
    t & (2**24 - 1); outputs from ``scaled_from`` on receive ``scale * s``, the others s, cast
    to their dtype."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < row_len
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    ptrs = part_ptr + offs
    for _ in range(0, n_rows):
        acc += tl.load(ptrs, mask=ok, other=0.0)
        ptrs += row_len
    target = tl.load(target_ptr + offs, mask=ok, other=-1)
    owner = target >> 24
    position = target & 0xFFFFFF
    acc = tl.where(owner >= scaled_from, acc * scale, acc)
    addresses = out0_ptr + position
    if OUTPUTS > 1:
        addresses = _owned_by(1, out1_ptr, position, owner, addresses)
    if OUTPUTS > 2:
        addresses = _owned_by(2, out2_ptr, position, owner, addresses)
    if OUTPUTS > 3:
        addresses = _owned_by(3, out3_ptr, position, owner, addresses)
    if OUTPUTS > 4:
        addresses = _owned_by(4, out4_ptr, position, owner, addresses)
    if OUTPUTS > 5:
        addresses = _owned_by(5, out5_ptr, position, owner, addresses)
    tl.store(addresses, acc.to(out0_ptr.dtype.element_ty), mask=target >= 0)


@functools.lru_cache(maxsize=64)
def _targets(row_len: int, views: tuple[RowView, ...], device: torch.device) -> Tensor:
    """The kernel's target of every column of a row of ``row_len`` holding ``views`` (int32 on
    ``device``; a pure function of its arguments, so never stale)."""
    targets = torch.full((row_len,), -1, dtype=torch.int64)
    columns = torch.arange(row_len)
    for index, view in enumerate(views):
        numel = math.prod(view.shape)
        if numel == 0:
            continue
        if numel > _POSITION_MASK + 1:
            raise ValueError(f"a gradient of {numel} elements is beyond the kernel's 2**24")
        held = columns.as_strided(view.shape, view.strides, view.offset).reshape(-1)
        if targets[held].ne(-1).any() or held.unique().numel() != numel:
            raise ValueError(f"row view {index} overlaps another view or itself")
        targets[held] = (index << _POSITION_BITS) + torch.arange(numel)
    return targets.to(torch.int32).to(device)


def gradients_from_partials(
    partials: Tensor,
    views: Sequence[RowView],
    dtype: torch.dtype,
    *,
    scale: float = 1.0,
    scaled_from: int | None = None,
) -> list[Tensor]:
    """The gradients held by the rows of ``partials`` ((rows, row_len) float32, contiguous;
    zero rows give zeros): one new contiguous tensor of ``dtype`` per view in ``views`` (at
    most six), the column sums of the rows (added in order) at the view's columns, multiplied
    by ``scale`` for the views from index ``scaled_from`` on (default: none)."""
    if not 1 <= len(views) <= MAX_OUTPUTS:
        raise ValueError(f"views: expected 1 to {MAX_OUTPUTS} row views, got {len(views)}")
    rows, row_len = partials.shape
    device = partials.device
    outputs = [launch.empty(view.shape, dtype, device) for view in views]
    targets = _targets(row_len, tuple(views), device)
    slots = outputs + [outputs[0]] * (MAX_OUTPUTS - len(outputs))
    gradients_from_partials_kernel[(launch.cdiv(row_len, REDUCE_BLOCK),)](
        partials, targets, rows, row_len, float(scale),
        len(views) if scaled_from is None else scaled_from,
        *slots, OUTPUTS=len(views), BLOCK=REDUCE_BLOCK, num_warps=REDUCE_WARPS,
    )  # fmt: skip
    return outputs
