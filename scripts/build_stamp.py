"""The build stamp: what the build of ``wdsr_fast._C`` depends on, so set-up rebuilds only when
it changed.

The stamp holds a hash of the C++/CUDA sources and the build scripts, the torch release (its
``torch/version.py``, read without importing torch), the CUDA toolkit found and its nvcc
version, and the environment variables that shape the build. ``scripts/bootstrap.sh`` keeps it
in the virtual environment::

    python scripts/build_stamp.py --check STAMP   exit 0 when STAMP matches and the installed
                                                  package is this folder's, extension loading;
                                                  else say why a build is needed, exit 1
    python scripts/build_stamp.py --write STAMP   record the current stamp after a build

Run it with the environment's own Python.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_FILES = ("setup.py", "setup_cuda.py", "pyproject.toml")
BUILD_ENV = (
    "WDSR_FAST_BUILD_EXTENSION",
    "WDSR_FAST_NO_CUDA",
    "WDSR_FAST_DEBUG",
    "TORCH_CUDA_ARCH_LIST",
    "CUDA_HOME",
    "CUDA_PATH",
)


def source_files(root: Path) -> list[Path]:
    """The files the build reads: everything under csrc/ and the build scripts."""
    files = [p for p in (root / "csrc").rglob("*") if p.is_file()]
    files += [root / name for name in BUILD_FILES if (root / name).is_file()]
    return sorted(files)


def sources_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def torch_version_file() -> str | None:
    """The text of the installed torch's ``torch/version.py`` (release, CUDA version, git
    revision), or None when torch is not installed."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "version.py"
    return path.read_text(encoding="utf-8") if path.is_file() else None


def toolkit(root: Path) -> str | None:
    """The CUDA toolkit the build would use and its nvcc version, or None without one."""
    sys.path.insert(0, str(root))
    from setup_cuda import find_cuda_home, nvcc_version

    home = find_cuda_home()
    return None if home is None else f"{home} (CUDA {nvcc_version(home)})"


def make_stamp(
    root: Path, torch_version: str | None, cuda_toolkit: str | None, env: Mapping[str, str]
) -> dict[str, object]:
    """The stamp of a build from ``root`` with this torch, toolkit and environment."""
    return {
        "sources": sources_hash(root),
        "torch": torch_version,
        "toolkit": cuda_toolkit,
        "env": {name: env[name] for name in BUILD_ENV if name in env},
    }


def stale_reasons(old: Mapping[str, object] | None, new: Mapping[str, object]) -> list[str]:
    """Why a build recorded as ``old`` does not match the current ``new`` (empty: it does)."""
    if old is None:
        return ["no build recorded in this environment"]
    messages = {
        "sources": "the C++/CUDA sources or the build scripts changed",
        "torch": "torch changed",
        "toolkit": "the CUDA toolkit changed",
        "env": "the build's environment variables changed",
    }
    return [text for key, text in messages.items() if old.get(key) != new.get(key)]


def current_stamp() -> dict[str, object]:
    return make_stamp(ROOT, torch_version_file(), toolkit(ROOT), os.environ)


def installed_problem(root: Path, want_extension: bool) -> str | None:
    """Why the installed package is not this folder's working build, or None. Checked in a
    fresh interpreter started outside ``root``, so the folder itself is not on its path."""
    code = (
        "import json, wdsr_fast\n"
        "print(json.dumps([wdsr_fast.__file__, wdsr_fast.build_info()['extension_error']]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return "wdsr_fast does not import"
    location, error = json.loads(result.stdout.strip().splitlines()[-1])
    if Path(location).resolve().parent != (root / "wdsr_fast").resolve():
        return f"the installed wdsr_fast is another copy ({location})"
    if want_extension and error is not None:
        return f"its extension does not load ({error})"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", metavar="STAMP", type=Path)
    group.add_argument("--write", metavar="STAMP", type=Path)
    args = parser.parse_args()
    stamp = current_stamp()
    if args.write:
        args.write.write_text(json.dumps(stamp, indent=1) + "\n")
        return 0
    old = json.loads(args.check.read_text()) if args.check.is_file() else None
    reasons = stale_reasons(old, stamp)
    if not reasons:
        want_extension = os.environ.get("WDSR_FAST_BUILD_EXTENSION", "1") != "0"
        problem = installed_problem(ROOT, want_extension)
        reasons = [problem] if problem else []
    if reasons:
        print(f"wdsr_fast: building, because {'; '.join(reasons)}.", flush=True)
        return 1
    print("wdsr_fast: already built and installed, nothing changed since (no rebuild).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
