"""Every tensor argument of the fused ops read through its strides, and mixed devices refused.

Biases and weights given as strided views (stride 2, stride 0) must give the result of their
contiguous copies, forward and backward; an argument on another device than the first tensor
(a meta tensor among CPU ones) is a device error naming it, never an uninitialised result. The
block ops run in the Triton interpreter on CPU when there is no GPU (tests/conftest.py).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from wdsr_fast import functional
from wdsr_fast.ops.pixel_shuffle import EXTENSION_AVAILABLE
from wdsr_fast.testing.reference import wdsr_a_block_reference, wdsr_b_block_reference

from helpers.devices import HAS_CUDA

DEVICE = "cuda" if HAS_CUDA else "cpu"
OPS = {
    "B": (torch.ops.wdsr_fast.wdsr_b_block, wdsr_b_block_reference),
    "A": (torch.ops.wdsr_fast.wdsr_a_block, wdsr_a_block_reference),
}


def block_values(kind: str, c: int = 4) -> dict[str, Tensor]:
    """Float32 input and effective weights of a small block, activations of order one."""
    if kind == "B":
        e, low = 6 * c, 3
        shapes = {"w1": (e, c, 1, 1), "b1": (e,), "w2": (low, e, 1, 1), "b2": (low,),
                  "w3": (c, low, 3, 3), "b3": (c,)}  # fmt: skip
    else:
        f = 3 * c
        shapes = {"w1": (f, c, 3, 3), "b1": (f,), "w2": (c, f, 3, 3), "b2": (c,)}
    values = {"x": torch.randn(2, c, 5, 6)}
    for name, shape in shapes.items():
        fan_in = torch.Size(shape[1:]).numel()
        scale = fan_in**-0.5 if name.startswith("w") else 0.1
        values[name] = scale * torch.randn(shape)
    return values


def strided(value: Tensor) -> Tensor:
    """``value`` as a view with stride 2 in its last dimension, NaN in the gaps."""
    shape = (*value.shape[:-1], 2 * value.shape[-1])
    buffer = torch.full(shape, float("nan"), dtype=value.dtype, device=value.device)
    buffer[..., ::2] = value
    return buffer[..., ::2]


def expanded(value: Tensor) -> Tensor:
    """A stride-0 view along dim 0 with ``value[0]``'s values in every row."""
    return value[:1].expand(value.shape)


def contiguous(value: Tensor) -> Tensor:
    return value


def run(op, args: dict[str, Tensor], layouts: dict, grad: Tensor) -> dict[str, Tensor]:
    """Output and gradients of ``op`` on the arguments laid out by ``layouts`` (name ->
    function of the leaf; contiguous when absent); a view's gradient flows into its leaf."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in args.items()}
    views = [layouts.get(k, contiguous)(leaf) for k, leaf in leaves.items()]
    out = op(*views, 0.5)
    out.backward(grad.to(out.dtype))
    return {"output": out.detach()} | {k: v.grad for k, v in leaves.items()}


def check_layouts(kind: str, layouts: dict) -> None:
    """The op on arguments laid out by ``layouts`` against the float64 reference on the same
    views: outputs and every gradient."""
    op, reference = OPS[kind]
    values = block_values(kind)
    grad = torch.randn(values["x"].shape)
    exact = run(reference, {k: v.double() for k, v in values.items()}, layouts, grad.double())
    fast = run(op, {k: v.to(DEVICE) for k, v in values.items()}, layouts, grad.to(DEVICE))
    for key, expected in exact.items():
        got = fast[key].cpu().double()
        assert not got.isnan().any(), key
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4, msg=key)


@pytest.mark.parametrize("kind", ["A", "B"])
@pytest.mark.parametrize(
    ("name", "layout"),
    [("b1", strided), ("b2", strided), ("b1", expanded), ("w1", expanded), ("w2", strided)],
    ids=["b1-stride2", "b2-stride2", "b1-stride0", "w1-stride0", "w2-stride2"],
)
def test_strided_weights_and_biases_read_correctly(kind: str, name: str, layout) -> None:
    check_layouts(kind, {name: layout})


@pytest.mark.parametrize("kind", ["A", "B"])
def test_every_weight_and_bias_expanded_at_once(kind: str) -> None:
    names = block_values(kind).keys() - {"x"}
    check_layouts(kind, dict.fromkeys(names, expanded))


@pytest.mark.parametrize("kind", ["A", "B"])
def test_block_ops_refuse_an_argument_on_another_device(kind: str) -> None:
    op, _ = OPS[kind]
    for name in block_values(kind):
        values = block_values(kind)
        values[name] = values[name].to("meta")
        # x on meta makes w1 the odd one out; any other argument on meta is itself named.
        blamed = "w1" if name == "x" else name
        with pytest.raises(ValueError, match=f"{blamed}: expected device"):
            op(*values.values(), 0.5)


@pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="needs the C++ extension")
@pytest.mark.parametrize(
    ("a_device", "b_device", "shift_device", "blamed"),
    [
        ("cpu", "meta", "cpu", "b must be on a's device"),
        ("cpu", "cpu", "meta", "shift must be on a's device"),
        ("cpu", "meta", "meta", "b must be on a's device"),
        ("meta", "cpu", "meta", "b must be on a's device"),
        ("meta", "meta", "cpu", "shift must be on a's device"),
    ],
)
def test_shuffle_add_affine_refuses_mixed_devices(a_device, b_device, shift_device, blamed):
    """A meta tensor among CPU ones used to reach the meta kernel and return uninitialised
    memory on a's device."""
    a = torch.randn(1, 8, 3, 4, device=a_device)
    b = torch.randn(1, 8, 3, 4, device=b_device)
    shift = torch.randn(2, device=shift_device)
    with pytest.raises(RuntimeError, match=blamed):
        torch.ops.wdsr_fast.shuffle_add_affine(a, b, 2, 1.5, shift)


@pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="needs the C++ extension")
def test_shuffle_add_affine_on_meta_tensors_gives_shapes() -> None:
    a = torch.randn(1, 8, 3, 4, device="meta")
    out = torch.ops.wdsr_fast.shuffle_add_affine(a, a, 2, 1.5, torch.randn(2, device="meta"))
    assert out.device.type == "meta" and out.shape == (1, 2, 6, 8)


@pytest.mark.skipif(not EXTENSION_AVAILABLE, reason="needs the C++ extension")
@pytest.mark.parametrize("arg", ["b", "shift"])
def test_shuffle_add_affine_reads_strided_and_expanded_arguments(arg: str) -> None:
    a, b, shift = torch.randn(2, 8, 3, 4), torch.randn(2, 8, 3, 4), torch.randn(2)
    values = {"b": b, "shift": shift}
    for layout in (strided, expanded):
        given = dict(values, **{arg: layout(values[arg])})
        expected = given[arg].contiguous()
        out = torch.ops.wdsr_fast.shuffle_add_affine(a, given["b"], 2, 1.5, given["shift"])
        plain = dict(given, **{arg: expected})
        reference = (torch.nn.functional.pixel_shuffle(a + plain["b"], 2) * 1.5
                     + plain["shift"].view(-1, 1, 1))  # fmt: skip
        torch.testing.assert_close(out, reference)


@pytest.mark.parametrize("backend", ["torch", "auto"])
@pytest.mark.parametrize("kind", ["A", "B"])
def test_functional_blocks_refuse_an_argument_on_another_device(kind: str, backend: str) -> None:
    """PyTorch's own conv2d returns an uninitialised CPU tensor for a meta weight; the plain
    PyTorch path refuses it, in every grad mode."""
    function = functional.wdsr_a_block if kind == "A" else functional.wdsr_b_block
    for name in set(block_values(kind)) - {"x"}:
        for grad in (False, True):
            values = block_values(kind)
            values[name] = values[name].to("meta")
            values["x"].requires_grad_(grad)
            with (
                torch.set_grad_enabled(grad),
                pytest.raises(ValueError, match=f"{name}: expected device"),
            ):
                function(*values.values(), 0.5, backend=backend)


@pytest.mark.parametrize("backend", ["torch", "auto"])
@pytest.mark.parametrize("odd", ["b", "shift"])
def test_functional_tail_refuses_an_argument_on_another_device(odd: str, backend: str) -> None:
    a = torch.randn(1, 8, 3, 4)
    args = {"b": torch.randn(1, 8, 3, 4), "shift": torch.randn(2)}
    args[odd] = args[odd].to("meta")
    with pytest.raises(
        (ValueError, RuntimeError), match=f"{odd} must be on a's device|{odd}: expected device"
    ):
        functional.shuffle_add_affine(a, args["b"], 2, 1.5, args["shift"], backend=backend)
