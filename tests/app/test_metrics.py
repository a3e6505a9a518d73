"""PSNR/SSIM on BT.601 luma against values derived by hand and against scikit-image."""

import math

import pytest
import torch

from wdsr_fast.app.metrics import psnr, psnr_y, rgb_to_y, ssim, ssim_y


def _rgb(h: int = 24, w: int = 20) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8)


def test_rgb_to_y_hits_the_bt601_studio_range():
    black = torch.zeros(3, 2, 2)
    white = torch.full((3, 2, 2), 255.0)
    assert torch.allclose(rgb_to_y(black), torch.full((2, 2), 16.0, dtype=torch.float64))
    assert torch.allclose(rgb_to_y(white), torch.full((2, 2), 235.0, dtype=torch.float64))
    red = torch.zeros(3, 1, 1)
    red[0] = 255
    assert rgb_to_y(red).item() == pytest.approx(16 + 65.481)


def test_psnr_of_a_known_mse():
    a = torch.full((3, 8, 8), 100.0)
    sign = torch.where((torch.arange(64).view(8, 8) % 2) == 0, 1.0, -1.0)
    b = a + 5 * sign  # every error is +-5: MSE 25
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))
    assert psnr(a, a) == math.inf


def test_psnr_y_scales_rgb_errors_by_the_luma_weights():
    hr = _rgb().double()
    sr = hr.clone()
    sr[1] += 10  # green only: Y moves by 10 * 128.553 / 255
    dy = 10 * 128.553 / 255
    assert psnr_y(sr, hr) == pytest.approx(10 * math.log10(255**2 / dy**2))


def test_shave_drops_the_border():
    hr = _rgb()
    sr = hr.clone()
    sr[:, :2] = 255 - sr[:, :2]  # errors only in the top two rows
    assert psnr_y(sr, hr, shave=0) < 40
    assert psnr_y(sr, hr, shave=2) == math.inf
    with pytest.raises(ValueError, match="too small to shave"):
        psnr_y(sr, hr, shave=12)


def test_ssim_of_identical_images_is_one_and_of_noise_less():
    y = rgb_to_y(_rgb())
    assert ssim(y, y) == pytest.approx(1.0, abs=1e-12)
    noisy = y + 20 * torch.randn_like(y)
    assert 0 < ssim(y, noisy) < 0.9
    assert ssim(y, noisy) == pytest.approx(ssim(noisy, y), abs=1e-12)


def test_ssim_of_constant_images_is_the_luminance_term():
    # Constant images: no variance or covariance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 90.0, 130.0
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(torch.full((16, 16), a), torch.full((16, 16), b)) == pytest.approx(expected)


def test_ssim_matches_scikit_image_gaussian_ssim():
    metrics = pytest.importorskip("skimage.metrics")
    y = rgb_to_y(_rgb(40, 36))
    noisy = (y + 8 * torch.randn_like(y)).clamp(0, 255)
    expected = metrics.structural_similarity(
        y.numpy(),
        noisy.numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim(y, noisy) == pytest.approx(expected, abs=1e-9)


def test_ssim_y_and_psnr_y_reject_mismatched_or_small_images():
    with pytest.raises(ValueError, match="same shape"):
        ssim_y(_rgb(24, 20), _rgb(20, 24))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(8, 8), torch.zeros(8, 8))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        rgb_to_y(torch.zeros(2, 4, 4))
