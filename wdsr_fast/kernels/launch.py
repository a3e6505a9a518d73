"""Host-side helpers shared by the launchers: buffer allocation and the device's size.

Every buffer a launcher hands to a kernel is allocated by :func:`empty` (tests fill those
buffers with NaN to catch elements a kernel fails to write). Grids that spread work over the
device size it with :func:`multiprocessor_count`; the ahead-of-time tooling, which replays
launches without a GPU, sets the count of the GPU it compiles for (:data:`simulated_device`).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["empty", "multiprocessor_count", "simulated_device"]

# Streaming multiprocessors assumed for non-CUDA tensors, when set (``{"multiprocessors": n}``);
# the ahead-of-time tooling sets it while it records launches on CPU tensors.
simulated_device: dict[str, int] = {}
# What a CPU run (the Triton interpreter) assumes when nothing is simulated.
_INTERPRETER_MULTIPROCESSORS = 2


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
    return simulated_device.get("multiprocessors", _INTERPRETER_MULTIPROCESSORS)
