"""Packaging: kernels/ ships as wdsr_fast.kernels, in editable and in wheel installs."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_kernels_import_as_a_subpackage():
    import wdsr_fast.kernels

    assert Path(wdsr_fast.kernels.__file__).resolve().parent == ROOT / "kernels"


def test_wheel_contains_kernels_and_package(tmp_path):
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
    kernel_files = {p.name for p in (ROOT / "kernels").glob("*.py")}
    assert kernel_files, "kernels/ holds no modules"
    for name in kernel_files:
        assert f"wdsr_fast/kernels/{name}" in names
    assert "wdsr_fast/__init__.py" in names
    assert "wdsr_fast/ops/__init__.py" in names
    assert not any(n.startswith("kernels/") for n in names)

