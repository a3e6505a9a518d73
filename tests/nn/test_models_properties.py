"""Property-based differential tests of WDSRA and WDSRB against the float64 reference model.

Hypothesis draws the architecture (scale, blocks, features, res_scale, mean), random weights,
the input's size, memory layout (contiguous, channels_last, stride 2, stride 0, permuted) and
dtype, the backend and the grad mode; the model's output, and in grad mode the gradients of the
input and of every parameter, must agree with a reference model holding the same weights by
the correctness rule of docs/design.md section 5, and the input must stay unmodified. Budgets
and the derandomised profile: tests/helpers/hypothesis_profiles.py.
"""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is in the test extras")

import torch  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from wdsr_fast import WDSRA, WDSRB  # noqa: E402

from helpers import hypothesis_profiles  # noqa: E402
from helpers.devices import HAS_CUDA  # noqa: E402
from helpers.layouts import lay_out, layouts  # noqa: E402
from helpers.updates import MODES, grad_mode, reference_of  # noqa: E402

hypothesis_profiles.load()

DEVICE = "cuda" if HAS_CUDA else "cpu"
REL_ATOL = {torch.float64: 1e-12, torch.float32: 1e-5}


@st.composite
def models(draw: st.DrawFn, kind: str, backend: str) -> WDSRA | WDSRB:
    """A small model of ``kind`` with random weights (g and biases too)."""
    common = dict(
        scale=draw(st.integers(1, 3)),
        n_resblocks=draw(st.integers(0, 2)),
        n_feats=draw(st.integers(2, 8)),
        res_scale=draw(st.floats(-1.0, 1.0, allow_nan=False, width=32)),
        rgb_mean=tuple(draw(st.lists(st.floats(0.0, 1.0, width=32), min_size=3, max_size=3))),
        backend=backend,
    )
    torch.manual_seed(draw(st.integers(0, 2**20)))
    if kind == "A":
        model = WDSRA(block_feats=draw(st.integers(1, 10)), **common)
    else:
        model = WDSRB(**common)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight_g"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.uniform_(-0.2, 0.2)
    return model


def outputs(model: nn.Module, x: Tensor, layout: tuple[str, int], mode: str) -> dict:
    """The output on ``x`` laid out by ``layout`` and, in grad mode, the gradients of x and
    of every parameter, by name. Asserts that the input was not modified."""
    model.zero_grad(set_to_none=True)
    leaf = x.detach().clone().requires_grad_(mode == "grad")
    with grad_mode(mode):
        given_x = lay_out(leaf, layout)
        before = given_x.detach().clone()
        out = model(given_x)
    assert torch.equal(given_x.detach(), before), "the model modified its input"
    result = {"output": out.detach().clone()}
    if mode == "grad":
        weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view(out.shape)
        (out * weights.to(out.dtype).to(out.device)).sum().backward()
        result["input"] = leaf.grad
        result |= {name: p.grad for name, p in model.named_parameters()}
    return result


def check_model(kind: str, backend: str, data: st.DataObject, dtypes: list) -> None:
    model = data.draw(models(kind, backend))
    dtype = data.draw(st.sampled_from(dtypes))
    mode = data.draw(st.sampled_from(MODES))
    n, h, w = (
        data.draw(st.integers(1, 2)),
        data.draw(st.integers(1, 6)),
        data.draw(st.integers(1, 6)),
    )
    layout = data.draw(layouts(4))
    x = torch.rand(n, 3, h, w, dtype=torch.float64) * 255
    exact = outputs(reference_of(model), x, layout, "grad" if mode == "grad" else "no_grad")
    plain = outputs(reference_of(model).to(DEVICE, dtype), x.to(DEVICE, dtype), layout, mode)
    fast = outputs(model.to(DEVICE, dtype), x.to(DEVICE, dtype), layout, mode)
    assert fast["output"].dtype == dtype
    assert fast["output"].shape == (n, 3, h * model.scale, w * model.scale)
    assert fast.keys() == plain.keys()
    for name, reference in exact.items():
        fast_err = (fast[name].cpu().double() - reference).abs().max().item()
        plain_err = (plain[name].cpu().double() - reference).abs().max().item()
        atol = REL_ATOL[dtype] * reference.abs().max().item()
        assert fast_err <= 2 * plain_err + atol, f"{name}: error {fast_err}, plain {plain_err}"


@pytest.mark.parametrize("kind", ["A", "B"])
@hypothesis_profiles.budget(15)
@given(data=st.data())
def test_torch_backend_matches_float64(kind: str, data: st.DataObject) -> None:
    check_model(kind, "torch", data, [torch.float32, torch.float64])


@pytest.mark.parametrize("kind", ["A", "B"])
@hypothesis_profiles.budget(15)
@given(data=st.data())
def test_auto_backend_matches_float64(kind: str, data: st.DataObject) -> None:
    check_model(kind, "auto", data, [torch.float32, torch.float64])


@pytest.mark.parametrize("kind", ["A", "B"])
@hypothesis_profiles.budget(4)
@given(data=st.data())
def test_fused_backend_matches_float64(kind: str, data: st.DataObject) -> None:
    """Fused blocks (the Triton interpreter on CPU) and the C++ tail."""
    check_model(kind, "triton", data, [torch.float32])
