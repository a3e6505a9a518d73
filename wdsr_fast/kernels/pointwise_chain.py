"""Fused pointwise chain of the WDSR-B block: ``l = W2 · relu(W1 · x + b1) + b2`` per pixel.

x is (N, C, H, W); W1 is (E, C) (the 1x1 conv C -> E = C*expand), W2 is (L, E) (1x1 conv
E -> L). Pixels are processed in tiles of ``BLOCK_P`` rows (pixel-major, NHWC indexing through
the tensors' strides, so NCHW, channels_last and non-contiguous inputs need no copy) and the wide
dimension E is streamed in chunks of ``BLOCK_E``: the wide activation lives only in registers,
never in global memory. Channel dimensions are padded to powers of two >= 16 for ``tl.dot`` and
masked. Dots accumulate in float32; the relu output is rounded to the input dtype before the
second dot, as the eager convolutions round it.

Backward, given dl = dLoss/dl: with ``pre = W1 · x + b1``, ``h = relu(pre)`` and
``dpre = (pre > 0) ⊙ (W2^T dl)``:

    dx  = W1^T dpre (+ an optional residual gradient, added in the same pass)
    dW1 = sum_p dpre x^T,   db1 = sum_p dpre,   dW2 = sum_p dl h^T,   db2 = sum_p dl

Two backward kernels recompute ``pre`` chunk by chunk from x: one per pixel tile for dx, and
one for the weight gradients, which are deterministic: each of its programs owns one E-chunk
and a fixed list of pixel tiles, sums their contributions in registers and writes them once
into its own row of a float32 partial-sum buffer; the rows are then summed in a fixed order.
No atomics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import launch
from .dot import dot_precision, mma, padded_channels, product
from .reduce import contiguous_views, gradients_from_partials

__all__ = [
    "STAGES",
    "ChainConfig",
    "chain_config",
    "dot_kind",
    "pointwise_chain_backward",
    "pointwise_chain_forward",
]


@triton.jit
def _pixel_offsets(pix, HW, W, stride_n, stride_h, stride_w):
    """Element offset of pixel ``pix`` (flattened n*H*W + h*W + w) in a 4-D tensor's storage."""
    n = pix // HW
    hw = pix - n * HW
    h = hw // W
    w = hw - h * W
    return n.to(tl.int64) * stride_n + h * stride_h + w * stride_w


@triton.jit
def _load_pixels(ptr, pix, pix_ok, offs, ok, HW, W, s_n, s_c, s_h, s_w):
    """Rows ``pix`` (flattened pixels) by channels ``offs`` of a 4-D tensor, read through its
    strides; 0 where ``pix_ok`` or ``ok`` is false."""
    rows = _pixel_offsets(pix, HW, W, s_n, s_h, s_w)
    return tl.load(
        ptr + rows[:, None] + offs[None, :] * s_c,
        mask=pix_ok[:, None] & ok[None, :],
        other=0.0,
    )


@triton.jit
def _relu(pre):
    """max(pre, 0) keeping NaN, like torch.relu (a plain maximum would turn NaN into 0)."""
    return tl.where(pre < 0.0, 0.0, pre)


@triton.jit
def _relu_grad(pre, grad):
    """The relu's backward as torch computes it: zero where pre <= 0 (NaN passes through)."""
    return tl.where(pre <= 0.0, 0.0, grad)


@triton.jit
def _wide_chunk(
    x, w1_ptr, b1_ptr, e, e_ok, offs_c, c_ok, sw1_e, sw1_c, DOT_PRECISION: tl.constexpr
):
    """pre = x W1[e, :]^T + b1[e] for one chunk ``e`` of the wide channels; also W1[e, :]^T."""
    w1t = tl.load(
        w1_ptr + e[None, :] * sw1_e + offs_c[:, None] * sw1_c,
        mask=c_ok[:, None] & e_ok[None, :],
        other=0.0,
    )
    b1 = tl.load(b1_ptr + e, mask=e_ok, other=0.0).to(tl.float32)
    return product(x, w1t, DOT_PRECISION) + b1[None, :], w1t


@triton.jit
def _wide_grad_chunk(
    dlow, w2_ptr, e, e_ok, offs_l, l_ok, sw2_l, sw2_e, DOT_PRECISION: tl.constexpr
):
    """dwide = dlow W2[:, e] for one chunk ``e`` of the wide channels (before the relu mask)."""
    w2 = tl.load(
        w2_ptr + offs_l[:, None] * sw2_l + e[None, :] * sw2_e,
        mask=l_ok[:, None] & e_ok[None, :],
        other=0.0,
    )
    return product(dlow, w2, DOT_PRECISION)


@triton.jit
def pointwise_chain_fwd_kernel(
    x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, low_ptr,
    n_pixels, HW, W,
    sx_n, sx_c, sx_h, sx_w,
    sw1_e, sw1_c, sw2_l, sw2_e,
    C, E, L,
    C_PAD: tl.constexpr, L_PAD: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_E: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program, ``BLOCK_P`` pixels: low[p, :] = W2 relu(W1 x[p, :] + b1) + b2, channels_last."""
    pid = tl.program_id(0)
    pix = pid * BLOCK_P + tl.arange(0, BLOCK_P)
    pix_ok = pix < n_pixels
    offs_c = tl.arange(0, C_PAD)
    offs_l = tl.arange(0, L_PAD)
    offs_e = tl.arange(0, BLOCK_E)
    c_ok = offs_c < C
    l_ok = offs_l < L

    x = _load_pixels(x_ptr, pix, pix_ok, offs_c, c_ok, HW, W, sx_n, sx_c, sx_h, sx_w)
    acc = tl.zeros((BLOCK_P, L_PAD), dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        e = e0 + offs_e
        e_ok = e < E
        pre, _ = _wide_chunk(x, w1_ptr, b1_ptr, e, e_ok, offs_c, c_ok, sw1_e, sw1_c, DOT_PRECISION)
        wide = _relu(pre).to(x.dtype)
        w2t = tl.load(
            w2_ptr + offs_l[None, :] * sw2_l + e[:, None] * sw2_e,
            mask=e_ok[:, None] & l_ok[None, :],
            other=0.0,
        )
        acc = mma(wide, w2t, acc, DOT_PRECISION)
    b2 = tl.load(b2_ptr + offs_l, mask=l_ok, other=0.0).to(tl.float32)
    acc += b2[None, :]
    low_ptrs = low_ptr + pix.to(tl.int64)[:, None] * L + offs_l[None, :]
    tl.store(low_ptrs, acc.to(low_ptr.dtype.element_ty), mask=pix_ok[:, None] & l_ok[None, :])


@triton.jit
def pointwise_chain_bwd_input_kernel(
    x_ptr, dlow_ptr, gres_ptr, w1_ptr, b1_ptr, w2_ptr, dx_ptr,
    n_pixels, HW, W,
    sx_n, sx_c, sx_h, sx_w,
    sd_n, sd_c, sd_h, sd_w,
    sg_n, sg_c, sg_h, sg_w,
    so_n, so_c, so_h, so_w,
    sw1_e, sw1_c, sw2_l, sw2_e,
    C, E, L,
    C_PAD: tl.constexpr, L_PAD: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_E: tl.constexpr, DOT_PRECISION: tl.constexpr,
    HAS_RESIDUAL_GRAD: tl.constexpr,
):  # fmt: skip
    """One program, ``BLOCK_P`` pixels: dx = W1^T ((pre > 0) ⊙ W2^T dlow) (+ gres), written
    through dx's strides; ``pre`` is recomputed chunk by chunk from x."""
    pid = tl.program_id(0)
    pix = pid * BLOCK_P + tl.arange(0, BLOCK_P)
    pix_ok = pix < n_pixels
    offs_c = tl.arange(0, C_PAD)
    offs_l = tl.arange(0, L_PAD)
    offs_e = tl.arange(0, BLOCK_E)
    c_ok = offs_c < C
    l_ok = offs_l < L
    pc_mask = pix_ok[:, None] & c_ok[None, :]

    x = _load_pixels(x_ptr, pix, pix_ok, offs_c, c_ok, HW, W, sx_n, sx_c, sx_h, sx_w)
    dlow = _load_pixels(dlow_ptr, pix, pix_ok, offs_l, l_ok, HW, W, sd_n, sd_c, sd_h, sd_w)
    if HAS_RESIDUAL_GRAD:
        g_rows = _pixel_offsets(pix, HW, W, sg_n, sg_h, sg_w)
        gres = tl.load(gres_ptr + g_rows[:, None] + offs_c[None, :] * sg_c, mask=pc_mask)
        dx = gres.to(tl.float32)
    else:
        dx = tl.zeros((BLOCK_P, C_PAD), dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        e = e0 + offs_e
        e_ok = e < E
        pre, w1t = _wide_chunk(
            x, w1_ptr, b1_ptr, e, e_ok, offs_c, c_ok, sw1_e, sw1_c, DOT_PRECISION
        )
        dwide = _wide_grad_chunk(dlow, w2_ptr, e, e_ok, offs_l, l_ok, sw2_l, sw2_e, DOT_PRECISION)
        dpre = _relu_grad(pre, dwide).to(x.dtype)
        dx = mma(dpre, tl.trans(w1t), dx, DOT_PRECISION)
    o_rows = _pixel_offsets(pix, HW, W, so_n, so_h, so_w)
    tl.store(
        dx_ptr + o_rows[:, None] + offs_c[None, :] * so_c,
        dx.to(dx_ptr.dtype.element_ty),
        mask=pc_mask,
    )


@triton.jit
def pointwise_chain_bwd_weight_kernel(
    x_ptr, dlow_ptr, w1_ptr, b1_ptr, w2_ptr, partial_ptr,
    n_pixels, HW, W,
    sx_n, sx_c, sx_h, sx_w,
    sd_n, sd_c, sd_h, sd_w,
    sw1_e, sw1_c, sw2_l, sw2_e,
    C, E, L, partial_row,
    C_PAD: tl.constexpr, L_PAD: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_E: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Program (chunk k, group g) owns wide channels e in [k*BLOCK_E, (k+1)*BLOCK_E) and pixel
    tiles g, g + G, ... (G = groups); it sums their weight gradients in registers, in that fixed
    order, and writes them once into its slice of row g of ``partial_ptr``, laid out as
    [dW1 (E, C) | dW2 (L, E) | db1 (E) | db2 (L)] in float32 (chunk 0 also writes db2)."""
    chunk = tl.program_id(0)
    group = tl.program_id(1)
    n_groups = tl.num_programs(1)
    offs_c = tl.arange(0, C_PAD)
    offs_l = tl.arange(0, L_PAD)
    e = chunk * BLOCK_E + tl.arange(0, BLOCK_E)
    c_ok = offs_c < C
    l_ok = offs_l < L
    e_ok = e < E

    dw1 = tl.zeros((BLOCK_E, C_PAD), dtype=tl.float32)
    dw2t = tl.zeros((BLOCK_E, L_PAD), dtype=tl.float32)
    db1 = tl.zeros((BLOCK_E,), dtype=tl.float32)
    db2 = tl.zeros((L_PAD,), dtype=tl.float32)
    n_tiles = tl.cdiv(n_pixels, BLOCK_P)
    for tile in range(group, n_tiles, n_groups):
        pix = tile * BLOCK_P + tl.arange(0, BLOCK_P)
        pix_ok = pix < n_pixels
        x = _load_pixels(x_ptr, pix, pix_ok, offs_c, c_ok, HW, W, sx_n, sx_c, sx_h, sx_w)
        dlow = _load_pixels(dlow_ptr, pix, pix_ok, offs_l, l_ok, HW, W, sd_n, sd_c, sd_h, sd_w)
        pre, _ = _wide_chunk(x, w1_ptr, b1_ptr, e, e_ok, offs_c, c_ok, sw1_e, sw1_c, DOT_PRECISION)
        wide = _relu(pre).to(x.dtype)
        dwide = _wide_grad_chunk(dlow, w2_ptr, e, e_ok, offs_l, l_ok, sw2_l, sw2_e, DOT_PRECISION)
        dpre32 = _relu_grad(pre, dwide)
        dpre = dpre32.to(x.dtype)
        dw1 = mma(tl.trans(dpre), x, dw1, DOT_PRECISION)
        dw2t = mma(tl.trans(wide), dlow, dw2t, DOT_PRECISION)
        db1 += tl.sum(dpre32, axis=0)
        db2 += tl.sum(dlow.to(tl.float32), axis=0)

    row = partial_ptr + group.to(tl.int64) * partial_row
    tl.store(row + e[:, None] * C + offs_c[None, :], dw1, mask=e_ok[:, None] & c_ok[None, :])
    dw2_part = row + E * C
    tl.store(dw2_part + offs_l[None, :] * E + e[:, None], dw2t, mask=e_ok[:, None] & l_ok[None, :])
    db1_part = dw2_part + L * E
    tl.store(db1_part + e, db1, mask=e_ok)
    tl.store(db1_part + E + offs_l, db2, mask=l_ok & (chunk == 0))


@dataclass(frozen=True)
class ChainConfig:
    """Launch configuration of the chain kernels (all compile-time values but the dot precision)."""

    c_pad: int
    l_pad: int
    block_p: int
    block_e: int
    num_warps: int
    num_stages: int


# Tile tables: (widest padded channel count up to which a row applies, (BLOCK_P, BLOCK_E,
# num_warps, num_stages)), per kernel and dot kind: "half" for float16/bfloat16 operands, "tf32"
# for float32 on TF32 tensor cores, "ieee" for full-precision float32 (FMA dots). Each row is
# the largest tile found with zero register spills on sm_80 and sm_90 (ptxas -v of the launched
# variants; TF32 tiles are smaller than 16-bit ones, their operands being rounded to TF32 in
# registers); rows are visited in order and the last one (limit 0) takes everything wider.
_TILES: dict[str, dict[str, tuple[tuple[int, tuple[int, int, int, int]], ...]]] = {
    "forward": {
        "half": ((64, (128, 64, 8, 2)), (128, (64, 32, 8, 2)), (0, (32, 16, 8, 2))),
        "tf32": ((64, (128, 64, 8, 2)), (128, (64, 32, 8, 2)), (0, (32, 16, 8, 2))),
        "ieee": ((32, (64, 32, 8, 2)), (128, (32, 32, 8, 2)), (0, (32, 16, 8, 2))),
    },
    "input_grad": {
        "half": (
            (32, (128, 64, 8, 2)), (64, (64, 32, 8, 2)), (128, (32, 32, 8, 2)), (0, (16, 16, 8, 2))
        ),
        "tf32": ((64, (64, 32, 8, 2)), (128, (32, 32, 8, 2)), (0, (16, 16, 8, 2))),
        "ieee": ((64, (32, 32, 8, 2)), (128, (32, 16, 8, 2)), (0, (16, 16, 8, 3))),
    },
    "weight_grad": {
        "half": ((64, (64, 32, 8, 2)), (128, (32, 16, 8, 2)), (0, (16, 16, 8, 2))),
        "tf32": ((32, (32, 32, 8, 2)), (128, (32, 16, 8, 2)), (0, (16, 16, 8, 2))),
        "ieee": ((32, (16, 16, 8, 2)), (128, (16, 16, 4, 1)), (0, (16, 16, 8, 1))),
    },
}  # fmt: skip
# Rows that replace those of _TILES on Tritons before 3.7, which spill registers on the latter.
_OLDER_TRITON_TILES: dict[tuple[str, str], tuple[tuple[int, tuple[int, int, int, int]], ...]] = {
    ("input_grad", "tf32"): ((32, (64, 32, 8, 2)), (128, (32, 32, 8, 2)), (0, (16, 16, 8, 2))),
    ("weight_grad", "tf32"): ((32, (32, 32, 8, 2)), (128, (32, 16, 8, 2)), (0, (16, 16, 8, 2))),
}  # fmt: skip
STAGES = tuple(_TILES)


def dot_kind(dtype: torch.dtype, precision: str) -> str:
    """Row set of the tile tables: "half", "tf32" or "ieee" (full-precision float32)."""
    return precision if dtype == torch.float32 else "half"


def chain_config(
    stage: str,
    channels: int,
    low: int,
    dtype: torch.dtype,
    precision: str,
    triton_version: tuple[int, int],
) -> ChainConfig:
    """Launch configuration of one chain kernel (``stage`` in :data:`STAGES`) for C =
    ``channels``, L = ``low``, operands of ``dtype`` and ``tl.dot`` input ``precision``,
    compiled by Triton ``triton_version``."""
    c_pad, l_pad = padded_channels(channels), padded_channels(low)
    widest = max(c_pad, l_pad)
    kind = dot_kind(dtype, precision)
    rows = _TILES[stage][kind]
    if triton_version < launch.TIGHT_REGISTERS_SINCE:
        rows = _OLDER_TRITON_TILES.get((stage, kind), rows)
    tile = next(tile for limit, tile in rows if widest <= limit or limit == 0)
    return ChainConfig(c_pad, l_pad, *tile)


def _weight_grad_groups(n_tiles: int, n_chunks: int, device: torch.device) -> int:
    """Pixel-tile groups of the weight-gradient kernel (its grid is chunks x groups): about two
    programs per SM, each looping over several tiles; partial rows = groups."""
    programs = 2 * launch.multiprocessor_count(device)
    return max(1, min(n_tiles, launch.cdiv(programs, n_chunks)))


def _as_matrix(weight: Tensor) -> Tensor:
    """A 1x1 conv weight (out, in, 1, 1) as the (out, in) matrix view (no copy)."""
    return weight.reshape(weight.shape[0], weight.shape[1])


def pointwise_chain_forward(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """``l = W2 · relu(W1 · x + b1) + b2`` at every pixel.

    x: (N, C, H, W), any strides; w1: (E, C, 1, 1); b1: (E,); w2: (L, E, 1, 1); b2: (L,), all of
    x's dtype and device. Returns l: (N, L, H, W) in channels_last memory format, x's dtype.
    """
    n, c, h, w = x.shape
    w1m, w2m = _as_matrix(w1), _as_matrix(w2)
    e, low = w1m.shape[0], w2m.shape[0]
    out = launch.empty((n, low, h, w), x.dtype, x.device, torch.channels_last)
    n_pixels = n * h * w
    if n_pixels == 0:
        return out
    precision = dot_precision(x.dtype)
    cfg = chain_config("forward", c, low, x.dtype, precision, launch.triton_version())
    grid = (launch.cdiv(n_pixels, cfg.block_p),)
    pointwise_chain_fwd_kernel[grid](
        x, w1m, b1, w2m, b2, out,
        n_pixels, h * w, w,
        *x.stride(),
        *w1m.stride(), *w2m.stride(),
        c, e, low,
        C_PAD=cfg.c_pad, L_PAD=cfg.l_pad, BLOCK_P=cfg.block_p, BLOCK_E=cfg.block_e,
        DOT_PRECISION=precision, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    return out


def pointwise_chain_backward(
    x: Tensor,
    grad_low: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    grad_residual: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of the chain ``l = W2 · relu(W1 · x + b1) + b2`` given ``grad_low`` = dLoss/dl.

    x: (N, C, H, W) and grad_low: (N, L, H, W), any strides; w1: (E, C, 1, 1); b1: (E,);
    w2: (L, E, 1, 1); grad_residual: None or (N, C, H, W), added to dx (the gradient of a
    residual connection around the chain). All of x's dtype and device.

    Returns ``(dx, dw1, db1, dw2, db2)``: dx (N, C, H, W) channels_last, weight gradients shaped
    like w1, b1, w2, (L,) (contiguous) in x's dtype, summed in float32 in a fixed order
    (deterministic). Five separate tensors: none is a view of another.
    """
    n, c, h, w = x.shape
    w1m, w2m = _as_matrix(w1), _as_matrix(w2)
    e, low = w1m.shape[0], w2m.shape[0]
    dx = launch.empty(tuple(x.shape), x.dtype, x.device, torch.channels_last)
    n_pixels = n * h * w
    precision = dot_precision(x.dtype)
    partial_row = e * c + low * e + e + low
    wcfg = chain_config("weight_grad", c, low, x.dtype, precision, launch.triton_version())
    n_chunks = launch.cdiv(e, wcfg.block_e)
    n_groups = _weight_grad_groups(launch.cdiv(n_pixels, wcfg.block_p), n_chunks, x.device)
    partials = launch.empty((n_groups if n_pixels else 0, partial_row), torch.float32, x.device)
    if n_pixels:
        icfg = chain_config("input_grad", c, low, x.dtype, precision, launch.triton_version())
        gres = grad_residual if grad_residual is not None else x
        pointwise_chain_bwd_input_kernel[(launch.cdiv(n_pixels, icfg.block_p),)](
            x, grad_low, gres, w1m, b1, w2m, dx,
            n_pixels, h * w, w,
            *x.stride(), *grad_low.stride(), *gres.stride(), *dx.stride(),
            *w1m.stride(), *w2m.stride(),
            c, e, low,
            C_PAD=icfg.c_pad, L_PAD=icfg.l_pad, BLOCK_P=icfg.block_p, BLOCK_E=icfg.block_e,
            DOT_PRECISION=precision, HAS_RESIDUAL_GRAD=grad_residual is not None,
            num_warps=icfg.num_warps, num_stages=icfg.num_stages,
        )  # fmt: skip
        pointwise_chain_bwd_weight_kernel[(n_chunks, n_groups)](
            x, grad_low, w1m, b1, w2m, partials,
            n_pixels, h * w, w,
            *x.stride(), *grad_low.stride(),
            *w1m.stride(), *w2m.stride(),
            c, e, low, partial_row,
            C_PAD=wcfg.c_pad, L_PAD=wcfg.l_pad, BLOCK_P=wcfg.block_p, BLOCK_E=wcfg.block_e,
            DOT_PRECISION=precision, num_warps=wcfg.num_warps, num_stages=wcfg.num_stages,
        )  # fmt: skip
    views = contiguous_views([tuple(w1.shape), tuple(w2.shape), (e,), (low,)])
    dw1, dw2, db1, db2 = gradients_from_partials(partials, views, x.dtype)
    return dx, dw1, db1, dw2, db2
