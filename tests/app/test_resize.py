"""MATLAB-compatible bicubic resizing against MATLAB's algorithm worked out by hand."""

import pytest
import torch

from wdsr_fast.app.resize import cubic, imresize, imresize_uint8, make_pair, resize_matrix

# imresize(x, 0.5, 'bicubic'): kernel k(t/2)/2 at t = +-0.5, +-1.5, +-2.5, +-3.5, where
# k(0.25) = 0.8671875, k(0.75) = 0.2265625, k(1.25) = -0.0703125, k(1.75) = -0.0234375.
HALF_WEIGHTS = torch.tensor([-0.0234375, -0.0703125, 0.2265625, 0.8671875], dtype=torch.float64)
HALF_WEIGHTS = torch.cat([HALF_WEIGHTS, HALF_WEIGHTS.flip(0)]) / 2


def test_cubic_is_keys_kernel_with_a_minus_half():
    t = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5], dtype=torch.float64)
    expected = torch.tensor([1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625], dtype=torch.float64)
    assert torch.equal(cubic(t), expected)


def test_halving_uses_matlabs_antialiased_weights_in_the_interior():
    matrix = resize_matrix(20, 10, 0.5)
    assert torch.allclose(matrix.sum(dim=1), torch.ones(10, dtype=torch.float64))
    # Output i (0-based) is centred on input 2i + 0.5: taps 2i-3 .. 2i+4.
    for i in range(2, 8):
        assert torch.allclose(matrix[i, 2 * i - 3 : 2 * i + 5], HALF_WEIGHTS)
        assert matrix[i].count_nonzero() == 8


def test_borders_mirror_symmetrically():
    matrix = resize_matrix(20, 10, 0.5)
    # Output 0 needs inputs -3..4; -3, -2, -1 mirror to 2, 1, 0 (MATLAB's symmetric padding).
    expected = torch.zeros(20, dtype=torch.float64)
    for tap, weight in zip(range(-3, 5), HALF_WEIGHTS, strict=True):
        expected[tap if tap >= 0 else -tap - 1] += weight
    assert torch.allclose(matrix[0], expected)


def test_upscaling_interpolates_without_antialiasing():
    # x2 up: output 2i and 2i+1 sit at input i -+ 0.25, four taps each.
    matrix = resize_matrix(10, 20, 2.0)
    row = matrix[8]  # input position 3.75: taps 2..5 at distances 1.75, 0.75, 0.25, 1.25
    taps = torch.tensor([1.75, 0.75, 0.25, 1.25], dtype=torch.float64)
    assert torch.allclose(row[2:6], cubic(taps))
    assert row.count_nonzero() == 4


def test_imresize_shapes_constants_and_ramps():
    image = torch.full((3, 13, 9), 77.0, dtype=torch.float64)
    out = imresize(image, 0.5)
    assert out.shape == (3, 7, 5)  # ceil(13 / 2), ceil(9 / 2)
    assert torch.allclose(out, torch.full_like(out, 77.0))
    ramp = torch.arange(16, dtype=torch.float64).repeat(16, 1)
    # A linear ramp stays linear away from the borders: output i is the input at 2i + 0.5.
    halved = imresize(ramp, 0.5)
    assert torch.allclose(halved[:, 2:6], (2 * torch.arange(2, 6) + 0.5).double().expand(8, 4))


def test_imresize_uint8_rounds_and_clamps():
    image = torch.zeros(1, 8, 8, dtype=torch.uint8)
    image[:, :, 4:] = 255
    out = imresize_uint8(image, 0.5)
    assert out.dtype == torch.uint8
    exact = imresize(image.double(), 0.5)
    assert exact.min() < 0 and exact.max() > 255  # bicubic overshoots at an edge
    assert torch.equal(out, exact.round().clamp(0, 255).to(torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        imresize_uint8(image.float(), 0.5)


def test_make_pair_crops_to_a_multiple_of_the_scale():
    hr = torch.randint(0, 256, (3, 31, 20), dtype=torch.uint8)
    lr, cropped = make_pair(hr, 3)
    assert cropped.shape == (3, 30, 18) and lr.shape == (3, 10, 6)
    assert torch.equal(cropped, hr[:, :30, :18])
    assert torch.equal(lr, imresize_uint8(cropped, 1 / 3))
