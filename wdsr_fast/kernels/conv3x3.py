"""3x3 convolution (stride 1, padding 1) as implicit GEMM over pixels, with fused epilogues.

Forward: ``y[p, co] = sum_{tap, ci} x_pad[pixel p shifted by tap, ci] * w[co, ci, tap]`` is a
GEMM with M = pixels (N*H*W), N = Cout and K = 9*Cin; a program owns a tile of
``TILE_H x TILE_W`` pixels and ``BLOCK_N`` output channels and walks K tap by tap, ``BLOCK_K``
input channels at a time (the masks of a tap's window are computed once for all its channels).
Inputs and weights are indexed through their strides (NCHW, channels_last and non-contiguous
views, and the adjoint weights of the input gradient, work without copies); zero padding and
channel padding to the ``tl.dot`` minimum of 16 are done with load masks. The epilogue scales,
adds the bias, applies ReLU, zeroes where a mask tensor is not positive (the ReLU backward),
and adds a scaled residual.

Weight gradient: ``gw[co, ci, tap] = sum_p grad_out[p, co] * x_pad[p shifted by tap, ci]`` is a
GEMM with K = pixels. A program owns one kernel row (three taps, so each tile of grad_out is
read once for three products), a block of output and one of input channels, and a set of
pixel tiles; it writes its partial sums once, and a second kernel adds the partials in a fixed
order, so results are bit-identical from run to run (no float atomics). The bias gradient is
the per-channel sum of ``grad_out`` and rides along in the same buffer.

The input gradient of a 3x3 convolution is the forward kernel with flipped, transposed weights
(:func:`conv3x3_input_grad`).

Launch configurations come from heuristics (:func:`forward_config`, :func:`weight_grad_config`);
the ahead-of-time compile test covers every configuration they return for the shipped models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import launch
from .dot import dot_precision, mma, padded_channels
from .reduce import contiguous_views, gradients_from_partials
from .tiles import load_matrix, load_pixels, tile_origin, tile_pixels

# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


@triton.jit
def _tap_product(
    x_image, w_ptr, acc, tap, yy, xx, ok, co, co_ok, H, W,
    sxc, sxh, sxw, swo, swi, swh, sww,
    CIN: tl.constexpr, BLOCK_K: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    FLIP_TAPS: tl.constexpr,
):  # fmt: skip
    """acc + the window of x shifted by tap (ky, kx) = (tap // 3, tap % 3) - 1 at the pixels
    (yy, xx) times the weight's tap (ky, kx), or (2 - ky, 2 - kx) if FLIP_TAPS, [pixels, co],
    BLOCK_K input channels at a time; x is zero outside the image."""
    sy = yy + tap // 3 - 1
    sx = xx + tap % 3 - 1
    src_ok = ok & (sy >= 0) & (sy < H) & (sx >= 0) & (sx < W)
    if FLIP_TAPS:
        w_tap = w_ptr + (2 - tap // 3) * swh + (2 - tap % 3) * sww
    else:
        w_tap = w_ptr + (tap // 3) * swh + (tap % 3) * sww
    for k0 in tl.static_range(0, CIN, BLOCK_K):
        ci = k0 + tl.arange(0, BLOCK_K)
        ci_ok = ci < CIN
        a = load_pixels(x_image, sy, sx, src_ok, ci, ci_ok, sxc, sxh, sxw)
        b = load_matrix(w_tap, ci, ci_ok, swi, co, co_ok, swo)
        acc = mma(a, b, acc, INPUT_PRECISION)
    return acc


@triton.jit
def conv3x3_forward_kernel(
    x_ptr, w_ptr, bias_ptr, mask_ptr, res_ptr, y_ptr,
    N, H, W, tiles_h, tiles_w,
    sxn, sxc, sxh, sxw,
    swo, swi, swh, sww,
    smn, smc, smh, smw,
    srn, src, srh, srw,
    syn, syc, syh, syw,
    scale, res_scale,
    CIN: tl.constexpr, COUT: tl.constexpr,
    HAS_BIAS: tl.constexpr, RELU: tl.constexpr, HAS_MASK: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    UNROLL_TAPS: tl.constexpr, FLIP_TAPS: tl.constexpr,
):  # fmt: skip
    """One tile of TILE_H x TILE_W pixels (program axis 0) by BLOCK_N output channels (axis 1)
    of y: the nine taps' shifted windows of x, BLOCK_K input channels at a time, times the
    weight read through its strides (its taps in reverse order if FLIP_TAPS), then ``scale``
    and the epilogues. The taps' loop is unrolled in the source if UNROLL_TAPS, else left to
    the compiler to unroll or not."""
    n, y0, x0 = tile_origin(tl.program_id(0), tiles_h * tiles_w, tiles_w, TILE_H, TILE_W)
    p = tl.arange(0, TILE_H * TILE_W)
    yy, xx, ok = tile_pixels(y0, x0, p, H, W, TILE_W)
    co = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    co_ok = co < COUT
    x_image = x_ptr + n.to(tl.int64) * sxn
    acc = tl.zeros((TILE_H * TILE_W, BLOCK_N), dtype=tl.float32)
    if UNROLL_TAPS:
        for tap in tl.static_range(9):
            acc = _tap_product(x_image, w_ptr, acc, tap, yy, xx, ok, co, co_ok, H, W,
                               sxc, sxh, sxw, swo, swi, swh, sww,
                               CIN, BLOCK_K, INPUT_PRECISION, FLIP_TAPS)  # fmt: skip
    else:
        for tap in range(9):
            acc = _tap_product(x_image, w_ptr, acc, tap, yy, xx, ok, co, co_ok, H, W,
                               sxc, sxh, sxw, swo, swi, swh, sww,
                               CIN, BLOCK_K, INPUT_PRECISION, FLIP_TAPS)  # fmt: skip
    acc = acc * scale
    out_ok = ok[:, None] & co_ok[None, :]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + co, mask=co_ok, other=0.0).to(tl.float32)[None, :]
    if RELU:
        acc = tl.where(acc < 0.0, 0.0, acc)  # keeps NaN, like torch.relu
    if HAS_MASK:
        keep = load_pixels(mask_ptr + n.to(tl.int64) * smn, yy, xx, ok, co, co_ok,
                           smc, smh, smw)  # fmt: skip
        acc = tl.where(keep > 0.0, acc, 0.0)
    if HAS_RESIDUAL:
        res = load_pixels(res_ptr + n.to(tl.int64) * srn, yy, xx, ok, co, co_ok, src, srh, srw)
        acc = res.to(tl.float32) + res_scale * acc
    y = y_ptr + n.to(tl.int64) * syn + (yy * syh + xx * syw)[:, None] + co[None, :] * syc
    tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=out_ok)


@triton.jit
def _weight_grad_product(xs, g, acc, CI_MAJOR: tl.constexpr, INPUT_PRECISION: tl.constexpr):
    """acc + xs^T g ([ci, co]) when CI_MAJOR, else acc + g^T xs ([co, ci]); xs [pixels, ci], g
    [pixels, co]."""
    if CI_MAJOR:
        acc = mma(tl.trans(xs), g, acc, INPUT_PRECISION)
    else:
        acc = mma(tl.trans(g), xs, acc, INPUT_PRECISION)
    return acc


@triton.jit
def conv3x3_weight_grad_kernel(
    x_ptr, g_ptr, part_ptr,
    N, H, W, tiles_h, tiles_w, row_len,
    sxn, sxc, sxh, sxw,
    sgn, sgc, sgh, sgw,
    CIN: tl.constexpr, COUT: tl.constexpr,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr,
    BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr, CI_MAJOR: tl.constexpr,
    ONE_TAP_AT_A_TIME: tl.constexpr, INPUT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Partial sums of one kernel row ky, one block of output and one of input channels, over
    the tiles s, s + S, ... of the N x tiles_h x tiles_w tiles of TILE_H x TILE_W pixels, for
    program (ky * ci_blocks + ci block, co block, s) of a (3 ci_blocks + 1, co_blocks, S) grid:

        part[s, co * CIN * 9 + ci * 9 + ky * 3 + kx] = sum_p g[p, co] * x[p + (ky-1, kx-1), ci]

    for kx = 0, 1, 2 (three accumulators: each g tile is read once for three taps). x is zero
    outside the image. Programs of the last row (3 ci_blocks) write the bias gradient's partial
    sums instead, part[s, COUT * CIN * 9 + co] = sum_p g[p, co]: apart, the products' programs
    hold no bias sum in their registers."""
    ci_blocks = tl.cdiv(CIN, BLOCK_CI)
    co = tl.program_id(1) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    co_ok = co < COUT
    split = tl.program_id(2)
    row = part_ptr + split.to(tl.int64) * row_len
    p = tl.arange(0, TILE_H * TILE_W)
    tiles_per_image = tiles_h * tiles_w
    if tl.program_id(0) == 3 * ci_blocks:
        bias = tl.zeros((TILE_H * TILE_W, BLOCK_CO), dtype=tl.float32)
        for tile in range(split, N * tiles_per_image, tl.num_programs(2)):
            n, y0, x0 = tile_origin(tile, tiles_per_image, tiles_w, TILE_H, TILE_W)
            yy, xx, ok = tile_pixels(y0, x0, p, H, W, TILE_W)
            g_image = g_ptr + n.to(tl.int64) * sgn
            bias += load_pixels(g_image, yy, xx, ok, co, co_ok, sgc, sgh, sgw).to(tl.float32)
        tl.store(row + COUT * CIN * 9 + co, tl.sum(bias, axis=0), mask=co_ok)
    else:
        ky = tl.program_id(0) // ci_blocks
        ci = (tl.program_id(0) - ky * ci_blocks) * BLOCK_CI + tl.arange(0, BLOCK_CI)
        ci_ok = ci < CIN
        # Accumulators [ci, co] when CI_MAJOR (the larger side as the products' rows), else
        # [co, ci].
        ACC_SHAPE: tl.constexpr = (BLOCK_CI, BLOCK_CO) if CI_MAJOR else (BLOCK_CO, BLOCK_CI)
        acc0 = tl.zeros(ACC_SHAPE, dtype=tl.float32)
        acc1 = tl.zeros(ACC_SHAPE, dtype=tl.float32)
        acc2 = tl.zeros(ACC_SHAPE, dtype=tl.float32)
        for tile in range(split, N * tiles_per_image, tl.num_programs(2)):
            n, y0, x0 = tile_origin(tile, tiles_per_image, tiles_w, TILE_H, TILE_W)
            yy, xx, ok = tile_pixels(y0, x0, p, H, W, TILE_W)
            g = load_pixels(g_ptr + n.to(tl.int64) * sgn, yy, xx, ok, co, co_ok, sgc, sgh, sgw)
            x_image = x_ptr + n.to(tl.int64) * sxn
            sy = yy + ky - 1
            row_ok = ok & (sy >= 0) & (sy < H)
            # ONE_TAP_AT_A_TIME: each product runs before the next tap's load (one operand tile
            # in registers at a time); else the three loads come first.
            x_left = load_pixels(x_image, sy, xx - 1, row_ok & (xx >= 1), ci, ci_ok, sxc, sxh,
                                 sxw)  # fmt: skip
            if ONE_TAP_AT_A_TIME:
                acc0 = _weight_grad_product(x_left, g, acc0, CI_MAJOR, INPUT_PRECISION)
            x_centre = load_pixels(x_image, sy, xx, row_ok, ci, ci_ok, sxc, sxh, sxw)
            if ONE_TAP_AT_A_TIME:
                acc1 = _weight_grad_product(x_centre, g, acc1, CI_MAJOR, INPUT_PRECISION)
            x_right = load_pixels(x_image, sy, xx + 1, row_ok & (xx + 1 < W), ci, ci_ok, sxc,
                                  sxh, sxw)  # fmt: skip
            if not ONE_TAP_AT_A_TIME:
                acc0 = _weight_grad_product(x_left, g, acc0, CI_MAJOR, INPUT_PRECISION)
                acc1 = _weight_grad_product(x_centre, g, acc1, CI_MAJOR, INPUT_PRECISION)
            acc2 = _weight_grad_product(x_right, g, acc2, CI_MAJOR, INPUT_PRECISION)
        if CI_MAJOR:
            offs = ci[:, None] * 9 + co[None, :] * (CIN * 9) + ky * 3
            ok = ci_ok[:, None] & co_ok[None, :]
        else:
            offs = co[:, None] * (CIN * 9) + ci[None, :] * 9 + ky * 3
            ok = co_ok[:, None] & ci_ok[None, :]
        tl.store(row + offs, acc0, mask=ok)
        tl.store(row + offs + 1, acc1, mask=ok)
        tl.store(row + offs + 2, acc2, mask=ok)


# --------------------------------------------------------------------------------------------
# Launch configuration heuristics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardConfig:
    """Tile of the forward kernel: TILE_H x TILE_W pixels x BLOCK_N output channels, BLOCK_K
    input channels per product, whether the taps' loop is unrolled in the source, warps."""

    tile_h: int
    tile_w: int
    block_n: int
    block_k: int
    unroll_taps: bool
    num_warps: int


@dataclass(frozen=True)
class WeightGradConfig:
    """Tile of the weight-gradient kernel: pixels (TILE_H x TILE_W, reduced) x output x input
    channels, which of them are the products' rows, whether each tap's product runs before the
    next tap's load, warps, about how many programs per SM the splits aim for, and a register
    cap (None: the compiler's choice)."""

    tile_h: int
    tile_w: int
    block_co: int
    block_ci: int
    ci_major: bool
    one_tap_at_a_time: bool
    num_warps: int
    programs_per_sm: int
    max_registers: int | None = None


def _channel_block(channels: int, cap: int) -> int:
    """Channels padded for ``tl.dot`` (power of two >= 16), at most ``cap`` per program."""
    return min(cap, padded_channels(channels))


def channels_vectorizable(t: Tensor) -> bool:
    """Whether Triton can load ``t``'s channels as 16-byte vectors: channels innermost, the
    other strides and the address multiples of 16 elements (what its launcher specialises)."""
    return (
        t.stride(1) == 1
        and all(s % 16 == 0 for s in (t.stride(0), t.stride(2), t.stride(3)))
        and t.data_ptr() % 16 == 0
    )


def forward_config(
    cin: int,
    cout: int,
    vectorizable: bool,
    dtype: torch.dtype,
    precision: str,
    capability: tuple[int, int],
    triton_version: tuple[int, int],
) -> ForwardConfig:
    """Launch configuration of :func:`conv3x3_forward` for Cin -> Cout channels on a GPU of
    ``capability``, compiled by Triton ``triton_version``.

    ``vectorizable``: every tensor it reads and writes passes :func:`channels_vectorizable`:
    128-pixel tiles (4 x 32); otherwise each element needs its own address registers, so
    tiles are 64 pixels. At most 64 output channels per program and 32 input channels per
    product; full-precision float32 products (``precision`` "ieee": FMA, whole operand rows
    in registers) take 64-pixel tiles, 32 output and 16 input channels. TF32 products, whose
    operands are rounded in registers, take 16 input channels, and 32 output channels where
    there are more than 32 input channels: the widest blocks that stay spill-free on every
    supported Triton (wider, WDSR-A's 128 -> 32 conv spills on sm_80, and WDSR-B's 64-channel
    conv on sm_80 with Triton 3.6; narrower output blocks for WDSR-A's 32 -> 128 conv spill
    with Triton 3.2).
    Zero register spills for all of them: see the ahead-of-time compile test.

    The taps' loop is unrolled in the source on sm_90, where a rolled loop waits for each
    tap's asynchronous product (WDSR-A's convs: 1.55x the instructions), and for FMA products.
    sm_80's tensor-core products leave it to the compiler: unrolled in the source, every
    tap's operands are loaded ahead into registers (186-190 for WDSR-A's convs, one 8-warp
    program per SM); left to the compiler (which unrolls or peels some taps), 128, two
    programs per SM, for about 1.15x the instructions. Tritons before 3.7 unroll it in the
    source everywhere (left to the compiler, a TF32 product spills there on sm_80)."""
    full_precision = dtype == torch.float32 and precision == "ieee"
    float32 = dtype == torch.float32
    block_n = _channel_block(cout, 32 if full_precision or (float32 and cin > 32) else 64)
    block_k = _channel_block(cin, 16 if float32 else 32)
    tile_h = 4 if vectorizable and not full_precision else 2
    older_triton = triton_version < launch.TIGHT_REGISTERS_SINCE
    unroll_taps = capability >= (9, 0) or full_precision or older_triton
    return ForwardConfig(tile_h, 32, block_n, block_k, unroll_taps, num_warps=8)


def weight_grad_config(
    cin: int,
    cout: int,
    vectorizable: bool,
    dtype: torch.dtype,
    precision: str,
    capability: tuple[int, int],
    triton_version: tuple[int, int],
) -> WeightGradConfig:
    """Launch configuration of :func:`conv3x3_weight_grad` for Cin -> Cout channels on a GPU of
    ``capability``, compiled by Triton ``triton_version``, on 8 warps. Zero register spills for
    every variant on every supported Triton: see the ahead-of-time compile test.

    - Pixel tiles of 128 (4 x 32) on sm_90 when x and grad_out pass
      :func:`channels_vectorizable` and the products take 16-bit operands, else of 64 (2 x 32:
      per-element addresses; float32, whose FMA products hold a whole tile per thread and
      whose TF32 operands are rounded in registers, WDSR-A's 128 -> 32 conv spilling 296 B
      on 128-pixel tiles; or sm_80, whose mma.sync products keep their operands in registers:
      WDSR-A's weight gradients take 172-182 registers on 128-pixel tiles, 128 on 64, for
      1.2-1.35x the instructions).
    - Output-channel blocks of up to 128; 64 for full-precision float32 products and on
      Tritons before 3.7; 32 with per-element addresses.
    - Input-channel blocks sized so the three float32 accumulators hold at most 4096 values
      each for 16-bit operands on sm_90 (2048 on sm_80, whose mma.sync products keep their
      operands in registers; 1024 for float32 operands; half of that before Triton 3.7). The
      wider of the two blocks is the products' row dimension (tensor-core products want at
      least 64 rows).
    - Tensor-core products with output channels as rows run one tap at a time (load, product,
      next load): with all three taps loaded first, WDSR-A's 32 -> 128 conv takes 137
      registers on sm_90, one at a time 124. Elsewhere the three loads come first: the 128 ->
      32 conv (input channels as rows) takes 104 registers that way and 134 one at a time, and
      FMA products (and sm_80 before Triton 3.7) spill one at a time.
    - On sm_80, 16-bit operands with contiguous channels run under a 128-register cap from
      Triton 3.7 on (25% occupancy; without it, WDSR-A's 32 -> 128 conv takes 135 registers
      at 16 x 48 x 48), spill-free."""
    full_precision = dtype == torch.float32 and precision == "ieee"
    older_triton = triton_version < launch.TIGHT_REGISTERS_SINCE
    widest_co = 64 if full_precision or older_triton else 128
    block_co = _channel_block(cout, widest_co if vectorizable else 32)
    sixteen_bit_budget = 4096 if capability >= (9, 0) else 2048
    budget = 1024 if dtype == torch.float32 else sixteen_bit_budget
    if older_triton:
        budget //= 2
    block_ci = _channel_block(cin, max(16, budget // block_co))
    tile_h = 4 if vectorizable and dtype != torch.float32 and capability >= (9, 0) else 2
    ci_major = block_ci > block_co
    one_tap = not (full_precision or ci_major or older_triton)
    sixteen_bit = dtype != torch.float32 and vectorizable
    cap = 128 if sixteen_bit and capability < (9, 0) and not older_triton else None
    return WeightGradConfig(tile_h, 32, block_co, block_ci, ci_major, one_tap, 8, 2, cap)


# --------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------


def conv3x3_forward(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    *,
    relu: bool = False,
    relu_mask: Tensor | None = None,
    residual: Tensor | None = None,
    res_scale: float = 1.0,
    scale: float = 1.0,
    flip_taps: bool = False,
) -> Tensor:
    """``y = scale * conv2d(x, weight, padding=1) + bias``, then optional ReLU, mask and
    residual; with ``flip_taps``, ``weight.flip(2, 3)`` in place of ``weight``, without a copy
    (the kernel reads tap (ky, kx) at (2 - ky, 2 - kx)).

    ``y = relu(y)`` if ``relu``; ``y = where(relu_mask > 0, y, 0)`` if ``relu_mask`` is given
    (the ReLU backward); ``y = residual + res_scale * y`` if ``residual`` is given.

    x: (N, Cin, H, W), any strides (indexed through them, no layout copy);
    weight: (Cout, Cin, 3, 3); bias: (Cout,) or None; relu_mask, residual: (N, Cout, H, W), any
    strides. All of x's dtype and device. Returns (N, Cout, H, W) in channels_last memory format,
    dtype of x; accumulation in float32; TF32 dots only for float32 inputs when
    ``torch.backends.cudnn.allow_tf32`` is on.
    """
    n, cin, h, w = x.shape
    cout = weight.shape[0]
    y = launch.empty((n, cout, h, w), x.dtype, x.device, torch.channels_last)
    if y.numel() == 0:
        return y
    operands = [x, y] + [t for t in (relu_mask, residual) if t is not None]
    for name, t in (("x", x), ("relu_mask", relu_mask), ("residual", residual)):
        if t is not None:
            launch.check_image_extent(name, t)
    vectorizable = all(channels_vectorizable(t) for t in operands)
    capability = launch.device_capability(x.device)
    cfg = forward_config(
        cin, cout, vectorizable, x.dtype, dot_precision(x.dtype), capability,
        launch.triton_version(),
    )  # fmt: skip
    mask = relu_mask if relu_mask is not None else y
    res = residual if residual is not None else y
    tiles_h, tiles_w = launch.cdiv(h, cfg.tile_h), launch.cdiv(w, cfg.tile_w)
    grid = (n * tiles_h * tiles_w, launch.cdiv(cout, cfg.block_n))
    conv3x3_forward_kernel[grid](
        x, weight, bias if bias is not None else weight, mask, res, y,
        n, h, w, tiles_h, tiles_w,
        *x.stride(), *weight.stride(), *mask.stride(), *res.stride(), *y.stride(),
        float(scale), float(res_scale),
        CIN=cin, COUT=cout,
        HAS_BIAS=bias is not None, RELU=relu, HAS_MASK=relu_mask is not None,
        HAS_RESIDUAL=residual is not None, INPUT_PRECISION=dot_precision(x.dtype),
        TILE_H=cfg.tile_h, TILE_W=cfg.tile_w, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
        UNROLL_TAPS=cfg.unroll_taps, FLIP_TAPS=flip_taps, num_warps=cfg.num_warps, num_stages=1,
    )  # fmt: skip
    return y


def conv3x3_input_grad(
    grad_out: Tensor,
    weight: Tensor,
    *,
    weight_scale: float = 1.0,
    relu_mask: Tensor | None = None,
    residual: Tensor | None = None,
) -> Tensor:
    """Input gradient of ``conv2d(x, weight_scale * weight, padding=1)``: the forward kernel on
    the adjoint weights (taps flipped by the kernel, input and output channels swapped through
    the strides: no copy; ``weight_scale`` applied to the float32 accumulator), with the same
    optional mask and residual epilogues.

    grad_out: (N, Cout, H, W), any strides; weight: (Cout, Cin, 3, 3). Returns (N, Cin, H, W)
    channels_last.
    """
    return conv3x3_forward(
        grad_out, weight.transpose(0, 1), None, relu_mask=relu_mask, residual=residual,
        scale=weight_scale, flip_taps=True,
    )  # fmt: skip


def conv3x3_weight_grad(
    x: Tensor,
    grad_out: Tensor,
    *,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    num_splits: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Weight and bias gradients of ``conv2d(x, weight, padding=1) + bias``.

    ``grad_weight[co, ci, ky, kx] = sum_{n,h,w} grad_out[n, co, h, w] * x_pad[n, ci, h+ky-1,
    w+kx-1]`` (x zero-padded by one pixel), ``grad_bias[co] = sum_{n,h,w} grad_out[n, co, h, w]``.

    x: (N, Cin, H, W), grad_out: (N, Cout, H, W), same dtype and device, any strides.
    Returns ``scale`` times them, (Cout, Cin, 3, 3) and (Cout,), separate contiguous tensors of
    ``dtype`` (summed in float32, scaled, then rounded once). The tiles are cut into
    ``num_splits`` interleaved sets (default: about two programs per SM) whose partial sums are
    added in a fixed order, so two calls give bit-identical results.
    """
    n, cin, h, w = x.shape
    cout = grad_out.shape[1]
    if num_splits is not None and num_splits < 1:
        raise ValueError(f"num_splits: expected a positive count, got {num_splits}")
    launch.check_image_extent("x", x)
    launch.check_image_extent("grad_out", grad_out)
    vectorizable = channels_vectorizable(x) and channels_vectorizable(grad_out)
    capability = launch.device_capability(x.device)
    cfg = weight_grad_config(
        cin, cout, vectorizable, x.dtype, dot_precision(x.dtype), capability,
        launch.triton_version(),
    )  # fmt: skip
    tiles_h, tiles_w = launch.cdiv(h, cfg.tile_h), launch.cdiv(w, cfg.tile_w)
    tiles = n * tiles_h * tiles_w
    grid_rows = 3 * launch.cdiv(cin, cfg.block_ci) + 1  # the taps' rows, the bias row
    co_blocks = launch.cdiv(cout, cfg.block_co)
    if num_splits is None:
        wanted = cfg.programs_per_sm * launch.multiprocessor_count(x.device)
        num_splits = max(1, min(tiles, launch.cdiv(wanted, grid_rows * co_blocks)))
    row = cout * cin * 9 + cout
    partials = launch.empty((num_splits if tiles else 0, row), torch.float32, x.device)
    if tiles:
        conv3x3_weight_grad_kernel[(grid_rows, co_blocks, num_splits)](
            x, grad_out, partials,
            n, h, w, tiles_h, tiles_w, row,
            *x.stride(), *grad_out.stride(),
            CIN=cin, COUT=cout, TILE_H=cfg.tile_h, TILE_W=cfg.tile_w,
            BLOCK_CO=cfg.block_co, BLOCK_CI=cfg.block_ci, CI_MAJOR=cfg.ci_major,
            ONE_TAP_AT_A_TIME=cfg.one_tap_at_a_time, INPUT_PRECISION=dot_precision(x.dtype),
            num_warps=cfg.num_warps, num_stages=1, maxnreg=cfg.max_registers,
        )  # fmt: skip
    views = contiguous_views([(cout, cin, 3, 3), (cout,)])
    dw, db = gradients_from_partials(partials, views, dtype, scale=scale, scaled_from=0)
    return dw, db
