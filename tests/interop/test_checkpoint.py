"""load_model / save_model: every checkpoint layout, inferred architecture, clear errors."""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as parametrized_weight_norm

from wdsr_fast import WDSRA, WDSRB
from wdsr_fast.interop.checkpoint import CheckpointError, load_model, model_config, save_model
from wdsr_fast.testing.reference import ReferenceWDSRA, ReferenceWDSRB, make_args

from helpers.ychfan import YchfanWDSR


def randomize(model: nn.Module) -> nn.Module:
    """Random g and bias, so that a wrong mapping of any tensor changes the output."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("weight_g", "original0")):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.uniform_(-0.2, 0.2)
    return model


def reference_model(kind: str, **kwargs) -> nn.Module:
    args = make_args(**{"n_resblocks": 2, "n_feats": 8, "block_feats": 16, **kwargs})
    return randomize((ReferenceWDSRA if kind == "A" else ReferenceWDSRB)(args))


def assert_same_function(model: nn.Module, expected: nn.Module, x: torch.Tensor) -> None:
    """Same outputs in float64 (so only a real difference in function can fail it)."""
    model, expected, x = model.double(), expected.double(), x.double()
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected(x.clone()), rtol=1e-10, atol=1e-9)


# ----------------------------------------------------------------------------- the authors'


@pytest.mark.parametrize(
    ("kind", "scale", "expected_type", "shape_attr"),
    [("A", 2, WDSRA, ("block_feats", 16)), ("B", 3, WDSRB, ("expand", 6))],
)
def test_reference_state_dict(tmp_path: Path, kind, scale, expected_type, shape_attr) -> None:
    reference = reference_model(kind, scale=scale, n_resblocks=3)
    torch.save(reference.state_dict(), tmp_path / "model_latest.pt")  # the trainer's own call
    model = load_model(tmp_path / "model_latest.pt", backend="torch")
    assert type(model) is expected_type
    assert (model.scale, len(model.body), model.n_feats, model.n_colors) == (scale, 3, 8, 3)
    assert getattr(model, shape_attr[0]) == shape_attr[1]
    assert (model.rgb_range, model.rgb_std, model.res_scale) == (255.0, 0.5, 1.0)
    assert_same_function(model, reference, torch.rand(2, 3, 5, 7) * 255)


@pytest.mark.parametrize("prefix", ["model.", "module.", "module.model."])
def test_wrapper_prefixes(tmp_path: Path, prefix: str) -> None:
    reference = reference_model("B")
    state = {prefix + key: value for key, value in reference.state_dict().items()}
    torch.save(state, tmp_path / "wrapped.pt")
    model = load_model(tmp_path / "wrapped.pt", backend="torch")
    assert_same_function(model, reference, torch.rand(1, 3, 6, 4) * 255)


def test_edsr_trainer_wrapper_state_dict(tmp_path: Path) -> None:
    """The EDSR-PyTorch trainer's ``Model`` wrapper keeps the network as ``self.model``."""
    wrapper = nn.Module()
    wrapper.model = reference_model("A")
    torch.save(wrapper.state_dict(), tmp_path / "wrapper.pt")
    model = load_model(tmp_path / "wrapper.pt", backend="torch")
    assert_same_function(model, wrapper.model, torch.rand(1, 3, 4, 5) * 255)


def test_parametrization_style_state_dict(tmp_path: Path) -> None:
    reference = reference_model("B")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for module in list(reference.modules()):
            if isinstance(module, nn.Conv2d):
                torch.nn.utils.remove_weight_norm(module)
                parametrized_weight_norm(module)
    keys = list(reference.state_dict())
    assert "head.0.parametrizations.weight.original0" in keys and len(keys) == 3 * 2 * 3 + 9
    torch.save(reference.state_dict(), tmp_path / "parametrized.pt")
    model = load_model(tmp_path / "parametrized.pt", backend="torch")
    assert_same_function(model, reference, torch.rand(2, 3, 3, 5) * 255)


# ----------------------------------------------------------------------------- ychfan/wdsr


def test_ychfan_checkpoint_reproduces_its_model(tmp_path: Path) -> None:
    params = argparse.Namespace(
        num_channels=3,
        scale=2,
        num_blocks=3,
        num_residual_units=8,
        width_multiplier=4,
        image_mean=0.5,
        learning_rate=1e-3,
    )
    ychfan = randomize(YchfanWDSR(params))
    optimizer = torch.optim.Adam(ychfan.parameters(), params.learning_rate)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, (20, 25), 0.2)
    checkpoint = {  # what its trainer.py saves
        "model_state_dict": ychfan.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "lr_scheduler_state_dict": scheduler.state_dict(),
        "epoch": 3,
    }
    torch.save(checkpoint, tmp_path / "epoch_3.pth")
    model = load_model(tmp_path / "epoch_3.pth", backend="torch")
    assert type(model) is WDSRA
    assert (model.scale, len(model.body), model.n_feats, model.block_feats) == (2, 3, 8, 32)
    assert (model.rgb_range, model.rgb_std, model.res_scale) == (1.0, 1.0, 1.0)
    x = torch.rand(2, 3, 6, 5)
    x_before = x.clone()
    assert_same_function(model, ychfan, x)
    assert torch.equal(x, x_before), "load_model's model must not modify its input"


# ----------------------------------------------------------------------------- saving


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("kind", ["A", "B"])
def test_saved_files_load_into_the_reference(tmp_path: Path, kind: str, suffix: str) -> None:
    ours = randomize(
        WDSRA(n_resblocks=2, n_feats=8, block_feats=16)
        if kind == "A"
        else WDSRB(n_resblocks=2, n_feats=8)
    )
    path = tmp_path / f"ours{suffix}"
    save_model(ours, path)
    if suffix == ".pt":
        state = torch.load(path, weights_only=True)
    else:
        state = safetensors.torch.load_file(path)
    reference = (ReferenceWDSRA if kind == "A" else ReferenceWDSRB)(
        make_args(n_resblocks=2, n_feats=8, block_feats=16)
    )
    reference.load_state_dict(state, strict=True)
    assert_same_function(ours, reference, torch.rand(1, 3, 5, 5) * 255)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip_keeps_every_setting(tmp_path: Path, suffix: str) -> None:
    ours = randomize(
        WDSRB(
            scale=4,
            n_resblocks=3,
            n_feats=10,
            expand=4,
            linear=0.55,
            res_scale=0.25,
            n_colors=1,
            rgb_mean=(0.3,),
            rgb_range=1.0,
            rgb_std=0.2,
        )
    )
    save_model(ours, tmp_path / f"m{suffix}")
    loaded = load_model(tmp_path / f"m{suffix}", backend="torch")
    assert model_config(loaded) == model_config(ours)
    assert_same_function(loaded, ours, torch.rand(2, 1, 3, 4))


def test_keyword_settings_override(tmp_path: Path) -> None:
    ours = randomize(WDSRA(n_resblocks=1, n_feats=8, block_feats=12, res_scale=0.5))
    save_model(ours, tmp_path / "a.pt")
    loaded = load_model(tmp_path / "a.pt", backend="torch", res_scale=0.1, rgb_std=1.0)
    assert (loaded.res_scale, loaded.rgb_std, loaded.rgb_range) == (0.1, 1.0, 255.0)


def test_non_default_linear_is_inferred(tmp_path: Path) -> None:
    ours = randomize(WDSRB(n_resblocks=1, n_feats=10, expand=3, linear=0.5))
    torch.save(dict(ours.state_dict()), tmp_path / "plain.pt")  # no metadata
    loaded = load_model(tmp_path / "plain.pt", backend="torch")
    assert (loaded.expand, int(loaded.n_feats * loaded.linear)) == (3, 5)
    assert_same_function(loaded, ours, torch.rand(1, 3, 4, 4) * 255)


def test_half_precision_checkpoint_loads_as_float32(tmp_path: Path) -> None:
    reference = reference_model("B").half()
    torch.save(reference.state_dict(), tmp_path / "half.pt")
    model = load_model(tmp_path / "half.pt", backend="torch")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(model.head[0].weight_v.half(), reference.head[0].weight_v)


# ----------------------------------------------------------------------------- bad input


def test_partial_and_misshaped_checkpoint_lists_every_problem(tmp_path: Path) -> None:
    state = dict(reference_model("B", n_resblocks=3).state_dict())
    for key in [k for k in state if k.startswith("body.1.body.0.")]:
        del state[key]
    state["tail.0.bias"] = torch.zeros(5)
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as info:
        load_model(tmp_path / "bad.pt")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'bad.pt'}: ")
    assert "missing keys (3): body.1.body.0.bias" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "mis-shaped keys (checkpoint vs model) (1): tail.0.bias (5,) vs (12,)" in message


def test_not_a_wdsr_checkpoint(tmp_path: Path) -> None:
    torch.save(nn.Linear(2, 3).state_dict(), tmp_path / "linear.pt")
    with pytest.raises(CheckpointError, match="not a WDSR checkpoint(.|\n)*head.0.weight_v"):
        load_model(tmp_path / "linear.pt")


def test_tail_channels_must_be_a_square_times_colors(tmp_path: Path) -> None:
    state = dict(reference_model("A").state_dict())
    state["tail.0.weight_v"] = torch.zeros(10, 8, 3, 3)
    torch.save(state, tmp_path / "odd_tail.pt")
    with pytest.raises(CheckpointError, match="tail.0.weight_v has 10 output channels"):
        load_model(tmp_path / "odd_tail.pt")


def test_metadata_disagreeing_with_tensors(tmp_path: Path) -> None:
    save_model(randomize(WDSRB(n_resblocks=3, n_feats=8)), tmp_path / "m.pt")
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    for key in [k for k in state if k.startswith("body.2.")]:
        del state[key]  # truncated last block: only the metadata can tell
    torch.save(state, tmp_path / "truncated.pt")
    with pytest.raises(CheckpointError, match="n_resblocks: metadata 3, tensors 2"):
        load_model(tmp_path / "truncated.pt")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="path"):
        load_model(tmp_path / "absent.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_model(tmp_path / "garbage.pt")
    torch.save({"model": nn.Linear(1, 1)}, tmp_path / "pickled_module.pt")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_model(tmp_path / "pickled_module.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="must hold a state dict"):
        load_model(tmp_path / "list.pt")
    torch.save({"head.0.weight_v": torch.zeros(1), "epoch": 3}, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="non-tensor entries \\(1\\): epoch"):
        load_model(tmp_path / "mixed.pt")


def test_bad_arguments(tmp_path: Path) -> None:
    save_model(WDSRB(n_resblocks=1, n_feats=8), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="backend must be one of"):
        load_model(tmp_path / "m.pt", backend="cuda")
    with pytest.raises(ValueError, match="rgb_mean must have n_colors=3 values"):
        load_model(tmp_path / "m.pt", rgb_mean=(0.5,))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        save_model({"a": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(TypeError, match="model must be a WDSRA or WDSRB"):
        model_config(nn.Linear(1, 1))
    assert math.isfinite(load_model(tmp_path / "m.pt").res_scale)
