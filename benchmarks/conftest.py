"""Benchmarks run where they stand: on CUDA when present, else on the CPU.

``pytest benchmarks/ --benchmark-only`` prints, after pytest-benchmark's own statistics, the
side-by-side tables of :mod:`benchmarks.report` (one per comparison: each provider's median and
its speed-up over the reference), the tables ``benchmarks/results/`` keeps. The Triton
interpreter is never used here.

With ``WDSR_FAST_BENCH_RECORD=FILE`` set, each benchmark's result (the entry pytest-benchmark
writes to its JSON, without the raw timings) is also appended to FILE, one JSON object per line,
as soon as its test ends: a run stopped part way, by a time limit say, keeps what it measured.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from benchmarks.report import markdown_table

os.environ.pop("TRITON_INTERPRET", None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Append the finished benchmark's entry to ``$WDSR_FAST_BENCH_RECORD``, if set."""
    path = os.environ.get("WDSR_FAST_BENCH_RECORD")
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    stats = getattr(fixture, "stats", None)
    if not path or stats is None:
        return
    with open(path, "a") as record:
        record.write(json.dumps(stats.as_dict(include_data=False), default=str) + "\n")


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the side-by-side tables of the benchmarks that ran."""
    session = getattr(config, "_benchmarksession", None)
    benchmarks = [bench for bench in getattr(session, "benchmarks", []) if bench]
    if not benchmarks:
        return
    data = {"benchmarks": [bench.as_dict(include_data=False) for bench in benchmarks]}
    terminalreporter.write_sep("=", "side by side (python -m benchmarks.report prints these too)")
    terminalreporter.write_line(markdown_table(data))
