"""Image quality as the super-resolution literature measures it: PSNR and SSIM on luma.

Images are (3, H, W) or (N, 3, H, W) RGB tensors in [0, 255] (any real dtype; the math runs in
float64). The luma is BT.601 as MATLAB's ``rgb2ycbcr`` computes it,

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255,

and ``shave`` pixels are cut from every border before measuring (the literature shaves the
scale factor, where the network has no context).

    PSNR = 10 log10(255^2 / MSE)

SSIM is Wang et al. (2004): an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255,
local statistics over the window positions that fit inside the image ("valid"), the mean of

    SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2))

with C1 = (K1 L)^2, C2 = (K2 L)^2 and population (biased) variances, as in the authors' MATLAB
``ssim_index.m``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["psnr", "psnr_y", "rgb_to_y", "ssim", "ssim_y"]

_BT601_Y = (65.481, 128.553, 24.966)
DATA_RANGE = 255.0


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def _shave(image: Tensor, shave: int) -> Tensor:
    if shave < 0:
        raise ValueError(f"shave must be >= 0, got {shave}")
    if shave == 0:
        return image
    if min(image.shape[-2:]) <= 2 * shave:
        raise ValueError(
            f"image of shape {tuple(image.shape)} is too small to shave {shave} pixels"
        )
    return image[..., shave:-shave, shave:-shave]


def rgb_to_y(image: Tensor) -> Tensor:
    """BT.601 luma in [16, 235] of RGB in [0, 255]: (..., 3, H, W) -> (..., H, W), float64."""
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"image must be (..., 3, H, W), got shape {tuple(image.shape)}")
    weights = torch.tensor(_BT601_Y, dtype=torch.float64, device=image.device) / 255.0
    return 16.0 + torch.einsum("...chw,c->...hw", image.to(torch.float64), weights)


def psnr(a: Tensor, b: Tensor, data_range: float = DATA_RANGE) -> float:
    """``10 log10(data_range^2 / mean((a - b)^2))`` over all elements; inf when a == b."""
    _check_pair(a, b)
    mse = torch.mean((a.to(torch.float64) - b.to(torch.float64)) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def psnr_y(sr: Tensor, hr: Tensor, shave: int = 0) -> float:
    """PSNR of the BT.601 luma of two RGB images in [0, 255], ``shave`` border pixels cut."""
    _check_pair(sr, hr)
    return psnr(_shave(rgb_to_y(sr), shave), _shave(rgb_to_y(hr), shave))


def _gaussian_window(size: int, sigma: float, device: torch.device) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    a: Tensor, b: Tensor, data_range: float = DATA_RANGE, window: int = 11, sigma: float = 1.5
) -> float:
    """Mean SSIM of two single-channel images (..., H, W) (see the module docstring)."""
    _check_pair(a, b)
    if a.dim() < 2 or min(a.shape[-2:]) < window:
        raise ValueError(f"images must be at least {window}x{window}, got shape {tuple(a.shape)}")
    height, width = a.shape[-2:]
    x = a.to(torch.float64).reshape(-1, 1, height, width)
    y = b.to(torch.float64).reshape(-1, 1, height, width)
    g = _gaussian_window(window, sigma, x.device)

    def blur(t: Tensor) -> Tensor:  # separable Gaussian, valid positions only
        t = F.conv2d(t, g.view(1, 1, -1, 1))
        return F.conv2d(t, g.view(1, 1, 1, -1))

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.mean().item()


def ssim_y(sr: Tensor, hr: Tensor, shave: int = 0) -> float:
    """SSIM of the BT.601 luma of two RGB images in [0, 255], ``shave`` border pixels cut."""
    _check_pair(sr, hr)
    return ssim(_shave(rgb_to_y(sr), shave), _shave(rgb_to_y(hr), shave))
