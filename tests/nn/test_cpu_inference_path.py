"""Where the torch backend runs the fused CPU blocks, and the models' results when it does.

The fused ops serve float32 CPU inference (no gradient needed, outside autocast and
torch.compile); everything else runs the plain PyTorch ops, so training, float64, autocast and
compiled graphs are unchanged. Whole models on the fused path stay within the correctness rule
of the float64 reference (docs/design.md section 5).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from wdsr_fast import WDSRA, WDSRB
from wdsr_fast.ops import cpu_blocks

from helpers.updates import grad_mode, reference_of

pytestmark = pytest.mark.skipif(
    not cpu_blocks.available(), reason="the C++ extension with the fused CPU blocks is not built"
)

FUSED = {"A": "wdsr_fast.wdsr_a_block_cpu", "B": "wdsr_fast.wdsr_b_block_cpu"}


class OpLog(TorchDispatchMode):
    """Records the name of every op that runs (``namespace.name``)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.names.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def make_model(kind: str, n_feats: int = 16, res_scale: float = 1.0) -> WDSRA | WDSRB:
    torch.manual_seed(0)
    if kind == "A":
        model = WDSRA(scale=2, n_resblocks=3, n_feats=n_feats, block_feats=2 * n_feats + 8,
                      res_scale=res_scale, backend="torch")  # fmt: skip
    else:
        model = WDSRB(scale=3, n_resblocks=3, n_feats=n_feats, res_scale=res_scale,
                      backend="torch")  # fmt: skip
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(torch.empty_like(p).uniform_(0.5, 1.5))
            elif name.endswith("bias"):
                p.uniform_(-0.2, 0.2)
    return model.eval()


def fused_calls(model, x: torch.Tensor, mode: str, kind: str) -> int:
    log = OpLog()
    with grad_mode(mode), log:
        model(x)
    return log.names.count(FUSED[kind])


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
@pytest.mark.parametrize("kind", ["A", "B"])
def test_inference_runs_one_fused_op_per_block(kind, mode):
    model = make_model(kind)
    assert fused_calls(model, torch.rand(1, 3, 9, 8) * 255, mode, kind) == len(model.body)


@pytest.mark.parametrize("kind", ["A", "B"])
def test_training_autocast_float64_and_frozen_input_grad_use_plain_ops(kind):
    model = make_model(kind)
    x = torch.rand(1, 3, 9, 8) * 255
    assert fused_calls(model, x, "grad", kind) == 0
    assert fused_calls(model.double(), x.double(), "no_grad", kind) == 0
    model.float().requires_grad_(False)
    assert fused_calls(model, x.requires_grad_(), "grad", kind) == 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused_calls(model, x.detach(), "no_grad", kind) == 0


@pytest.mark.parametrize("kind", ["A", "B"])
def test_without_the_fused_ops_the_plain_path_gives_the_same(kind, monkeypatch):
    model = make_model(kind)
    x = torch.rand(2, 3, 11, 9) * 255
    with torch.inference_mode():
        fused = model(x)
        monkeypatch.setattr(cpu_blocks, "available", lambda: False)
        assert fused_calls(model, x, "inference_mode", kind) == 0
        plain = model(x)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(
    "kind, shape, n_feats, res_scale",
    [
        ("A", (2, 3, 7, 13), 16, 1.0),
        ("B", (2, 3, 7, 13), 16, 1.0),
        ("A", (1, 3, 1, 1), 32, 0.5),
        ("B", (1, 3, 1, 1), 32, 0.5),
        ("B", (1, 3, 17, 300), 32, 1.0),
        ("A", (1, 3, 33, 270), 24, 0.2),
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_models_on_the_fused_path_within_rule(kind, shape, n_feats, res_scale, threads):
    model = make_model(kind, n_feats, res_scale)
    reference = reference_of(model)
    plain = reference_of(model).float()
    x = torch.rand(shape, dtype=torch.float64) * 255
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            fast = model(x.float())
            exact = reference(x)
            plain_out = plain(x.float())
    finally:
        torch.set_num_threads(before)
    fast_err = (fast.double() - exact).abs().max().item()
    plain_err = (plain_out.double() - exact).abs().max().item()
    assert fast_err <= 2 * plain_err + 1e-5 * exact.abs().max().item(), (fast_err, plain_err)


@pytest.mark.parametrize("kind", ["A", "B"])
def test_compiled_inference_traces_the_plain_ops(kind):
    model = make_model(kind)
    x = torch.rand(1, 3, 9, 8) * 255
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        eager = model(x)
        out = compiled(x)
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-3)
