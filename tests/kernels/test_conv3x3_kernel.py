"""The reusable Triton 3x3 convolution (wdsr_fast/kernels/conv3x3.py) against float64 ``F.conv2d``.

Runs in the Triton interpreter on CPU when there is no GPU (tests/conftest.py), on small shapes;
every buffer the launchers allocate is poisoned with NaN first, so an element a kernel fails to
write shows up as an error. The same tests run on CUDA when present, plus bfloat16 there.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from wdsr_fast.kernels import launch
from wdsr_fast.kernels.conv3x3 import conv3x3_forward, conv3x3_input_grad, conv3x3_weight_grad
from wdsr_fast.testing.layouts import in_layout

from helpers.devices import HAS_CUDA, requires_cuda
from helpers.tf32 import assert_tf32_products, assert_within_rule_for, plain_products

DEVICE = "cuda" if HAS_CUDA else "cpu"
REL_ATOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}
LAYOUTS = ("nchw", "channels_last", "strided")


@pytest.fixture(autouse=True)
def poisoned_buffers(guarded_buffers: list[Tensor]) -> list[Tensor]:
    """Launcher buffers start as NaN between guard zones, checked after each test."""
    return guarded_buffers


def rand(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(*shape, dtype=dtype, device=DEVICE)


def conv_contract(
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    *,
    relu: bool = False,
    relu_mask: Tensor | None = None,
    residual: Tensor | None = None,
    res_scale: float = 1.0,
    flip_taps: bool = False,
) -> Tensor:
    """The forward contract of ``conv3x3_forward`` in plain PyTorch ops."""
    y = F.conv2d(x, w.flip(2, 3) if flip_taps else w, b, padding=1)
    if relu:
        y = torch.relu(y)
    if relu_mask is not None:
        y = torch.where(relu_mask > 0, y, 0.0)
    if residual is not None:
        y = residual + res_scale * y
    return y


def as_float64(tensors: dict[str, object]) -> dict[str, object]:
    """The same arguments as float64 CPU tensors (other values unchanged)."""
    return {
        k: v.detach().to("cpu", torch.float64) if isinstance(v, Tensor) else v
        for k, v in tensors.items()
    }


def assert_forward_matches(x: Tensor, w: Tensor, b: Tensor | None, **epilogue) -> None:
    y = conv3x3_forward(x, w, b, **epilogue)
    n, _, h, wd = x.shape
    assert y.shape == (n, w.shape[0], h, wd) and y.dtype == x.dtype
    assert y.is_contiguous(memory_format=torch.channels_last)
    with plain_products(x.dtype):
        plain = conv_contract(x, w, b, **epilogue)
    exact = conv_contract(**as_float64(dict(x=x, w=w, b=b, **epilogue)))
    assert_within_rule_for(
        x.dtype, {"y": y.cpu()}, {"y": plain.cpu()}, {"y": exact}, REL_ATOL[x.dtype]
    )


# (Cin, Cout, N, H, W, layout): every channel pair, size and layout appears; H, W of 1 included.
FORWARD_SHAPES = [
    (25, 32, 3, 7, 13, "nchw"),
    (25, 32, 1, 1, 1, "channels_last"),
    (32, 128, 1, 13, 7, "channels_last"),
    (32, 128, 3, 1, 13, "strided"),
    (128, 32, 3, 7, 7, "strided"),
    (128, 32, 1, 13, 1, "nchw"),
    (16, 24, 3, 13, 13, "channels_last"),
    (16, 24, 1, 7, 1, "strided"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("cin", "cout", "n", "h", "w", "layout"), FORWARD_SHAPES)
def test_forward_bias(cin, cout, n, h, w, layout, dtype):
    x = in_layout(rand(n, cin, h, w, dtype=dtype), layout)
    assert_forward_matches(
        x, rand(cout, cin, 3, 3, dtype=dtype) / cin**0.5, rand(cout, dtype=dtype)
    )


@pytest.mark.skipif(HAS_CUDA, reason="chooses the launch configuration of a simulated GPU")
@pytest.mark.parametrize("capability", [(8, 0), (9, 0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_forward_taps_loop_of_each_gpu_generation(capability, dtype, monkeypatch):
    """sm_90 unrolls the taps' loop in the source, sm_80 leaves it rolled: both, with the
    mask and residual epilogues, in the interpreter."""
    monkeypatch.setitem(launch.simulated_device, "capability", capability)
    n, cin, cout, h, w = 2, 32, 128, 9, 13
    x = in_layout(rand(n, cin, h, w, dtype=dtype), "channels_last")
    mask = torch.relu(rand(n, cout, h, w, dtype=dtype))
    residual = rand(n, cout, h, w, dtype=dtype)
    assert_forward_matches(
        x, rand(cout, cin, 3, 3, dtype=dtype) / cin**0.5, rand(cout, dtype=dtype),
        relu_mask=mask, residual=residual, res_scale=0.5,
    )  # fmt: skip


# Epilogue combinations, each on a shape with odd sizes and both layouts of its operands.
EPILOGUES = [
    dict(relu=True),
    dict(residual=True, res_scale=0.25),
    dict(relu=True, residual=True, res_scale=-1.5),
    dict(relu_mask=True),
    dict(relu_mask=True, residual=True, res_scale=1.0),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("epilogue", EPILOGUES, ids=str)
def test_forward_epilogues(epilogue, with_bias, dtype):
    n, cin, cout, h, w = 3, 25, 32, 7, 13
    x = in_layout(rand(n, cin, h, w, dtype=dtype), "channels_last")
    kwargs = dict(epilogue)
    if kwargs.pop("relu_mask", False):  # a mask with zeros, negatives and positives
        kwargs["relu_mask"] = in_layout(torch.relu(rand(n, cout, h, w, dtype=dtype)), "strided")
    if kwargs.pop("residual", False):
        kwargs["residual"] = in_layout(rand(n, cout, h, w, dtype=dtype), "nchw")
    b = rand(cout, dtype=dtype) if with_bias else None
    assert_forward_matches(x, rand(cout, cin, 3, 3, dtype=dtype) / cin**0.5, b, **kwargs)


def test_relu_keeps_nan_like_torch():
    x = rand(1, 16, 5, 6)
    x[0, 3, 2, 4] = float("nan")
    w, b = rand(16, 16, 3, 3), rand(16)
    y = conv3x3_forward(x, w, b, relu=True)
    expected = torch.relu(F.conv2d(x, w, b, padding=1))
    assert torch.equal(y.isnan(), expected.isnan()) and y.isnan().any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("cin", "cout", "n", "h", "w", "layout"), FORWARD_SHAPES[::2])
def test_input_gradient(cin, cout, n, h, w, layout, dtype):
    """The forward kernel reading the weight's taps in reverse order, channels swapped."""
    assert_input_gradient_matches(cin, cout, n, h, w, layout, dtype)


@pytest.mark.skipif(HAS_CUDA, reason="chooses the launch configuration of a simulated GPU")
def test_input_gradient_with_the_taps_loop_rolled(monkeypatch: pytest.MonkeyPatch):
    """sm_80's rolled taps' loop flips taps given at run time."""
    monkeypatch.setitem(launch.simulated_device, "capability", (8, 0))
    assert_input_gradient_matches(32, 128, 2, 9, 13, "channels_last", torch.float16)


def test_forward_with_flipped_taps():
    x, w, b = rand(2, 16, 5, 7), rand(24, 16, 3, 3), rand(24)
    assert_forward_matches(x, w, b, flip_taps=True)


def assert_input_gradient_matches(
    cin: int, cout: int, n: int, h: int, w: int, layout: str, dtype: torch.dtype
) -> None:
    x, wt = rand(n, cin, h, w, dtype=dtype), rand(cout, cin, 3, 3, dtype=dtype) / cin**0.5
    g = in_layout(rand(n, cout, h, w, dtype=dtype), layout)
    dx = conv3x3_input_grad(g, wt)

    def input_grad(dt: torch.dtype) -> Tensor:
        xd = x.detach().to("cpu", dt).requires_grad_(True)
        with plain_products(dt):
            F.conv2d(xd, wt.detach().to("cpu", dt), padding=1).backward(g.detach().to("cpu", dt))
        return xd.grad

    assert_within_rule_for(
        dtype, {"dx": dx.cpu()}, {"dx": input_grad(dtype)}, {"dx": input_grad(torch.float64)},
        REL_ATOL[dtype],
    )  # fmt: skip


def weight_grads(x: Tensor, g: Tensor, dtype: torch.dtype) -> dict[str, Tensor]:
    """Plain-PyTorch weight and bias gradients of ``conv2d(x, w, b, padding=1)`` in ``dtype``."""
    xd = x.detach().to("cpu", dtype)
    w = torch.zeros(g.shape[1], x.shape[1], 3, 3, dtype=dtype, requires_grad=True)
    b = torch.zeros(g.shape[1], dtype=dtype, requires_grad=True)
    with plain_products(dtype):
        F.conv2d(xd, w, b, padding=1).backward(g.detach().to("cpu", dtype))
    return {"weight": w.grad, "bias": b.grad}


# (Cin, Cout, N, H, W, layout, num_splits): default and forced splits, uneven pixel ranges.
WEIGHT_GRAD_CASES = [
    (25, 32, 3, 7, 13, "channels_last", 3),
    (32, 128, 1, 13, 7, "nchw", None),
    (128, 32, 3, 7, 7, "strided", 2),
    (16, 24, 3, 1, 13, "channels_last", 4),
    (16, 24, 1, 1, 1, "nchw", 1),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("cin", "cout", "n", "h", "w", "layout", "splits"), WEIGHT_GRAD_CASES)
def test_weight_grad(cin, cout, n, h, w, layout, splits, dtype):
    x = in_layout(rand(n, cin, h, w, dtype=dtype), layout)
    g = in_layout(rand(n, cout, h, w, dtype=dtype), "channels_last" if layout == "nchw" else "nchw")
    gw, gb = conv3x3_weight_grad(x, g, num_splits=splits)
    assert gw.dtype == gb.dtype == torch.float32
    assert_within_rule_for(
        dtype, {"weight": gw.cpu(), "bias": gb.cpu()}, weight_grads(x, g, dtype),
        weight_grads(x, g, torch.float64), REL_ATOL[dtype],
    )  # fmt: skip


@pytest.mark.parametrize("splits", [None, 3])
def test_weight_grad_is_deterministic(splits):
    x, g = rand(3, 32, 7, 13, dtype=torch.float16), rand(3, 24, 7, 13, dtype=torch.float16)
    first = conv3x3_weight_grad(x, g, num_splits=splits)
    second = conv3x3_weight_grad(x, g, num_splits=splits)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_images_beyond_int32_indexing_are_refused(monkeypatch: pytest.MonkeyPatch):
    """Offsets within one image are int32 (the batch offset is 64-bit): an image that spans
    more elements than that is a clear error, not an overflow."""
    x = in_layout(rand(3, 16, 5, 7), "nchw")
    w, g = rand(24, 16, 3, 3), rand(3, 24, 5, 7)
    monkeypatch.setattr(launch, "INDEX_LIMIT", 100)
    with pytest.raises(ValueError, match="x: one image spans"):
        conv3x3_forward(x, w, None)
    with pytest.raises(ValueError, match="x: one image spans"):
        conv3x3_weight_grad(x, g)


def test_empty_batch():
    x, g = rand(0, 16, 5, 5), rand(0, 24, 5, 5)
    assert conv3x3_forward(x, rand(24, 16, 3, 3), None).shape == (0, 24, 5, 5)
    gw, gb = conv3x3_weight_grad(x, g)
    assert torch.equal(gw, torch.zeros_like(gw)) and torch.equal(gb, torch.zeros_like(gb))


def test_inputs_are_not_modified():
    x, w, b, res = rand(2, 16, 5, 5), rand(24, 16, 3, 3), rand(24), rand(2, 24, 5, 5)
    copies = [t.clone() for t in (x, w, b, res)]
    conv3x3_forward(x, w, b, relu=True, residual=res, res_scale=0.5)
    conv3x3_weight_grad(x, res)
    assert all(torch.equal(t, c) for t, c in zip((x, w, b, res), copies, strict=True))


def test_launcher_limits_name_the_argument():
    """Argument checks live in the ops; a launcher rejects only what its kernels cannot do."""
    x = rand(2, 16, 5, 5)
    with pytest.raises(ValueError, match="num_splits: expected a positive"):
        conv3x3_weight_grad(x, x, num_splits=0)


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("allow_tf32", [False, True])
def test_cuda_forward_and_weight_grad(dtype, allow_tf32, monkeypatch: pytest.MonkeyPatch):
    """On a GPU: larger shapes, bfloat16, and float32 with and without TF32 dots."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", allow_tf32)
    x = in_layout(rand(2, 32, 45, 67, dtype=dtype), "channels_last")
    w, b = rand(128, 32, 3, 3, dtype=dtype) / 32**0.5, rand(128, dtype=dtype)
    assert_forward_matches(x, w, b, relu=True)
    g = rand(2, 128, 45, 67, dtype=dtype)
    gw, gb = conv3x3_weight_grad(x, g)
    xd, wd = x.clone().requires_grad_(True), torch.zeros_like(w, requires_grad=True)
    bd = torch.zeros_like(b, requires_grad=True)
    with plain_products(dtype):
        F.conv2d(xd, wd, bd, padding=1).backward(g)
    assert_within_rule_for(
        dtype,
        {"weight": gw.cpu(), "bias": gb.cpu()}, {"weight": wd.grad.cpu(), "bias": bd.grad.cpu()},
        weight_grads(x, g, torch.float64), REL_ATOL[dtype],
    )  # fmt: skip


def test_tf32_products(monkeypatch: pytest.MonkeyPatch):
    """float32 with TF32 on: forward and weight gradient against plain PyTorch with TF32
    operands, and at the TF32 error level (operands rounded to nearest, not truncated or left
    in float32), in the interpreter as on a GPU."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    x = in_layout(rand(2, 32, 9, 13), "channels_last")
    w, b = rand(128, 32, 3, 3) / 32**0.5, rand(128)
    y = conv3x3_forward(x, w, b)
    exact = {"y": conv_contract(**as_float64(dict(x=x, w=w, b=b)))}
    with plain_products(torch.float32):
        plain = {"y": conv_contract(x, w, b).cpu()}
    assert_tf32_products({"y": y.cpu()}, plain, exact, REL_ATOL[torch.float32])
    g = rand(2, 128, 9, 13)
    gw, gb = conv3x3_weight_grad(x, g)
    grads = {"weight": gw.cpu(), "bias": gb.cpu()}
    exact = weight_grads(x, g, torch.float64)
    assert_tf32_products(grads, weight_grads(x, g, torch.float32), exact, REL_ATOL[torch.float32])
