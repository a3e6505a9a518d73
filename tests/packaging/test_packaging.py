"""Packaging: the wheel holds every module, the weights and the license; the source
distribution holds what building the extension needs; documents point at files that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The pure-Python build: what is tested here is the package layout, not the extension.
PURE_PYTHON = dict(os.environ, WDSR_FAST_BUILD_EXTENSION="0")


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q"]
    subprocess.run(
        [*cmd, "-w", str(out), str(ROOT)], check=True, env=PURE_PYTHON, capture_output=True
    )
    (wheel,) = out.glob("wdsr_fast-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (info,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        names.add("METADATA:" + archive.read(info).decode())
    return names


def test_wheel_contains_every_module_and_the_weights(wheel_names: set[str]):
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "wdsr_fast").rglob("*.py")}
    assert "wdsr_fast/kernels/conv3x3.py" in sources
    assert sources <= wheel_names, sorted(sources - wheel_names)
    weights = {p.relative_to(ROOT).as_posix() for p in (ROOT / "wdsr_fast").rglob("*.safetensors")}
    assert weights and weights <= wheel_names
    assert "wdsr_fast/py.typed" in wheel_names


def test_wheel_declares_its_license_and_supported_torch(wheel_names: set[str]):
    (text,) = [n for n in wheel_names if n.startswith("METADATA:")]
    assert re.search(r"^License(-Expression)?: MIT$", text, re.MULTILINE), text[:600]
    assert re.search(r"^Requires-Dist: torch>=2\.6$", text, re.MULTILINE)
    assert any(n.endswith("LICENSE") and ".dist-info/" in n for n in wheel_names)


def test_sdist_holds_the_extension_sources_and_headers(tmp_path):
    try:
        metadata.version("build")
    except metadata.PackageNotFoundError:
        pytest.skip("the `build` package (a test extra) makes the sdist")
    cmd = [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path)]
    # Run outside the checkout, whose build/ folder would shadow the `build` package.
    subprocess.run(
        [*cmd, str(ROOT)], check=True, env=PURE_PYTHON, capture_output=True, cwd=tmp_path
    )
    (sdist,) = tmp_path.glob("wdsr_fast-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = {"setup.py", "setup_cuda.py", "pyproject.toml", "README.md", "LICENSE"}
    for pattern in ("csrc/*.cpp", "csrc/*.h", "csrc/cuda/*.cu", "tests/**/*.py"):
        needed |= {p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern)}
    needed |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "wdsr_fast").rglob("*.py")}
    needed |= {p.relative_to(ROOT).as_posix() for p in ROOT.glob("wdsr_fast/**/*.safetensors")}
    assert "csrc/pixel_shuffle_plan.h" in needed
    assert needed <= names, sorted(needed - names)
    assert not [n for n in names if n.endswith(".so")]


def test_documents_point_at_files_that_exist():
    texts = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("scripts/*")]
    texts += [*(ROOT / "wdsr_fast").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    dangling = {
        f"{path.relative_to(ROOT)}: {ref}"
        for path in texts
        if path.is_file()
        for ref in re.findall(r"\bdocs/[\w./-]+\.md\b", path.read_text(encoding="utf-8"))
        if not (ROOT / ref).is_file()
    }
    assert not dangling, sorted(dangling)
