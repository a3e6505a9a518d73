"""Tile geometry, strided loads and the ReLU shared by the fused block kernels.

The fused kernels walk output tiles of TILE_H x TILE_W pixels (:func:`tile_origin`), read
activations through their strides (:func:`load_pixels`: NCHW, channels_last and other views
need no copy; Triton's launcher specialises unit strides into constants, so channels_last reads
become 16-byte vectors) and weights in whichever orientation a product wants
(:func:`load_matrix`).
"""

import triton
import triton.language as tl

__all__ = ["load_matrix", "load_pixels", "relu", "tile_origin"]


@triton.jit
def tile_origin(tile, tiles_per_image, tiles_w, TILE_H: tl.constexpr, TILE_W: tl.constexpr):
    """Image index and top-left pixel (y0, x0) of output tile ``tile``."""
    n = tile // tiles_per_image
    t = tile - n * tiles_per_image
    ty = t // tiles_w
    return n, ty * TILE_H, (t - ty * tiles_w) * TILE_W


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
