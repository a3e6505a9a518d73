"""scripts/build_stamp.py: set-up rebuilds the extension only when what the build reads changed
(sources, build scripts, torch, toolkit, the build's environment variables), and says why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]

TORCH_2_6 = "__version__ = '2.6.0+cu124'\ncuda = '12.4'\n"
TORCH_2_14 = "__version__ = '2.14.1+cu130'\ncuda = '13.0'\n"
TOOLKIT = "/usr/local/cuda-13.0 (CUDA 13.0)"


def _tree(root: Path) -> Path:
    (root / "csrc" / "cuda").mkdir(parents=True)
    (root / "csrc" / "ops.h").write_text("int f();\n")
    (root / "csrc" / "cuda" / "k.cu").write_text("__global__ void k() {}\n")
    (root / "setup.py").write_text("setup()\n")
    return root


def test_the_stamp_is_stable_and_follows_every_build_input(build_stamp: ModuleType, tmp_path):
    root = _tree(tmp_path)
    stamp = build_stamp.make_stamp(root, TORCH_2_14, TOOLKIT, {})
    assert build_stamp.make_stamp(root, TORCH_2_14, TOOLKIT, {"HOME": "/x"}) == stamp
    assert build_stamp.stale_reasons(stamp, stamp) == []

    (root / "csrc" / "ops.h").write_text("int f(int);\n")
    changed = build_stamp.make_stamp(root, TORCH_2_14, TOOLKIT, {})
    assert build_stamp.stale_reasons(stamp, changed) == [
        "the C++/CUDA sources or the build scripts changed"
    ]
    (root / "setup.py").write_text("setup(name='x')\n")
    assert build_stamp.make_stamp(root, TORCH_2_14, TOOLKIT, {})["sources"] != changed["sources"]


def test_torch_toolkit_and_build_variables_are_part_of_the_stamp(
    build_stamp: ModuleType, tmp_path
):
    root = _tree(tmp_path)
    stamp = build_stamp.make_stamp(root, TORCH_2_14, TOOLKIT, {})
    cases = {
        "torch changed": build_stamp.make_stamp(root, TORCH_2_6, TOOLKIT, {}),
        "the CUDA toolkit changed": build_stamp.make_stamp(root, TORCH_2_14, None, {}),
        "the build's environment variables changed": build_stamp.make_stamp(
            root, TORCH_2_14, TOOLKIT, {"WDSR_FAST_NO_CUDA": "1"}
        ),
    }
    for reason, other in cases.items():
        assert build_stamp.stale_reasons(stamp, other) == [reason]
    assert build_stamp.stale_reasons(None, stamp) == ["no build recorded in this environment"]


def test_the_stamp_covers_every_source_the_build_reads(build_stamp: ModuleType):
    files = {p.relative_to(ROOT).as_posix() for p in build_stamp.source_files(ROOT)}
    assert {"setup.py", "setup_cuda.py", "pyproject.toml"} <= files
    for pattern in ("*.cpp", "*.h", "cuda/*.cu"):
        sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "csrc").glob(pattern)}
        assert sources and sources <= files, pattern


def test_check_without_a_recorded_build_asks_for_one(tmp_path):
    stamp = tmp_path / "stamp.json"
    script = str(ROOT / "scripts" / "build_stamp.py")
    check = [sys.executable, script, "--check", str(stamp)]
    result = subprocess.run(check, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "building, because no build recorded" in result.stdout

    subprocess.run([sys.executable, script, "--write", str(stamp)], check=True, timeout=120)
    recorded = json.loads(stamp.read_text())
    assert set(recorded) == {"sources", "torch", "toolkit", "env"}
    assert "__version__" in recorded["torch"]
