"""MATLAB-compatible bicubic resizing (``imresize(img, scale, 'bicubic')``, antialiasing on).

The super-resolution literature makes its low-resolution images with MATLAB's ``imresize``;
PSNR numbers are only comparable when the same degradation is used. MATLAB's algorithm, per
dimension of input length ``n_in`` and output length ``n_out = ceil(n_in * scale)``:

    u_i    = i / scale + 0.5 * (1 - 1 / scale)                 (i = 1..n_out, 1-based)
    k(t)   = 1.5|t|^3 - 2.5|t|^2 + 1           for |t| <= 1
           = -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2   for 1 < |t| <= 2, else 0   (Keys, a = -0.5)
    weight = s * k(s * (u_i - j)) for input pixels j within 2 / s of u_i,
             where s = min(scale, 1) (downscaling widens the kernel: the antialiasing),
             normalised to sum to 1 per output pixel;
    out-of-range j are mirrored (symmetric padding: ..., 2, 1, 1, 2, ..., n, n, n-1, ...).

Each dimension is one dense (n_out, n_in) matrix here, built in float64, so
``out = R_h @ img @ R_w^T`` per channel. For a downscale by 2 every interior output pixel is
``sum_j w_j x_j`` over 8 input pixels with weights ``(-0.01171875, -0.03515625, 0.11328125,
0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875)``: k(t/2)/2 at t = +-0.5, ..., +-3.5.

One documented difference: MATLAB rounds ``uint8`` images to ``uint8`` between the two
dimensions; here both passes run in floating point and the caller rounds once at the end
(:func:`imresize_uint8`), which differs from MATLAB by at most one grey level on some pixels.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

__all__ = ["cubic", "imresize", "imresize_uint8", "make_pair", "resize_matrix"]


def cubic(t: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), elementwise."""
    a = t.abs()
    a2, a3 = a * a, a * a * a
    near = (1.5 * a3 - 2.5 * a2 + 1) * (a <= 1)
    far = (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * ((a > 1) & (a <= 2))
    return near + far


@functools.lru_cache(maxsize=64)
def resize_matrix(in_length: int, out_length: int, scale: float) -> Tensor:
    """The (out_length, in_length) float64 matrix of MATLAB's bicubic resize along one dimension.

    ``scale`` is the factor (0.5 halves); rows sum to 1. Cached: treat the result as read-only.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"lengths must be positive, got in={in_length}, out={out_length}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    s = min(scale, 1.0)
    kernel_width = 4.0 / s
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    weights = s * cubic(s * (u[:, None] - indices))
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric padding: index j (1-based) maps into [1, n] by mirroring with period 2n.
    period = 2 * in_length
    mirrored = torch.remainder(indices.long() - 1, period)
    mirrored = torch.where(mirrored >= in_length, period - 1 - mirrored, mirrored)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, mirrored, weights)
    return matrix


def _output_length(length: int, scale: float) -> int:
    # MATLAB: ceil(length * scale); the rounding guards 0.5 * 300 computed as 150.00000000000003.
    return math.ceil(round(length * scale, 10))


def imresize(image: Tensor, scale: float) -> Tensor:
    """Resize ``image`` (..., H, W) by ``scale`` like MATLAB's bicubic ``imresize``.

    Output (..., ceil(H * scale), ceil(W * scale)) in the input's floating dtype (float64 math);
    integer inputs give float64. Values are not clamped: bicubic overshoots at edges.
    """
    if not isinstance(image, Tensor) or image.dim() < 2:
        raise ValueError("image must be a tensor of at least 2 dimensions (..., H, W)")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale!r}")
    height, width = image.shape[-2:]
    rows = resize_matrix(height, _output_length(height, scale), float(scale))
    cols = resize_matrix(width, _output_length(width, scale), float(scale))
    out_dtype = image.dtype if image.is_floating_point() else torch.float64
    data = image.to(torch.float64)
    out = rows.to(data.device) @ data @ cols.to(data.device).T
    return out.to(out_dtype)


def imresize_uint8(image: Tensor, scale: float) -> Tensor:
    """:func:`imresize` of an 8-bit image, rounded and clamped back to ``uint8``."""
    if image.dtype != torch.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    return imresize(image, scale).round().clamp(0, 255).to(torch.uint8)


def make_pair(hr: Tensor, scale: int) -> tuple[Tensor, Tensor]:
    """(LR, HR) uint8 images from an HR (3, H, W) uint8 image.

    HR is cropped at the bottom and right to (H - H % scale, W - W % scale); LR is its bicubic
    downscale by ``scale``, (3, H // scale, W // scale).
    """
    height = hr.shape[-2] - hr.shape[-2] % scale
    width = hr.shape[-1] - hr.shape[-1] % scale
    if height == 0 or width == 0:
        raise ValueError(f"image of shape {tuple(hr.shape)} is smaller than scale={scale}")
    hr = hr[..., :height, :width].contiguous()
    return imresize_uint8(hr, 1.0 / scale), hr
