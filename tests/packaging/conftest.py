"""Fixtures of the packaging tests: the build helpers at the repository root and in scripts/,
loaded from their files (they are not part of the package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path) -> ModuleType:
    name = f"_wdsr_fast_build_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def setup_cuda() -> ModuleType:
    return _load(ROOT / "setup_cuda.py")


@pytest.fixture(scope="session")
def build_stamp() -> ModuleType:
    return _load(ROOT / "scripts" / "build_stamp.py")


@pytest.fixture(scope="session")
def numpy_for_triton() -> ModuleType:
    return _load(ROOT / "scripts" / "numpy_for_triton.py")
