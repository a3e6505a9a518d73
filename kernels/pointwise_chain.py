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

The backward kernel recomputes ``pre`` chunk by chunk from x. Weight gradients are
deterministic: each program owns one row of a float32 partial-sum buffer (its pixel tiles are
visited in a fixed order), and the rows are then summed in a fixed order; no atomics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = [
    "ChainConfig",
    "chain_backward_config",
    "chain_forward_config",
    "dot_precision",
    "padded_channels",
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

    x_rows = _pixel_offsets(pix, HW, W, sx_n, sx_h, sx_w)
    x = tl.load(
        x_ptr + x_rows[:, None] + offs_c[None, :] * sx_c,
        mask=pix_ok[:, None] & c_ok[None, :],
        other=0.0,
    )
    acc = tl.zeros((BLOCK_P, L_PAD), dtype=tl.float32)
    for e0 in range(0, E, BLOCK_E):
        e = e0 + offs_e
        e_ok = e < E
        w1t = tl.load(
            w1_ptr + e[None, :] * sw1_e + offs_c[:, None] * sw1_c,
            mask=c_ok[:, None] & e_ok[None, :],
            other=0.0,
        )
        b1 = tl.load(b1_ptr + e, mask=e_ok, other=0.0).to(tl.float32)
        pre = tl.dot(x, w1t, input_precision=DOT_PRECISION) + b1[None, :]
        wide = tl.maximum(pre, 0.0).to(x.dtype)
        w2t = tl.load(
            w2_ptr + offs_l[None, :] * sw2_l + e[:, None] * sw2_e,
            mask=e_ok[:, None] & l_ok[None, :],
            other=0.0,
        )
        acc = tl.dot(wide, w2t, acc, input_precision=DOT_PRECISION)
    b2 = tl.load(b2_ptr + offs_l, mask=l_ok, other=0.0).to(tl.float32)
    acc += b2[None, :]
    low_ptrs = low_ptr + pix.to(tl.int64)[:, None] * L + offs_l[None, :]
    tl.store(low_ptrs, acc.to(low_ptr.dtype.element_ty), mask=pix_ok[:, None] & l_ok[None, :])


@triton.jit
def pointwise_chain_bwd_kernel(
    x_ptr, dlow_ptr, gres_ptr, w1_ptr, b1_ptr, w2_ptr, dx_ptr, partial_ptr,
    n_pixels, HW, W,
    sx_n, sx_c, sx_h, sx_w,
    sd_n, sd_c, sd_h, sd_w,
    sg_n, sg_c, sg_h, sg_w,
    so_n, so_c, so_h, so_w,
    sw1_e, sw1_c, sw2_l, sw2_e,
    C, E, L, partial_row,
    C_PAD: tl.constexpr, L_PAD: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_E: tl.constexpr, DOT_PRECISION: tl.constexpr,
    HAS_RESIDUAL_GRAD: tl.constexpr,
):  # fmt: skip
    """Program ``pid`` visits pixel tiles pid, pid + G, ... (G = number of programs).

    Per tile: dx = W1^T dpre (+ gres), written through dx's strides; the tile's weight-gradient
    contributions are added into the program's own row of ``partial_ptr``, laid out as
    [dW1 (E, C) | dW2 (L, E) | db1 (E) | db2 (L)], float32.
    """
    pid = tl.program_id(0)
    n_programs = tl.num_programs(0)
    offs_c = tl.arange(0, C_PAD)
    offs_l = tl.arange(0, L_PAD)
    offs_e = tl.arange(0, BLOCK_E)
    c_ok = offs_c < C
    l_ok = offs_l < L
    row = partial_ptr + pid.to(tl.int64) * partial_row
    dw1_part = row
    dw2_part = row + E * C
    db1_part = dw2_part + L * E
    db2_part = db1_part + E

    n_tiles = tl.cdiv(n_pixels, BLOCK_P)
    for tile in range(pid, n_tiles, n_programs):
        not_first = tile != pid
        pix = tile * BLOCK_P + tl.arange(0, BLOCK_P)
        pix_ok = pix < n_pixels
        pc_mask = pix_ok[:, None] & c_ok[None, :]
        x_rows = _pixel_offsets(pix, HW, W, sx_n, sx_h, sx_w)
        x = tl.load(x_ptr + x_rows[:, None] + offs_c[None, :] * sx_c, mask=pc_mask, other=0.0)
        d_rows = _pixel_offsets(pix, HW, W, sd_n, sd_h, sd_w)
        dlow = tl.load(
            dlow_ptr + d_rows[:, None] + offs_l[None, :] * sd_c,
            mask=pix_ok[:, None] & l_ok[None, :],
            other=0.0,
        )
        if HAS_RESIDUAL_GRAD:
            g_rows = _pixel_offsets(pix, HW, W, sg_n, sg_h, sg_w)
            gres = tl.load(gres_ptr + g_rows[:, None] + offs_c[None, :] * sg_c, mask=pc_mask)
            dx = gres.to(tl.float32)
        else:
            dx = tl.zeros((BLOCK_P, C_PAD), dtype=tl.float32)
        for e0 in range(0, E, BLOCK_E):
            e = e0 + offs_e
            e_ok = e < E
            ce_mask = c_ok[:, None] & e_ok[None, :]
            le_mask = l_ok[:, None] & e_ok[None, :]
            w1t = tl.load(
                w1_ptr + e[None, :] * sw1_e + offs_c[:, None] * sw1_c, mask=ce_mask, other=0.0
            )
            b1 = tl.load(b1_ptr + e, mask=e_ok, other=0.0).to(tl.float32)
            pre = tl.dot(x, w1t, input_precision=DOT_PRECISION) + b1[None, :]
            wide = tl.maximum(pre, 0.0).to(x.dtype)
            w2 = tl.load(
                w2_ptr + offs_l[:, None] * sw2_l + e[None, :] * sw2_e, mask=le_mask, other=0.0
            )
            dwide = tl.dot(dlow, w2, input_precision=DOT_PRECISION)
            dpre32 = tl.where(pre > 0.0, dwide, 0.0)
            dpre = dpre32.to(x.dtype)
            dx = tl.dot(dpre, tl.trans(w1t), dx, input_precision=DOT_PRECISION)

            dw1_ptrs = dw1_part + e[:, None] * C + offs_c[None, :]
            ec_mask = e_ok[:, None] & c_ok[None, :]
            dw1 = tl.dot(tl.trans(dpre), x, input_precision=DOT_PRECISION)
            dw1 += tl.load(dw1_ptrs, mask=ec_mask & not_first, other=0.0)
            tl.store(dw1_ptrs, dw1, mask=ec_mask)

            dw2t_ptrs = dw2_part + offs_l[None, :] * E + e[:, None]
            el_mask = e_ok[:, None] & l_ok[None, :]
            dw2t = tl.dot(tl.trans(wide), dlow, input_precision=DOT_PRECISION)
            dw2t += tl.load(dw2t_ptrs, mask=el_mask & not_first, other=0.0)
            tl.store(dw2t_ptrs, dw2t, mask=el_mask)

            db1 = tl.sum(dpre32, axis=0)
            db1 += tl.load(db1_part + e, mask=e_ok & not_first, other=0.0)
            tl.store(db1_part + e, db1, mask=e_ok)
        db2 = tl.sum(dlow.to(tl.float32), axis=0)
        db2 += tl.load(db2_part + offs_l, mask=l_ok & not_first, other=0.0)
        tl.store(db2_part + offs_l, db2, mask=l_ok)

        o_rows = _pixel_offsets(pix, HW, W, so_n, so_h, so_w)
        tl.store(
            dx_ptr + o_rows[:, None] + offs_c[None, :] * so_c,
            dx.to(dx_ptr.dtype.element_ty),
            mask=pc_mask,
        )
        # The next tile reads back this program's partial row: make every thread's writes visible.
        tl.debug_barrier()


@dataclass(frozen=True)
class ChainConfig:
    """Launch configuration of the chain kernels (all compile-time values but the dot precision)."""

    c_pad: int
    l_pad: int
    block_p: int
    block_e: int
    num_warps: int
    num_stages: int


def padded_channels(n: int) -> int:
    """Channel count padded for ``tl.dot``: the next power of two, at least 16."""
    return max(16, triton.next_power_of_2(n))


def chain_forward_config(channels: int, low: int) -> ChainConfig:
    """Forward tile sizes for C = ``channels`` and L = ``low`` (zero register spills up to 128)."""
    c_pad, l_pad = padded_channels(channels), padded_channels(low)
    widest = max(c_pad, l_pad)
    if widest <= 64:
        return ChainConfig(c_pad, l_pad, block_p=128, block_e=64, num_warps=8, num_stages=2)
    if widest <= 128:
        return ChainConfig(c_pad, l_pad, block_p=64, block_e=32, num_warps=8, num_stages=2)
    return ChainConfig(c_pad, l_pad, block_p=32, block_e=16, num_warps=8, num_stages=2)


def chain_backward_config(channels: int, low: int) -> ChainConfig:
    """Backward tile sizes: more live tiles than forward (x, dl, dx, pre, dwide, two weight
    gradients), so smaller ones; zero register spills up to 128 channels."""
    c_pad, l_pad = padded_channels(channels), padded_channels(low)
    widest = max(c_pad, l_pad)
    if widest <= 32:
        return ChainConfig(c_pad, l_pad, block_p=64, block_e=32, num_warps=8, num_stages=1)
    if widest <= 64:
        return ChainConfig(c_pad, l_pad, block_p=64, block_e=16, num_warps=8, num_stages=1)
    if widest <= 128:
        return ChainConfig(c_pad, l_pad, block_p=32, block_e=16, num_warps=8, num_stages=1)
    return ChainConfig(c_pad, l_pad, block_p=16, block_e=16, num_warps=8, num_stages=1)


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision: TF32 for float32 only when cuDNN may use it, else full."""
    if dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "ieee"


def _backward_programs(n_tiles: int, device: torch.device) -> int:
    """Programs of the backward kernel: one per SM on a GPU (its register use allows about one
    resident program per SM), each looping over several pixel tiles."""
    if device.type == "cuda":
        slots = torch.cuda.get_device_properties(device).multi_processor_count
    else:
        slots = 4
    return max(1, min(n_tiles, slots))


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
    out = torch.empty(
        (n, low, h, w), device=x.device, dtype=x.dtype, memory_format=torch.channels_last
    )
    n_pixels = n * h * w
    if n_pixels == 0:
        return out
    cfg = chain_forward_config(c, low)
    grid = (triton.cdiv(n_pixels, cfg.block_p),)
    pointwise_chain_fwd_kernel[grid](
        x, w1m, b1, w2m, b2, out,
        n_pixels, h * w, w,
        *x.stride(),
        *w1m.stride(), *w2m.stride(),
        c, e, low,
        C_PAD=cfg.c_pad, L_PAD=cfg.l_pad, BLOCK_P=cfg.block_p, BLOCK_E=cfg.block_e,
        DOT_PRECISION=dot_precision(x.dtype),
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
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

    Returns ``(dx, dw1, db1, dw2, db2)``: dx like x (its memory format), weight gradients shaped
    like w1, b1, w2, (L,) in x's dtype, reduced in float32 in a fixed order (deterministic).
    """
    n, c, h, w = x.shape
    w1m, w2m = _as_matrix(w1), _as_matrix(w2)
    e, low = w1m.shape[0], w2m.shape[0]
    dx = torch.empty_like(x, memory_format=torch.preserve_format)
    n_pixels = n * h * w
    partial_row = e * c + low * e + e + low
    cfg = chain_backward_config(c, low)
    n_programs = _backward_programs(triton.cdiv(n_pixels, cfg.block_p), x.device)
    partials = torch.empty((n_programs, partial_row), device=x.device, dtype=torch.float32)
    if n_pixels == 0:
        partials.zero_()
    else:
        gres = grad_residual if grad_residual is not None else x
        pointwise_chain_bwd_kernel[(n_programs,)](
            x, grad_low, gres, w1m, b1, w2m, dx, partials,
            n_pixels, h * w, w,
            *x.stride(), *grad_low.stride(), *gres.stride(), *dx.stride(),
            *w1m.stride(), *w2m.stride(),
            c, e, low, partial_row,
            C_PAD=cfg.c_pad, L_PAD=cfg.l_pad, BLOCK_P=cfg.block_p, BLOCK_E=cfg.block_e,
            DOT_PRECISION=dot_precision(x.dtype), HAS_RESIDUAL_GRAD=grad_residual is not None,
            num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        )  # fmt: skip
    grads = partials.sum(dim=0).to(x.dtype)
    dw1, dw2, db1, db2 = torch.split(grads, [e * c, low * e, e, low])
    return dx, dw1.view(w1.shape), db1, dw2.view(w2.shape), db2
