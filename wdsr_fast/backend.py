"""Choice of the backend that runs the residual blocks.

- ``"triton"``: the fused Triton kernels. CUDA tensors; CPU tensors only when the Triton
  interpreter is on (``TRITON_INTERPRET=1`` set before triton is imported).
- ``"torch"``: plain PyTorch ops on any device.
- ``"auto"``: ``"triton"`` for CUDA tensors when Triton works there, else ``"torch"``.

A module's ``backend=`` argument names one of these. ``"auto"`` is first replaced by the
environment variable ``WDSR_FAST_BACKEND`` when it is set, so a whole program can be switched
without touching its code.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

__all__ = ["BACKENDS", "ENV_VAR", "check_backend", "resolve_backend", "triton_interpreting"]

BACKENDS = ("auto", "torch", "triton")
ENV_VAR = "WDSR_FAST_BACKEND"


def check_backend(backend: str, name: str = "backend") -> str:
    """``backend`` if it is one of :data:`BACKENDS`, else ValueError naming ``name``."""
    if backend not in BACKENDS:
        raise ValueError(f"{name} must be one of {BACKENDS}, got {backend!r}")
    return backend


def triton_interpreting() -> bool:
    """Whether Triton kernels run in the interpreter (on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# Whether triton is installed, looked up without importing it (importing it fixes whether the
# interpreter is on, which the caller may still be setting up).
TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


@functools.cache
def _triton_supports_cuda_device(index: int) -> bool:
    major, _ = torch.cuda.get_device_capability(index)
    return major >= 8


def triton_usable_for(device: torch.device) -> bool:
    """Whether the Triton kernels can run on tensors of ``device``."""
    if not TRITON_INSTALLED:
        return False
    if device.type == "cuda":
        return _triton_supports_cuda_device(device.index or 0)
    return device.type == "cpu" and triton_interpreting()


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend (``"torch"`` or ``"triton"``) for tensors on ``device``.

    Raises RuntimeError when ``"triton"`` is asked for where it cannot run.
    """
    check_backend(backend)
    if backend == "auto":
        backend = check_backend(os.environ.get(ENV_VAR, "auto"), ENV_VAR)
    if backend == "auto":
        return "triton" if device.type == "cuda" and triton_usable_for(device) else "torch"
    if backend == "triton" and not triton_usable_for(device):
        raise RuntimeError(
            f"backend='triton' cannot run on {device} tensors: it needs triton and a CUDA "
            "device of compute capability 8.0 or newer, or CPU tensors with TRITON_INTERPRET=1 "
            "set before triton is imported. Use backend='torch' or 'auto'."
        )
    return backend
