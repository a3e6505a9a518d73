"""The one place that decides which implementation of an op runs: plain PyTorch or fused.

Backends (``backend=`` of the functional layer, the blocks and the models):

- ``"triton"``: the fused kernels -- Triton kernels for the residual blocks (CUDA tensors of
  compute capability 8.0 or newer; CPU tensors only in the Triton interpreter,
  ``TRITON_INTERPRET=1`` set before triton is imported), the C++/CUDA extension for the tail
  (CPU, and CUDA when it was built with CUDA kernels).
- ``"torch"``: plain PyTorch ops, on any device and dtype.
- ``"auto"``: the fused kernel when it can run on the tensors at hand -- on CUDA for the
  blocks (the interpreter is a test tool, never picked by itself), wherever the extension has
  kernels for the tail -- else plain PyTorch.

``"auto"`` is first replaced by the environment variable ``WDSR_FAST_BACKEND`` when it is set,
so a whole program can be switched without touching its code. Asking for ``"triton"`` where
the fused kernel cannot run raises :class:`BackendUnavailableError`, whose message says why.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from wdsr_fast.extension import extension_unavailable_reason, warn_fallback

__all__ = [
    "BACKENDS",
    "BLOCK_OPS",
    "ENV_VAR",
    "FUSED_BLOCK_DTYPES",
    "OPS",
    "TAIL_OP",
    "BackendUnavailableError",
    "check_backend",
    "fused_unavailable_reason",
    "require_fused",
    "resolve_backend",
    "triton_interpreting",
]

BACKENDS = ("auto", "torch", "triton")
ENV_VAR = "WDSR_FAST_BACKEND"
BLOCK_OPS = ("wdsr_b_block", "wdsr_a_block")
TAIL_OP = "shuffle_add_affine"
OPS = (*BLOCK_OPS, TAIL_OP)
FUSED_BLOCK_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MIN_CUDA_CAPABILITY = (8, 0)

# Whether triton is installed, looked up without importing it (importing it fixes whether the
# interpreter is on, which the caller may still be setting up).
TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


class BackendUnavailableError(RuntimeError):
    """A backend was asked for explicitly where it cannot run; the message says why."""


def check_backend(backend: str, name: str = "backend") -> str:
    """``backend`` if it is one of :data:`BACKENDS`, else ValueError naming ``name``."""
    if backend not in BACKENDS:
        raise ValueError(f"{name} must be one of {BACKENDS}, got {backend!r}")
    return backend


def triton_interpreting() -> bool:
    """Whether Triton kernels run in the interpreter (on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _triton_unavailable_reason(device: torch.device, dtype: torch.dtype) -> str | None:
    if not TRITON_INSTALLED:
        return "triton is not installed"
    if dtype not in FUSED_BLOCK_DTYPES:
        return f"the fused blocks take float32, float16 or bfloat16 tensors, not {dtype}"
    if device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        if capability < MIN_CUDA_CAPABILITY:
            return f"it needs compute capability 8.0 or newer, this GPU has {capability}"
        return None
    if device.type == "cpu":
        if triton_interpreting():
            return None
        return "CPU tensors run Triton kernels only with TRITON_INTERPRET=1 (a test tool)"
    return f"Triton kernels run on CUDA tensors, not {device.type} tensors"


def fused_unavailable_reason(op: str, device: torch.device, dtype: torch.dtype) -> str | None:
    """Why the fused kernel of ``op`` (one of :data:`OPS`) cannot run on tensors of ``device``
    and ``dtype``, or None when it can."""
    if op in BLOCK_OPS:
        return _triton_unavailable_reason(device, dtype)
    if op == TAIL_OP:
        return extension_unavailable_reason(device)
    raise ValueError(f"op must be one of {OPS}, got {op!r}")


def require_fused(op: str, device: torch.device, dtype: torch.dtype) -> None:
    """Raise :class:`BackendUnavailableError` unless the fused ``op`` can run here."""
    reason = fused_unavailable_reason(op, device, dtype)
    if reason is not None:
        raise BackendUnavailableError(
            f"backend 'triton' cannot run {op} on {device} {dtype} tensors: {reason}. "
            "Use backend='torch' or 'auto'."
        )


def resolve_backend(backend: str, op: str, device: torch.device, dtype: torch.dtype) -> str:
    """The concrete backend, ``"torch"`` or ``"triton"``, that runs ``op`` on tensors of
    ``device`` and ``dtype`` when ``backend`` (one of :data:`BACKENDS`) is asked for.

    Raises :class:`BackendUnavailableError` when ``"triton"`` is asked for where it cannot run.
    """
    check_backend(backend)
    if backend == "auto":
        backend = check_backend(os.environ.get(ENV_VAR, "auto"), ENV_VAR)
    if backend == "torch":
        return "torch"
    if backend == "triton":
        require_fused(op, device, dtype)
        return "triton"
    if op in BLOCK_OPS and device.type != "cuda":
        return "torch"
    reason = fused_unavailable_reason(op, device, dtype)
    if reason is None:
        return "triton"
    if op == TAIL_OP and not torch.compiler.is_compiling():
        warn_fallback(reason)
    return "torch"
