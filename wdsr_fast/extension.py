"""Loading of the compiled extension ``wdsr_fast._C`` and its build information.

The package works without the extension (plain PyTorch ops take over); it then says so once.
"""

from __future__ import annotations

import functools
import warnings
from types import ModuleType
from typing import Any

import torch

__all__ = [
    "build_info",
    "extension",
    "extension_available",
    "extension_unavailable_reason",
    "warn_fallback",
]


def _load() -> tuple[ModuleType | None, str | None]:
    try:
        from wdsr_fast import _C
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return _C, None


# Loaded once, at import: what the extension offers does not change while the process runs
# (and plain module constants keep the dispatch traceable by torch.compile).
_EXTENSION, _LOAD_ERROR = _load()
_CUDA_KERNELS = _EXTENSION is not None and bool(_EXTENSION.build_info()["cuda"])


def extension() -> ModuleType | None:
    """The loaded ``wdsr_fast._C`` module (which registers its ops in ``torch.ops.wdsr_fast``),
    or None when it is missing or does not load."""
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
        return "the C++ extension wdsr_fast._C was built without CUDA kernels"
    return f"the C++ extension wdsr_fast._C has no kernels for {device.type} tensors"


@functools.cache
def warn_fallback(reason: str) -> None:
    """Warn, once per process and reason, that plain PyTorch ops replace the extension's."""
    warnings.warn(
        f"wdsr_fast: {reason}; using plain PyTorch ops instead.", RuntimeWarning, stacklevel=4
    )


def build_info() -> dict[str, Any]:
    """How the package was built and what it can use here.

    Returns a dict with ``extension`` (the extension loaded), ``extension_error`` (why not),
    ``cuda_kernels`` (CUDA kernels compiled in), ``cuda_archs`` (e.g. ``["sm_80", "sm_90"]``),
    ``torch``, ``triton`` (version or None) and ``cuda_available``.
    """
    ext = _EXTENSION
    ext_info = ext.build_info() if ext is not None else {"cuda": False, "cuda_archs": []}
    try:
        import triton

        triton_version: str | None = triton.__version__
    except ImportError:
        triton_version = None
    return {
        "extension": ext is not None,
        "extension_error": _LOAD_ERROR,
        "cuda_kernels": bool(ext_info["cuda"]),
        "cuda_archs": list(ext_info["cuda_archs"]),
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda_available": torch.cuda.is_available(),
    }
