"""The fused WDSR-A block op ``wdsr_fast::wdsr_a_block`` against the float64 reference.

Forward and every gradient follow the correctness rule (docs/design.md section 5) over channel
counts, block widths, sizes, batches, layouts and dtypes; backward is deterministic and keeps
only x and the weights; opcheck validates the registrations; autocast casts to the active
dtype. Runs in the Triton interpreter on CPU without a GPU (small shapes), on CUDA with one
(bfloat16 too); launcher allocations are poisoned with NaN.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from wdsr_fast.kernels import launch
from wdsr_fast.nn.blocks import WDSRABlock
from wdsr_fast.ops.wdsr_a_block import wdsr_a_block
from wdsr_fast.testing.reference import wdsr_a_block_reference

from helpers.devices import HAS_CUDA, requires_cuda
from helpers.tf32 import assert_within_rule_for, plain_products

DEVICE = "cuda" if HAS_CUDA else "cpu"
REL_ATOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
GRAD_NAMES = ("x", "w1", "b1", "w2", "b2")


@pytest.fixture(autouse=True)
def poisoned_buffers(guarded_buffers: list[Tensor]) -> list[Tensor]:
    """Launcher buffers start as NaN between guard zones, checked after each test."""
    return guarded_buffers


def in_layout(t: Tensor, layout: str) -> Tensor:
    """``t``'s values as NCHW-contiguous, channels_last, or a non-contiguous strided view."""
    if layout == "nchw":
        return t.contiguous()
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    n, c, h, w = t.shape
    view = torch.zeros(n, c, h + 2, 2 * w, dtype=t.dtype, device=t.device)[:, :, 1 : h + 1, ::2]
    view.copy_(t)
    assert not view.is_contiguous() and not view.is_contiguous(memory_format=torch.channels_last)
    return view


def block_args(c: int, f: int, n: int, h: int, w: int, dtype: torch.dtype, layout: str = "nchw"):
    """x and weights of a block, scaled like a trained network's (outputs of order one)."""

    def rand(*shape: int, scale: float = 1.0) -> Tensor:
        return (torch.randn(*shape, device=DEVICE) * scale).to(dtype)

    x = in_layout(rand(n, c, h, w), layout)
    return (
        x,
        rand(f, c, 3, 3, scale=(9 * c) ** -0.5),
        rand(f, scale=0.1),
        rand(c, f, 3, 3, scale=(9 * f) ** -0.5),
        rand(c, scale=0.1),
    )


def outputs_and_grads(fn, args: tuple[Tensor, ...], res_scale: float, grad: Tensor) -> dict:
    """The block's output and the gradients of x and every weight for output gradient grad."""
    leaves = [a.detach().clone(memory_format=torch.preserve_format).requires_grad_() for a in args]
    out = fn(*leaves, res_scale)
    grads = torch.autograd.grad(out, leaves, grad.to(out.dtype))
    return {"out": out.detach(), **dict(zip(GRAD_NAMES, grads, strict=True))}


def on_cpu(results: dict) -> dict:
    return {k: v.cpu() for k, v in results.items()}


def assert_block_matches_reference(args: tuple[Tensor, ...], res_scale: float) -> None:
    dtype = args[0].dtype
    grad = torch.randn(args[0].shape, device=DEVICE)
    fast = outputs_and_grads(wdsr_a_block, args, res_scale, grad)
    with plain_products(dtype):
        plain = outputs_and_grads(wdsr_a_block_reference, args, res_scale, grad)
    exact = outputs_and_grads(
        wdsr_a_block_reference, [a.cpu().double() for a in args], res_scale, grad.cpu()
    )
    assert fast["out"].is_contiguous(memory_format=torch.channels_last)
    assert all(fast[k].dtype == dtype for k in fast)
    assert_within_rule_for(dtype, on_cpu(fast), on_cpu(plain), exact, REL_ATOL[dtype])


# (C, block_feats, N, H, W, layout, res_scale): every C, width, size, batch and layout appears.
SHAPES = [
    (16, 40, 3, 7, 13, "nchw", 1.0),
    (16, 48, 1, 1, 1, "channels_last", 0.1),
    (32, 64, 1, 13, 7, "channels_last", 1.0),
    (32, 40, 3, 1, 13, "strided", -0.5),
    (16, 64, 3, 13, 1, "strided", 0.25),
    (32, 48, 1, 7, 7, "nchw", 2.0),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("c", "f", "n", "h", "w", "layout", "res_scale"), SHAPES)
def test_forward_and_gradients_match_reference(c, f, n, h, w, layout, res_scale, dtype):
    assert_block_matches_reference(block_args(c, f, n, h, w, dtype, layout), res_scale)


@pytest.mark.skipif(HAS_CUDA, reason="chooses the launch configuration of a simulated GPU")
@pytest.mark.parametrize("capability", [(8, 0), (9, 0)])
def test_fused_forward_of_each_gpu_generation(capability, monkeypatch: pytest.MonkeyPatch):
    """sm_90's fused forward unrolls the first convolution's taps; sm_80's loops over them
    and takes narrower products in the second: both checked here, in the interpreter, on
    several tiles with ragged edges."""
    monkeypatch.setitem(launch.simulated_device, "capability", capability)
    args = block_args(32, 64, 2, 19, 21, torch.float16, "channels_last")
    assert_block_matches_reference(args, 0.5)


def test_tf32_products(monkeypatch: pytest.MonkeyPatch):
    """float32 with TF32 on: against the reference with TF32 operands, at TF32's error level."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert_block_matches_reference(
        block_args(32, 64, 2, 9, 13, torch.float32, "channels_last"), 0.5
    )


def test_backward_is_deterministic():
    args = block_args(16, 40, 2, 5, 7, torch.float16, "channels_last")
    grad = torch.randn(args[0].shape, device=DEVICE)
    first = outputs_and_grads(wdsr_a_block, args, 0.5, grad)
    second = outputs_and_grads(wdsr_a_block, args, 0.5, grad)
    assert all(torch.equal(first[k], second[k]) for k in first)


def saved_storages(fn, args: tuple[Tensor, ...]) -> dict[int, int]:
    """data_ptr -> bytes of each storage autograd saves while ``fn`` runs forward."""
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args, 1.0)
    return saved


def test_saves_only_the_input_and_the_weights():
    """At most 1.25*C floats per pixel besides the weights (docs/design.md section 7): only x."""
    c, f, n, h, w = 16, 64, 2, 7, 9
    args = [a.requires_grad_() for a in block_args(c, f, n, h, w, torch.float32)]
    storages = {a.untyped_storage().data_ptr() for a in args}
    weights = storages - {args[0].untyped_storage().data_ptr()}

    def activation_bytes(saved: dict[int, int]) -> int:
        return sum(nbytes for ptr, nbytes in saved.items() if ptr not in weights)

    saved = saved_storages(wdsr_a_block, args)
    assert set(saved) <= storages
    assert activation_bytes(saved) <= 1.25 * c * n * h * w * 4
    # The measurement sees what the reference keeps: the wide activation besides x.
    reference = saved_storages(wdsr_a_block_reference, args)
    assert activation_bytes(reference) >= (c + f) * n * h * w * 4


def test_opcheck():
    x, w1, b1, w2, b2 = block_args(16, 24, 2, 3, 4, torch.float32)
    args = [t.requires_grad_() for t in (x, w1, b1, w2, b2)]
    torch.library.opcheck(torch.ops.wdsr_fast.wdsr_a_block.default, (*args, 0.5))
    grad = torch.randn(x.shape, device=DEVICE)
    torch.library.opcheck(
        torch.ops.wdsr_fast.wdsr_a_block_backward.default,
        (grad, x.detach(), w1.detach(), b1.detach(), w2.detach(), 0.5),
    )


def test_autocast_casts_to_the_active_dtype():
    """Under autocast, float32 arguments are cast to the autocast dtype (here float16) and
    gradients flow back to the float32 leaves."""
    args = [a.requires_grad_() for a in block_args(16, 40, 1, 5, 6, torch.float32)]
    with torch.autocast(torch.device(DEVICE).type, dtype=torch.float16):
        out = torch.ops.wdsr_fast.wdsr_a_block(*args, 0.5)
    expected = wdsr_a_block(*(a.detach().half() for a in args), 0.5)
    assert out.dtype == torch.float16 and torch.equal(out, expected)
    out.float().sum().backward()
    assert all(a.grad is not None and a.grad.dtype == torch.float32 for a in args)


def test_block_module_dispatches_to_the_op():
    torch.manual_seed(0)
    block = WDSRABlock(16, 40, res_scale=0.5, backend="triton").to(DEVICE)
    x = torch.randn(2, 16, 5, 7, device=DEVICE)
    fused = block(x)
    block.backend = "torch"
    assert fused.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fused, block(x), rtol=1e-4, atol=1e-4)


def test_empty_batch():
    args = [a.requires_grad_() for a in block_args(16, 40, 0, 5, 5, torch.float32)]
    out = wdsr_a_block(*args, 1.0)
    assert out.shape == (0, 16, 5, 5)
    grads = torch.autograd.grad(out, args, torch.ones_like(out))
    assert all(not g.any() for g in grads)


def test_inputs_are_not_modified():
    args = block_args(16, 40, 2, 5, 5, torch.float32)
    copies = [a.clone() for a in args]
    outputs_and_grads(wdsr_a_block, args, 1.0, torch.randn(args[0].shape, device=DEVICE))
    assert all(torch.equal(a, c) for a, c in zip(args, copies, strict=True))


@pytest.mark.parametrize(
    ("index", "bad", "message"),
    [
        (0, lambda t: t[0], "x: expected a 4-D"),
        (0, lambda t: t.double(), "x: expected dtype float32, float16 or bfloat16"),
        (1, lambda t: t[:, :8], r"w1: expected shape \(F, 16, 3, 3\)"),
        (1, lambda t: t.half(), "w1: expected dtype torch.float32"),
        (2, lambda t: t[:3], r"b1: expected shape \(40,\)"),
        (3, lambda t: t[:, :20], r"w2: expected shape \(16, 40, 3, 3\)"),
        (3, lambda t: t.to("meta"), "w2: expected device"),
        (4, lambda t: t.half(), "b2: expected dtype"),
    ],
)
def test_bad_input_names_the_argument(index, bad, message):
    args = list(block_args(16, 40, 1, 4, 4, torch.float32))
    args[index] = bad(args[index])
    with pytest.raises(ValueError, match=message):
        wdsr_a_block(*args, 1.0)


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(("c", "f", "layout"), [(32, 128, "channels_last"), (16, 40, "nchw")])
def test_cuda_larger_shapes(c, f, layout, dtype):
    assert_block_matches_reference(block_args(c, f, 4, 48, 40, dtype, layout), 0.7)
