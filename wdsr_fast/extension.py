"""Loading of the compiled extension ``wdsr_fast._C`` and its build information.

The package works without the extension (plain PyTorch ops take over); it then says so once.
An extension built against another torch release is not used: its load error, or the two
releases, and how to rebuild are what ``build_info()`` and the fallback warning report.
"""

from __future__ import annotations

import functools
import re
import warnings
from types import ModuleType
from typing import Any

import torch

__all__ = [
    "REBUILD_HINT",
    "build_info",
    "extension",
    "extension_available",
    "extension_unavailable_reason",
    "torch_mismatch",
    "warn_fallback",
]

REBUILD_HINT = (
    "rebuild wdsr_fast against this torch: `pip install --no-build-isolation -e .` in its "
    "source folder (or `bash scripts/bootstrap.sh`)"
)


def _release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: ``"2.6.0+cu124"`` -> ``(2, 6, 0)``."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def _load() -> tuple[ModuleType | None, dict[str, Any], str | None]:
    """The usable extension module, its build information (also when unusable) and why it is
    not usable."""
    try:
        from wdsr_fast import _C
    except ImportError as exc:
        error = f"{type(exc).__name__}: {exc}"
        if "undefined symbol" in str(exc):
            error += f" (it was built against another torch than {torch.__version__}; "
            error += f"{REBUILD_HINT})"
        return None, {}, error
    info = dict(_C.build_info())
    error = torch_mismatch(info.get("torch"), torch.__version__)
    return (None if error else _C), info, error


def torch_mismatch(built_with: str | None, running: str) -> str | None:
    """Why an extension compiled against torch ``built_with`` (None: unknown, in builds that
    predate the check) must not run under torch ``running``, or None when it may."""
    if built_with is None or _release(built_with) == _release(running):
        return None
    return (
        f"wdsr_fast._C was built against torch {built_with}, this is torch {running}; "
        f"{REBUILD_HINT}"
    )


# Loaded once, at import: what the extension offers does not change while the process runs
# (and plain module constants keep the dispatch traceable by torch.compile).
_EXTENSION, _BUILD, _LOAD_ERROR = _load()
_CUDA_KERNELS = _EXTENSION is not None and bool(_BUILD["cuda"])


def extension() -> ModuleType | None:
    """The loaded ``wdsr_fast._C`` module (which registers its ops in ``torch.ops.wdsr_fast``),
    or None when it is missing, does not load, or was built against another torch."""
    return _EXTENSION


def extension_available() -> bool:
    """Whether the C++/CUDA extension loaded."""
    return _EXTENSION is not None


def extension_unavailable_reason(device: torch.device) -> str | None:
    """Why the extension's kernels cannot run on tensors of ``device``, or None when they can."""
    if _EXTENSION is None:
        return f"the C++/CUDA extension wdsr_fast._C is not available ({_LOAD_ERROR})"
    if device.type in ("cpu", "meta"):
        return None
    if device.type == "cuda":
        if _CUDA_KERNELS:
            return None
        note = _BUILD.get("cuda_note")
        return "the C++ extension wdsr_fast._C was built without CUDA kernels" + (
            f" ({note})" if note else ""
        )
    return f"the C++ extension wdsr_fast._C has no kernels for {device.type} tensors"


@functools.cache
def warn_fallback(reason: str) -> None:
    """Warn, once per process and reason, that plain PyTorch ops replace the extension's."""
    warnings.warn(
        f"wdsr_fast: {reason}; using plain PyTorch ops instead.", RuntimeWarning, stacklevel=4
    )


def build_info() -> dict[str, Any]:
    """How the package was built and what it can use here.

    Returns a dict with ``extension`` (the extension loaded and is used), ``extension_error``
    (why not), ``cuda_kernels`` (CUDA kernels compiled in), ``cuda_archs`` (e.g.
    ``["sm_80", "sm_90"]``), ``cuda_build_note`` (why the build has no CUDA kernels and how to
    get them, else None), ``built_with_torch`` (the torch release the extension was compiled
    against, None when unknown), ``torch``, ``triton`` (version or None) and
    ``cuda_available``.
    """
    try:
        import triton

        triton_version: str | None = triton.__version__
    except ImportError:
        triton_version = None
    return {
        "extension": _EXTENSION is not None,
        "extension_error": _LOAD_ERROR,
        "cuda_kernels": _CUDA_KERNELS,
        "cuda_archs": list(_BUILD.get("cuda_archs", [])) if _CUDA_KERNELS else [],
        "cuda_build_note": _BUILD.get("cuda_note"),
        "built_with_torch": _BUILD.get("torch"),
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda_available": torch.cuda.is_available(),
    }
