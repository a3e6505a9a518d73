"""The extension's fused CPU blocks (``wdsr_fast::wdsr_b_block_cpu``, ``wdsr_a_block_cpu``)
against the float64 reference, under the correctness rule of docs/design.md section 5.

Cases cover what the kernels split and pad: odd and tiny images (1x1, a row, a column), batches,
widths cut into several column windows (more than 256 pixels), heights cut into bands (several
threads), every input layout, channel counts other than 32, res_scale != 1. Outputs are checked
in full after the pooled output memory has held NaN, so an element the kernel leaves unwritten
shows up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

from wdsr_fast.ops import cpu_blocks
from wdsr_fast.testing.reference import wdsr_a_block_reference, wdsr_b_block_reference

from helpers.layouts import lay_out

pytestmark = pytest.mark.skipif(
    not cpu_blocks.available(), reason="the C++ extension with the fused CPU blocks is not built"
)


def b_weights(c: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Effective WDSR-B weights (E = 6C, L = int(0.8C)) in float64, scaled like trained ones."""
    e, low = 6 * c, int(0.8 * c)
    shapes = [(e, c, 1, 1), (e,), (low, e, 1, 1), (low,), (c, low, 3, 3), (c,)]
    fan_in = [c, 1, e, 1, 9 * low, 1]
    return [
        torch.randn(s, generator=generator, dtype=torch.float64) / f**0.5
        for s, f in zip(shapes, fan_in, strict=True)
    ]


def a_weights(c: int, f: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Effective WDSR-A weights in float64, scaled like trained ones."""
    shapes = [(f, c, 3, 3), (f,), (c, f, 3, 3), (c,)]
    fan_in = [9 * c, 1, 9 * f, 1]
    return [
        torch.randn(s, generator=generator, dtype=torch.float64) / k**0.5
        for s, k in zip(shapes, fan_in, strict=True)
    ]


@contextlib.contextmanager
def num_threads(threads: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set to ``threads`` inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def poison_pool(like: torch.Tensor) -> None:
    """Leave NaN in the output pool's buffers of ``like``'s size (the op's outputs are pooled)."""
    c = like.shape[1]
    weights = [w.float() for w in b_weights(c, torch.Generator().manual_seed(1))]
    nan = torch.full(like.shape, float("nan"))
    outs = [torch.ops.wdsr_fast.wdsr_b_block_cpu(nan, *weights, 1.0) for _ in range(3)]
    assert all(o.isnan().all() for o in outs)
    del outs


def check_rule(run, exact: torch.Tensor, plain: torch.Tensor) -> None:
    """``|fast - exact| <= 2 |plain - exact| + 1e-5 max|exact|`` and the output's layout."""
    out = run()
    assert out.shape == exact.shape and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert not out.isnan().any()
    fast_err = (out.double() - exact).abs().max().item()
    plain_err = (plain.double() - exact).abs().max().item()
    assert fast_err <= 2 * plain_err + 1e-5 * exact.abs().max().item(), (fast_err, plain_err)


SHAPES = [
    (1, 32, 1, 1),
    (2, 32, 7, 13),
    (1, 32, 1, 17),
    (1, 32, 17, 1),
    (3, 16, 13, 7),
    (1, 24, 40, 300),  # two column windows
    (1, 32, 37, 600),  # three column windows of unequal halo
]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_wdsr_b_block_cpu_within_rule(shape, threads):
    with num_threads(threads):
        generator = torch.Generator().manual_seed(sum(shape) + threads)
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        weights = b_weights(shape[1], generator)
        exact = wdsr_b_block_reference(x, *weights, 0.7)
        plain = wdsr_b_block_reference(x.float(), *[w.float() for w in weights], 0.7)
        x32, w32 = x.float(), [w.float() for w in weights]
        poison_pool(x32)
        check_rule(lambda: torch.ops.wdsr_fast.wdsr_b_block_cpu(x32, *w32, 0.7), exact, plain)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_wdsr_a_block_cpu_within_rule(shape, threads):
    with num_threads(threads):
        generator = torch.Generator().manual_seed(sum(shape) + threads)
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        weights = a_weights(shape[1], 2 * shape[1] + 8, generator)
        exact = wdsr_a_block_reference(x, *weights, 1.3)
        plain = wdsr_a_block_reference(x.float(), *[w.float() for w in weights], 1.3)
        x32, w32 = x.float(), [w.float() for w in weights]
        poison_pool(x32)
        check_rule(lambda: torch.ops.wdsr_fast.wdsr_a_block_cpu(x32, *w32, 1.3), exact, plain)


@pytest.mark.parametrize("layout", [("contiguous", 0), ("strided", 3), ("strided", 1),
                                    ("expanded", 2), ("permuted", 0)])  # fmt: skip
@pytest.mark.parametrize("kind", ["A", "B"])
def test_every_layout_of_every_argument(kind, layout):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 16, 9, 11, generator=generator, dtype=torch.float64)
    weights = b_weights(16, generator) if kind == "B" else a_weights(16, 24, generator)
    reference = wdsr_b_block_reference if kind == "B" else wdsr_a_block_reference
    op = getattr(torch.ops.wdsr_fast, f"wdsr_{kind.lower()}_block_cpu")
    laid = [lay_out(t.float(), (layout[0], min(layout[1], t.dim() - 1))) for t in [x, *weights]]
    exact = reference(*[t.double() for t in laid], 0.5)  # the laid-out values ("expanded")
    plain = reference(*[t.contiguous() for t in laid], 0.5)
    before = [t.clone() for t in laid]
    check_rule(lambda: op(*laid, 0.5), exact, plain)
    for t, b in zip(laid, before, strict=True):
        assert torch.equal(t.nan_to_num(), b.nan_to_num())  # arguments are left alone


@pytest.mark.parametrize("kind", ["A", "B"])
def test_nan_and_inf_propagate_like_the_plain_block(kind):
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(1, 16, 12, 12, generator=generator)
    x[0, 3, 5, 6] = float("nan")
    x[0, 7, 0, 11] = float("inf")
    if kind == "B":
        weights = [w.float() for w in b_weights(16, generator)]
        out = torch.ops.wdsr_fast.wdsr_b_block_cpu(x, *weights, 1.0)
        plain = wdsr_b_block_reference(x, *weights, 1.0)
    else:
        weights = [w.float() for w in a_weights(16, 24, generator)]
        out = torch.ops.wdsr_fast.wdsr_a_block_cpu(x, *weights, 1.0)
        plain = wdsr_a_block_reference(x, *weights, 1.0)
    assert torch.equal(out.isnan(), plain.isnan())
    assert torch.equal(out.isinf(), plain.isinf())
    finite = plain.isfinite()
    torch.testing.assert_close(out[finite], plain[finite], rtol=1e-4, atol=1e-4)


def test_thread_counts_agree():
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(2, 32, 70, 530, generator=generator)
    weights = [w.float() for w in b_weights(32, generator)]
    outs = []
    for threads in (1, 2, 4):
        with num_threads(threads):
            outs.append(torch.ops.wdsr_fast.wdsr_b_block_cpu(x, *weights, 1.0))
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], rtol=1e-6, atol=1e-5)


def test_empty_batch():
    weights = [w.float() for w in b_weights(8, torch.Generator().manual_seed(6))]
    out = torch.ops.wdsr_fast.wdsr_b_block_cpu(torch.empty(0, 8, 5, 5), *weights, 1.0)
    assert out.shape == (0, 8, 5, 5)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: a.__setitem__(0, a[0].double()), "x must be a float32 CPU tensor"),
        (lambda a: a.__setitem__(0, a[0][0]), "x must be 4-D"),
        (lambda a: a.__setitem__(1, a[1][:, :4]), "w1 must have shape"),
        (lambda a: a.__setitem__(4, a[4][:3]), "b2 must have shape"),
        (lambda a: a.__setitem__(5, a[5][:, :, :1, :1]), "w3 must have shape"),
        (lambda a: a.__setitem__(6, a[6].double()), "b3 must be a float32 CPU tensor"),
    ],
)
def test_bad_arguments_are_named(change, match):
    args = [torch.randn(1, 8, 4, 4)] + [
        w.float() for w in b_weights(8, torch.Generator().manual_seed(7))
    ]
    change(args)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.wdsr_fast.wdsr_b_block_cpu(*args, 1.0)


def test_fake_tensors_give_shape_and_layout():
    from torch._subclasses.fake_tensor import FakeTensorMode

    weights = [w.float() for w in b_weights(8, torch.Generator().manual_seed(8))]
    with FakeTensorMode() as mode:
        x = mode.from_tensor(torch.randn(2, 8, 5, 7))
        fake_weights = [mode.from_tensor(w) for w in weights]
        out = torch.ops.wdsr_fast.wdsr_b_block_cpu(x, *fake_weights, 1.0)
    assert out.shape == (2, 8, 5, 7)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_backward_through_the_op_raises():
    weights = [w.float() for w in b_weights(8, torch.Generator().manual_seed(9))]
    x = torch.randn(1, 8, 4, 4, requires_grad=True)
    out = torch.ops.wdsr_fast.wdsr_b_block_cpu(x, *weights, 1.0)
    with pytest.raises(RuntimeError, match="for inference and have no backward"):
        out.sum().backward()
