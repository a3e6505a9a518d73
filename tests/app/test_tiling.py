"""Tiled inference: equal to untiled within one grey level, windows bounded by the tile size."""

import pytest
import torch

from wdsr_fast import WDSRA, WDSRB
from wdsr_fast.app.tiling import receptive_radius, tile_spans, upscale_tiled


def _model(scale: int = 2, n_resblocks: int = 2) -> WDSRB:
    return WDSRB(scale=scale, n_resblocks=n_resblocks, n_feats=8, backend="torch").eval()


def _image(h: int = 23, w: int = 29) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), dtype=torch.uint8)


def _measured_radius(model: torch.nn.Module, size: int = 31) -> int:
    """How far (in LR pixels) a change of the centre input pixel reaches in the output."""
    x = torch.rand(1, 3, size, size, dtype=torch.float64) * 255
    y = x.clone()
    y[..., size // 2, size // 2] += 100
    with torch.no_grad():
        diff = (model.double()(x) != model(y)).any(dim=1)[0]
    rows = diff.any(dim=1).nonzero().flatten() // model.scale
    return int(size // 2 - rows.min())


@pytest.mark.parametrize(
    "model",
    [_model(), _model(n_resblocks=4), WDSRA(2, 1, 8, block_feats=16, backend="torch").eval()],
    ids=["B2", "B4", "A1"],
)
def test_receptive_radius_is_what_the_network_sees(model):
    assert receptive_radius(model) == _measured_radius(model)


def test_tile_spans_cover_each_pixel_once():
    for length, tile, overlap in [(23, 10, 3), (29, 7, 0), (5, 40, 4), (17, 9, 4)]:
        covered = []
        for start, end, win_start, win_end in tile_spans(length, tile, overlap):
            covered += range(start, end)
            assert win_start == max(0, start - overlap) and win_end == min(length, end + overlap)
            assert win_end - win_start <= tile
        assert covered == list(range(length))
    with pytest.raises(ValueError, match="larger than twice the tile overlap"):
        list(tile_spans(10, 8, 4))


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("tile,overlap", [(11, 4), (13, 5), (16, 4), (64, 4)])
def test_tiled_equals_untiled_within_one_grey_level(scale, tile, overlap):
    model = _model(scale)
    image = _image(14, 11)
    whole = upscale_tiled(model, image)
    tiled = upscale_tiled(model, image, tile=tile, overlap=overlap)
    assert tiled.shape == (3, 14 * scale, 11 * scale) and tiled.dtype == torch.uint8
    assert (tiled.int() - whole.int()).abs().max() <= 1


def test_too_little_overlap_shows_seams():
    model = _model()
    image = _image(14, 11)
    seams = upscale_tiled(model, image, tile=6, overlap=0)
    assert (seams.int() - upscale_tiled(model, image).int()).abs().max() > 1


def test_windows_never_exceed_the_tile():
    model = _model()
    sides: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, args: sides.extend(args[0].shape[-2:]))
    upscale_tiled(model, _image(20, 17), tile=12, overlap=4)
    handle.remove()
    assert max(sides) <= 12 and len(sides) > 2


def test_upscale_rejects_non_uint8_images():
    with pytest.raises(ValueError, match="uint8"):
        upscale_tiled(_model(), _image().float())
