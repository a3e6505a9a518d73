"""to_plain_module: folded weight norm, plain layers only, torch.export and ONNX round trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from wdsr_fast import WDSRA, WDSRB
from wdsr_fast.interop.export import PlainResidualBlock, PlainWDSR, to_plain_module

# Batch, height and width free: the exported graph serves every image size.
DYNAMIC = {
    "x": {i: torch.export.Dim(name, min=1, max=64) for i, name in ((0, "n"), (2, "h"), (3, "w"))}
}
PLAIN_LAYERS = (PlainWDSR, PlainResidualBlock, nn.Sequential, nn.Conv2d, nn.ReLU, nn.PixelShuffle)


def small_model(kind: str) -> nn.Module:
    """Random g and bias; non-default normalisation and res_scale, so all of them must carry."""
    common = dict(n_resblocks=2, n_feats=8, res_scale=0.6, rgb_range=1.0, rgb_std=0.3)
    model = WDSRA(block_feats=12, **common) if kind == "A" else WDSRB(scale=3, **common)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight_g"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("kind", ["A", "B"])
def test_same_function_from_plain_layers(kind: str) -> None:
    model = small_model(kind)
    before = {name: p.clone() for name, p in model.state_dict().items()}
    plain = to_plain_module(model)
    assert all(isinstance(m, PLAIN_LAYERS) for m in plain.modules())
    assert not plain.training
    assert all(torch.equal(p, before[name]) for name, p in model.state_dict().items())
    assert "body.1.body.0.weight" in plain.state_dict()
    x = torch.rand(2, 3, 7, 6)
    with torch.no_grad():  # float64: any difference of function shows, rounding does not
        expected = model.double()(x.double())
        torch.testing.assert_close(
            to_plain_module(model)(x.double()), expected, rtol=1e-12, atol=1e-12
        )
        # float32: the copy's own rounding only
        torch.testing.assert_close(plain(x), expected.float(), rtol=1e-5, atol=1e-5)


def test_copy_is_independent_of_the_model() -> None:
    model = small_model("B")
    plain = to_plain_module(model)
    with torch.no_grad():
        plain.head[0].weight.zero_()
    assert model.head[0].weight_v.abs().sum() > 0
    assert plain.head[0].weight.data_ptr() != model.head[0].weight_v.data_ptr()


@pytest.mark.parametrize("kind", ["A", "B"])
def test_torch_export_with_dynamic_size(kind: str) -> None:
    model = small_model(kind)
    plain = to_plain_module(model)
    program = torch.export.export(plain, (torch.rand(2, 3, 5, 6),), dynamic_shapes=DYNAMIC)
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert targets and all(t.startswith("aten.") for t in targets), targets
    assert "aten.convolution.default" in targets or "aten.conv2d.default" in targets
    x = torch.rand(1, 3, 1, 4)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-5)


def test_onnx_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="ONNX export test needs the onnx package")
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    ort = pytest.importorskip("onnxruntime", reason="ONNX round trip needs onnxruntime")
    model = small_model("B")
    plain = to_plain_module(model)
    path = tmp_path / "wdsr.onnx"
    torch.onnx.export(
        plain,
        (torch.rand(2, 3, 5, 6),),
        str(path),
        dynamo=True,
        input_names=["x"],
        dynamic_shapes=DYNAMIC,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 8, 7)
    (out,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), model(x), rtol=1e-4, atol=1e-4)


def test_only_wdsr_models() -> None:
    with pytest.raises(TypeError, match="model must be a WDSRA or WDSRB"):
        to_plain_module(nn.Conv2d(3, 3, 3))
