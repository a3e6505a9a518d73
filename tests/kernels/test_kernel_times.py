"""Measured kernel times (wdsr_fast/kernels/aot/measure.py): the matching of profiled kernels to
the recorded launches, and on a CUDA device the measurement itself."""

from __future__ import annotations

import pytest
import torch

from wdsr_fast.kernels.aot.measure import block_times, per_launch_medians
from wdsr_fast.kernels.aot.report import default_scenario

from helpers.devices import requires_cuda


def test_medians_per_launch_position():
    names = ["conv", "grad", "conv"]
    kernels = [("conv", 1.0), ("grad", 5.0), ("conv", 9.0),
               ("conv", 3.0), ("grad", 4.0), ("conv", 7.0),
               ("conv", 2.0), ("grad", 6.0), ("conv", 8.0)]  # fmt: skip
    assert per_launch_medians(names, kernels, 3) == [2.0, 5.0, 8.0]


@pytest.mark.parametrize(
    "kernels",
    [
        [("conv", 1.0), ("grad", 2.0)],  # one call's kernels where two calls were made
        [("conv", 1.0), ("grad", 2.0), ("grad", 3.0), ("conv", 4.0)],  # another order
        [("conv", 1.0), ("grad", 2.0), ("conv", 3.0), ("grad", 4.0), ("sum", 5.0)],
    ],
)
def test_kernels_other_than_the_recorded_launches_are_an_error(kernels):
    with pytest.raises(ValueError, match="the profiler saw"):
        per_launch_medians(["conv", "grad"], kernels, 2)


@requires_cuda
@pytest.mark.parametrize("block", ["B", "A"])
@pytest.mark.parametrize("stage", ["forward", "backward"])
def test_measured_kernels_are_the_recorded_launches(block, stage):
    scenario = default_scenario(block, stage, torch.float16, (2, 37, 45))
    times = block_times(scenario, repeats=3)
    assert times["kernels"], "no kernel measured"
    assert all(k["measured_us"] > 0 for k in times["kernels"])
    assert times["kernels_us"] == pytest.approx(sum(k["measured_us"] for k in times["kernels"]))
    assert times["call_us"] > 0
