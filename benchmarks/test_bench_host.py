"""Host time of the fused blocks' launchers: what the CPU spends per call before a GPU gets work.

At training sizes (16 x 48 x 48) the GPU finishes a block's kernels faster than the host issues
them, so this time, not the kernels', bounds a training step there. Each launcher call is timed
with its Triton launches recorded instead of run (:mod:`wdsr_fast.kernels.aot.capture`), as if
on an sm_80 or sm_90 GPU: the launcher's Python, its allocations and its configuration choices,
without Triton's own launch path or the driver. Runs on any machine, GPU or not; the times are
the host CPU's (named in the table).
"""

from __future__ import annotations

import platform

import pytest
import torch

from wdsr_fast.kernels.aot.capture import recorded_launches
from wdsr_fast.kernels.aot.cases import block_call
from wdsr_fast.kernels.aot.report import default_scenario

SHAPE = (16, 48, 48)
MULTIPROCESSORS = {80: 108, 90: 132}


@pytest.mark.parametrize("arch", [90, 80])
@pytest.mark.parametrize("stage", ["forward", "backward"])
@pytest.mark.parametrize("block", ["B", "A"])
def test_launcher_host_time(benchmark, block: str, stage: str, arch: int) -> None:
    scenario = default_scenario(block, stage, torch.float16, SHAPE)
    call = block_call(scenario)
    with recorded_launches(MULTIPROCESSORS[arch], arch) as launches:
        call()
        per_call = len(launches)
        benchmark.group = f"WDSR-{block} {stage} launcher, host time, 16x48x48 float16, sm_{arch}"
        benchmark.extra_info.update(
            provider="wdsr_fast",
            device=f"host CPU, {platform.machine()}, 1 thread",
            triton_launches=per_call,
        )
        benchmark.pedantic(call, rounds=50, iterations=20, warmup_rounds=5)
