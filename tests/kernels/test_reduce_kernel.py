"""The fixed-order sum of partial rows into final gradients (wdsr_fast/kernels/reduce.py).

Expected values are computed in plain PyTorch in the kernel's order (rows added one after the
other in float32, then scaled, then cast), so results must match bit for bit. Launcher buffers
are NaN-poisoned and guarded: an output element the kernel fails to write, or a write past an
output, fails the test. bfloat16 runs on CUDA only: the Triton interpreter casts float32 to
bfloat16 by truncation where a GPU rounds to nearest even.
"""

from __future__ import annotations

import pytest
import torch
import triton
from torch import Tensor

from wdsr_fast.kernels import launch
from wdsr_fast.kernels.dot import padded_channels
from wdsr_fast.kernels.reduce import RowView, contiguous_views, gradients_from_partials
from wdsr_fast.kernels.wdsr_b_block import tile_row_views

from helpers.devices import HAS_CUDA

DEVICE = "cuda" if HAS_CUDA else "cpu"
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if HAS_CUDA else [])


@pytest.fixture(autouse=True)
def poisoned_buffers(guarded_buffers: list[Tensor]) -> list[Tensor]:
    return guarded_buffers


def ordered_sum(partials: Tensor) -> Tensor:
    """Column sums in the kernel's order: row 0, then row 1, ... in float32."""
    total = torch.zeros(partials.shape[1], dtype=torch.float32, device=partials.device)
    for row in partials:
        total = total + row
    return total


def expected(partials: Tensor, views: list[RowView], dtype, scale: float, scaled_from: int):
    total = ordered_sum(partials)
    out = []
    for index, view in enumerate(views):
        value = total.as_strided(view.shape, view.strides, view.offset)
        if index >= scaled_from:
            value = value * scale
        out.append(value.to(dtype))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [0, 1, 5])
@pytest.mark.parametrize("chain_weight_grad", [True, False])
def test_permuted_padded_views_match_the_ordered_sum(dtype, rows, chain_weight_grad):
    # Padded, tap-major dW3, dW2 transposed; the conv's gradients alone or after the chain's.
    row_len, views = tile_row_views(c=5, e=12, low=3, chain_weight_grad=chain_weight_grad)
    assert len(views) == (6 if chain_weight_grad else 3)
    partials = torch.randn(rows, row_len, device=DEVICE) * 100
    scaled_from = len(views) - 2
    got = gradients_from_partials(partials, views, dtype, scale=0.37, scaled_from=scaled_from)
    want = expected(partials, views, dtype, 0.37, scaled_from)
    assert len(got) == len(views)
    for g, w, view in zip(got, want, views, strict=True):
        assert g.shape == view.shape and g.dtype == dtype and g.is_contiguous()
        assert torch.equal(g, w)


def test_contiguous_views_and_no_scaling():
    shapes = [(4, 3, 3, 3), (4,)]
    views = contiguous_views(shapes, start=2)
    assert views == [RowView((4, 3, 3, 3), 2, (27, 9, 3, 1)), RowView((4,), 110, (1,))]
    partials = torch.randn(3, 120, device=DEVICE)
    got = gradients_from_partials(partials, views, torch.float32, scale=5.0)
    for g, w in zip(got, expected(partials, views, torch.float32, 5.0, 2), strict=True):
        assert torch.equal(g, w)


def test_outputs_are_separate_tensors():
    partials = torch.randn(2, 10, device=DEVICE)
    a, b = gradients_from_partials(partials, contiguous_views([(4,), (6,)]), torch.float32)
    assert a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr()


def test_partials_are_not_modified():
    partials = torch.randn(3, 10, device=DEVICE)
    copy = partials.clone()
    gradients_from_partials(partials, contiguous_views([(10,)]), torch.float16, scale=2.0)
    assert torch.equal(partials, copy)


def test_bad_views_are_refused():
    partials = torch.randn(1, 10, device=DEVICE)
    with pytest.raises(ValueError, match="views: expected 1 to 6"):
        gradients_from_partials(partials, contiguous_views([(1,)] * 7), torch.float32)
    with pytest.raises(ValueError, match="views: expected 1 to 6"):
        gradients_from_partials(partials, [], torch.float32)
    overlapping = [RowView((4,), 0, (1,)), RowView((4,), 2, (1,))]
    with pytest.raises(ValueError, match="row view 1 overlaps"):
        gradients_from_partials(partials, overlapping, torch.float32)
    with pytest.raises(ValueError, match="row view 0 overlaps"):
        gradients_from_partials(partials, [RowView((2, 2), 0, (1, 1))], torch.float32)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 15, 16, 17, 25, 32, 33, 100, 128, 129])
def test_host_helpers_agree_with_triton(n):
    """The plain-Python host helpers compute what Triton's constexpr functions do."""
    assert padded_channels(n) == max(16, triton.next_power_of_2(n))
    for d in (1, 3, 16, 32):
        assert launch.cdiv(n, d) == triton.cdiv(n, d)
