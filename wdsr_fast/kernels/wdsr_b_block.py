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
channels in the slot: 64-byte pixels, 16-byte vector accesses). Accumulators start at the bias
(:func:`wdsr_fast.kernels.dot.bias_accumulator`: for 16-bit operands a ones column times a bias
row, with no per-value add). Accumulation is in float32; the wide activation is rounded to
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

from dataclasses import dataclass, replace

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import launch
from .conv3x3 import conv3x3_forward, conv3x3_input_grad, conv3x3_weight_grad
from .dot import bias_accumulator, dot_precision, mma, ones_column, padded_channels, product
from .pointwise_chain import pointwise_chain_backward, pointwise_chain_forward
from .reduce import RowView, contiguous_views, gradients_from_partials
from .tiles import (
    load_matrix,
    load_pixels,
    relu,
    slot_conv3x3_residual,
    tile_origin,
    tile_pixels,
)

__all__ = [
    "FusedBackwardConfig",
    "FusedForwardConfig",
    "PixelKernelConfig",
    "backward_config",
    "fitted_tile",
    "forward_config",
    "halo_pixels",
    "tile_row_views",
    "wdsr_b_block_backward",
    "wdsr_b_block_bwd_input_kernel",
    "wdsr_b_block_bwd_tile_kernel",
    "wdsr_b_block_forward",
    "wdsr_b_block_fwd_kernel",
]


@triton.jit
def _pre_activation(
    x, w1_ptr, b1_ptr, e, e_ok, offs_c, c_ok, C: tl.constexpr, DOT_PRECISION: tl.constexpr
):
    """``pre = x W1[e, :]^T + b1[e]`` for one slice ``e`` of the wide channels, rounded to x's
    dtype as the eager 1x1 convolution rounds it; also the slice W1[e, :]^T ([C_PAD, len(e)])."""
    w1t = load_matrix(w1_ptr, offs_c, c_ok, 1, e, e_ok, C)
    pre = bias_accumulator(x.shape[0], b1_ptr, e, e_ok, x.dtype)
    return mma(x, w1t, pre, DOT_PRECISION).to(x.dtype), w1t


@triton.jit
def _low_rank_to_scratch(
    x_image, scratch, y0, x0, H, W, sxc, sxh, sxw, halo_chunks,
    w1_ptr, b1_ptr, w2_ptr, b2_ptr, offs_c, c_ok, offs_l, l_ok,
    C: tl.constexpr, E: tl.constexpr, L_PAD: tl.constexpr,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr,
    HALO_CHUNK: tl.constexpr, BLOCK_E: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """``l = W2 · relu(W1 · x + b1) + b2`` on the tile at (y0, x0) and its one-pixel halo, zero
    outside the image, into ``scratch`` ([halo pixel, L_PAD], row-major over the halo)."""
    HALO_W: tl.constexpr = TILE_W + 2
    HALO_PIXELS: tl.constexpr = (TILE_H + 2) * HALO_W
    for hc in range(halo_chunks):
        q = hc * HALO_CHUNK + tl.arange(0, HALO_CHUNK)
        hy = q // HALO_W
        yy = y0 - 1 + hy
        xx = x0 - 1 + (q - hy * HALO_W)
        inside = (q < HALO_PIXELS) & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        xin = load_pixels(x_image, yy, xx, inside, offs_c, c_ok, sxc, sxh, sxw)
        low = bias_accumulator(HALO_CHUNK, b2_ptr, offs_l, l_ok, xin.dtype)
        for e0 in tl.static_range(0, E, BLOCK_E):
            e = e0 + tl.arange(0, BLOCK_E)
            e_ok = e < E
            pre, _ = _pre_activation(xin, w1_ptr, b1_ptr, e, e_ok, offs_c, c_ok, C,
                                     DOT_PRECISION)  # fmt: skip
            w2t = load_matrix(w2_ptr, e, e_ok, 1, offs_l, l_ok, E)
            low = mma(relu(pre), w2t, low, DOT_PRECISION)
        low = tl.where(inside[:, None], low.to(xin.dtype), 0.0)
        tl.store(scratch + q[:, None] * L_PAD + offs_l[None, :], low)


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
    pid = tl.program_id(0)
    tiles_per_image = tiles_h * tiles_w
    scratch = scratch_ptr + pid.to(tl.int64) * (halo_chunks * HALO_CHUNK * L_PAD)
    offs_c = tl.arange(0, C_PAD)
    offs_l = tl.arange(0, L_PAD)
    c_ok = offs_c < C
    l_ok = offs_l < L
    for tile in range(pid, N * tiles_per_image, tl.num_programs(0)):
        n, y0, x0 = tile_origin(tile, tiles_per_image, tiles_w, TILE_H, TILE_W)
        x_image = x_ptr + n.to(tl.int64) * sxn
        _low_rank_to_scratch(
            x_image, scratch, y0, x0, H, W, sxc, sxh, sxw, halo_chunks,
            w1_ptr, b1_ptr, w2_ptr, b2_ptr, offs_c, c_ok, offs_l, l_ok,
            C, E, L_PAD, TILE_H, TILE_W, HALO_CHUNK, BLOCK_E, DOT_PRECISION,
        )  # fmt: skip
        tl.debug_barrier()
        # The 3x3 convolution over the nine shifted windows of scratch, bias, scaled residual.
        slot_conv3x3_residual(
            scratch, w3_ptr, b3_ptr, offs_c, c_ok,
            x_image, sxc, sxh, sxw, out_ptr + n.to(tl.int64) * son, soc, soh, sow,
            y0, x0, H, W, res_scale, out_chunks, L, L_PAD, L_PAD, TILE_W, OUT_CHUNK,
            DOT_PRECISION,
        )  # fmt: skip
        tl.debug_barrier()  # the slot is rewritten by the next tile


@triton.jit
def _chain_input_grad(
    x, dl, g, w1_ptr, b1_ptr, w2_ptr, offs_c, c_ok, offs_l, l_ok,
    C: tl.constexpr, E: tl.constexpr, BLOCK_E: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """``dx = g + W1^T ((pre > 0) ⊙ W2^T dl)`` on a block of pixels (float32), pre recomputed
    slice by slice; the ReLU's backward as torch computes it (zero where pre <= 0, NaN
    passes), each product's input rounded to x's dtype as autograd's tensors are."""
    dx = g.to(tl.float32)
    for e0 in tl.static_range(0, E, BLOCK_E):
        e = e0 + tl.arange(0, BLOCK_E)
        e_ok = e < E
        pre, w1t = _pre_activation(x, w1_ptr, b1_ptr, e, e_ok, offs_c, c_ok, C,
                                   DOT_PRECISION)  # fmt: skip
        w2 = load_matrix(w2_ptr, offs_l, l_ok, E, e, e_ok, 1)
        dh = product(dl, w2, DOT_PRECISION)
        dpre = tl.where(pre <= 0.0, 0.0, dh).to(x.dtype)
        dx = mma(dpre, tl.trans(w1t), dx, DOT_PRECISION)
    return dx


@triton.jit
def wdsr_b_block_bwd_tile_kernel(
    x_ptr, g_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, dx_ptr, dl_ptr, scratch_ptr,
    partial_ptr,
    N, H, W, tiles_h, tiles_w, halo_chunks, out_chunks, taps, wide_chunks, programs,
    sxn, sxc, sxh, sxw,
    sgn, sgc, sgh, sgw,
    sdn, sdc, sdh, sdw,
    res_scale,
    C: tl.constexpr, E: tl.constexpr, L: tl.constexpr,
    C_PAD: tl.constexpr, L_PAD: tl.constexpr,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr,
    HALO_CHUNK: tl.constexpr, OUT_CHUNK: tl.constexpr, BLOCK_E: tl.constexpr,
    WEIGHT_BLOCK_E: tl.constexpr, DOT_PRECISION: tl.constexpr, INPUT_GRAD: tl.constexpr,
    CHAIN_WEIGHT_GRAD: tl.constexpr,
):  # fmt: skip
    """The block's backward over output tiles (program p: tiles p, p + programs, ...), given
    g = dLoss/dout. Per tile:

    1. l on the tile and its halo, recomputed into the program's scratch slot as in the forward;
    2. per chunk of pixels, dl = res_scale * conv3x3^T(g), kept in a second part of the slot
       and, unless both of the next two flags are set, written to ``dl_ptr`` ([N*H*W, L_PAD])
       for the pixel kernels; if ``INPUT_GRAD``, dx = g + W1^T ((pre > 0) ⊙ W2^T dl) (else
       :func:`wdsr_b_block_bwd_input_kernel` does it);
    3. per tap, the 3x3 weight gradient sum_p g[p] ⊗ l[p + tap offset];
    4. if ``CHAIN_WEIGHT_GRAD``, per slice of ``WEIGHT_BLOCK_E`` wide channels, the chain's
       weight gradients from x and dl, pre and h = relu(pre) recomputed: dW1 += dpre^T x,
       dW2^T += h^T dl, db1 += sum dpre (else :func:`wdsr_b_block_bwd_weight_kernel` does it).

    The weight gradients, before res_scale for dW3 and db3, are sums in the program's row of
    ``partial_ptr`` (float32, updated in place tile by tile; the row stays in L2; the rows are
    added in a fixed order afterwards): [dW3 (9, C_PAD, L_PAD) | db3 (C_PAD) | db2 (L_PAD)],
    followed if ``CHAIN_WEIGHT_GRAD`` by [dW1 (E, C_PAD) | dW2^T (E, L_PAD) | db1 (E)]
    (:func:`tile_row_views`).

    ``halo_chunks``, ``out_chunks`` (as in the forward), ``taps`` (9) and ``wide_chunks``
    (ceil(E / BLOCK_E)) are runtime values so that the compiler keeps them as loops."""
    HALO_W: tl.constexpr = TILE_W + 2
    TILE_PIXELS: tl.constexpr = TILE_H * TILE_W
    DW3: tl.constexpr = 0
    DB3: tl.constexpr = 9 * C_PAD * L_PAD
    DB2: tl.constexpr = DB3 + C_PAD
    DW1: tl.constexpr = DB2 + L_PAD
    DW2T: tl.constexpr = DW1 + E * C_PAD
    DB1: tl.constexpr = DW2T + E * L_PAD
    ROW_LEN: tl.constexpr = DB1 + E if CHAIN_WEIGHT_GRAD else DW1
    ZERO_BLOCK: tl.constexpr = 1024
    dtype = x_ptr.dtype.element_ty
    pid = tl.program_id(0)
    tiles_per_image = tiles_h * tiles_w
    row = partial_ptr + pid.to(tl.int64) * ROW_LEN
    offs_c = tl.arange(0, C_PAD)
    offs_l = tl.arange(0, L_PAD)
    c_ok = offs_c < C
    l_ok = offs_l < L
    for z in tl.static_range(0, ROW_LEN, ZERO_BLOCK):
        offs = z + tl.arange(0, ZERO_BLOCK)
        tl.store(row + offs, tl.zeros((ZERO_BLOCK,), tl.float32), mask=offs < ROW_LEN)
    tl.debug_barrier()
    for tile in range(pid, N * tiles_per_image, programs):
        # The program's slot and row, derived from the tile (tile % programs is pid): made
        # afresh each tile, they hold no registers through the tile's loops (held, sm_80's
        # 128-register cap spilled them).
        program = (tile % programs).to(tl.int64)
        slot = scratch_ptr + program * ((halo_chunks * HALO_CHUNK + TILE_PIXELS) * L_PAD)
        dl_slot = slot + halo_chunks * HALO_CHUNK * L_PAD
        row = partial_ptr + program * ROW_LEN
        n, y0, x0 = tile_origin(tile, tiles_per_image, tiles_w, TILE_H, TILE_W)
        x_image = x_ptr + n.to(tl.int64) * sxn
        _low_rank_to_scratch(
            x_image, slot, y0, x0, H, W, sxc, sxh, sxw, halo_chunks,
            w1_ptr, b1_ptr, w2_ptr, b2_ptr, offs_c, c_ok, offs_l, l_ok,
            C, E, L_PAD, TILE_H, TILE_W, HALO_CHUNK, BLOCK_E, DOT_PRECISION,
        )  # fmt: skip
        tl.debug_barrier()
        g_image = g_ptr + n.to(tl.int64) * sgn  # here: not held through the halo's loop
        for oc in range(out_chunks):
            p = oc * OUT_CHUNK + tl.arange(0, OUT_CHUNK)
            yy, xx, ok = tile_pixels(y0, x0, p, H, W, TILE_W)
            dl = tl.zeros((OUT_CHUNK, L_PAD), tl.float32)
            for tap in tl.static_range(9):
                # dl[p] += W3[:, :, tap]^T g[p - tap offset].
                gy = yy + 1 - tap // 3
                gx = xx + 1 - tap % 3
                g_ok = ok & (gy >= 0) & (gy < H) & (gx >= 0) & (gx < W)
                g_shift = load_pixels(g_image, gy, gx, g_ok, offs_c, c_ok, sgc, sgh, sgw)
                if tap == 4:  # the centre tap reads g itself (not held through the taps)
                    db3 = tl.load(row + DB3 + offs_c) + tl.sum(g_shift.to(tl.float32), axis=0)
                    tl.store(row + DB3 + offs_c, db3)
                w3 = load_matrix(w3_ptr + tap, offs_c, c_ok, L * 9, offs_l, l_ok, 9)
                dl = mma(g_shift, w3, dl, DOT_PRECISION)
            dl = (dl * res_scale).to(dtype)
            db2 = tl.load(row + DB2 + offs_l) + tl.sum(dl.to(tl.float32), axis=0)
            tl.store(row + DB2 + offs_l, db2)
            tl.store(dl_slot + p[:, None] * L_PAD + offs_l[None, :], dl)
            if INPUT_GRAD:
                x = load_pixels(x_image, yy, xx, ok, offs_c, c_ok, sxc, sxh, sxw)
                g = load_pixels(g_image, yy, xx, ok, offs_c, c_ok, sgc, sgh, sgw)
                dx = _chain_input_grad(x, dl, g, w1_ptr, b1_ptr, w2_ptr, offs_c, c_ok, offs_l,
                                       l_ok, C, E, BLOCK_E, DOT_PRECISION)  # fmt: skip
                dx_image = dx_ptr + n.to(tl.int64) * sdn
                tl.store(
                    dx_image + (yy * sdh + xx * sdw)[:, None] + offs_c[None, :] * sdc,
                    dx.to(dtype),
                    mask=ok[:, None] & c_ok[None, :],
                )
            if not (INPUT_GRAD and CHAIN_WEIGHT_GRAD):
                pixel = (n * H + yy) * W + xx
                tl.store(dl_ptr + pixel.to(tl.int64)[:, None] * L_PAD + offs_l[None, :], dl,
                         mask=ok[:, None])  # fmt: skip
        tl.debug_barrier()
        # dW3[tap] += sum over the tile of g[p] ⊗ l[p + tap offset], one tap at a time.
        for k in range(taps):
            partial = row + DW3 + k * C_PAD * L_PAD + offs_c[:, None] * L_PAD + offs_l[None, :]
            dw3 = tl.load(partial)
            for oc in range(out_chunks):
                p = oc * OUT_CHUNK + tl.arange(0, OUT_CHUNK)
                oy = p // TILE_W
                ox = p % TILE_W
                ok = (y0 + oy < H) & (x0 + ox < W)
                g = load_pixels(g_image, y0 + oy, x0 + ox, ok, offs_c, c_ok, sgc, sgh, sgw)
                window = (oy + k // 3) * HALO_W + ox + k % 3
                low = tl.load(slot + window[:, None] * L_PAD + offs_l[None, :])
                dw3 = mma(tl.trans(g), low, dw3, DOT_PRECISION)
            tl.store(partial, dw3)
        if CHAIN_WEIGHT_GRAD:
            # The chain's weight gradients, one slice of the wide channels at a time.
            for ec in range(wide_chunks):
                e = ec * WEIGHT_BLOCK_E + tl.arange(0, WEIGHT_BLOCK_E)
                e_ok = e < E
                dw1_part = row + DW1 + e[:, None] * C_PAD + offs_c[None, :]
                dw2t_part = row + DW2T + e[:, None] * L_PAD + offs_l[None, :]
                dw1 = tl.load(dw1_part, mask=e_ok[:, None], other=0.0)
                dw2t = tl.load(dw2t_part, mask=e_ok[:, None], other=0.0)
                db1 = tl.zeros((OUT_CHUNK, WEIGHT_BLOCK_E), tl.float32)
                w2 = load_matrix(w2_ptr, offs_l, l_ok, E, e, e_ok, 1)
                w1t = load_matrix(w1_ptr, offs_c, c_ok, 1, e, e_ok, C)
                b1v = tl.load(b1_ptr + e, mask=e_ok, other=0.0).to(tl.float32)
                for oc in range(out_chunks):
                    p = oc * OUT_CHUNK + tl.arange(0, OUT_CHUNK)
                    yy, xx, ok = tile_pixels(y0, x0, p, H, W, TILE_W)
                    x = load_pixels(x_image, yy, xx, ok, offs_c, c_ok, sxc, sxh, sxw)
                    dl = tl.load(dl_slot + p[:, None] * L_PAD + offs_l[None, :])
                    pre = product(x, w1t, DOT_PRECISION) + b1v[None, :]
                    pre = pre.to(dtype)
                    dh = product(dl, w2, DOT_PRECISION)
                    dpre = tl.where(pre <= 0.0, 0.0, dh).to(dtype)
                    dw1 = mma(tl.trans(dpre), x, dw1, DOT_PRECISION)
                    dw2t = mma(tl.trans(relu(pre)), dl, dw2t, DOT_PRECISION)
                    db1 += dpre.to(tl.float32)
                tl.store(dw1_part, dw1, mask=e_ok[:, None])
                tl.store(dw2t_part, dw2t, mask=e_ok[:, None])
                db1 = tl.load(row + DB1 + e, mask=e_ok, other=0.0) + tl.sum(db1, axis=0)
                tl.store(row + DB1 + e, db1, mask=e_ok)
        tl.debug_barrier()  # the slot and the partial row are rewritten by the next tile


@triton.jit
def wdsr_b_block_bwd_weight_kernel(
    x_ptr, dl_ptr, w1_ptr, b1_ptr, w2_ptr, partial_ptr,
    N, H, W, tiles_h, tiles_w,
    sxn, sxc, sxh, sxw,
    C: tl.constexpr, E: tl.constexpr, L: tl.constexpr,
    C_PAD: tl.constexpr, L_PAD: tl.constexpr,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr, BLOCK_E: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """The chain's weight gradients from x and dl (db2, the sum of dl, is the tile kernel's).
    Program (k, r) owns the wide channels e in [k * BLOCK_E, (k + 1) * BLOCK_E) and tiles r,
    r + R, ... (R groups); it sums, in that fixed order and in registers, with pre and
    h = relu(pre) recomputed for its slice:

        dW1[e] += dpre^T x,  db1[e] += dpre^T 1,  dW2[:, e] += dl^T h,
        dpre = (pre > 0) ⊙ W2^T dl

    (db1 on the tensor cores, as a product with :func:`.dot.ones_column`: a sum over the
    tile's pixels per tile would cost a cross-warp reduction each), and writes them once into
    row r of ``partial_ptr``: [dW1 (E, C) | dW2 (L, E) | db1 (E)], float32."""
    PIXELS: tl.constexpr = TILE_H * TILE_W
    dtype = x_ptr.dtype.element_ty
    chunk = tl.program_id(0)
    group = tl.program_id(1)
    tiles_per_image = tiles_h * tiles_w
    offs_c = tl.arange(0, C_PAD)
    offs_l = tl.arange(0, L_PAD)
    c_ok = offs_c < C
    l_ok = offs_l < L
    e = chunk * BLOCK_E + tl.arange(0, BLOCK_E)
    e_ok = e < E
    dw1 = tl.zeros((BLOCK_E, C_PAD), tl.float32)
    dw2t = tl.zeros((BLOCK_E, L_PAD), tl.float32)
    db1 = tl.zeros((BLOCK_E, 16), tl.float32)  # column 0: the sum; columns 1-15 stay 0
    for tile in range(group, N * tiles_per_image, tl.num_programs(1)):
        n, y0, x0 = tile_origin(tile, tiles_per_image, tiles_w, TILE_H, TILE_W)
        p = tl.arange(0, PIXELS)
        yy, xx, ok = tile_pixels(y0, x0, p, H, W, TILE_W)
        x = load_pixels(x_ptr + n.to(tl.int64) * sxn, yy, xx, ok, offs_c, c_ok, sxc, sxh, sxw)
        pixel = (n * H + yy) * W + xx
        dl = tl.load(dl_ptr + pixel.to(tl.int64)[:, None] * L_PAD + offs_l[None, :],
                     mask=ok[:, None], other=0.0)  # fmt: skip
        pre, _ = _pre_activation(x, w1_ptr, b1_ptr, e, e_ok, offs_c, c_ok, C,
                                 DOT_PRECISION)  # fmt: skip
        w2 = load_matrix(w2_ptr, offs_l, l_ok, E, e, e_ok, 1)
        dh = product(dl, w2, DOT_PRECISION)
        dpre = tl.where(pre <= 0.0, 0.0, dh).to(dtype)
        dw1 = mma(tl.trans(dpre), x, dw1, DOT_PRECISION)
        dw2t = mma(tl.trans(relu(pre)), dl, dw2t, DOT_PRECISION)
        db1 = mma(tl.trans(dpre), ones_column(PIXELS, dtype), db1, DOT_PRECISION)
    # Column 0 alone: a NaN in the zero columns (an infinite dpre times 0) is not the sum's.
    db1 = tl.sum(tl.where(tl.arange(0, 16)[None, :] == 0, db1, 0.0), axis=1)
    row = partial_ptr + group.to(tl.int64) * (E * C + L * E + E)
    tl.store(row + e[:, None] * C + offs_c[None, :], dw1, mask=e_ok[:, None] & c_ok[None, :])
    dw2_part = row + E * C
    tl.store(dw2_part + offs_l[None, :] * E + e[:, None], dw2t, mask=e_ok[:, None] & l_ok[None, :])
    tl.store(dw2_part + L * E + e, db1, mask=e_ok)


@triton.jit
def wdsr_b_block_bwd_input_kernel(
    x_ptr, dl_ptr, g_ptr, w1_ptr, b1_ptr, w2_ptr, dx_ptr,
    N, H, W, tiles_h, tiles_w,
    sxn, sxc, sxh, sxw,
    sgn, sgc, sgh, sgw,
    sdn, sdc, sdh, sdw,
    C: tl.constexpr, E: tl.constexpr, L: tl.constexpr,
    C_PAD: tl.constexpr, L_PAD: tl.constexpr,
    TILE_H: tl.constexpr, TILE_W: tl.constexpr, BLOCK_E: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """dx = g + W1^T ((pre > 0) ⊙ W2^T dl) on one tile of TILE_H x TILE_W pixels per program,
    from x, g and the tile kernel's dl (where the tile kernel leaves dx out)."""
    offs_c = tl.arange(0, C_PAD)
    offs_l = tl.arange(0, L_PAD)
    c_ok = offs_c < C
    l_ok = offs_l < L
    n, y0, x0 = tile_origin(tl.program_id(0), tiles_h * tiles_w, tiles_w, TILE_H, TILE_W)
    p = tl.arange(0, TILE_H * TILE_W)
    yy, xx, ok = tile_pixels(y0, x0, p, H, W, TILE_W)
    x = load_pixels(x_ptr + n.to(tl.int64) * sxn, yy, xx, ok, offs_c, c_ok, sxc, sxh, sxw)
    g = load_pixels(g_ptr + n.to(tl.int64) * sgn, yy, xx, ok, offs_c, c_ok, sgc, sgh, sgw)
    pixel = (n * H + yy) * W + xx
    dl = tl.load(dl_ptr + pixel.to(tl.int64)[:, None] * L_PAD + offs_l[None, :],
                 mask=ok[:, None], other=0.0)  # fmt: skip
    dx = _chain_input_grad(x, dl, g, w1_ptr, b1_ptr, w2_ptr, offs_c, c_ok, offs_l, l_ok, C, E,
                           BLOCK_E, DOT_PRECISION)  # fmt: skip
    tl.store(
        dx_ptr + n.to(tl.int64) * sdn + (yy * sdh + xx * sdw)[:, None] + offs_c[None, :] * sdc,
        dx.to(x.dtype),
        mask=ok[:, None] & c_ok[None, :],
    )


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
    channels: int,
    low: int,
    dtype: torch.dtype,
    precision: str,
    capability: tuple[int, int],
    triton_version: tuple[int, int],
    channels_innermost: bool = True,
    image: tuple[int, int] | None = None,
) -> FusedForwardConfig | None:
    """Launch configuration of the fused forward for C = ``channels``, L = ``low``, operands of
    ``dtype`` with ``tl.dot`` ``precision``, on a GPU of ``capability``, compiled by Triton
    ``triton_version``, activations whose channels are (``channels_innermost``) or are not
    contiguous, images of ``image`` = (H, W) pixels (None: any); None where tiles of more than
    32 channels would spill registers -- in float32, or when channels are not contiguous (every
    element then needs its own address) -- and the two-kernel forward runs then.

    16 x 32 tiles (the halo's chunks are 1.25x the tile), or 16 x 16 on an image where those
    compute fewer halo pixels (:func:`fitted_tile`), two programs per SM, 8 warps.
    16-bit and TF32 operands: 128-pixel chunks, 64 wide channels at a time for 16-bit operands
    of at most 32 channels on sm_90, else 32 (the default block: at most 128 registers per
    thread, 25% occupancy, on sm_80 and sm_90). Full-precision float32 (FMA products hold whole
    operand rows in registers): 64-pixel chunks, 16 wide channels, on Triton 3.7 and later.
    Tritons before 3.7 run the two-kernel forward for float32: full precision spills there at
    any chunk size, and TF32, whose operands are rounded in registers, spills 28 B on sm_80.
    Zero spills for all of them: see the ahead-of-time compile test."""
    widest = max(padded_channels(channels), padded_channels(low))
    if widest > 32 and (dtype == torch.float32 or not channels_innermost):
        return None
    older_triton = triton_version < launch.TIGHT_REGISTERS_SINCE
    if dtype == torch.float32 and (precision == "ieee" or older_triton):
        if older_triton:
            return None
        cfg = FusedForwardConfig(16, 32, 64, 64, 16, 8, num_stages=1, programs_per_sm=2)
    else:
        wide_slice = dtype != torch.float32 and widest <= 32 and capability >= (9, 0)
        block_e = 64 if wide_slice else 32
        cfg = FusedForwardConfig(16, 32, 128, 128, block_e, 8, num_stages=1, programs_per_sm=2)
    return cfg if image is None else fitted_tile(cfg, *image)


def halo_pixels(cfg: FusedForwardConfig, height: int, width: int) -> int:
    """Pixels the tiles of ``cfg`` compute the low-rank tensor for on an image of ``height`` x
    ``width``: per tile, its halo in whole chunks."""
    tiles = launch.cdiv(height, cfg.tile_h) * launch.cdiv(width, cfg.tile_w)
    halo = (cfg.tile_h + 2) * (cfg.tile_w + 2)
    return tiles * launch.cdiv(halo, cfg.halo_chunk) * cfg.halo_chunk


def fitted_tile(cfg: FusedForwardConfig, height: int, width: int) -> FusedForwardConfig:
    """``cfg`` with tiles half as wide where those compute fewer halo pixels on an image of
    ``height`` x ``width`` (:func:`halo_pixels`; the chain's work, most of a tile's): narrow
    images, such as 48-pixel training patches, where 32-wide tiles leave a third of their
    pixels outside the image. On 1x540x960 the 16 x 32 tiles stay (5 chunks of 128 for 512
    pixels, against 3 for 256); 16x48x48 takes 16 x 16 tiles (3456 halo pixels an image
    against 3840), whose static bound is 4-15% lower forward and backward, sm_80 and sm_90."""
    narrow = replace(cfg, tile_w=cfg.tile_w // 2)
    if halo_pixels(narrow, height, width) < halo_pixels(cfg, height, width):
        return narrow
    return cfg


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
    capability = launch.device_capability(x.device)
    cfg = forward_config(
        c, low, x.dtype, precision, capability, launch.triton_version(), x.stride(1) == 1, (h, w)
    )
    if cfg is None:
        chain = pointwise_chain_forward(x, w1, b1, w2, b2)
        return conv3x3_forward(chain, w3, b3, residual=x, res_scale=res_scale)
    out = launch.empty((n, c, h, w), x.dtype, x.device, torch.channels_last)
    if out.numel() == 0:
        return out
    launch.check_image_extent("x", x)
    tiles_h, tiles_w = launch.cdiv(h, cfg.tile_h), launch.cdiv(w, cfg.tile_w)
    tiles = n * tiles_h * tiles_w
    programs = min(tiles, cfg.programs_per_sm * launch.multiprocessor_count(x.device))
    l_pad = padded_channels(low)
    halo_chunks = launch.cdiv((cfg.tile_h + 2) * (cfg.tile_w + 2), cfg.halo_chunk)
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


@dataclass(frozen=True)
class PixelKernelConfig:
    """Tile of a pixel kernel (:func:`wdsr_b_block_bwd_input_kernel`,
    :func:`wdsr_b_block_bwd_weight_kernel`): ``tile_h x tile_w`` pixels, ``block_e`` wide
    channels at a time, warps, at most ``max_registers`` registers per thread (None: no cap)."""

    tile_h: int
    tile_w: int
    block_e: int
    num_warps: int
    max_registers: int | None = None


@dataclass(frozen=True)
class FusedBackwardConfig:
    """Tiles of the fused backward. The tile kernel takes ``tile`` (as the forward's) and at
    most ``max_registers`` registers per thread (None: no cap); ``in_tile``: it also computes
    dx and the chain's weight gradients, else the pixel kernels do: ``input`` (dx) and
    ``weight`` (the chain's weight gradients, ``weight_programs_per_sm`` programs per SM).
    ``weight_block_e``: wide channels per slice of the chain's weight gradients, in either."""

    tile: FusedForwardConfig
    in_tile: bool
    weight_block_e: int
    max_registers: int | None
    input: PixelKernelConfig | None = None
    weight: PixelKernelConfig | None = None
    weight_programs_per_sm: int = 0


def backward_config(
    channels: int,
    low: int,
    dtype: torch.dtype,
    precision: str,
    capability: tuple[int, int],
    triton_version: tuple[int, int],
    channels_innermost: bool = True,
    image: tuple[int, int] | None = None,
) -> FusedBackwardConfig | None:
    """Launch configuration of the fused backward (same arguments as :func:`forward_config`,
    ``channels_innermost`` for x and the output gradient); None (the composed backward runs
    then) but for 16-bit operands of at most 32 channels, contiguous in memory: the fused
    kernels spill registers elsewhere.

    The tile kernel takes the forward's tile with 32 wide channels at a time. On sm_90 it does
    the whole backward, the chain's weight gradients 16 wide channels at a time, float16 under
    a 128-register cap (25% occupancy, no spills; bfloat16 conversions need more). sm_80's
    mma.sync keeps more operands in registers: there the tile kernel leaves dx and the chain's
    weight gradients to the pixel kernels, which keeps every kernel free of spills at the cost
    of reading x and dl again, and runs under a 128-register cap (25% occupancy). The pixel
    kernels run 2-warp programs on 32-pixel tiles: every
    product's rows then fill the warps (16 rows each; a 4- or 8-warp program on rows of 32
    wide channels would repeat the work in half of its warps) and at most 128 registers let
    8 programs, 25% occupancy, share an SM -- 16 wide channels at a time for dx, 32 for the
    weight gradients. Tritons before 3.7 spill under the tile kernel's cap (it is lifted
    there) and with 32 wide channels on sm_80 (16 there)."""
    widest = max(padded_channels(channels), padded_channels(low))
    if dtype == torch.float32 or widest > 32 or not channels_innermost:
        return None
    tile = forward_config(channels, low, dtype, precision, capability, triton_version,
                          image=image)  # fmt: skip
    assert tile is not None
    tight = triton_version >= launch.TIGHT_REGISTERS_SINCE
    if capability >= (9, 0):
        tile = replace(tile, block_e=32)
        cap = 128 if dtype == torch.float16 and tight else None
        return FusedBackwardConfig(tile, True, 16, cap)
    tile = replace(tile, block_e=32 if tight else 16)
    input_tile = PixelKernelConfig(1, 32, block_e=16, num_warps=2)
    weight_tile = PixelKernelConfig(1, 32, block_e=32, num_warps=2, max_registers=128)
    cap = 128 if tight else None
    return FusedBackwardConfig(
        tile, False, weight_tile.block_e, cap, input_tile, weight_tile, weight_programs_per_sm=8
    )


def tile_row_views(
    c: int, e: int, low: int, chain_weight_grad: bool
) -> tuple[int, list[RowView]]:
    """The length of the tile kernel's partial row for C = ``c``, E = ``e``, L = ``low`` --
    [dW3 (9, C_PAD, L_PAD) | db3 (C_PAD) | db2 (L_PAD)], then, where the kernel also sums the
    chain's weight gradients (``chain_weight_grad``), [dW1 (E, C_PAD) | dW2^T (E, L_PAD) |
    db1 (E)] -- and where the gradients lie in it: dW1, db1, dW2 (these three only with
    ``chain_weight_grad``), db2, dW3, db3."""
    c_pad, l_pad = padded_channels(c), padded_channels(low)
    db3_at = 9 * c_pad * l_pad
    dw1_at = db3_at + c_pad + l_pad
    conv_views = [
        RowView((low,), db3_at + c_pad, (1,)),
        RowView((c, low, 3, 3), 0, (l_pad, 1, 3 * c_pad * l_pad, c_pad * l_pad)),
        RowView((c,), db3_at, (1,)),
    ]
    if not chain_weight_grad:
        return dw1_at, conv_views
    dw2t_at = dw1_at + e * c_pad
    db1_at = dw2t_at + e * l_pad
    return db1_at + e, [
        RowView((e, c, 1, 1), dw1_at, (c_pad, 1, 1, 1)),
        RowView((e,), db1_at, (1,)),
        RowView((low, e, 1, 1), dw2t_at, (1, l_pad, 1, 1)),
        *conv_views,
    ]


def _pixel_kernel_arguments(cfg: PixelKernelConfig) -> dict[str, object]:
    """A pixel kernel's tile, wide slice and launch options."""
    return dict(TILE_H=cfg.tile_h, TILE_W=cfg.tile_w, BLOCK_E=cfg.block_e,
                num_warps=cfg.num_warps, num_stages=1, maxnreg=cfg.max_registers)  # fmt: skip


def _composed_backward(
    grad: Tensor,
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    res_scale: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The backward from the two-kernel forward's kernels: the chain (recomputed l), the 3x3
    input and weight gradients, the chain's gradients."""
    low = pointwise_chain_forward(x, w1, b1, w2, b2)
    grad_low = conv3x3_input_grad(grad, w3, weight_scale=res_scale)
    dw3, db3 = conv3x3_weight_grad(low, grad, scale=res_scale, dtype=x.dtype)
    del low
    dx, dw1, db1, dw2, db2 = pointwise_chain_backward(x, grad_low, w1, b1, w2, grad_residual=grad)
    return dx, dw1, db1, dw2, db2, dw3, db3


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
    argument, in x's dtype; dx channels_last. The tile kernel (the low-rank gradient dl, the
    3x3 weight gradients and, on sm_90, dx), the input-gradient kernel (dx, where the tile
    kernel leaves it out) and the chain weight-gradient kernel (from x and dl), then the
    fixed-order sums of their partial rows.

    The fused kernels read x and grad with their channels innermost. A grad that is not (an
    NCHW or broadcast gradient behind a channels_last x) is copied to channels_last first: one
    read and one write of grad cost less than the composed backward, which would run
    otherwise."""
    n, c, h, w = x.shape
    e, low = w1.shape[0], w2.shape[0]
    precision = dot_precision(x.dtype)
    capability = launch.device_capability(x.device)
    if x.stride(1) == 1 and grad.stride(1) != 1:
        grad = grad.contiguous(memory_format=torch.channels_last)
    innermost = x.stride(1) == 1 and grad.stride(1) == 1
    version = launch.triton_version()
    cfg = backward_config(c, low, x.dtype, precision, capability, version, innermost, (h, w))
    if cfg is None:
        return _composed_backward(grad, x, w1, b1, w2, b2, w3, res_scale)
    c_pad, l_pad = padded_channels(c), padded_channels(low)
    dx = launch.empty((n, c, h, w), x.dtype, x.device, torch.channels_last)
    t = cfg.tile
    tiles_h, tiles_w = launch.cdiv(h, t.tile_h), launch.cdiv(w, t.tile_w)
    sms = launch.multiprocessor_count(x.device)
    programs = min(n * tiles_h * tiles_w, t.programs_per_sm * sms)
    row_len, tile_views = tile_row_views(c, e, low, chain_weight_grad=cfg.in_tile)
    partials = launch.empty((programs, row_len), torch.float32, x.device)
    dl = launch.empty((0 if cfg.in_tile else n * h * w, l_pad), x.dtype, x.device)
    channels = dict(C=c, E=e, L=low, C_PAD=c_pad, L_PAD=l_pad, DOT_PRECISION=precision)
    wide_chunks = launch.cdiv(e, cfg.weight_block_e)
    if programs:
        launch.check_image_extent("x", x)
        launch.check_image_extent("grad", grad)
        halo_chunks = launch.cdiv((t.tile_h + 2) * (t.tile_w + 2), t.halo_chunk)
        slot = (halo_chunks * t.halo_chunk + t.tile_h * t.tile_w) * l_pad
        scratch = launch.empty((programs, slot), x.dtype, x.device)
        wdsr_b_block_bwd_tile_kernel[(programs,)](
            x, grad, w1, b1, w2, b2, w3, dx, dl, scratch, partials,
            n, h, w, tiles_h, tiles_w, halo_chunks, t.tile_h * t.tile_w // t.out_chunk, 9,
            wide_chunks, programs,
            *x.stride(), *grad.stride(), *dx.stride(),
            float(res_scale),
            **channels, TILE_H=t.tile_h, TILE_W=t.tile_w, HALO_CHUNK=t.halo_chunk,
            OUT_CHUNK=t.out_chunk, BLOCK_E=t.block_e, WEIGHT_BLOCK_E=cfg.weight_block_e,
            INPUT_GRAD=cfg.in_tile, CHAIN_WEIGHT_GRAD=cfg.in_tile,
            num_warps=t.num_warps, num_stages=t.num_stages, maxnreg=cfg.max_registers,
        )  # fmt: skip
    # The tile kernel's gradients; the last two, dW3 and db3, are scaled by res_scale.
    tile_grads = gradients_from_partials(
        partials, tile_views, x.dtype, scale=res_scale, scaled_from=len(tile_views) - 2
    )
    if cfg.in_tile:
        return dx, *tile_grads
    db2, dw3, db3 = tile_grads
    # dx and the chain's weight gradients by the pixel kernels, from x and dl.
    assert cfg.input is not None and cfg.weight is not None
    tiles_h, tiles_w = launch.cdiv(h, cfg.input.tile_h), launch.cdiv(w, cfg.input.tile_w)
    if n * tiles_h * tiles_w:
        wdsr_b_block_bwd_input_kernel[(n * tiles_h * tiles_w,)](
            x, dl, grad, w1, b1, w2, dx, n, h, w, tiles_h, tiles_w,
            *x.stride(), *grad.stride(), *dx.stride(),
            **channels, **_pixel_kernel_arguments(cfg.input),
        )  # fmt: skip
    tiles_h, tiles_w = launch.cdiv(h, cfg.weight.tile_h), launch.cdiv(w, cfg.weight.tile_w)
    weight_tiles = n * tiles_h * tiles_w
    groups = min(weight_tiles, launch.cdiv(cfg.weight_programs_per_sm * sms, wide_chunks))
    chain_row = [tuple(w1.shape), tuple(w2.shape), (e,)]  # [dW1 | dW2 | db1]
    chain_partials = launch.empty((groups, e * c + low * e + e), torch.float32, x.device)
    if weight_tiles:
        wdsr_b_block_bwd_weight_kernel[(wide_chunks, groups)](
            x, dl, w1, b1, w2, chain_partials, n, h, w, tiles_h, tiles_w, *x.stride(),
            **channels, **_pixel_kernel_arguments(cfg.weight),
        )  # fmt: skip
    dw1, dw2, db1 = gradients_from_partials(chain_partials, contiguous_views(chain_row), x.dtype)
    return dx, dw1, db1, dw2, db2, dw3, db3
