"""The fused WDSR-A block: one persistent Triton kernel for the forward, and the host-side
forward and backward launchers.

    out = x + res_scale * (conv3x3(h, w2) + b2),   h = relu(conv3x3(x, w1) + b1)

Forward (:func:`wdsr_a_block_fwd_kernel`): each program loops over output tiles of
``TILE_H x TILE_W`` pixels. For a tile it computes the wide activation h (F channels) on the
tile and its one-pixel halo -- nine products over shifted windows of x, chunk by chunk of
``HALO_CHUNK`` pixels -- and writes it, zero outside the image (the second convolution's
padding), to the program's own slot of a scratch buffer, which stays in L2 as it is rewritten
tile after tile. The second convolution then reads the nine shifted windows of the slot and
adds b2 and the scaled residual. HBM sees x read once and the output written once, instead of
h (4C channels) written and read back. h is rounded to the input dtype before its ReLU, as the
eager convolution rounds it; accumulation is in float32.

Backward recomputes h with the 3x3 kernel of :mod:`.conv3x3`, then::

    dh  = conv3x3(grad, flip(res_scale * w2)^T) where h > 0, else 0   (mask epilogue)
    dw2 = res_scale * wgrad(h, grad),    db2 = res_scale * sum(grad)
    dw1 = wgrad(x, dh),                  db1 = sum(dh)
    dx  = grad + conv3x3(dh, flip(w1)^T)                               (residual epilogue)

Weight gradients are deterministic (fixed-order reductions); h and dh live only while the
block's backward runs. Arguments are checked by the op (:mod:`wdsr_fast.ops.wdsr_a_block`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import launch
from .conv3x3 import conv3x3_forward, conv3x3_input_grad, conv3x3_weight_grad
from .dot import bias_accumulator, dot_precision, mma, padded_channels
from .tiles import load_matrix, relu, slot_conv3x3_residual, tile_origin

__all__ = [
    "FusedConfig",
    "forward_config",
    "wdsr_a_block_backward",
    "wdsr_a_block_forward",
    "wdsr_a_block_fwd_kernel",
]


@triton.jit
def _tap_product(
    x_image, w1_ptr, acc, tap, pixel, xx, inside, up, down, W, sxc, sxh, sxw,
    f, f_ok, offs_c, c_ok, C: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """``acc + x[pixel + tap offset] W1[f, :, tap]^T``: one tap of the first convolution on a
    chunk of halo pixels (``inside`` the image; ``up``, ``down``: their neighbours above and
    below are too), zero where the shifted pixel is outside the image."""
    src_ok = up if tap // 3 == 0 else (down if tap // 3 == 2 else inside)
    if tap % 3 == 0:
        src_ok = src_ok & (xx >= 1)
    if tap % 3 == 2:
        src_ok = src_ok & (xx + 1 < W)
    shift = (tap // 3 - 1) * sxh + (tap % 3 - 1) * sxw
    window = tl.load(
        x_image + (pixel + shift)[:, None] + offs_c[None, :] * sxc,
        mask=src_ok[:, None] & c_ok[None, :],
        other=0.0,
    )
    w1 = load_matrix(w1_ptr + tap, offs_c, c_ok, 9, f, f_ok, C * 9)
    return mma(window, w1, acc, DOT_PRECISION)


@triton.jit
def _wide_to_scratch(
    x_image, scratch, y0, x0, H, W, sxc, sxh, sxw, halo_chunks,
    w1_ptr, b1_ptr, offs_c, c_ok,
    C: tl.constexpr, F: tl.constexpr, F_PAD: tl.constexpr, TILE_W: tl.constexpr,
    HALO_PIXELS: tl.constexpr, HALO_CHUNK: tl.constexpr, BLOCK_F: tl.constexpr,
    DOT_PRECISION: tl.constexpr, UNROLL_TAPS: tl.constexpr, taps,
):  # fmt: skip
    """``h = relu(conv3x3(x, W1) + b1)`` on the tile at (y0, x0) and its one-pixel halo, zero
    outside the image, into ``scratch`` ([halo pixel, F_PAD], row-major over the halo). The
    taps' loop is unrolled if UNROLL_TAPS, else a loop of ``taps`` (9) trips."""
    HALO_W: tl.constexpr = TILE_W + 2
    for hc in range(halo_chunks):
        q = hc * HALO_CHUNK + tl.arange(0, HALO_CHUNK)
        hy = q // HALO_W
        yy = y0 - 1 + hy
        xx = x0 - 1 + (q - hy * HALO_W)
        inside = (q < HALO_PIXELS) & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        # A neighbour (dy, dx) of a pixel inside the image is inside unless it crosses an edge.
        up, down = inside & (yy >= 1), inside & (yy + 1 < H)
        pixel = yy * sxh + xx * sxw
        dtype = x_image.dtype.element_ty
        for f0 in tl.static_range(0, F_PAD, BLOCK_F):
            f = f0 + tl.arange(0, BLOCK_F)
            f_ok = f < F
            acc = bias_accumulator(HALO_CHUNK, b1_ptr, f, f_ok, dtype)
            if UNROLL_TAPS:
                for tap in tl.static_range(9):
                    acc = _tap_product(x_image, w1_ptr, acc, tap, pixel, xx, inside, up, down,
                                       W, sxc, sxh, sxw, f, f_ok, offs_c, c_ok, C,
                                       DOT_PRECISION)  # fmt: skip
            else:
                for tap in range(taps):
                    acc = _tap_product(x_image, w1_ptr, acc, tap, pixel, xx, inside, up, down,
                                       W, sxc, sxh, sxw, f, f_ok, offs_c, c_ok, C,
                                       DOT_PRECISION)  # fmt: skip
            h = tl.where(inside[:, None], relu(acc.to(dtype)), 0.0)
            tl.store(scratch + q[:, None] * F_PAD + f[None, :], h)


@triton.jit
def wdsr_a_block_fwd_kernel(
    x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, out_ptr, scratch_ptr,
    N, H, W, tiles_h, tiles_w, halo_chunks, out_chunks, programs, taps,
    sxn, sxc, sxh, sxw,
    son, soc, soh, sow,
    res_scale,
    C: tl.constexpr, F: tl.constexpr, C_PAD: tl.constexpr, F_PAD: tl.constexpr,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr,
    HALO_CHUNK: tl.constexpr, OUT_CHUNK: tl.constexpr, BLOCK_F: tl.constexpr,
    CONV_BLOCK_K: tl.constexpr, DOT_PRECISION: tl.constexpr, UNROLL_TAPS: tl.constexpr,
):  # fmt: skip
    """Program p of ``programs``: tiles p, p + programs, ... of the N x tiles_h x tiles_w
    output tiles.

    ``halo_chunks`` = ceil((TILE_H + 2) * (TILE_W + 2) / HALO_CHUNK) and ``out_chunks`` =
    TILE_H * TILE_W / OUT_CHUNK are runtime values so that the compiler keeps them as loops
    (the static cost report maps SASS loops to these trip counts). ``programs`` is an argument
    rather than ``tl.num_programs(0)``: read from the constant bank, it holds no register
    through the tile loop (under sm_90's 128-register cap that register was spilled)."""
    HALO_W: tl.constexpr = TILE_W + 2
    HALO_PIXELS: tl.constexpr = (TILE_H + 2) * HALO_W
    pid = tl.program_id(0)
    tiles_per_image = tiles_h * tiles_w
    scratch = scratch_ptr + pid.to(tl.int64) * (halo_chunks * HALO_CHUNK * F_PAD)
    offs_c = tl.arange(0, C_PAD)
    c_ok = offs_c < C
    for tile in range(pid, N * tiles_per_image, programs):
        n, y0, x0 = tile_origin(tile, tiles_per_image, tiles_w, TILE_H, TILE_W)
        x_image = x_ptr + n.to(tl.int64) * sxn
        _wide_to_scratch(
            x_image, scratch, y0, x0, H, W, sxc, sxh, sxw, halo_chunks,
            w1_ptr, b1_ptr, offs_c, c_ok,
            C, F, F_PAD, TILE_W, HALO_PIXELS, HALO_CHUNK, BLOCK_F, DOT_PRECISION, UNROLL_TAPS,
            taps,
        )  # fmt: skip
        tl.debug_barrier()
        # The second convolution over the nine shifted windows of h, bias, scaled residual.
        slot_conv3x3_residual(
            scratch, w2_ptr, b2_ptr, offs_c, c_ok,
            x_image, sxc, sxh, sxw, out_ptr + n.to(tl.int64) * son, soc, soh, sow,
            y0, x0, H, W, res_scale, out_chunks, F, F_PAD, CONV_BLOCK_K, TILE_W, OUT_CHUNK,
            DOT_PRECISION,
        )  # fmt: skip
        tl.debug_barrier()  # the slot is rewritten by the next tile


@dataclass(frozen=True)
class FusedConfig:
    """Tile of the fused forward: output tile, halo and output chunks (pixels), wide channels
    at a time, warps, programs per SM, at most ``max_registers`` registers per thread (None:
    the compiler's choice), wide channels per product of the second convolution, and whether
    the first convolution's taps' loop is unrolled in the source."""

    tile_h: int
    tile_w: int
    halo_chunk: int
    out_chunk: int
    block_f: int
    num_warps: int
    programs_per_sm: int
    max_registers: int | None = None
    conv_block_k: int = 64
    unroll_taps: bool = True


def forward_config(
    channels: int,
    block_feats: int,
    dtype: torch.dtype,
    capability: tuple[int, int],
    triton_version: tuple[int, int],
    channels_innermost: bool = True,
) -> FusedConfig | None:
    """Launch configuration of the fused forward for C = ``channels``, F = ``block_feats``
    (padded widths at most 32 and 128), 16-bit operands with contiguous channels
    (``channels_innermost``), on a GPU of ``capability``, compiled by Triton
    ``triton_version``; None otherwise (the two-kernel forward runs then: wider tiles, float32
    operands or per-element addresses would spill, and so does sm_80's tile on Tritons before
    3.7).

    16 x 16 tiles: the halo's 128-pixel chunks are 1.5x the tile (a slot of 384 pixels x F,
    96 KB for F = 128 in 16-bit); 128-pixel output chunks on 8 warps; two programs per SM. On
    sm_90, h computed 64 channels at a time under a 128-register cap: both programs resident
    (25% occupancy); older Tritons spill under the cap, so it is lifted there (one resident).
    On sm_80, where mma.sync keeps both operands in registers, h computed 32 channels at a
    time with the first convolution's taps in a loop rather than unrolled, and the second
    convolution reading 16 of h's channels per product: 128 registers, both programs resident,
    for about 1.7x the instructions (unrolled, the taps' operands are loaded ahead: 193
    registers and one program per SM; a cap spills; with 32 channels per product the second
    convolution spills 8 B on inputs whose sizes Triton does not specialise). Zero spills: see
    the ahead-of-time compile test."""
    if padded_channels(channels) > 32 or padded_channels(block_feats) > 128:
        return None
    if dtype == torch.float32 or not channels_innermost:
        return None
    tight = triton_version >= launch.TIGHT_REGISTERS_SINCE
    if capability >= (9, 0):
        cap = 128 if tight else None
        return FusedConfig(16, 16, 128, 128, 64, 8, programs_per_sm=2, max_registers=cap)
    if not tight:
        return None
    return FusedConfig(16, 16, 128, 128, 32, 8, 2, None, conv_block_k=16, unroll_taps=False)


def wdsr_a_block_forward(
    x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, res_scale: float
) -> Tensor:
    """The block's output (N, C, H, W), channels_last; x (N, C, H, W) any strides, w1 (F, C, 3, 3),
    b1 (F,), w2 (C, F, 3, 3), b2 (C,) contiguous, one dtype."""
    n, c, h, w = x.shape
    f = w1.shape[0]
    precision = dot_precision(x.dtype)
    capability = launch.device_capability(x.device)
    cfg = forward_config(c, f, x.dtype, capability, launch.triton_version(), x.stride(1) == 1)
    if cfg is None:
        wide = conv3x3_forward(x, w1, b1, relu=True)
        return conv3x3_forward(wide, w2, b2, residual=x, res_scale=res_scale)
    out = launch.empty((n, c, h, w), x.dtype, x.device, torch.channels_last)
    if out.numel() == 0:
        return out
    launch.check_image_extent("x", x)
    tiles_h, tiles_w = launch.cdiv(h, cfg.tile_h), launch.cdiv(w, cfg.tile_w)
    tiles = n * tiles_h * tiles_w
    programs = min(tiles, cfg.programs_per_sm * launch.multiprocessor_count(x.device))
    f_pad = padded_channels(f)
    halo_chunks = launch.cdiv((cfg.tile_h + 2) * (cfg.tile_w + 2), cfg.halo_chunk)
    scratch = launch.empty((programs, halo_chunks * cfg.halo_chunk, f_pad), x.dtype, x.device)
    wdsr_a_block_fwd_kernel[(programs,)](
        x, w1, b1, w2, b2, out, scratch,
        n, h, w, tiles_h, tiles_w, halo_chunks, cfg.tile_h * cfg.tile_w // cfg.out_chunk, programs,
        9,
        *x.stride(), *out.stride(),
        float(res_scale),
        C=c, F=f, C_PAD=padded_channels(c), F_PAD=f_pad,
        TILE_H=cfg.tile_h, TILE_W=cfg.tile_w, HALO_CHUNK=cfg.halo_chunk,
        OUT_CHUNK=cfg.out_chunk, BLOCK_F=min(cfg.block_f, f_pad),
        CONV_BLOCK_K=min(cfg.conv_block_k, f_pad), DOT_PRECISION=precision,
        UNROLL_TAPS=cfg.unroll_taps,
        num_warps=cfg.num_warps, num_stages=1, maxnreg=cfg.max_registers,
    )  # fmt: skip
    return out


def wdsr_a_block_backward(
    grad: Tensor, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, res_scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dx, dw1, db1, dw2, db2) given grad = dLoss/dout, each shaped like its argument,
    in x's dtype; dx channels_last."""
    h = conv3x3_forward(x, w1, b1, relu=True)
    dw2, db2 = conv3x3_weight_grad(h, grad, scale=res_scale, dtype=x.dtype)
    dh = conv3x3_input_grad(grad, w2, weight_scale=res_scale, relu_mask=h)
    del h
    dw1, db1 = conv3x3_weight_grad(x, dh, dtype=x.dtype)
    dx = conv3x3_input_grad(dh, w1, residual=grad)
    return dx, dw1, db1, dw2, db2
