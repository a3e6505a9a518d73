"""Host-side helpers shared by the launchers: buffer allocation, the device's size and the
compiler's version.

Every buffer a launcher hands to a kernel is allocated by :func:`empty` (tests fill those
buffers with NaN to catch elements a kernel fails to write). Grids that spread work over the
device size it with :func:`multiprocessor_count`, tile choices may depend on
:func:`device_capability` and on :func:`triton_version`; the ahead-of-time tooling, which
replays launches without a GPU, sets the GPU it compiles for (:data:`simulated_device`).
"""

from __future__ import annotations

import torch
import triton
from torch import Tensor

__all__ = [
    "INDEX_LIMIT",
    "TIGHT_REGISTERS_SINCE",
    "cdiv",
    "check_image_extent",
    "device_capability",
    "empty",
    "image_extent",
    "multiprocessor_count",
    "simulated_device",
    "triton_version",
]

# The GPU assumed for non-CUDA tensors, when set (``{"multiprocessors": n, "capability": (9,
# 0)}``); the ahead-of-time tooling sets it while it records launches on CPU tensors.
simulated_device: dict[str, object] = {}
# What a CPU run (the Triton interpreter) assumes when nothing is simulated.
_INTERPRETER_MULTIPROCESSORS = 2
_INTERPRETER_CAPABILITY = (9, 0)


def empty(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Tensor:
    """An uninitialised buffer for a kernel to write."""
    return torch.empty(shape, dtype=dtype, device=device, memory_format=memory_format)


def multiprocessor_count(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (CUDA), else the simulated or interpreter count."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return int(simulated_device.get("multiprocessors", _INTERPRETER_MULTIPROCESSORS))


def device_capability(device: torch.device) -> tuple[int, int]:
    """Compute capability of ``device`` (CUDA), else the simulated or interpreter one."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)
    return tuple(simulated_device.get("capability", _INTERPRETER_CAPABILITY))  # type: ignore[return-value]


# Tritons before 3.7 need more registers for the same tile: some tiles tuned on 3.7 and later
# spill there, so the tile choices take smaller ones below this version (spill-free on Triton
# 3.2 and 3.6 as on 3.8: see the ahead-of-time compile test, run under each in CI).
TIGHT_REGISTERS_SINCE = (3, 7)


def triton_version() -> tuple[int, int]:
    """(major, minor) of the installed Triton, which compiles the kernels."""
    major, minor = triton.__version__.split(".")[:2]
    return int(major), int(minor)


def cdiv(a: int, b: int) -> int:
    """ceil(a / b) for integers, b > 0 (the same as ``triton.cdiv``, which costs a couple of
    microseconds per call on the host as a Triton constexpr function)."""
    return -(-a // b)


# Kernels index within one image in int32 (fewer registers); the batch offset is 64-bit.
INDEX_LIMIT = 2**31 - 1


def image_extent(t: Tensor) -> int:
    """One more than the largest element offset inside one image of an (N, C, H, W) tensor."""
    return 1 + sum((s - 1) * abs(st) for s, st in zip(t.shape[1:], t.stride()[1:], strict=True))


def check_image_extent(name: str, t: Tensor) -> None:
    """Raise ValueError naming ``t`` when one image of it (N, C, H, W) spans more elements than
    int32 indexing reaches."""
    extent = image_extent(t)
    if extent > INDEX_LIMIT:
        raise ValueError(f"{name}: one image spans {extent} elements, more than 2**31 - 1")
