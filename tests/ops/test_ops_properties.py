"""Property-based differential tests of every op against the float64 reference.

Hypothesis draws the sizes, the memory layout of every tensor argument (contiguous,
channels_last, stride 2 with NaN in the gaps, stride 0, permuted), the dtype, the grad mode
(autograd with gradients of a drawn subset of the arguments, no_grad, inference_mode) and
res_scale; each op, fused and plain PyTorch, must then agree with the float64 reference by the
correctness rule of docs/design.md section 5, outputs and gradients, and leave its arguments
unmodified. The fused block ops run in the Triton interpreter on CPU when there is no GPU.
Budgets and the derandomised profile: tests/helpers/hypothesis_profiles.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is in the test extras")

import torch  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch import Tensor  # noqa: E402

from wdsr_fast import functional  # noqa: E402
from wdsr_fast.ops.pixel_shuffle import EXTENSION_AVAILABLE  # noqa: E402
from wdsr_fast.testing.reference import (  # noqa: E402
    wdsr_a_block_reference,
    wdsr_b_block_reference,
)

from helpers import hypothesis_profiles  # noqa: E402
from helpers.devices import HAS_CUDA  # noqa: E402
from helpers.layouts import lay_out, layouts, random_tensor  # noqa: E402
from helpers.updates import MODES, grad_mode  # noqa: E402

hypothesis_profiles.load()

DEVICE = "cuda" if HAS_CUDA else "cpu"
# The Triton interpreter computes bfloat16 as NaN: bfloat16 blocks are tested on GPUs only.
BLOCK_DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if HAS_CUDA else [])
TAIL_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
REL_ATOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}


def run(
    fn: Callable[..., Tensor],
    leaves: dict[str, Tensor],
    arrange: dict[str, Callable[[Tensor], Tensor]],
    mode: str,
    wanted: set[str],
    grad: Tensor,
) -> dict[str, Tensor]:
    """``fn`` on the leaves laid out by ``arrange``: the output, and in grad mode the
    gradients of the ``wanted`` leaves. Asserts that no argument was modified."""
    leaves = {k: v.detach().clone().requires_grad_(mode == "grad" and k in wanted)
              for k, v in leaves.items()}  # fmt: skip
    with grad_mode(mode):
        args = {k: arrange[k](v) for k, v in leaves.items()}
        before = {k: v.detach().clone() for k, v in args.items()}
        out = fn(*args.values())
    for k, v in args.items():
        assert torch.equal(v.detach(), before[k]), f"{k} was modified"
    result = {"output": out.detach().clone()}
    if mode == "grad" and wanted:
        out.backward(grad.to(out.dtype))
        result |= {k: leaves[k].grad for k in wanted}
    return result


def assert_rule(fast: dict, plain: dict, exact: dict, dtype: torch.dtype) -> None:
    """docs/design.md section 5 for every entry: ``|fast - exact| <= 2 |plain - exact| + atol``,
    atol relative to the entry's largest magnitude; NaN only where the reference has it."""
    assert fast.keys() == plain.keys()
    for name in fast:
        reference = exact[name]
        got = fast[name].detach().cpu().double()
        assert got.shape == reference.shape, name
        assert torch.equal(got.isnan(), reference.isnan()), (
            f"{name}: NaN where the reference has none"
        )
        finite = ~reference.isnan()
        fast_err = (got - reference)[finite].abs().max().item() if finite.any() else 0.0
        plain_err = (plain[name].cpu().double() - reference)[finite].abs().max().item()
        atol = REL_ATOL[dtype] * reference[finite].abs().max().item()
        assert fast_err <= 2 * plain_err + atol, f"{name}: error {fast_err}, plain {plain_err}"


# ----------------------------------------------------------------------------- block ops

BLOCKS = {
    "B": (
        ("x", "w1", "b1", "w2", "b2", "w3", "b3"),
        functional.wdsr_b_block,
        wdsr_b_block_reference,
    ),
    "A": (("x", "w1", "b1", "w2", "b2"), functional.wdsr_a_block, wdsr_a_block_reference),
}


def block_shapes(kind: str, n: int, c: int, wide: int, low: int, h: int, w: int) -> dict:
    if kind == "B":
        return {"x": (n, c, h, w), "w1": (wide, c, 1, 1), "b1": (wide,), "w2": (low, wide, 1, 1),
                "b2": (low,), "w3": (c, low, 3, 3), "b3": (c,)}  # fmt: skip
    return {"x": (n, c, h, w), "w1": (wide, c, 3, 3), "b1": (wide,), "w2": (c, wide, 3, 3),
            "b2": (c,)}  # fmt: skip


@st.composite
def block_cases(draw: st.DrawFn, kind: str) -> dict:
    """Sizes, values, layouts, dtype, grad mode, wanted gradients and res_scale of one call."""
    names = BLOCKS[kind][0]
    sizes = dict(
        n=draw(st.integers(1, 2)), c=draw(st.integers(1, 10)), wide=draw(st.integers(1, 20)),
        low=draw(st.integers(1, 8)), h=draw(st.integers(1, 7)), w=draw(st.integers(1, 7)),
    )  # fmt: skip
    shapes = block_shapes(kind, **sizes)
    seed = draw(st.integers(0, 2**20))
    leaves = {}
    for i, (name, shape) in enumerate(shapes.items()):
        fan_in = max(1, torch.Size(shape[1:]).numel()) if name.startswith("w") else 100
        leaves[name] = random_tensor(shape, seed + i, fan_in**-0.5 if name != "x" else 1.0)
    mode = draw(st.sampled_from(MODES))
    return {
        "leaves": leaves,
        "layouts": {name: draw(layouts(len(shapes[name]))) for name in names},
        "dtype": draw(st.sampled_from(BLOCK_DTYPES)),
        "mode": mode,
        "wanted": draw(st.sets(st.sampled_from(names))) if mode == "grad" else set(),
        "res_scale": draw(st.floats(-2.0, 2.0, allow_nan=False, width=32)),
        "grad": random_tensor(shapes["x"], seed + 99),
    }


def check_block(kind: str, backend: str, case: dict) -> None:
    names, op, reference = BLOCKS[kind]
    res_scale, dtype, mode = case["res_scale"], case["dtype"], case["mode"]
    arrange = {k: (lambda t, layout=case["layouts"][k]: lay_out(t, layout)) for k in names}
    on = {k: v.to(DEVICE, dtype) for k, v in case["leaves"].items()}
    wanted, grad = case["wanted"], case["grad"]
    exact = run(lambda *a: reference(*a, res_scale), case["leaves"], arrange, "grad" if wanted
                else "no_grad", wanted, grad)  # fmt: skip
    plain = run(lambda *a: reference(*a, res_scale), on, arrange, mode, wanted, grad.to(DEVICE))
    fast = run(lambda *a: op(*a, res_scale, backend=backend), on, arrange, mode, wanted,
               grad.to(DEVICE))  # fmt: skip
    assert fast["output"].dtype == dtype
    assert_rule(fast, plain, exact, dtype)


@pytest.mark.parametrize("kind", ["A", "B"])
@hypothesis_profiles.budget(40)
@given(case=st.data())
def test_torch_block_matches_float64(kind: str, case: st.DataObject) -> None:
    check_block(kind, "torch", case.draw(block_cases(kind)))


@pytest.mark.parametrize("kind", ["A", "B"])
@hypothesis_profiles.budget(10)
@given(case=st.data())
def test_fused_block_matches_float64(kind: str, case: st.DataObject) -> None:
    check_block(kind, "triton", case.draw(block_cases(kind)))


# ----------------------------------------------------------------------------- the tail


@st.composite
def tail_cases(draw: st.DrawFn) -> dict:
    n, c, r = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**20))
    mode = draw(st.sampled_from(MODES))
    shapes = {"a": (n, c * r * r, h, w), "b": (n, c * r * r, h, w), "shift": (c,)}
    return {
        "leaves": {k: random_tensor(s, seed + i) for i, (k, s) in enumerate(shapes.items())},
        "layouts": {k: draw(layouts(len(s))) for k, s in shapes.items()},
        "dtype": draw(st.sampled_from(TAIL_DTYPES)),
        "shift_dtype": draw(st.sampled_from(TAIL_DTYPES)),
        "r": r,
        "scale": draw(st.floats(-3.0, 3.0, allow_nan=False, width=32)),
        "mode": mode,
        "wanted": draw(st.sets(st.sampled_from(list(shapes)))) if mode == "grad" else set(),
        "grad": random_tensor((n, c, h * r, w * r), seed + 99),
    }


def tail_reference(a: Tensor, b: Tensor, shift: Tensor, r: int, scale: float) -> Tensor:
    out = torch.nn.functional.pixel_shuffle(a + b, r) * scale + shift.view(-1, 1, 1)
    return out.to(a.dtype)


@pytest.mark.parametrize(
    "backend",
    ["torch", pytest.param("triton", marks=pytest.mark.skipif(
        not EXTENSION_AVAILABLE, reason="needs the C++ extension"))],
)  # fmt: skip
@hypothesis_profiles.budget(100)
@given(data=st.data())
def test_tail_matches_float64(backend: str, data: st.DataObject) -> None:
    case = data.draw(tail_cases())
    dtype, r, scale = case["dtype"], case["r"], case["scale"]
    arrange = {k: (lambda t, layout=case["layouts"][k]: lay_out(t, layout)) for k in case["leaves"]}
    on = {k: v.to(DEVICE, case["shift_dtype"] if k == "shift" else dtype)
          for k, v in case["leaves"].items()}  # fmt: skip
    wanted, grad, mode = case["wanted"], case["grad"], case["mode"]
    exact = run(lambda a, b, s: tail_reference(a, b, s, r, scale), case["leaves"], arrange,
                "grad" if wanted else "no_grad", wanted, grad)  # fmt: skip
    plain = run(lambda a, b, s: tail_reference(a.double(), b.double(), s.double(), r, scale).to(
        dtype), on, arrange, mode, wanted, grad.to(DEVICE))  # fmt: skip
    fast = run(lambda a, b, s: functional.shuffle_add_affine(a, b, r, scale, s, backend=backend),
               on, arrange, mode, wanted, grad.to(DEVICE))  # fmt: skip
    assert fast["output"].dtype == dtype
    assert_rule(fast, plain, exact, dtype)
