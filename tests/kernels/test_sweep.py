"""The configuration sweep (wdsr_fast/kernels/aot/sweep.py): each candidate reaches the launches
it names, the launchers get their own configuration back afterwards, and a sweep's rows carry
the static report of every configuration.

Recording launches needs compiled-mode Triton (the interpreter replaces ``triton.jit``), so the
checks run in a subprocess with ``TRITON_INTERPRET`` unset, as the compile test does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wdsr_fast.kernels import launch

pytestmark = pytest.mark.slow  # compiles two kernel variants

SCRIPT = """
import json, torch
from wdsr_fast.kernels import wdsr_b_block
from wdsr_fast.kernels.aot import sweep
from wdsr_fast.kernels.aot.capture import recorded_launches
from wdsr_fast.kernels.aot.cases import block_call
from wdsr_fast.kernels.aot.report import default_scenario

out = {"launches": {}}
defaults = (wdsr_b_block.forward_config, wdsr_b_block.backward_config)
for arch in (80, 90):
    for stage, candidates in sweep.CANDIDATES.items():
        call = block_call(default_scenario("B", stage, torch.float16, (1, 20, 64)))
        for changes in [{}, *candidates]:
            with sweep.configured(stage, changes), recorded_launches(132, arch) as launches:
                call()
            tile = launches[0]
            out["launches"][f"{arch} {stage} {sweep._label(changes)}"] = {
                "TILE_H": tile.kwargs["TILE_H"], "TILE_W": tile.kwargs["TILE_W"],
                "num_stages": tile.kwargs["num_stages"], "maxnreg": tile.kwargs.get("maxnreg"),
                "BLOCK_E": tile.kwargs["BLOCK_E"], "programs": tile.programs,
            }
out["restored"] = (wdsr_b_block.forward_config, wdsr_b_block.backward_config) == defaults
sweep.CANDIDATES["forward"] = [{"tile_h": 8, "tile_w": 32}, {"out_chunk": 100}]
out["rows"] = sweep.sweep("forward", 90, torch.float16, (1, 20, 64))
out["table"] = sweep.format_rows(out["rows"])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def result() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("arch", [80, 90])
def test_candidates_reach_the_launches(result: dict, arch: int):
    launches = result["launches"]
    for stage in ("forward", "backward"):
        default = launches[f"{arch} {stage} default"]
        assert default["TILE_H"] == 16 and default["TILE_W"] == 32
        assert default["num_stages"] == 1
        assert launches[f"{arch} {stage} tile_h=8, tile_w=32"]["TILE_H"] == 8
        assert launches[f"{arch} {stage} tile_h=16, tile_w=16"]["TILE_W"] == 16
        assert launches[f"{arch} {stage} num_stages=2"]["num_stages"] == 2
    # (1, 20, 64) is 4 tiles of 16 x 32: one program per SM takes them all at 132 SMs.
    assert launches[f"{arch} forward programs_per_sm=1"]["programs"] == 4
    assert launches[f"{arch} forward block_e=32"]["BLOCK_E"] == 32
    assert launches[f"{arch} backward max_registers=None"]["maxnreg"] is None
    tight = launch.triton_version() >= launch.TIGHT_REGISTERS_SINCE  # capped there only
    assert launches[f"{arch} backward default"]["maxnreg"] == (128 if tight else None)


def test_launchers_get_their_configuration_back(result: dict):
    assert result["restored"]


def test_rows_carry_the_static_report_and_errors(result: dict):
    default, smaller, broken = result["rows"]
    assert [r["config"] for r in result["rows"]] == [
        "default", "tile_h=8, tile_w=32", "out_chunk=100"
    ]
    for row in (default, smaller):
        (kernel,) = row["static"]["kernels"]
        assert kernel["name"] == "wdsr_b_block_fwd_kernel"
        assert kernel["spill_bytes"] == 0 and row["static"]["bound_us"] > 0
        assert "measured" not in row
    # A 20 x 64 image in 8 x 32 tiles: 3 x 2 of them (16 x 32: 2 x 2), a program each.
    assert default["static"]["kernels"][0]["grid"][0] == 4
    assert smaller["static"]["kernels"][0]["grid"][0] == 6
    # 100 is no power of two: Triton rejects the chunk, the row says so and the sweep goes on.
    assert "error" in broken and "static" not in broken
    assert "out_chunk=100" in result["table"]
