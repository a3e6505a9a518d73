"""Shared pieces of the benchmark suites: device, sizes, providers, timing and memory.

``saved_activation_bytes`` and the peak-memory measurement come from :mod:`wdsr_fast.app.measure`
(the ``wdsr-fast bench`` command), so both report the same quantities.

A suite is a pytest file under benchmarks/ whose tests take pytest-benchmark's ``benchmark``
fixture and call :func:`run`. Providers of one comparison share ``benchmark.group`` so the
table shows them side by side; :mod:`benchmarks.report` turns the JSON into ratios.

On a CPU-only machine the Triton kernels are never timed (the interpreter is a test tool, not
a speed); the ``triton`` provider needs CUDA.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from wdsr_fast.app.measure import peak_cuda_memory_bytes, saved_activation_bytes
from wdsr_fast.testing import reference

__all__ = [
    "COMPILE_MODE",
    "DEVICE",
    "DTYPE",
    "IMAGE_HW",
    "ON_GPU",
    "compiled",
    "device_name",
    "peak_memory_bytes",
    "reference_model",
    "requires_gpu",
    "rgb_image",
    "run",
    "saved_activation_bytes",
    "synchronize",
]

ON_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if ON_GPU else "cpu")
# One LR image: 540x960 on a GPU (a 1080p x2 output), 256x256 on this CPU (finishes in minutes).
IMAGE_HW = (540, 960) if ON_GPU else (256, 256)
# The fast dtype of the targets: fp16 on a GPU, fp32 on a CPU.
DTYPE = torch.float16 if ON_GPU else torch.float32
# torch.compile settings of the compiled provider.
COMPILE_MODE = "max-autotune" if ON_GPU else None

requires_gpu = pytest.mark.skipif(not ON_GPU, reason="needs a CUDA device")


def synchronize() -> None:
    if ON_GPU:
        torch.cuda.synchronize()


def run(
    benchmark: Any,
    fn: Callable[[], Any],
    *,
    rounds: int | None = None,
    warmup_rounds: int = 1,
    **extra_info: Any,
) -> Any:
    """Time ``fn`` (synchronised on GPU) and record ``extra_info`` plus the device's name."""

    def timed() -> Any:
        out = fn()
        synchronize()
        return out

    if rounds is None:
        rounds = 20 if ON_GPU else 3
    benchmark.extra_info.update(device=device_name(), **extra_info)
    return benchmark.pedantic(timed, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)


def device_name() -> str:
    """The GPU's name, or the CPU with the thread count in force now (not cached: the CPU
    suites change it)."""
    if ON_GPU:
        return torch.cuda.get_device_name()
    return f"CPU ({torch.get_num_threads()} threads)"


def peak_memory_bytes(fn: Callable[[], Any]) -> int | None:
    """Peak CUDA memory while ``fn`` runs, above what was allocated before; None on CPU."""
    return peak_cuda_memory_bytes(fn, DEVICE)


def reference_model(kind: str, dtype: torch.dtype = DTYPE, channels_last: bool = False, **kwargs):
    """The authors' model (reference rendition) on DEVICE, eval mode."""
    args = reference.make_args(**kwargs)
    cls = reference.ReferenceWDSRA if kind == "A" else reference.ReferenceWDSRB
    model = cls(args).to(DEVICE, dtype).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def compiled(model: Callable) -> Callable:
    """``torch.compile`` of ``model`` (a module or a function) with the suite's mode."""
    if COMPILE_MODE is None:
        return torch.compile(model)
    return torch.compile(model, mode=COMPILE_MODE)


def rgb_image(
    batch: int = 1,
    hw: tuple[int, int] = IMAGE_HW,
    dtype: torch.dtype = DTYPE,
    channels_last: bool = False,
) -> torch.Tensor:
    x = torch.rand(batch, 3, *hw, device=DEVICE, dtype=torch.float32).mul_(255).to(dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
