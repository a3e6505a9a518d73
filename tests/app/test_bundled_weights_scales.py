"""The bundled x3 and x4 weights: they load, have the README's architecture, and upscale."""

import numpy as np
import pytest
from PIL import Image

from wdsr_fast import WDSRB
from wdsr_fast.app.cli import main
from wdsr_fast.app.pretrained import bundled_scales, bundled_weights_path, model_for_scale

# WDSR-B, 32 features, 16 residual blocks: parameters by scale (the skip and tail convs grow).
PARAMETERS = {3: 309_109, 4: 316_816}


@pytest.mark.parametrize("scale", sorted(PARAMETERS))
def test_bundled_weights_load_with_their_architecture(scale):
    assert scale in bundled_scales()
    assert bundled_weights_path(scale).endswith(f"wdsr_b_x{scale}.safetensors")
    model = model_for_scale(None, scale)
    assert isinstance(model, WDSRB) and not model.training
    assert model.scale == scale and model.n_feats == 32 and len(model.body) == 16
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[scale]


@pytest.mark.parametrize("scale", sorted(PARAMETERS))
def test_upscale_scale_picks_the_bundled_weights(capsys, tmp_path, scale):
    rgb = np.random.default_rng(scale).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    code = main(
        [
            "upscale",
            str(tmp_path / "in.png"),
            "-o",
            str(out),
            "--scale",
            str(scale),
            "--device",
            "cpu",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 0, err
    with Image.open(out) as image:
        assert image.size == (10 * scale, 12 * scale) and image.mode == "RGB"
