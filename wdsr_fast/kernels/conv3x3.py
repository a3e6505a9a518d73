"""3x3 convolution (stride 1, padding 1) as implicit GEMM over pixels, with fused epilogues.

Forward: ``y[p, co] = sum_{tap, ci} x_pad[pixel p shifted by tap, ci] * w[co, ci, tap]`` is a
GEMM with M = pixels (N*H*W), N = Cout and K = 9*Cin; a program owns ``BLOCK_M`` pixels and
``BLOCK_N`` output channels and walks K in ``9 * ceil(Cin / BLOCK_K)`` steps (one flat loop, so
Triton can pipeline it). Inputs are indexed through their strides (NCHW, channels_last and
non-contiguous views work without layout copies); zero padding and channel padding to the
``tl.dot`` minimum of 16 are done with load masks. The epilogue adds the bias, applies ReLU,
zeroes where a mask tensor is not positive (the ReLU backward), and adds a scaled residual.

Weight gradient: ``gw[co, ci, tap] = sum_p grad_out[p, co] * x_pad[p shifted by tap, ci]`` is a
GEMM with K = pixels. The pixels are cut into ``num_splits`` contiguous ranges; each program
writes its partial sums, and a second kernel adds the partials in a fixed order, so results
are bit-identical from run to run (no float atomics). The bias gradient is the per-channel sum
of ``grad_out`` and rides along in the same buffer.

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
from .dot import dot_precision, padded_channels
from .reduce import sum_rows

# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


@triton.jit
def conv3x3_forward_kernel(
    x_ptr, w_ptr, bias_ptr, mask_ptr, res_ptr, y_ptr,
    N, H, W, CIN, COUT,
    sxn, sxc, sxh, sxw,
    swo, swi, swh, sww,
    smn, smc, smh, smw,
    srn, src, srh, srw,
    res_scale,
    HAS_BIAS: tl.constexpr, RELU: tl.constexpr, HAS_MASK: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """One (BLOCK_M pixels) x (BLOCK_N output channels) tile of y, written channels_last."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    hw = H * W
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok = offs_m < N * hw
    n_ok = offs_n < COUT
    img = offs_m // hw
    rem = offs_m - img * hw
    row = rem // W
    col = rem - row * W
    x_base = img * sxn + row * sxh + col * sxw

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    k_chunks = tl.cdiv(CIN, BLOCK_K)
    for step in range(0, 9 * k_chunks):
        tap = step // k_chunks
        ci = (step - tap * k_chunks) * BLOCK_K + offs_k
        ky = tap // 3
        kx = tap - ky * 3
        src_row = row + ky - 1
        src_col = col + kx - 1
        pix_ok = m_ok & (src_row >= 0) & (src_row < H) & (src_col >= 0) & (src_col < W)
        ci_ok = ci < CIN
        x_off = x_base + (ky - 1) * sxh + (kx - 1) * sxw
        a = tl.load(
            x_ptr + x_off[:, None] + ci[None, :] * sxc,
            mask=pix_ok[:, None] & ci_ok[None, :],
            other=0.0,
        )
        b = tl.load(
            w_ptr + offs_n[None, :] * swo + ci[:, None] * swi + ky * swh + kx * sww,
            mask=ci_ok[:, None] & n_ok[None, :],
            other=0.0,
        )
        acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)

    out_ok = m_ok[:, None] & n_ok[None, :]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if RELU:
        acc = tl.where(acc < 0.0, 0.0, acc)  # keeps NaN, like torch.relu
    if HAS_MASK:
        m_off = img * smn + row * smh + col * smw
        keep = tl.load(mask_ptr + m_off[:, None] + offs_n[None, :] * smc, mask=out_ok, other=0.0)
        acc = tl.where(keep > 0.0, acc, 0.0)
    if HAS_RESIDUAL:
        r_off = img * srn + row * srh + col * srw
        res = tl.load(res_ptr + r_off[:, None] + offs_n[None, :] * src, mask=out_ok, other=0.0)
        acc = res.to(tl.float32) + res_scale * acc
    y_off = offs_m[:, None] * COUT + offs_n[None, :]
    tl.store(y_ptr + y_off, acc.to(y_ptr.dtype.element_ty), mask=out_ok)


@triton.jit
def conv3x3_weight_grad_partial_kernel(
    x_ptr, g_ptr, part_ptr,
    N, H, W, CIN, COUT, PIX_PER_SPLIT, ROW,
    sxn, sxc, sxh, sxw,
    sgn, sgc, sgh, sgw,
    INPUT_PRECISION: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr,
):  # fmt: skip
    """Partial sums over one pixel range for one (tap, Cout block, Cin block).

    part[split, co * CIN * 9 + ci * 9 + tap] = sum over the range of g[p, co] * x_pad[p + tap, ci];
    programs of tap 0 and Cin block 0 also write part[split, COUT * CIN * 9 + co] = sum g[p, co].
    """
    split = tl.program_id(0)
    pid_co = tl.program_id(1)
    pid_k = tl.program_id(2)
    ci_blocks = tl.cdiv(CIN, BLOCK_CI)
    tap = pid_k // ci_blocks
    pid_ci = pid_k - tap * ci_blocks
    ky = tap // 3
    kx = tap - ky * 3
    with_bias = pid_k == 0
    hw = H * W
    offs_co = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    offs_ci = pid_ci * BLOCK_CI + tl.arange(0, BLOCK_CI)
    co_ok = offs_co < COUT
    ci_ok = offs_ci < CIN
    p_begin = split * PIX_PER_SPLIT
    p_end = tl.minimum(p_begin + PIX_PER_SPLIT, N * hw)

    acc = tl.zeros((BLOCK_CO, BLOCK_CI), dtype=tl.float32)
    bias_acc = tl.zeros((BLOCK_CO,), dtype=tl.float32)
    for p0 in range(p_begin, p_end, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        p_ok = offs_p < p_end
        img = offs_p // hw
        rem = offs_p - img * hw
        row = rem // W
        col = rem - row * W
        g_off = img * sgn + row * sgh + col * sgw
        g = tl.load(
            g_ptr + g_off[:, None] + offs_co[None, :] * sgc,
            mask=p_ok[:, None] & co_ok[None, :],
            other=0.0,
        )
        src_row = row + ky - 1
        src_col = col + kx - 1
        pix_ok = p_ok & (src_row >= 0) & (src_row < H) & (src_col >= 0) & (src_col < W)
        x_off = img * sxn + src_row * sxh + src_col * sxw
        a = tl.load(
            x_ptr + x_off[:, None] + offs_ci[None, :] * sxc,
            mask=pix_ok[:, None] & ci_ok[None, :],
            other=0.0,
        )
        acc = tl.dot(tl.trans(g), a, acc, input_precision=INPUT_PRECISION)
        if with_bias:
            bias_acc += tl.sum(g.to(tl.float32), axis=0)

    row_ptr = part_ptr + split * ROW
    w_off = offs_co[:, None] * (CIN * 9) + offs_ci[None, :] * 9 + tap
    tl.store(row_ptr + w_off, acc, mask=co_ok[:, None] & ci_ok[None, :])
    if with_bias:
        tl.store(row_ptr + COUT * CIN * 9 + offs_co, bias_acc, mask=co_ok)


# --------------------------------------------------------------------------------------------
# Launch configuration heuristics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardConfig:
    """Tile of the forward kernel: pixels x output channels x input-channel chunk."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


@dataclass(frozen=True)
class WeightGradConfig:
    """Tile of the weight-gradient kernel: pixels (reduced) x output x input channels."""

    block_p: int
    block_co: int
    block_ci: int
    num_warps: int
    num_stages: int


# Each split handles at least this many pixel tiles, so partial buffers stay small.
MIN_TILES_PER_SPLIT = 4


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


def forward_config(cout: int, vectorizable: bool, dtype: torch.dtype) -> ForwardConfig:
    """Launch configuration of :func:`conv3x3_forward` for Cout output channels (the input
    channels are walked in chunks of 32, whatever their count).

    ``vectorizable``: every tensor it reads and writes passes :func:`channels_vectorizable`.
    Otherwise each element needs its own address registers, so tiles are smaller. float32
    tiles are at most 64 channels wide (full-precision dots hold whole tiles in registers).
    Zero register spills for all of them: see the ahead-of-time compile test."""
    wide = vectorizable and dtype != torch.float32
    block_n = _channel_block(cout, 128 if wide else 64)
    return ForwardConfig(128 if vectorizable else 64, block_n, 32, num_warps=8, num_stages=3)


def weight_grad_config(cin: int, cout: int, dtype: torch.dtype) -> WeightGradConfig:
    """Launch configuration of :func:`conv3x3_weight_grad` for Cin -> Cout channels (float32:
    input-channel blocks of at most 32, for the same reason as in :func:`forward_config`)."""
    block_co = _channel_block(cout, 64)
    block_ci = _channel_block(cin, 32 if dtype == torch.float32 else 64)
    num_warps = 8 if block_ci == 64 or block_co * block_ci >= 64 * 32 else 4
    return WeightGradConfig(64, block_co, block_ci, num_warps, num_stages=3)


def _default_splits(
    pixels: int, block_p: int, programs_per_split: int, device: torch.device
) -> int:
    """Pixel ranges for the weight gradient: about four waves of programs on the device."""
    tiles = triton.cdiv(pixels, block_p)
    wanted = triton.cdiv(4 * launch.multiprocessor_count(device), programs_per_split)
    return max(1, min(wanted, tiles // MIN_TILES_PER_SPLIT))


# --------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------


def _image_chunks(tensors: dict[str, Tensor]) -> list[tuple[int, int]]:
    """Ranges of images small enough that every offset in every tensor fits in int32.

    The kernels index in int32 (fewer registers); larger batches are launched in chunks."""
    n = next(iter(tensors.values())).shape[0]
    per_launch = max(n, 1)
    for name, t in tensors.items():
        launch.check_image_extent(name, t)
        extent = launch.image_extent(t)
        if t.stride(0) > 0:
            per_launch = min(per_launch, (launch.INDEX_LIMIT - extent) // t.stride(0) + 1)
    return [(i, min(i + per_launch, n)) for i in range(0, n, per_launch)]


def conv3x3_forward(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    *,
    relu: bool = False,
    relu_mask: Tensor | None = None,
    residual: Tensor | None = None,
    res_scale: float = 1.0,
) -> Tensor:
    """``y = conv2d(x, weight, padding=1) + bias``, then optional ReLU, mask and residual.

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
    cfg = forward_config(cout, all(channels_vectorizable(t) for t in operands), x.dtype)
    # (3, 3, Cin, Cout) contiguous: the weight tile of one step is one coalesced block.
    w_packed = weight.permute(2, 3, 1, 0).contiguous()
    b = bias if bias is not None else w_packed
    tensors = {"x": x, "y": y}
    for name, t in (("relu_mask", relu_mask), ("residual", residual)):
        if t is not None:
            tensors[name] = t
    for n0, n1 in _image_chunks(tensors):
        xc, yc = x[n0:n1], y[n0:n1]
        mask = relu_mask[n0:n1] if relu_mask is not None else yc
        res = residual[n0:n1] if residual is not None else yc
        grid = (triton.cdiv((n1 - n0) * h * w, cfg.block_m), triton.cdiv(cout, cfg.block_n))
        conv3x3_forward_kernel[grid](
            xc, w_packed, b, mask, res, yc,
            n1 - n0, h, w, cin, cout,
            *xc.stride(),
            w_packed.stride(3), w_packed.stride(2), w_packed.stride(0), w_packed.stride(1),
            *mask.stride(),
            *res.stride(),
            float(res_scale),
            HAS_BIAS=bias is not None, RELU=relu, HAS_MASK=relu_mask is not None,
            HAS_RESIDUAL=residual is not None, INPUT_PRECISION=dot_precision(x.dtype),
            BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
            num_warps=cfg.num_warps, num_stages=cfg.num_stages,
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
    the adjoint weights (flipped, input and output channels swapped; the scaling done in float32
    and rounded once), with the same optional mask and residual epilogues.

    grad_out: (N, Cout, H, W), any strides; weight: (Cout, Cin, 3, 3). Returns (N, Cin, H, W)
    channels_last.
    """
    if weight_scale != 1.0:
        weight = (weight.float() * weight_scale).to(weight.dtype)
    adjoint = weight.flip(2, 3).transpose(0, 1)
    return conv3x3_forward(grad_out, adjoint, None, relu_mask=relu_mask, residual=residual)


def conv3x3_weight_grad(
    x: Tensor, grad_out: Tensor, *, num_splits: int | None = None
) -> tuple[Tensor, Tensor]:
    """Weight and bias gradients of ``conv2d(x, weight, padding=1) + bias``.

    ``grad_weight[co, ci, ky, kx] = sum_{n,h,w} grad_out[n, co, h, w] * x_pad[n, ci, h+ky-1,
    w+kx-1]`` (x zero-padded by one pixel), ``grad_bias[co] = sum_{n,h,w} grad_out[n, co, h, w]``.

    x: (N, Cin, H, W), grad_out: (N, Cout, H, W), same dtype and device, any strides.
    Returns float32 (Cout, Cin, 3, 3) and (Cout,), views of one buffer. The pixels are cut
    into ``num_splits`` ranges per launch (default: a heuristic of the device) whose partial
    sums are added in a fixed order, so two calls give bit-identical results.
    """
    n, cin, h, w = x.shape
    cout = grad_out.shape[1]
    if num_splits is not None and num_splits < 1:
        raise ValueError(f"num_splits: expected a positive count, got {num_splits}")

    cfg = weight_grad_config(cin, cout, x.dtype)
    co_blocks = triton.cdiv(cout, cfg.block_co)
    k_blocks = 9 * triton.cdiv(cin, cfg.block_ci)
    chunks = _image_chunks({"x": x, "grad_out": grad_out})
    pixels = max(n1 - n0 for n0, n1 in chunks) * h * w if chunks else 0
    if num_splits is None:
        num_splits = _default_splits(pixels, cfg.block_p, co_blocks * k_blocks, x.device)
    tiles_per_split = triton.cdiv(triton.cdiv(pixels, cfg.block_p), num_splits)
    row = cout * cin * 9 + cout
    partials = launch.empty((max(len(chunks), 1) * num_splits, row), torch.float32, x.device)
    if not chunks:  # empty batch: a single launch over zero pixels writes zero partials
        chunks = [(0, 0)]
    for i, (n0, n1) in enumerate(chunks):
        xc, gc = x[n0:n1], grad_out[n0:n1]
        conv3x3_weight_grad_partial_kernel[(num_splits, co_blocks, k_blocks)](
            xc, gc, partials[i * num_splits :],
            n1 - n0, h, w, cin, cout, tiles_per_split * cfg.block_p, row,
            *xc.stride(),
            *gc.stride(),
            INPUT_PRECISION=dot_precision(x.dtype),
            BLOCK_P=cfg.block_p, BLOCK_CO=cfg.block_co, BLOCK_CI=cfg.block_ci,
            num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        )  # fmt: skip
    total = sum_rows(partials)
    return total[: cout * cin * 9].view(cout, cin, 3, 3), total[cout * cin * 9 :]
