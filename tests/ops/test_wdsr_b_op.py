"""The fused WDSR-B block op ``wdsr_fast::wdsr_b_block`` against the float64 reference.

Forward and the gradients of x and every weight by the correctness rule of docs/design.md section 5;
determinism of the backward; what autograd saves (x and the weights only); opcheck of both ops;
bad arguments; autocast; torch.compile. Runs in the Triton interpreter on CPU when there is no
GPU (tests/conftest.py), on small shapes; on CUDA the same tests run, plus bfloat16 and a
realistic shape.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from wdsr_fast.kernels import launch
from wdsr_fast.kernels import wdsr_b_block as wdsr_b_block_kernels
from wdsr_fast.ops.wdsr_b_block import wdsr_b_block
from wdsr_fast.testing.reference import wdsr_b_block_reference

from helpers.devices import HAS_CUDA, requires_cuda
from helpers.tf32 import assert_within_rule_for, plain_products

DEVICE = "cuda" if HAS_CUDA else "cpu"
REL_ATOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}
NAMES = ("x", "w1", "b1", "w2", "b2", "w3", "b3")


@pytest.fixture(autouse=True)
def poisoned_buffers(guarded_buffers: list[Tensor]) -> list[Tensor]:
    """Launcher buffers start as NaN between guard zones, checked after each test."""
    return guarded_buffers


def make_block(
    n: int, c: int, h: int, w: int, expand: int = 6, linear: float = 0.8
) -> dict[str, Tensor]:
    """Float32 CPU input and effective weights of one block, activations of order one."""
    e, low = c * expand, int(c * linear)
    return {
        "x": torch.randn(n, c, h, w),
        "w1": torch.randn(e, c, 1, 1) / c**0.5,
        "b1": 0.1 * torch.randn(e),
        "w2": torch.randn(low, e, 1, 1) / e**0.5,
        "b2": 0.1 * torch.randn(low),
        "w3": torch.randn(c, low, 3, 3) / (9 * low) ** 0.5,
        "b3": 0.1 * torch.randn(c),
    }


def to(block: dict[str, Tensor], dtype: torch.dtype, device: str) -> dict[str, Tensor]:
    return {k: v.to(device=device, dtype=dtype) for k, v in block.items()}


def run(fn, block: dict[str, Tensor], res_scale: float, grad: Tensor) -> dict[str, Tensor]:
    """Output of ``fn(*block, res_scale)`` and the gradients of every argument for ``grad``."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in block.items()}
    out = fn(*leaves.values(), res_scale)
    out.backward(grad.to(out.dtype))
    return {"output": out.detach()} | {k: v.grad for k, v in leaves.items()}


def check_block(
    shape: tuple[int, int, int, int],
    dtype: torch.dtype,
    layout: str,
    res_scale: float,
    expand: int = 6,
    linear: float = 0.8,
    grad_layout: str | None = None,
) -> None:
    """The block's output and gradients against the reference, x in ``layout`` and the output
    gradient in ``grad_layout`` (by default the same)."""
    block = make_block(*shape, expand=expand, linear=linear)
    grad = torch.randn(shape)
    exact = run(wdsr_b_block_reference, to(block, torch.float64, "cpu"), res_scale, grad.double())
    with plain_products(dtype):
        plain = run(wdsr_b_block_reference, to(block, dtype, DEVICE), res_scale, grad.to(DEVICE))
    fast_block = to(block, dtype, DEVICE)
    fast_grad = grad.to(DEVICE)
    if layout == "channels_last":
        fast_block["x"] = fast_block["x"].contiguous(memory_format=torch.channels_last)
    if (grad_layout or layout) == "channels_last":
        # As a channels_last network passes it back.
        fast_grad = fast_grad.contiguous(memory_format=torch.channels_last)
    fast = run(wdsr_b_block, fast_block, res_scale, fast_grad)
    assert fast["output"].dtype == dtype and fast["output"].shape == shape
    for name in NAMES:
        assert fast[name].shape == block[name].shape and fast[name].dtype == dtype, name
    cpu = lambda d: {k: v.cpu() for k, v in d.items()}
    assert_within_rule_for(dtype, cpu(fast), cpu(plain), exact, REL_ATOL[dtype])


# (N, C, H, W), dtype, layout, res_scale: every C of 16, 24, 32, 64, H and W of 1, 7, 13, 17,
# batch 1 and 3, both layouts and both dtypes appear, without the full cross product.
CASES = [
    ((1, 32, 7, 13), torch.float32, "channels_last", 1.0),
    ((3, 32, 13, 7), torch.float16, "nchw", 0.1),
    ((3, 16, 1, 17), torch.float32, "nchw", 0.5),
    ((1, 24, 17, 1), torch.float16, "channels_last", 1.0),
    ((1, 64, 7, 7), torch.float32, "nchw", 0.1),
    ((1, 64, 1, 1), torch.float16, "channels_last", 1.0),
    # Several tiles in both directions, ragged edges, fewer programs than tiles.
    ((2, 16, 35, 70), torch.float16, "channels_last", 0.5),
]


@pytest.mark.parametrize(("shape", "dtype", "layout", "res_scale"), CASES)
def test_forward_and_gradients_match_float64(shape, dtype, layout, res_scale):
    check_block(shape, dtype, layout, res_scale)


@pytest.mark.skipif(HAS_CUDA, reason="chooses the launch configuration of a simulated GPU")
@pytest.mark.parametrize("capability", [(8, 0), (9, 0)])
@pytest.mark.parametrize(("shape", "tile_w"), [((2, 16, 19, 35), 16), ((1, 16, 20, 64), 32)])
def test_backward_paths_of_each_gpu_generation(capability, shape, tile_w, monkeypatch):
    """sm_90 runs the backward in the tile kernel; sm_80 leaves dx and the chain's weight
    gradients to the pixel kernels: both are checked here, in the interpreter, with the tiles
    fitted to each image (16 x 16 on 19 x 35, where they compute fewer halo pixels, 16 x 32 on
    20 x 64)."""
    monkeypatch.setitem(launch.simulated_device, "capability", capability)
    for config in (wdsr_b_block_kernels.forward_config, wdsr_b_block_kernels.backward_config):
        chosen = config(16, 12, torch.float16, "ieee", capability, launch.triton_version(),
                        image=shape[2:])  # fmt: skip
        assert getattr(chosen, "tile", chosen).tile_w == tile_w
    check_block(shape, torch.float16, "channels_last", 0.5)


@pytest.mark.parametrize("capability", [None, (8, 0)])
def test_tf32_products(capability, monkeypatch):
    """float32 with TF32 on: against the reference with TF32 operands, at TF32's error level;
    in the interpreter both backward paths (sm_90's tile kernel and sm_80's pixel kernels)."""
    if capability is not None:
        if HAS_CUDA:
            pytest.skip("chooses the launch configuration of a simulated GPU")
        monkeypatch.setitem(launch.simulated_device, "capability", capability)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    check_block((2, 32, 9, 13), torch.float32, "channels_last", 0.5)


def test_other_expand_and_linear():
    check_block((1, 24, 7, 13), torch.float32, "nchw", 0.5, expand=3, linear=0.5)


@pytest.mark.skipif(HAS_CUDA, reason="chooses the launch configuration of a simulated GPU")
@pytest.mark.parametrize("capability", [(8, 0), (9, 0)])
def test_fused_backward_takes_an_nchw_gradient(capability, monkeypatch):
    """A channels_last x with an NCHW output gradient (as a loss right after the block gives)
    runs the fused backward, the gradient copied to channels_last first, and never the
    composed one."""

    def composed_backward(*args: object) -> None:
        raise AssertionError("the composed backward ran")

    monkeypatch.setitem(launch.simulated_device, "capability", capability)
    monkeypatch.setattr(wdsr_b_block_kernels, "_composed_backward", composed_backward)
    check_block((1, 16, 9, 11), torch.float16, "channels_last", 0.5, grad_layout="nchw")


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_backward_is_deterministic(layout: str):
    """Bit-identical gradients run after run: the composed backward (NCHW) and the fused one
    (channels_last), whose partial sums are added in a fixed order."""
    block = to(make_block(3, 32, 13, 17), torch.float16, DEVICE)
    grad = torch.randn(3, 32, 13, 17, device=DEVICE)
    if layout == "channels_last":
        block["x"] = block["x"].contiguous(memory_format=torch.channels_last)
        grad = grad.contiguous(memory_format=torch.channels_last)
    first = run(wdsr_b_block, block, 0.5, grad)
    second = run(wdsr_b_block, block, 0.5, grad)
    for name, value in first.items():
        assert torch.equal(value, second[name]), name


def test_saves_only_the_input_and_the_weights():
    """Autograd keeps x and the weights (<= 1.25 C floats per pixel), nothing per-pixel more."""
    n, c, h, w = 2, 32, 7, 9
    leaves = {k: v.requires_grad_(True) for k, v in to(make_block(n, c, h, w), torch.float32,
                                                           DEVICE).items()}  # fmt: skip
    saved: list[Tensor] = []

    def pack(t: Tensor) -> Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = wdsr_b_block(*leaves.values(), 1.0)
    per_pixel = sum(t.numel() for t in saved if t.dim() == 4 and t.shape[2:] == (h, w))
    assert per_pixel / (n * h * w) <= 1.25 * c
    inputs = {t.data_ptr() for t in leaves.values()}
    assert all(t.data_ptr() in inputs for t in saved)
    assert {t.data_ptr() for t in saved} == inputs - {leaves["b3"].data_ptr()}
    out.sum().backward()
    assert all(leaves[k].grad is not None for k in NAMES)


def test_inputs_are_not_modified():
    block = to(make_block(1, 16, 5, 6), torch.float32, DEVICE)
    before = {k: v.clone() for k, v in block.items()}
    run(wdsr_b_block, block, 0.5, torch.randn(1, 16, 5, 6, device=DEVICE))
    for k, v in before.items():
        assert torch.equal(v, block[k]), k


def test_opcheck_forward_and_backward_ops():
    block = to(make_block(1, 16, 3, 4), torch.float32, DEVICE)
    args = (*(v.requires_grad_(True) for v in block.values()), 0.5)
    torch.library.opcheck(torch.ops.wdsr_fast.wdsr_b_block.default, args)
    b = {k: v.detach() for k, v in block.items()}
    backward_args = (torch.randn(1, 16, 3, 4, device=DEVICE), b["x"], b["w1"], b["b1"],
                     b["w2"], b["b2"], b["w3"], 0.5)  # fmt: skip
    torch.library.opcheck(torch.ops.wdsr_fast.wdsr_b_block_backward.default, backward_args)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_inf_propagate_like_the_reference(bad: float):
    block = make_block(1, 16, 6, 7)
    block["x"][0, 3, 2, 4] = bad
    grad = torch.randn(1, 16, 6, 7)
    exact = run(wdsr_b_block_reference, to(block, torch.float64, "cpu"), 0.5, grad.double())
    fast = run(wdsr_b_block, to(block, torch.float32, DEVICE), 0.5, grad.to(DEVICE))
    for name, value in exact.items():
        assert torch.equal(fast[name].cpu().isnan(), value.isnan()), name
        assert torch.equal(fast[name].cpu().isinf(), value.isinf()), name


def test_empty_batch():
    block = to(make_block(0, 16, 4, 4), torch.float32, DEVICE)
    out = run(wdsr_b_block, block, 1.0, torch.zeros(0, 16, 4, 4, device=DEVICE))
    assert out["output"].shape == (0, 16, 4, 4)
    for name in NAMES[1:]:
        assert torch.equal(out[name], torch.zeros_like(block[name])), name


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("x", torch.randn(16, 4, 4), "x: expected a 4-D"),
        ("x", torch.randn(1, 16, 4, 4, dtype=torch.float64), "x: expected dtype"),
        ("w1", torch.randn(96, 8, 1, 1), "w1: expected shape (E, 16, 1, 1)"),
        ("b1", torch.randn(95), "b1: expected shape (96,)"),
        ("w2", torch.randn(12, 96, 3, 3), "w2: expected shape (L, 96, 1, 1)"),
        ("b2", torch.randn(12, dtype=torch.float16), "b2: expected dtype torch.float32"),
        ("w3", torch.randn(16, 11, 3, 3), "w3: expected shape (16, 12, 3, 3)"),
        ("b3", torch.randn(16, device="meta"), "b3: expected device"),
    ],
)
def test_bad_arguments_name_the_argument(name: str, value: Tensor, message: str):
    block = make_block(1, 16, 4, 4)
    block[name] = value if value.device.type == "meta" else value.to(DEVICE)
    block = {k: v.to(DEVICE) if v.device.type != "meta" else v for k, v in block.items()}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        wdsr_b_block(*block.values(), 1.0)


def test_autocast_casts_to_the_autocast_dtype():
    block = to(make_block(1, 16, 5, 7), torch.float32, DEVICE)
    with torch.autocast(DEVICE, dtype=torch.float16):
        out = run(wdsr_b_block, block, 0.5, torch.randn(1, 16, 5, 7, device=DEVICE))
    assert out["output"].dtype == torch.float16
    assert all(out[k].dtype == torch.float32 for k in NAMES)  # through the casts to float32
    exact = wdsr_b_block_reference(*to(block, torch.float64, "cpu").values(), 0.5)
    err = (out["output"].cpu().double() - exact).abs().max().item()
    assert err < 1e-2 * exact.abs().max().item()


def test_torch_compile_fullgraph_forward_and_backward():
    block = to(make_block(1, 16, 5, 7), torch.float32, DEVICE)
    grad = torch.randn(1, 16, 5, 7)
    compiled = torch.compile(wdsr_b_block, backend="aot_eager", fullgraph=True)
    eager = run(wdsr_b_block, block, 0.5, grad.to(DEVICE))
    traced = run(compiled, block, 0.5, grad.to(DEVICE))
    for name, value in eager.items():
        torch.testing.assert_close(traced[name], value, rtol=0, atol=0, msg=name)


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_cuda_realistic_shape(dtype: torch.dtype):
    check_block((2, 32, 48, 48), dtype, "channels_last", 1.0)
    check_block((1, 64, 31, 17), dtype, "nchw", 0.1)
