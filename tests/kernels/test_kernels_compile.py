"""Ahead-of-time compile of every kernel variant the shipped models launch, for sm_80 and sm_90,
without a GPU.

The variants are not written by hand: :mod:`wdsr_fast.kernels.aot.cases` runs the block
launchers on CPU tensors for every shipped block, dtype, size and layout, records their
launches, and specialises each as Triton's own launcher does (constants, divisibility,
alignment), so what compiles here is what runs on a GPU. They are compiled in one subprocess
(``TRITON_INTERPRET`` unset: the interpreter replaces ``triton.jit``). Checked per arch: every
variant compiled, zero spill bytes, shared memory within the arch's limit, tensor-core
instructions (HMMA/HGMMA) in every variant whose matrix products are not full-precision
float32. Registers per variant are attached to the test report (``record_property``) and
printed by ``python -m wdsr_fast.kernels.aot.cases``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wdsr_fast.kernels.aot.cases import ARCHS

pytestmark = pytest.mark.slow  # minutes with a cold Triton cache, seconds with a warm one


@pytest.fixture(scope="module")
def compile_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("aot") / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cmd = [sys.executable, "-m", "wdsr_fast.kernels.aot.cases", "--json", str(out)]
    cmd += ["--arch", *map(str, ARCHS)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def _compiled(records: list[dict], arch: int) -> list[dict]:
    selected = [r for r in records if r["arch"] == arch]
    assert len(selected) > 10, f"sm_{arch}: too few variants recorded ({len(selected)})"
    failed = {r["key"]: r["error"] for r in selected if "error" in r}
    assert not failed, failed
    return selected


@pytest.mark.parametrize("arch", ARCHS)
def test_every_launched_variant_compiles(compile_records: list[dict], arch: int, record_property):
    records = _compiled(compile_records, arch)
    registers = {f"{r['scenario']}/{r['kernel']}": r["registers"] for r in records}
    record_property("registers", registers)
    kernels = {r["kernel"] for r in records}
    assert {"pointwise_chain_fwd_kernel", "conv3x3_forward_kernel"} <= kernels


@pytest.mark.parametrize("arch", ARCHS)
def test_no_register_spills(compile_records: list[dict], arch: int):
    spilling = {
        f"{r['scenario']}/{r['kernel']}": (r["registers"], r["spill_stores"], r["spill_loads"])
        for r in _compiled(compile_records, arch)
        if r["spill_stores"] or r["spill_loads"]
    }
    assert not spilling, f"(registers, spill store bytes, spill load bytes): {spilling}"


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_memory_fits(compile_records: list[dict], arch: int):
    too_big = {
        f"{r['scenario']}/{r['kernel']}": r["shared_bytes"]
        for r in _compiled(compile_records, arch)
        if r["shared_bytes"] > r["max_shared_bytes"]
    }
    assert not too_big, too_big


@pytest.mark.parametrize("arch", ARCHS)
def test_tensor_core_instructions(compile_records: list[dict], arch: int):
    missing = [
        f"{r['scenario']}/{r['kernel']}"
        for r in _compiled(compile_records, arch)
        if r["expects_tensor_cores"] and not sum(r["tensor_core_instructions"].values())
    ]
    assert not missing, missing
