"""The fused WDSR-B block: one persistent Triton kernel for the forward, and the host-side
forward and backward launchers.

    out = x + res_scale * (conv3x3(l, W3) + b3),   l = W2 · relu(W1 · x + b1) + b2

Forward (:func:`wdsr_b_block_fwd_kernel`): each program loops over output tiles of
``TILE_H x TILE_W`` pixels. For a tile it computes the low-rank tensor l on the tile and its
one-pixel halo -- chunk by chunk of ``HALO_CHUNK`` pixels, the 6C-wide activation streamed in
``BLOCK_E`` slices through registers, never stored -- and writes it, zero outside the image (the
3x3 convolution's padding), to the program's own slot of a scratch buffer. The slot is rewritten
for every tile, so it stays in L2: HBM sees x read once and the output written once. Then the
3x3 convolution reads the nine shifted windows of the slot, adds b3 and the scaled residual.
Channel widths are padded to the ``tl.dot`` minimum by masked loads (L = 25 is stored as 32
channels in the slot: 64-byte pixels, 16-byte vector accesses). Biases enter the products as a
ones column times a bias row (:func:`wdsr_fast.kernels.dot.ones_column`), so accumulators start
at the bias with no per-value add. Accumulation is in float32; the wide activation is rounded to
the input dtype before its ReLU and its product with W2, and l before the convolution, as the
eager convolutions round them.

Backward recomputes l from x (it lives only while the block's backward runs), takes
dl = res_scale * conv3x3^T(grad) with the 3x3 kernel on adjoint weights, the 3x3 weight gradient
from (l, grad), and the chain's gradients from (x, dl) with the residual gradient added in the
same pass. All weight gradients are deterministic.

Arguments are checked by the op (:mod:`wdsr_fast.ops.wdsr_b_block`): x and grad of any strides,
weights contiguous, one dtype and device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import launch
from .conv3x3 import conv3x3_forward, conv3x3_input_grad, conv3x3_weight_grad
from .dot import bias_rows, dot_precision, ones_column, padded_channels
from .pointwise_chain import pointwise_chain_backward, pointwise_chain_forward

__all__ = [
    "FusedForwardConfig",
    "forward_config",
    "wdsr_b_block_backward",
    "wdsr_b_block_forward",
    "wdsr_b_block_fwd_kernel",
]


@triton.jit
def wdsr_b_block_fwd_kernel(
    x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr, out_ptr, scratch_ptr,
    N, H, W, tiles_h, tiles_w, halo_chunks, out_chunks,
    sxn, sxc, sxh, sxw,
    son, soc, soh, sow,
    res_scale,
    C: tl.constexpr, E: tl.constexpr, L: tl.constexpr,
    C_PAD: tl.constexpr, L_PAD: tl.constexpr,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr,
    HALO_CHUNK: tl.constexpr, OUT_CHUNK: tl.constexpr, BLOCK_E: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Program p: tiles p, p + programs, ... of the N x tiles_h x tiles_w output tiles.

    ``halo_chunks`` = ceil((TILE_H + 2) * (TILE_W + 2) / HALO_CHUNK) and ``out_chunks`` =
    TILE_H * TILE_W / OUT_CHUNK are runtime values so that the compiler keeps them as loops
    (the static cost report maps SASS loops to these trip counts)."""
    HALO_W: tl.constexpr = TILE_W + 2
    HALO_PIXELS: tl.constexpr = (TILE_H + 2) * HALO_W
    dtype = x_ptr.dtype.element_ty
    pid = tl.program_id(0)
    programs = tl.num_programs(0)
    tiles_per_image = tiles_h * tiles_w
    scratch = scratch_ptr + pid.to(tl.int64) * (halo_chunks * HALO_CHUNK * L_PAD)
    offs_c = tl.arange(0, C_PAD)
    offs_l = tl.arange(0, L_PAD)
    c_ok = offs_c < C
    l_ok = offs_l < L
    for tile in range(pid, N * tiles_per_image, programs):
        n = tile // tiles_per_image
        t = tile - n * tiles_per_image
        ty = t // tiles_w
        y0 = ty * TILE_H
        x0 = (t - ty * tiles_w) * TILE_W
        x_image = x_ptr + n.to(tl.int64) * sxn
        # The low-rank tensor on the tile and its halo, zero outside the image, into scratch.
        for hc in range(halo_chunks):
            q = hc * HALO_CHUNK + tl.arange(0, HALO_CHUNK)
            hy = q // HALO_W
            yy = y0 - 1 + hy
            xx = x0 - 1 + (q - hy * HALO_W)
            inside = (q < HALO_PIXELS) & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
            xin = tl.load(
                x_image + (yy * sxh + xx * sxw)[:, None] + offs_c[None, :] * sxc,
                mask=inside[:, None] & c_ok[None, :],
                other=0.0,
            )
            ones = ones_column(HALO_CHUNK, dtype)
            low = tl.dot(ones, bias_rows(b2_ptr, offs_l, l_ok))
            for e0 in tl.static_range(0, E, BLOCK_E):
                e = e0 + tl.arange(0, BLOCK_E)
                e_ok = e < E
                w1t = tl.load(
                    w1_ptr + e[None, :] * C + offs_c[:, None],
                    mask=c_ok[:, None] & e_ok[None, :],
                    other=0.0,
                )
                pre = tl.dot(ones, bias_rows(b1_ptr, e, e_ok))
                pre = tl.dot(xin, w1t, pre, input_precision=DOT_PRECISION).to(dtype)
                # ReLU keeping NaN, like torch.relu (bfloat16 compares in float32).
                zero = tl.zeros_like(pre)
                wide = tl.maximum(pre, zero, propagate_nan=tl.PropagateNan.ALL).to(dtype)
                w2t = tl.load(
                    w2_ptr + offs_l[None, :] * E + e[:, None],
                    mask=e_ok[:, None] & l_ok[None, :],
                    other=0.0,
                )
                low = tl.dot(wide, w2t, low, input_precision=DOT_PRECISION)
            low = tl.where(inside[:, None], low.to(dtype), 0.0)
            tl.store(scratch + q[:, None] * L_PAD + offs_l[None, :], low)
        tl.debug_barrier()
        # The 3x3 convolution over the nine shifted windows of scratch, bias, scaled residual.
        for oc in range(out_chunks):
            p = oc * OUT_CHUNK + tl.arange(0, OUT_CHUNK)
            oy = p // TILE_W
            ox = p - oy * TILE_W
            acc = tl.dot(ones_column(OUT_CHUNK, dtype), bias_rows(b3_ptr, offs_c, c_ok))
            for tap in tl.static_range(9):
                window = (oy + tap // 3) * HALO_W + ox + tap % 3
                low = tl.load(scratch + window[:, None] * L_PAD + offs_l[None, :])
                w3 = tl.load(
                    w3_ptr + offs_c[None, :] * (L * 9) + offs_l[:, None] * 9 + tap,
                    mask=l_ok[:, None] & c_ok[None, :],
                    other=0.0,
                )
                acc = tl.dot(low, w3, acc, input_precision=DOT_PRECISION)
            yy = y0 + oy
            xx = x0 + ox
            ok = ((yy < H) & (xx < W))[:, None] & c_ok[None, :]
            res = tl.load(
                x_image + (yy * sxh + xx * sxw)[:, None] + offs_c[None, :] * sxc, mask=ok
            )
            out = res.to(tl.float32) + res_scale * acc
            out_image = out_ptr + n.to(tl.int64) * son
            tl.store(
                out_image + (yy * soh + xx * sow)[:, None] + offs_c[None, :] * soc,
                out.to(dtype),
                mask=ok,
            )
        tl.debug_barrier()  # the slot is rewritten by the next tile


@dataclass(frozen=True)
class FusedForwardConfig:
    """Tile of the fused forward: output tile, halo and output chunks (pixels), wide slice, warps,
    pipeline stages, programs per SM."""

    tile_h: int
    tile_w: int
    halo_chunk: int
    out_chunk: int
    block_e: int
    num_warps: int
    num_stages: int
    programs_per_sm: int


def forward_config(
    channels: int, low: int, dtype: torch.dtype, precision: str, capability: tuple[int, int]
) -> FusedForwardConfig | None:
    """Launch configuration of the fused forward for C = ``channels``, L = ``low``, operands of
    ``dtype`` with ``tl.dot`` ``precision``, on a GPU of ``capability``; None where float32
    tiles of more than 32 channels would spill registers (the two-kernel forward runs then).

    16 x 32 tiles (the halo's chunks are 1.25x the tile), two programs per SM, 8 warps.
    16-bit and TF32 operands: 128-pixel chunks, 64 wide channels at a time for 16-bit operands
    of at most 32 channels on sm_90, else 32 (the default block: at most 128 registers per
    thread, 25% occupancy, on sm_80 and sm_90). Full-precision float32 (FMA products hold whole
    operand rows in registers): 64-pixel chunks, 16 wide channels. Zero spills for all of
    them: see the ahead-of-time compile test."""
    widest = max(padded_channels(channels), padded_channels(low))
    if dtype == torch.float32 and widest > 32:
        return None
    if dtype == torch.float32 and precision == "ieee":
        return FusedForwardConfig(16, 32, 64, 64, 16, 8, num_stages=1, programs_per_sm=2)
    wide_slice = dtype != torch.float32 and widest <= 32 and capability >= (9, 0)
    block_e = 64 if wide_slice else 32
    return FusedForwardConfig(16, 32, 128, 128, block_e, 8, num_stages=1, programs_per_sm=2)


# Kernels index within one image in int32; the batch offset is 64-bit.
INDEX_LIMIT = 2**31 - 1


def _check_image_extent(name: str, t: Tensor) -> None:
    extent = 1 + sum((s - 1) * abs(st) for s, st in zip(t.shape[1:], t.stride()[1:], strict=True))
    if extent > INDEX_LIMIT:
        raise ValueError(f"{name}: one image spans {extent} elements, more than 2**31 - 1")


def wdsr_b_block_forward(
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    b3: Tensor,
    res_scale: float,
) -> Tensor:
    """The block's output (N, C, H, W), channels_last; x (N, C, H, W) any strides, w1 (E, C, 1, 1),
    b1 (E,), w2 (L, E, 1, 1), b2 (L,), w3 (C, L, 3, 3), b3 (C,) contiguous, one dtype."""
    n, c, h, w = x.shape
    e, low = w1.shape[0], w2.shape[0]
    precision = dot_precision(x.dtype)
    cfg = forward_config(c, low, x.dtype, precision, launch.device_capability(x.device))
    if cfg is None:
        chain = pointwise_chain_forward(x, w1, b1, w2, b2)
        return conv3x3_forward(chain, w3, b3, residual=x, res_scale=res_scale)
    out = launch.empty((n, c, h, w), x.dtype, x.device, torch.channels_last)
    if out.numel() == 0:
        return out
    _check_image_extent("x", x)
    tiles_h, tiles_w = triton.cdiv(h, cfg.tile_h), triton.cdiv(w, cfg.tile_w)
    tiles = n * tiles_h * tiles_w
    programs = min(tiles, cfg.programs_per_sm * launch.multiprocessor_count(x.device))
    l_pad = padded_channels(low)
    halo_chunks = triton.cdiv((cfg.tile_h + 2) * (cfg.tile_w + 2), cfg.halo_chunk)
    scratch = launch.empty((programs, halo_chunks * cfg.halo_chunk, l_pad), x.dtype, x.device)
    wdsr_b_block_fwd_kernel[(programs,)](
        x, w1, b1, w2, b2, w3, b3, out, scratch,
        n, h, w, tiles_h, tiles_w, halo_chunks, cfg.tile_h * cfg.tile_w // cfg.out_chunk,
        *x.stride(), *out.stride(),
        float(res_scale),
        C=c, E=e, L=low, C_PAD=padded_channels(c), L_PAD=l_pad,
        TILE_H=cfg.tile_h, TILE_W=cfg.tile_w, HALO_CHUNK=cfg.halo_chunk,
        OUT_CHUNK=cfg.out_chunk, BLOCK_E=cfg.block_e, DOT_PRECISION=precision,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    return out


def wdsr_b_block_backward(
    grad: Tensor,
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    res_scale: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dx, dw1, db1, dw2, db2, dw3, db3) given grad = dLoss/dout, each shaped like its
    argument, in x's dtype; dx channels_last."""
    low = pointwise_chain_forward(x, w1, b1, w2, b2)
    grad_low = conv3x3_input_grad(grad, w3, weight_scale=res_scale)
    dw3, db3 = conv3x3_weight_grad(low, grad)
    del low
    dx, dw1, db1, dw2, db2 = pointwise_chain_backward(x, grad_low, w1, b1, w2, grad_residual=grad)
    dw3 = (dw3 * res_scale).to(x.dtype)
    db3 = (db3 * res_scale).to(x.dtype)
    return dx, dw1, db1, dw2, db2, dw3, db3
