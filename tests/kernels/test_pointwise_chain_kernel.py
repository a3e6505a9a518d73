"""The fused pointwise chain (wdsr_fast/kernels/pointwise_chain.py) against float64 PyTorch.

``l = W2 · relu(W1 · x + b1) + b2`` and its gradients (x, with and without an added residual
gradient; W1, b1, W2, b2) by the correctness rule of docs/design.md section 5. Runs in the Triton
interpreter on CPU when there is no GPU (tests/conftest.py), on small shapes chosen to cover
C in 16, 24, 32, 64, H and W in 1, 7, 13, 17, batch 1 and 3, several expand/linear ratios
(E not a multiple of the wide chunk, L not a multiple of 16), and NCHW, channels_last and
non-contiguous inputs. Every buffer the launchers allocate is poisoned with NaN first.
The same tests run on CUDA when present, plus bfloat16 there.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from wdsr_fast.kernels.pointwise_chain import pointwise_chain_backward, pointwise_chain_forward
from wdsr_fast.testing.layouts import in_layout

from helpers.devices import HAS_CUDA, requires_cuda
from helpers.tf32 import assert_within_rule_for, plain_products

DEVICE = "cuda" if HAS_CUDA else "cpu"
REL_ATOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}
PARAM_NAMES = ("w1", "b1", "w2", "b2")


@pytest.fixture(autouse=True)
def poisoned_buffers(guarded_buffers: list[Tensor]) -> list[Tensor]:
    """Launcher buffers start as NaN between guard zones, checked after each test."""
    return guarded_buffers


def make_chain(
    c: int, expand: int, linear: float, dtype: torch.dtype, device: str = DEVICE
) -> dict[str, Tensor]:
    """Random chain parameters, scaled so activations stay of order one."""
    e, low = c * expand, int(c * linear)
    return {
        "w1": torch.randn(e, c, 1, 1, device=device) / c**0.5,
        "b1": 0.1 * torch.randn(e, device=device),
        "w2": torch.randn(low, e, 1, 1, device=device) / e**0.5,
        "b2": 0.1 * torch.randn(low, device=device),
    }


def cast(tensors: dict[str, Tensor], dtype: torch.dtype, device: str) -> dict[str, Tensor]:
    return {k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}


def chain_autograd(
    x: Tensor, params: dict[str, Tensor], grad_low: Tensor, grad_residual: Tensor | None
) -> dict[str, Tensor]:
    """Output and gradients of the chain through PyTorch autograd (in the inputs' dtype)."""
    x = x.detach().clone().requires_grad_(True)
    p = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    low = F.conv2d(F.relu(F.conv2d(x, p["w1"], p["b1"])), p["w2"], p["b2"])
    low.backward(grad_low)
    dx = x.grad if grad_residual is None else x.grad + grad_residual
    return {"output": low.detach(), "x": dx} | {k: v.grad for k, v in p.items()}


def chain_fused(
    x: Tensor, params: dict[str, Tensor], grad_low: Tensor, grad_residual: Tensor | None
) -> dict[str, Tensor]:
    """Output and gradients of the chain from the Triton kernels."""
    low = pointwise_chain_forward(x, params["w1"], params["b1"], params["w2"], params["b2"])
    dx, dw1, db1, dw2, db2 = pointwise_chain_backward(
        x, grad_low, params["w1"], params["b1"], params["w2"], grad_residual=grad_residual
    )
    return {"output": low, "x": dx, "w1": dw1, "b1": db1, "w2": dw2, "b2": db2}


def check_chain(
    shape: tuple[int, int, int, int],
    expand: int,
    linear: float,
    dtype: torch.dtype,
    layout: str,
    with_residual_grad: bool,
) -> None:
    n, c, h, w = shape
    params = make_chain(c, expand, linear, torch.float32, "cpu")
    x = torch.randn(shape)
    grad_low = torch.randn(n, params["w2"].shape[0], h, w)
    grad_res = torch.randn(shape) if with_residual_grad else None

    def args(dt: torch.dtype, device: str) -> tuple:
        gres = None if grad_res is None else grad_res.to(device=device, dtype=dt)
        return x.to(device, dt), cast(params, dt, device), grad_low.to(device, dt), gres

    exact = chain_autograd(*args(torch.float64, "cpu"))
    with plain_products(dtype):
        plain = chain_autograd(*args(dtype, DEVICE))
    xf, pf, glf, grf = args(dtype, DEVICE)
    xf, glf = in_layout(xf, layout), in_layout(glf, layout)
    grf = None if grf is None else in_layout(grf, layout)
    fast = chain_fused(xf, pf, glf, grf)

    assert fast["output"].is_contiguous(memory_format=torch.channels_last)
    for name in PARAM_NAMES:
        assert fast[name].shape == params[name].shape and fast[name].dtype == dtype
    assert fast["x"].shape == x.shape and fast["x"].dtype == dtype
    cpu = {k: v.cpu() for k, v in fast.items()}
    plain = {k: v.cpu() for k, v in plain.items()}
    assert_within_rule_for(dtype, cpu, plain, exact, REL_ATOL[dtype])


def test_tf32_products(monkeypatch: pytest.MonkeyPatch):
    """float32 with TF32 on: against plain PyTorch with TF32 operands, at TF32's error level."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    check_chain((2, 32, 7, 13), 6, 0.8, torch.float32, "channels_last", True)


# (N, C, H, W), expand, linear, dtype, layout, residual gradient added: a subset of the cross
# product that reaches every size class and every layout at least once in each dtype.
CASES = [
    ((3, 32, 7, 13), 6, 0.8, torch.float32, "channels_last", True),
    ((1, 32, 13, 7), 6, 0.8, torch.float16, "nchw", True),
    ((1, 16, 1, 17), 6, 0.8, torch.float32, "strided", False),
    ((3, 24, 1, 1), 6, 0.8, torch.float16, "channels_last", False),
    ((1, 64, 17, 1), 4, 0.5, torch.float32, "nchw", True),
    ((1, 64, 7, 7), 6, 0.8, torch.float16, "strided", True),
    ((3, 24, 13, 13), 3, 0.7, torch.float32, "nchw", False),
    ((1, 16, 17, 17), 5, 1.0, torch.float16, "channels_last", True),
]


@pytest.mark.parametrize(("shape", "expand", "linear", "dtype", "layout", "residual"), CASES)
def test_forward_and_gradients_match_float64(shape, expand, linear, dtype, layout, residual):
    check_chain(shape, expand, linear, dtype, layout, residual)


def test_weight_gradients_are_deterministic():
    params = cast(make_chain(32, 6, 0.8, torch.float32, "cpu"), torch.float16, DEVICE)
    x = torch.randn(3, 32, 13, 17, device=DEVICE, dtype=torch.float16)
    grad_low = torch.randn(3, 25, 13, 17, device=DEVICE, dtype=torch.float16)
    first = chain_fused(x, params, grad_low, None)
    second = chain_fused(x, params, grad_low, None)
    for name, value in first.items():
        assert torch.equal(value, second[name]), name


def test_inputs_are_not_modified():
    params = make_chain(16, 6, 0.8, torch.float32)
    x = torch.randn(2, 16, 7, 7, device=DEVICE)
    grad_low = torch.randn(2, 12, 7, 7, device=DEVICE)
    grad_res = torch.randn(2, 16, 7, 7, device=DEVICE)
    before = [t.clone() for t in (x, grad_low, grad_res, *params.values())]
    chain_fused(x, params, grad_low, grad_res)
    for old, new in zip(before, (x, grad_low, grad_res, *params.values()), strict=True):
        assert torch.equal(old, new)


def test_empty_batch():
    params = make_chain(16, 6, 0.8, torch.float32)
    x = torch.randn(0, 16, 5, 5, device=DEVICE)
    out = chain_fused(x, params, torch.randn(0, 12, 5, 5, device=DEVICE), None)
    assert out["output"].shape == (0, 12, 5, 5) and out["x"].shape == (0, 16, 5, 5)
    for name in PARAM_NAMES:
        assert torch.equal(out[name], torch.zeros_like(params[name]))


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("allow_tf32", [False, True])
def test_cuda_realistic_shape(dtype: torch.dtype, allow_tf32: bool, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", allow_tf32)
    check_chain((2, 32, 48, 48), 6, 0.8, dtype, "channels_last", True)
    check_chain((1, 64, 33, 17), 6, 0.8, dtype, "nchw", False)
