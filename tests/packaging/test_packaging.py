"""Packaging: every subpackage and the bundled weights ship in the wheel."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_every_module_and_the_weights(tmp_path):
    # The pure-Python build: what is tested here is the package layout, not the extension.
    env = dict(os.environ, WDSR_FAST_BUILD_EXTENSION="0")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("wdsr_fast-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "wdsr_fast").rglob("*.py")}
    assert "wdsr_fast/kernels/conv3x3.py" in sources
    assert sources <= names, sorted(sources - names)
    weights = {p.relative_to(ROOT).as_posix() for p in (ROOT / "wdsr_fast").rglob("*.safetensors")}
    assert weights and weights <= names
    assert "wdsr_fast/py.typed" in names

