"""torch.compile(fullgraph=True) and torch.autocast on the WDSR models.

Compiles are slow on small CPUs, so most use the ``aot_eager`` backend: it runs Dynamo's full
capture (``fullgraph=True`` fails on any graph break) and AOTAutograd's forward and backward
tracing, which are what custom ops and model code must survive; one test runs Inductor.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wdsr_fast import WDSRA, WDSRB
from wdsr_fast.testing.reference import ReferenceWDSRA, ReferenceWDSRB, make_args

from helpers.accuracy import assert_within_rule, outputs_and_grads
from helpers.devices import HAS_CUDA, requires_cuda

FUSED_OPS = {"A": "wdsr_fast.ops.wdsr_a_block", "B": "wdsr_fast.ops.wdsr_b_block"}


def require_fused_op(kind: str) -> None:
    module = FUSED_OPS[kind]
    pytest.importorskip(module, reason=f"fused op module {module} does not exist yet")


def model_pair(kind: str, backend: str, n_feats: int = 8) -> tuple[nn.Module, nn.Module]:
    """(wdsr_fast model, reference model) with the same random weights, res_scale 0.5."""
    args = make_args(n_resblocks=2, n_feats=n_feats, block_feats=2 * n_feats, res_scale=0.5)
    ours = (WDSRA if kind == "A" else WDSRB).from_args(args, backend=backend)
    reference = (ReferenceWDSRA if kind == "A" else ReferenceWDSRB)(args)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name.endswith("weight_g"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.uniform_(-0.2, 0.2)
    reference.load_state_dict(ours.state_dict())
    return ours, reference


def assert_same(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        scale = value.abs().max().item()
        torch.testing.assert_close(actual[name], value, rtol=1e-5, atol=1e-6 * scale, msg=name)


@pytest.mark.parametrize("kind", ["A", "B"])
def test_fullgraph_training_step_matches_eager(kind: str) -> None:
    model, _ = model_pair(kind, "torch")
    x = torch.rand(2, 3, 7, 5) * 255
    expected = outputs_and_grads(model, x)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    assert_same(outputs_and_grads(compiled, x), expected)


@pytest.mark.slow
def test_inductor_inference_follows_parameter_updates() -> None:
    model, _ = model_pair("B", "torch")
    model.eval()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.rand(1, 3, 6, 5) * 255
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-3)
        for p in model.parameters():
            p.mul_(1.25)  # as an optimizer step would, in place
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("kind", ["A", "B"])
def test_fullgraph_triton_backend_in_interpreter(kind: str) -> None:
    require_fused_op(kind)
    model, reference = model_pair(kind, "triton", n_feats=4)
    x = torch.rand(1, 3, 3, 4) * 255
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    exact = outputs_and_grads(reference.double(), x.double())
    plain = outputs_and_grads(reference.float(), x)
    assert_within_rule(outputs_and_grads(compiled, x), plain, exact, rel_atol=1e-6)


def autocast_runs(
    kind: str,
    device: str,
    dtype: torch.dtype,
    compile_model: bool,
    backend: str = "auto",
    n_feats: int = 8,
    shape: tuple[int, int, int, int] = (2, 3, 6, 7),
) -> tuple:
    """(ours under autocast, reference under the same autocast, reference in float64)."""
    model, reference = model_pair(kind, backend, n_feats)
    model, reference = model.to(device), reference.to(device)
    x = torch.rand(shape, device=device) * 255
    exact = outputs_and_grads(reference.double(), x.double())
    reference.float()
    if compile_model:
        model = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.autocast(device, dtype=dtype):
        ours, plain = outputs_and_grads(model, x), outputs_and_grads(reference, x)
    return ours, plain, exact


# One rounding to the autocast dtype (unit roundoff 2**-8 for bfloat16, 2**-11 for float16) of
# an entry's largest value: the atol of the rule under autocast. Where the two models round at
# different points (the fused tail adds before scaling, the reference scales and then adds), the
# difference is of this size; a wrong formula is off by far more.
UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}


@pytest.mark.parametrize(("kind", "compile_model"), [("A", False), ("B", False), ("B", True)])
def test_autocast_bfloat16_cpu(kind: str, compile_model: bool) -> None:
    """Outputs and gradients against the reference under the same autocast (docs/design.md section
    5, atol one bf16 rounding); measured drift from float64 is about 0.5% of each entry's range.
    Gradients of the float32 parameters stay float32.
    """
    ours, plain, exact = autocast_runs(kind, "cpu", torch.bfloat16, compile_model)
    assert all(ours[name].dtype == torch.float32 for name in ours if name != "output")
    drift = (ours["output"].double() - exact["output"]).abs().max().item()
    assert drift > 1e-3, "autocast did not reach the convolutions"
    assert_within_rule(ours, plain, exact, rel_atol=UNIT_ROUNDOFF[torch.bfloat16])


@pytest.mark.skipif(HAS_CUDA, reason="the Triton interpreter runs only where no GPU is")
@pytest.mark.parametrize("kind", ["A", "B"])
def test_autocast_float16_triton_backend_in_interpreter(kind: str) -> None:
    """float16, as the interpreter computes bfloat16 as NaN (bf16 is covered on GPUs)."""
    require_fused_op(kind)
    runs = autocast_runs(kind, "cpu", torch.float16, False, "triton", 4, (1, 3, 3, 4))
    assert_within_rule(*runs, rel_atol=UNIT_ROUNDOFF[torch.float16])


@requires_cuda
@pytest.mark.parametrize("kind", ["A", "B"])
def test_autocast_float16_cuda_compiled(kind: str) -> None:
    ours, plain, exact = autocast_runs(kind, "cuda", torch.float16, compile_model=True)
    assert_within_rule(ours, plain, exact, rel_atol=UNIT_ROUNDOFF[torch.float16])
