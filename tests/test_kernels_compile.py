"""Ahead-of-time compile of every Triton kernel configuration for sm_80 and sm_90, no GPU needed.

Table-driven: each module in ``KERNEL_MODULES`` exports ``aot_cases() -> list[AotCase]``
(:mod:`wdsr_fast.kernels.aot`): one entry per kernel, dtype, dot precision and launch
configuration its launchers can pick (runtime argument types, constexprs, warps, stages, the
tensor-core instruction the PTX must contain). To cover a new kernels module, give it an
``aot_cases()`` and add its name to ``KERNEL_MODULES``.

Every case is compiled for every arch in ``ARCHS`` in one subprocess (``TRITON_INTERPRET``
unset: the interpreter replaces ``triton.jit``), in parallel. The tests then check per module
and arch: every case compiled to PTX and cubin, ``ptxas -v`` reports zero spill bytes, the
shared memory fits the arch, and the tensor-core instructions are there. Registers per case
are attached to the test report (``record_property``) and printed by
``python -m wdsr_fast.kernels.aot MODULE...``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # minutes with a cold Triton cache, seconds with a warm one

KERNEL_MODULES = ("wdsr_fast.kernels.conv3x3", "wdsr_fast.kernels.pointwise_chain")
ARCHS = (80, 90)
PARAMS = [(module, arch) for module in KERNEL_MODULES for arch in ARCHS]


@pytest.fixture(scope="module")
def compile_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("aot") / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cmd = [sys.executable, "-m", "wdsr_fast.kernels.aot", *KERNEL_MODULES, "--json", str(out)]
    cmd += ["--arch", *map(str, ARCHS)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def _records(records: list[dict], module: str, arch: int) -> list[dict]:
    selected = [r for r in records if r["module"] == module and r["arch"] == arch]
    assert selected, f"{module} lists no aot_cases()"
    return selected


@pytest.mark.parametrize(("module", "arch"), PARAMS)
def test_every_case_compiles(compile_records: list[dict], module: str, arch: int, record_property):
    records = _records(compile_records, module, arch)
    failed = {r["name"]: r["error"] for r in records if "error" in r}
    assert not failed, failed
    assert all(r["cubin_bytes"] > 0 for r in records)
    record_property("registers", {r["name"]: r["registers"] for r in records})


@pytest.mark.parametrize(("module", "arch"), PARAMS)
def test_no_register_spills(compile_records: list[dict], module: str, arch: int):
    records = [r for r in _records(compile_records, module, arch) if "error" not in r]
    spilling = {
        r["name"]: (r["registers"], r["spill_stores"], r["spill_loads"])
        for r in records
        if r["spill_stores"] or r["spill_loads"]
    }
    assert not spilling, f"(registers, spill store bytes, spill load bytes): {spilling}"


@pytest.mark.parametrize(("module", "arch"), PARAMS)
def test_shared_memory_fits(compile_records: list[dict], module: str, arch: int):
    records = [r for r in _records(compile_records, module, arch) if "error" not in r]
    too_big = {
        r["name"]: r["shared_bytes"] for r in records if r["shared_bytes"] > r["max_shared_bytes"]
    }
    assert not too_big, too_big


@pytest.mark.parametrize(("module", "arch"), PARAMS)
def test_tensor_core_instructions(compile_records: list[dict], module: str, arch: int):
    records = [r for r in _records(compile_records, module, arch) if "error" not in r]
    missing = {r["name"]: r["missing_ptx"] for r in records if r["missing_ptx"]}
    assert not missing, missing
