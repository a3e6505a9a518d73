"""Training: aligned random patches, bicubic initialisation, a short run that lowers the loss."""

import runpy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from wdsr_fast import WDSRB
from wdsr_fast.app.image_io import ImageError
from wdsr_fast.app.resize import imresize_uint8, make_pair
from wdsr_fast.app.tiling import upscale_tiled
from wdsr_fast.app.training import (
    PatchSampler,
    TrainConfig,
    init_as_bicubic,
    load_training_pairs,
    train,
    train_on_images,
)
from wdsr_fast.interop.checkpoint import load_model
from wdsr_fast.testing.reference import ReferenceWDSRB, make_args


def _smooth_image(h: int, w: int) -> torch.Tensor:
    """A uint8 RGB image with structure at several scales (learnable, unlike noise)."""
    y = torch.linspace(0, 6.28, h).view(-1, 1)
    x = torch.linspace(0, 6.28, w).view(1, -1)
    channels = [
        128 + 100 * torch.sin(3 * x + 2 * y),
        128 + 90 * torch.cos(5 * x) * torch.sin(4 * y),
        128 + 80 * torch.sin(7 * (x + y)),
    ]
    return torch.stack(channels).round().clamp(0, 255).to(torch.uint8)


def _symmetries(patch: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips and transposes of a (C, p, p) patch."""
    out = []
    for t in (patch, patch.transpose(-1, -2)):
        out += [t, t.flip(-1), t.flip(-2), t.flip(-1).flip(-2)]
    return out


def test_patches_are_aligned_crops_under_all_eight_symmetries():
    lr = torch.arange(3 * 12 * 10).view(3, 12, 10).remainder(251).to(torch.uint8)  # distinct
    hr = lr.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # HR pixel 2i+a is LR i
    p = 5
    sampler = PatchSampler([(lr, hr)], 2, p, 48, torch.Generator().manual_seed(1))
    lr_batch, hr_batch = sampler.sample()
    assert lr_batch.shape == (48, 3, p, p) and hr_batch.shape == (48, 3, 2 * p, 2 * p)
    assert lr_batch.dtype == torch.float32 and hr_batch.dtype == torch.float32
    crops = {
        lr[:, t : t + p, u : u + p].float().numpy().tobytes()
        for t in range(12 - p + 1)
        for u in range(10 - p + 1)
    }
    used = set()
    for lr_patch, hr_patch in zip(lr_batch, hr_batch, strict=True):
        assert torch.equal(hr_patch[:, ::2, ::2], lr_patch)  # aligned with its HR patch
        found = [k for k, s in enumerate(_symmetries(lr_patch)) if s.numpy().tobytes() in crops]
        assert found, "patch is no flip or transpose of a crop"
        used.add(found[0])
    assert len(used) >= 6  # the augmentations do happen


def test_sampler_rejects_images_smaller_than_the_patch():
    lr = torch.zeros(3, 5, 5, dtype=torch.uint8)
    with pytest.raises(ValueError, match="smaller than patch_size"):
        PatchSampler([(lr, torch.zeros(3, 10, 10, dtype=torch.uint8))], 2, 6, 1)
    with pytest.raises(ValueError, match="scale times"):
        PatchSampler([(lr, torch.zeros(3, 9, 10, dtype=torch.uint8))], 2, 4, 1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_init_reproduces_bicubic_upsampling(scale):
    model = WDSRB(scale=scale, n_resblocks=1, n_feats=8, backend="torch").eval()
    init_as_bicubic(model, tail_gain=0.0)
    lr = torch.randint(0, 256, (3, 12, 10), dtype=torch.uint8)
    ours = upscale_tiled(model, lr).int()
    bicubic = imresize_uint8(lr, float(scale)).int()
    border = 2 * scale  # the skip conv zero-pads where MATLAB mirrors
    inner = (slice(None), slice(border, -border), slice(border, -border))
    assert (ours[inner] - bicubic[inner]).abs().max() <= 1


def test_a_short_training_run_lowers_the_loss():
    _, hr = make_pair(_smooth_image(48, 48), 2)
    lr = imresize_uint8(hr, 0.5)
    sampler = PatchSampler([(lr, hr)], 2, 8, 4, torch.Generator().manual_seed(0))
    fixed_lr, fixed_hr = PatchSampler(
        [(lr, hr)], 2, 8, 8, torch.Generator().manual_seed(9)
    ).sample()
    model = WDSRB(scale=2, n_resblocks=1, n_feats=8, backend="torch")

    def held_out_loss() -> float:
        with torch.no_grad():
            return F.l1_loss(model.eval()(fixed_lr), fixed_hr).item()

    before = held_out_loss()
    losses = train(model, sampler, TrainConfig(steps=40, lr=3e-3, log_every=0))
    assert len(losses) == 40
    assert held_out_loss() < 0.5 * before


def test_train_on_images_writes_a_loadable_checkpoint(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(_smooth_image(30 + 2 * i, 28).permute(1, 2, 0).numpy()).save(
            folder / f"{i}.png"
        )
    lines: list[str] = []
    output = tmp_path / "w.safetensors"
    model = train_on_images(
        [folder],
        output,
        n_feats=8,
        n_resblocks=1,
        batch_size=2,
        patch_size=8,
        config=TrainConfig(steps=4, log_every=2, checkpoint_every=2),
        log=lines.append,
    )
    assert lines[0].startswith("2 images") and any("step 4/4" in line for line in lines)
    loaded = load_model(output)
    assert loaded.scale == 2 and len(loaded.body) == 1 and loaded.n_feats == 8
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_training_refuses_bad_folders(tmp_path):
    with pytest.raises(ImageError, match="no image files"):
        load_training_pairs([tmp_path], 2, 8)
    Image.fromarray(_smooth_image(10, 10).permute(1, 2, 0).numpy()).save(tmp_path / "s.png")
    with pytest.raises(ImageError, match="too small for patch size 8"):
        load_training_pairs([tmp_path], 2, 8)
    with pytest.raises(ImageError, match="output folder"):
        train_on_images([tmp_path], tmp_path / "missing" / "w.safetensors", patch_size=2)


def test_example_trainer_swaps_blocks_and_saves_reference_keys(tmp_path, capsys):
    example = Path(__file__).resolve().parents[2] / "examples" / "train.py"
    main = runpy.run_path(str(example), run_name="example")["main"]
    image = tmp_path / "hr.png"
    Image.fromarray(_smooth_image(26, 24).permute(1, 2, 0).numpy()).save(image)
    checkpoint = tmp_path / "ckpt.pt"
    main(
        [
            "--dir_data",
            str(image),
            "--n_resblocks",
            "2",
            "--n_feats",
            "8",
            "--patch_size",
            "12",
            "--batch_size",
            "2",
            "--epochs",
            "2",
            "--save",
            str(checkpoint),
            "--cpu",
        ]
    )
    assert "fused blocks: 2 (body.0, body.1, ...)" in capsys.readouterr().out
    state = torch.load(checkpoint, weights_only=True)
    reference = ReferenceWDSRB(make_args(2, 2, 8)).state_dict()
    assert list(state) == list(reference)
