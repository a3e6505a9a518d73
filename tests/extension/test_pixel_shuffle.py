"""The extension's pixel-shuffle ops and the fused WDSR tail.

pixel_shuffle / pixel_unshuffle are compared bit for bit with torch's; shuffle_add_affine with
a float64 reference under the correctness rule (error at most 2x plain PyTorch's in the same
dtype, plus a small atol). Layouts: NCHW, channels_last, non-contiguous, leading batch
dimensions, empty tensors; r in 2, 3, 4; float16, bfloat16, float32, float64.
"""

from __future__ import annotations

import random
import warnings

import pytest
import torch
import torch.nn.functional as F

import wdsr_fast.dispatch as dispatch
from wdsr_fast import functional
from wdsr_fast.extension import extension_unavailable_reason, warn_fallback
from wdsr_fast.ops import pixel_shuffle as ops

from helpers.devices import HAS_CUDA, requires_cuda

pytestmark = pytest.mark.skipif(
    not ops.EXTENSION_AVAILABLE, reason="the C++ extension wdsr_fast._C is not built"
)

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
FACTORS = [2, 3, 4]
LAYOUTS = ["nchw", "channels_last", "non_contiguous", "batch_dims"]
DEVICES = ["cpu", pytest.param("cuda", marks=[requires_cuda, pytest.mark.cuda])]
BITS = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}
RGB_SHIFT = torch.tensor([0.4488, 0.4371, 0.4040]) * 255


def random_shape(key: str, channels_multiple: int) -> tuple[int, int, int, int]:
    """(N, C, H, W) drawn from a generator seeded by ``key``: N in 1..3, C a multiple of
    ``channels_multiple``, H and W in 1, 2, 7, 13, 17."""
    rng = random.Random(key)
    sizes = [1, 2, 7, 13, 17]
    return (
        rng.randint(1, 3),
        channels_multiple * rng.randint(1, 3),
        rng.choice(sizes),
        rng.choice(sizes),
    )


def make_input(shape: tuple[int, ...], dtype: torch.dtype, layout: str, device: str):
    """A random tensor of ``shape`` (4-D) in ``layout``; "batch_dims" splits N into (2, N)."""
    if layout == "batch_dims":
        return torch.randn(2, *shape, device=device).to(dtype)
    if layout == "non_contiguous":
        wide = torch.randn(*shape[:-1], 2 * shape[-1], device=device).to(dtype)
        return wide[..., ::2]
    x = torch.randn(*shape, device=device).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


def write_special_values(x: torch.Tensor) -> None:
    """Writes NaN, infinities and a negative zero into x's first row and first column."""
    specials = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0], dtype=x.dtype)
    plane = x[(0,) * (x.dim() - 2)]
    row, column = plane[0], plane[:, 0]
    row[: min(4, row.numel())] = specials[: row.numel()]
    column[-min(4, column.numel()) :] = specials.flip(0)[: column.numel()]


def expected_format(x: torch.Tensor) -> torch.memory_format:
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    return torch.contiguous_format


def assert_bitwise_equal(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    bits = BITS[actual.dtype]
    assert torch.equal(actual.contiguous().view(bits), expected.contiguous().view(bits))


def reference_tail(a, b, r: int, scale: float, shift: torch.Tensor) -> torch.Tensor:
    """The tail in float64 on CPU."""
    a, b, shift = a.cpu().double(), b.cpu().double(), shift.cpu().double()
    return (F.pixel_shuffle(a, r) + F.pixel_shuffle(b, r)) * scale + shift.view(-1, 1, 1)


def plain_tail(a, b, r: int, scale: float, shift: torch.Tensor) -> torch.Tensor:
    """The tail as eager PyTorch computes it in a's dtype."""
    return (F.pixel_shuffle(a, r) + F.pixel_shuffle(b, r)) * scale + shift.to(a.dtype).view(
        -1, 1, 1
    )


def assert_within_rule(fast: torch.Tensor, plain: torch.Tensor, exact: torch.Tensor) -> None:
    """|fast - exact| <= 2 |plain - exact| + atol, atol two ulps of the largest value."""
    fast_err = (fast.cpu().double() - exact).abs().max().item()
    plain_err = (plain.cpu().double() - exact).abs().max().item()
    atol = 2 * torch.finfo(fast.dtype).eps * exact.abs().max().item()
    assert fast_err <= 2 * plain_err + atol, f"error {fast_err}, plain PyTorch {plain_err}"


CASES = [
    pytest.param(dtype, r, layout, id=f"{str(dtype)[6:]}-r{r}-{layout}")
    for dtype in DTYPES
    for r in FACTORS
    for layout in LAYOUTS
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("dtype", "r", "layout"), CASES)
def test_pixel_shuffle_is_bit_identical_to_torch(device, dtype, r, layout):
    shape = random_shape(f"shuffle-{dtype}-{r}-{layout}", r * r)
    x = make_input(shape, dtype, layout, device)
    write_special_values(x)
    before = x.clone()
    out = ops.pixel_shuffle(x, r)
    assert_bitwise_equal(out, F.pixel_shuffle(x, r))
    assert out.is_contiguous(memory_format=expected_format(x))
    assert_bitwise_equal(x, before)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("dtype", "r", "layout"), CASES)
def test_pixel_unshuffle_is_bit_identical_to_torch(device, dtype, r, layout):
    n, c, h, w = random_shape(f"unshuffle-{dtype}-{r}-{layout}", 1)
    x = make_input((n, c, h * r, w * r), dtype, layout, device)
    write_special_values(x)
    before = x.clone()
    out = ops.pixel_unshuffle(x, r)
    assert_bitwise_equal(out, F.pixel_unshuffle(x, r))
    assert out.is_contiguous(memory_format=expected_format(x))
    assert_bitwise_equal(ops.pixel_shuffle(out, r), x.contiguous())
    assert_bitwise_equal(x, before)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("dtype", "r", "layout"), CASES)
def test_shuffle_add_affine_matches_reference(device, dtype, r, layout):
    shape = random_shape(f"tail-{dtype}-{r}-{layout}", r * r)
    a = make_input(shape, dtype, layout, device)
    b = make_input(shape, dtype, layout, device)
    shift = torch.randn(shape[1] // (r * r), device=device) * 100
    before = (a.clone(), b.clone(), shift.clone())
    out = ops.shuffle_add_affine(a, b, r, 127.5, shift)
    assert out.dtype == dtype and out.device == a.device
    assert out.is_contiguous(memory_format=expected_format(a))
    exact = reference_tail(a, b, r, 127.5, shift)
    assert_within_rule(out, plain_tail(a, b, r, 127.5, shift), exact)
    for tensor, copy in zip((a, b, shift), before, strict=True):
        assert_bitwise_equal(tensor, copy)


@pytest.mark.parametrize("device", DEVICES)
def test_shuffle_add_affine_mixed_layouts_and_shift_dtype(device):
    a = torch.randn(2, 12, 7, 5, device=device, dtype=torch.float16)
    b = torch.randn(2, 12, 7, 5, device=device, dtype=torch.float16)
    b = b.contiguous(memory_format=torch.channels_last)
    shift = RGB_SHIFT.to(device)  # float32 shift, float16 tensors
    out = ops.shuffle_add_affine(a, b, 2, 127.5, shift)
    assert out.dtype == torch.float16 and out.is_contiguous()
    exact = reference_tail(a, b, 2, 127.5, shift)
    assert_within_rule(out, plain_tail(a, b, 2, 127.5, shift), exact)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "lowres_shape", [(0, 12, 5, 5), (2, 12, 0, 3), (2, 12, 4, 0), (2, 0, 4, 4), (0, 3, 12, 5, 5)]
)
def test_empty_tensors(device, lowres_shape):
    x = torch.randn(lowres_shape, device=device)
    out = ops.pixel_shuffle(x, 2)
    assert out.shape == F.pixel_shuffle(x, 2).shape and out.dtype == x.dtype
    back = ops.pixel_unshuffle(out, 2)
    assert back.shape == x.shape
    shift = torch.zeros(lowres_shape[-3] // 4, device=device)
    fused = ops.shuffle_add_affine(x, x, 2, 2.0, shift)
    assert fused.shape == out.shape and fused.dtype == x.dtype


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("r", [1, 5])
def test_factors_without_a_specialised_kernel(device, r):
    x = torch.randn(2, 2 * r * r, 3, 4, device=device)
    out = ops.pixel_shuffle(x, r)
    assert_bitwise_equal(out, F.pixel_shuffle(x, r))
    assert_bitwise_equal(ops.pixel_unshuffle(out, r), F.pixel_unshuffle(out, r))
    assert out.data_ptr() != x.data_ptr()  # a new tensor even for r = 1, never an alias


BAD_INPUTS = [
    ("pixel_shuffle", lambda: (torch.randn(2, 10, 4, 4), 2), r"not divisible by r\*r = 4"),
    ("pixel_shuffle", lambda: (torch.randn(2, 12, 4, 4), 0), r"r must be >= 1, got 0"),
    ("pixel_shuffle", lambda: (torch.randn(12, 4), 2), r"x must have at least 3 dimensions"),
    (
        "pixel_shuffle",
        lambda: (torch.ones(2, 12, 4, 4, dtype=torch.int32), 2),
        r"x must be float16",
    ),
    ("pixel_unshuffle", lambda: (torch.randn(2, 3, 5, 4), 2), r"divisible by r = 2"),
    ("pixel_unshuffle", lambda: (torch.randn(2, 3, 4, 4), -1), r"r must be >= 1"),
    ("pixel_unshuffle", lambda: (torch.randn(4, 4), 2), r"x must have at least 3 dimensions"),
    (
        "shuffle_add_affine",
        lambda: (torch.randn(2, 10, 4, 4), torch.randn(2, 10, 4, 4), 2, 1.0, torch.zeros(2)),
        r"a's channel dimension \(dim -3\) has size 10, which is not divisible by r\*r = 4",
    ),
    (
        "shuffle_add_affine",
        lambda: (torch.randn(2, 12, 4, 4), torch.randn(2, 12, 4, 5), 2, 1.0, torch.zeros(3)),
        r"b must have a's shape",
    ),
    (
        "shuffle_add_affine",
        lambda: (
            torch.randn(2, 12, 4, 4),
            torch.randn(2, 12, 4, 4).double(),
            2,
            1.0,
            torch.zeros(3),
        ),
        r"b must have a's dtype",
    ),
    (
        "shuffle_add_affine",
        lambda: (torch.randn(2, 12, 4, 4), torch.randn(2, 12, 4, 4), 2, 1.0, torch.zeros(4)),
        r"shift must have shape \(C,\) = \(3,\)",
    ),
    (
        "shuffle_add_affine",
        lambda: (torch.randn(2, 12, 4, 4), torch.randn(2, 12, 4, 4), 2, 1.0, torch.zeros(1, 3)),
        r"shift must have shape \(C,\) = \(3,\)",
    ),
    (
        "shuffle_add_affine",
        lambda: (torch.randn(2, 12, 4, 4), torch.randn(2, 12, 4, 4), 2, 1.0, torch.zeros(3).long()),
        r"shift must be floating point",
    ),
    (
        "shuffle_add_affine",
        lambda: (
            torch.ones(2, 12, 4, 4).long(),
            torch.ones(2, 12, 4, 4).long(),
            2,
            1.0,
            torch.zeros(3),
        ),
        r"a must be float16, bfloat16, float32 or float64, got Long",
    ),
    (
        "shuffle_add_affine",
        lambda: (torch.randn(12, 4), torch.randn(12, 4), 2, 1.0, torch.zeros(3)),
        r"a must have at least 3 dimensions",
    ),
]


@pytest.mark.parametrize(("op", "make_args", "message"), BAD_INPUTS)
def test_bad_input_gives_clear_error(op, make_args, message):
    with pytest.raises(RuntimeError, match=message):
        getattr(ops, op)(*make_args())


def test_tail_reports_bad_input_too():
    with pytest.raises(RuntimeError, match=r"shift must have shape"):
        functional.shuffle_add_affine(
            torch.randn(1, 12, 2, 2), torch.randn(1, 12, 2, 2), 2, 1.0, RGB_SHIFT[:2]
        )


@requires_cuda
@pytest.mark.cuda
def test_device_mismatch_gives_clear_error():
    a = torch.randn(1, 12, 4, 4, device="cuda")
    with pytest.raises(RuntimeError, match=r"b must be on a's device"):
        ops.shuffle_add_affine(a, a.cpu(), 2, 1.0, RGB_SHIFT.cuda())
    with pytest.raises(RuntimeError, match=r"shift must be on a's device"):
        ops.shuffle_add_affine(a, a, 2, 1.0, RGB_SHIFT)


GRAD_LAYOUTS = ["nchw", "channels_last", "batch_dims"]


@pytest.mark.parametrize("layout", GRAD_LAYOUTS)
def test_gradcheck_pixel_shuffle_and_unshuffle(layout):
    x = make_input((2, 8, 2, 3), torch.float64, layout, "cpu").requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ops.pixel_shuffle(t, 2), (x,))
    assert torch.autograd.gradgradcheck(lambda t: ops.pixel_shuffle(t, 2), (x,))
    y = make_input((2, 2, 4, 6), torch.float64, layout, "cpu").requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ops.pixel_unshuffle(t, 2), (y,))


@pytest.mark.parametrize("layout", GRAD_LAYOUTS)
def test_gradcheck_shuffle_add_affine(layout):
    a = make_input((2, 8, 2, 3), torch.float64, layout, "cpu").requires_grad_(True)
    b = make_input((2, 8, 2, 3), torch.float64, layout, "cpu").requires_grad_(True)
    shift = torch.randn(2, dtype=torch.float64, requires_grad=True)
    fn = lambda a, b, s: ops.shuffle_add_affine(a, b, 2, 1.7, s)
    assert torch.autograd.gradcheck(fn, (a, b, shift))
    assert torch.autograd.gradgradcheck(fn, (a, b, shift))


def tail_gradients(fn, a, b, shift, weight) -> list[torch.Tensor]:
    """Gradients of (fn(a, b, 2, 127.5, shift) * weight).sum() for a, b and shift."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (a, b, shift)]
    (fn(leaves[0], leaves[1], 2, 127.5, leaves[2]) * weight.to(leaves[0].dtype)).sum().backward()
    return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_within_rule(device, dtype):
    """Gradients of a, b and shift (in shift's own dtype, float32 here) under the correctness
    rule: the float64 reference on CPU, eager PyTorch in the same dtype."""
    a = (
        torch.randn(2, 12, 5, 3, device=device)
        .to(dtype)
        .contiguous(memory_format=torch.channels_last)
    )
    b = torch.randn(2, 12, 5, 3, device=device).to(dtype)
    shift = RGB_SHIFT.to(device)
    weight = torch.randn(2, 3, 10, 6, device=device).to(dtype)  # exact in every dtype used
    fast = tail_gradients(functional.shuffle_add_affine, a, b, shift, weight)
    plain = tail_gradients(plain_tail, a, b, shift, weight)
    exact = tail_gradients(
        reference_tail, a.cpu().double(), b.cpu().double(), shift.cpu().double(), weight.cpu()
    )
    assert [g.dtype for g in fast] == [dtype, dtype, torch.float32]
    assert fast[0].is_contiguous(memory_format=torch.channels_last)
    for fast_grad, plain_grad, exact_grad in zip(fast, plain, exact, strict=True):
        assert_within_rule(fast_grad, plain_grad, exact_grad)


OPCHECK_SAMPLES = {
    "pixel_shuffle": lambda device: [
        (torch.randn(2, 12, 3, 5, device=device, requires_grad=True), 2),
        (torch.randn(2, 18, 3, 5, device=device).to(memory_format=torch.channels_last), 3),
        (torch.randn(32, 2, 3, device=device, dtype=torch.float64), 4),
    ],
    "pixel_unshuffle": lambda device: [
        (torch.randn(2, 3, 6, 10, device=device, requires_grad=True), 2),
        (torch.randn(2, 3, 6, 9, device=device).to(memory_format=torch.channels_last), 3),
        (torch.randn(2, 2, 2, 8, 4, device=device, dtype=torch.float16), 4),
    ],
    "shuffle_add_affine": lambda device: [
        (
            torch.randn(2, 12, 3, 5, device=device, requires_grad=True),
            torch.randn(2, 12, 3, 5, device=device, requires_grad=True),
            2,
            127.5,
            torch.randn(3, device=device, requires_grad=True),
        ),
        (
            torch.randn(1, 27, 4, 4, device=device).to(memory_format=torch.channels_last),
            torch.randn(1, 27, 4, 4, device=device).to(memory_format=torch.channels_last),
            3,
            0.5,
            torch.randn(3, device=device, dtype=torch.float64),
        ),
    ],
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("op", sorted(OPCHECK_SAMPLES))
def test_opcheck(device, op):
    for args in OPCHECK_SAMPLES[op](device):
        torch.library.opcheck(getattr(torch.ops.wdsr_fast, op).default, args)


def test_torch_compile_traces_the_tail():
    def tail_of(a, b, shift):
        return functional.shuffle_add_affine(a, b, 2, 127.5, shift) * 2

    a = torch.randn(1, 12, 6, 5).to(memory_format=torch.channels_last).requires_grad_(True)
    b = torch.randn(1, 12, 6, 5).to(memory_format=torch.channels_last).requires_grad_(True)
    shift = RGB_SHIFT.clone().requires_grad_(True)
    compiled = torch.compile(tail_of, fullgraph=True, backend="aot_eager")
    out = compiled(a, b, shift)
    out.sum().backward()
    grads = [t.grad.clone() for t in (a, b, shift)]
    for t in (a, b, shift):
        t.grad = None
    expected = tail_of(a, b, shift)
    expected.sum().backward()
    assert torch.equal(out, expected) and out.is_contiguous(memory_format=torch.channels_last)
    for grad, t in zip(grads, (a, b, shift), strict=True):
        assert torch.equal(grad, t.grad)


def test_inductor_compiles_around_the_op():
    """Inductor fuses the surrounding elementwise ops and calls the op in between."""

    def tail_of(a, b, shift):
        return functional.shuffle_add_affine(a * 2, b, 2, 127.5, shift) + 1

    a = torch.randn(1, 12, 8, 8).to(memory_format=torch.channels_last)
    b = torch.randn(1, 12, 8, 8).to(memory_format=torch.channels_last)
    out = torch.compile(tail_of, fullgraph=True)(a, b, RGB_SHIFT)
    assert torch.equal(out, tail_of(a, b, RGB_SHIFT))


def test_torch_export_keeps_the_op():
    class Tail(torch.nn.Module):
        def forward(self, a, b, shift):
            return functional.shuffle_add_affine(a, b, 2, 127.5, shift)

    args = (torch.randn(1, 12, 4, 4), torch.randn(1, 12, 4, 4), RGB_SHIFT)
    exported = torch.export.export(Tail(), args)
    assert "wdsr_fast.shuffle_add_affine" in str(exported.graph)
    assert torch.equal(exported.module()(*args), Tail()(*args))


def test_tail_runs_the_extension_op():
    a, b = torch.randn(1, 12, 4, 4), torch.randn(1, 12, 4, 4)
    out = functional.shuffle_add_affine(a, b, 2, 127.5, RGB_SHIFT)
    assert_bitwise_equal(out, torch.ops.wdsr_fast.shuffle_add_affine(a, b, 2, 127.5, RGB_SHIFT))


def test_tail_falls_back_to_torch_and_warns_once(monkeypatch):
    monkeypatch.setattr(dispatch, "extension_unavailable_reason", lambda device: "not built")
    warn_fallback.cache_clear()
    a = torch.randn(2, 12, 3, 5, dtype=torch.float16)
    b = torch.randn(2, 12, 3, 5, dtype=torch.float16)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = functional.shuffle_add_affine(a, b, 2, 127.5, RGB_SHIFT)
            functional.shuffle_add_affine(a, b, 2, 127.5, RGB_SHIFT)
    finally:
        warn_fallback.cache_clear()
    assert sum("plain PyTorch" in str(w.message) for w in caught) == 1
    assert out.dtype == torch.float16
    exact = reference_tail(a, b, 2, 127.5, RGB_SHIFT)
    assert_within_rule(out, plain_tail(a, b, 2, 127.5, RGB_SHIFT), exact)


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_cuda_large_tail_matches_cpu(dtype, layout):
    """Many blocks and a numel that is not a multiple of the vector width."""
    a = make_input((3, 12, 129, 67), dtype, layout, "cuda")
    b = make_input((3, 12, 129, 67), dtype, layout, "cuda")
    shift = RGB_SHIFT.cuda()
    out = ops.shuffle_add_affine(a, b, 2, 127.5, shift)
    exact = reference_tail(a, b, 2, 127.5, shift)
    assert_within_rule(out, plain_tail(a, b, 2, 127.5, shift), exact)
    assert_bitwise_equal(ops.pixel_shuffle(a, 2).cpu(), F.pixel_shuffle(a.cpu(), 2))


def test_cuda_is_tested_when_present():
    """On a machine with CUDA the extension must have CUDA kernels (else the CUDA tests skip)."""
    if HAS_CUDA:
        assert extension_unavailable_reason(torch.device("cuda")) is None
    assert extension_unavailable_reason(torch.device("cpu")) is None
