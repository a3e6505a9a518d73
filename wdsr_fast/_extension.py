"""Loading of the compiled extension ``wdsr_fast._C`` and its build information.

The package works without the extension (plain PyTorch ops take over); it then says so once.
"""

from __future__ import annotations

import functools
import warnings
from types import ModuleType
from typing import Any

import torch

__all__ = ["build_info", "extension", "extension_available", "warn_extension_missing"]


@functools.cache
def extension() -> ModuleType | None:
    """The loaded ``wdsr_fast._C`` module (which registers ``torch.ops.wdsr_fast``), or None."""
    try:
        from wdsr_fast import _C
    except ImportError as exc:
        extension.error = f"{type(exc).__name__}: {exc}"  # type: ignore[attr-defined]
        return None
    return _C


def extension_available() -> bool:
    """Whether the C++/CUDA extension loaded."""
    return extension() is not None


@functools.cache
def warn_extension_missing() -> None:
    """Warn, once per process, that plain PyTorch ops replace the extension's."""
    warnings.warn(
        "wdsr_fast: the C++/CUDA extension wdsr_fast._C is not available "
        f"({getattr(extension, 'error', 'not built')}); using plain PyTorch ops instead.",
        RuntimeWarning,
        stacklevel=3,
    )


def build_info() -> dict[str, Any]:
    """How the package was built and what it can use here.

    Returns a dict with ``extension`` (the extension loaded), ``extension_error`` (why not),
    ``cuda_kernels`` (CUDA kernels compiled in), ``cuda_archs`` (e.g. ``["sm_80", "sm_90"]``),
    ``torch``, ``triton`` (version or None) and ``cuda_available``.
    """
    ext = extension()
    ext_info = ext.build_info() if ext is not None else {"cuda": False, "cuda_archs": []}
    try:
        import triton

        triton_version: str | None = triton.__version__
    except ImportError:
        triton_version = None
    return {
        "extension": ext is not None,
        "extension_error": None if ext is not None else getattr(extension, "error", None),
        "cuda_kernels": bool(ext_info["cuda"]),
        "cuda_archs": list(ext_info["cuda_archs"]),
        "torch": torch.__version__,
        "triton": triton_version,
        "cuda_available": torch.cuda.is_available(),
    }
