"""Tile geometry, strided loads and the ReLU shared by the fused block kernels.

The fused kernels walk output tiles of TILE_H x TILE_W pixels (:func:`tile_origin`), read
activations through their strides (:func:`load_pixels`: NCHW, channels_last and other views
need no copy; Triton's launcher specialises unit strides into constants, so channels_last reads
become 16-byte vectors) and weights in whichever orientation a product wants
(:func:`load_matrix`).
"""

import triton
import triton.language as tl

from .dot import bias_accumulator, mma

__all__ = [
    "load_matrix",
    "load_pixels",
    "relu",
    "slot_conv3x3_residual",
    "tile_origin",
    "tile_pixels",
]


@triton.jit
def tile_origin(tile, tiles_per_image, tiles_w, TILE_H: tl.constexpr, TILE_W: tl.constexpr):
    """Image index and top-left pixel (y0, x0) of output tile ``tile``."""
    n = tile // tiles_per_image
    t = tile - n * tiles_per_image
    ty = t // tiles_w
    return n, ty * TILE_H, (t - ty * tiles_w) * TILE_W


@triton.jit
def tile_pixels(y0, x0, p, H, W, TILE_W: tl.constexpr):
    """Row, column and in-image mask of the pixels ``p`` (row-major indices into a tile
    TILE_W wide) of the tile whose top-left pixel is (y0, x0)."""
    yy = y0 + p // TILE_W
    xx = x0 + p % TILE_W
    return yy, xx, (yy < H) & (xx < W)


@triton.jit
def load_pixels(image, yy, xx, ok, offs_c, c_ok, s_c, s_h, s_w):
    """[pixels, channels] of one image read through its strides; 0 where not ``ok``."""
    return tl.load(
        image + (yy * s_h + xx * s_w)[:, None] + offs_c[None, :] * s_c,
        mask=ok[:, None] & c_ok[None, :],
        other=0.0,
    )


@triton.jit
def load_matrix(ptr, rows, row_ok, row_stride, cols, col_ok, col_stride):
    """[len(rows), len(cols)] of a dense matrix read at ``ptr + row * row_stride + col *
    col_stride`` (a weight in whichever orientation a product wants); 0 outside the masks."""
    return tl.load(
        ptr + rows[:, None] * row_stride + cols[None, :] * col_stride,
        mask=row_ok[:, None] & col_ok[None, :],
        other=0.0,
    )


@triton.jit
def relu(pre):
    """max(pre, 0) keeping NaN, like torch.relu (bfloat16 compares in float32)."""
    return tl.maximum(pre, tl.zeros_like(pre), propagate_nan=tl.PropagateNan.ALL).to(pre.dtype)


@triton.jit
def slot_conv3x3_residual(
    slot, w_ptr, b_ptr, offs_c, c_ok,
    x_image, sxc, sxh, sxw, out_image, soc, soh, sow,
    y0, x0, H, W, res_scale, out_chunks,
    K: tl.constexpr, K_PAD: tl.constexpr, K_BLOCK: tl.constexpr, TILE_W: tl.constexpr,
    OUT_CHUNK: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """``out = x + res_scale * (conv3x3(a, w) + b)`` on the tile at (y0, x0), where ``a`` (K
    channels) is held in ``slot`` for the tile and its one-pixel halo ([halo pixel, K_PAD],
    row-major over a halo TILE_W + 2 wide, zero outside the image) and w is (C, K, 3, 3)
    contiguous: the nine shifted windows of the slot times W[:, :, tap], chunk by chunk of
    OUT_CHUNK output pixels (``out_chunks`` of them), K_BLOCK (a divisor of K_PAD) channels at
    a time, starting from the bias (:func:`.dot.bias_accumulator`)."""
    HALO_W: tl.constexpr = TILE_W + 2
    for oc in range(out_chunks):
        p = oc * OUT_CHUNK + tl.arange(0, OUT_CHUNK)
        oy = p // TILE_W
        ox = p - oy * TILE_W
        acc = bias_accumulator(OUT_CHUNK, b_ptr, offs_c, c_ok, x_image.dtype.element_ty)
        for tap in tl.static_range(9):
            window = (oy + tap // 3) * HALO_W + ox + tap % 3
            for k0 in tl.static_range(0, K_PAD, K_BLOCK):
                kk = k0 + tl.arange(0, K_BLOCK)
                a = tl.load(slot + window[:, None] * K_PAD + kk[None, :])
                w = load_matrix(w_ptr + tap, kk, kk < K, 9, offs_c, c_ok, K * 9)
                acc = mma(a, w, acc, DOT_PRECISION)
        yy = y0 + oy
        xx = x0 + ox
        ok = (yy < H) & (xx < W)
        res = load_pixels(x_image, yy, xx, ok, offs_c, c_ok, sxc, sxh, sxw)
        out = res.to(tl.float32) + res_scale * acc
        tl.store(
            out_image + (yy * soh + xx * sow)[:, None] + offs_c[None, :] * soc,
            out.to(res.dtype),
            mask=ok[:, None] & c_ok[None, :],
        )
