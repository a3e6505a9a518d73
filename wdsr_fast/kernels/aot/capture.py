"""Recording the kernel launches of a launcher without a GPU.

Inside :func:`recorded_launches`, a Triton kernel launch (``kernel[grid](*args, **kwargs)``)
appends a :class:`Launch` to a list instead of running; the launcher otherwise runs as it does
on a GPU, on CPU tensors of the same shapes, strides and dtypes (fresh CPU allocations are
aligned at least as strictly as CUDA's 16 bytes). Grids sized by the device's multiprocessor
count and tiles chosen by its compute capability follow the GPU being compiled for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from triton.runtime.jit import JITFunction

from wdsr_fast.kernels import launch as launch_helpers

__all__ = ["Launch", "recorded_launches"]


@dataclass(frozen=True)
class Launch:
    """One recorded launch: the kernel, its grid (3 dimensions), its positional arguments and
    its keyword arguments (constexprs and launch options such as ``num_warps``)."""

    kernel: JITFunction
    grid: tuple[int, int, int]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def programs(self) -> int:
        """Programs (CTAs) the launch starts."""
        return self.grid[0] * self.grid[1] * self.grid[2]


_recording: list[bool] = []


def _grid3(grid: tuple[int, ...]) -> tuple[int, int, int]:
    dims = tuple(int(g) for g in grid) + (1, 1, 1)
    return dims[0], dims[1], dims[2]


@contextmanager
def recorded_launches(multiprocessors: int, arch: int) -> Iterator[list[Launch]]:
    """Record instead of running every Triton launch made inside the context, as if on an
    ``sm_<arch>`` GPU of ``multiprocessors`` SMs; yields the list the launches are appended
    to, in launch order."""
    if _recording:
        raise RuntimeError("recorded_launches is not re-entrant")
    launches: list[Launch] = []
    original_run = JITFunction.run

    def record(self: JITFunction, *args: Any, grid: Any, warmup: bool, **kwargs: Any) -> None:
        if callable(grid):
            raise NotImplementedError("recorded launches need a static grid")
        launches.append(Launch(self, _grid3(grid), args, dict(kwargs)))

    JITFunction.run = record  # type: ignore[method-assign]
    launch_helpers.simulated_device["multiprocessors"] = multiprocessors
    launch_helpers.simulated_device["capability"] = divmod(arch, 10)
    _recording.append(True)
    try:
        yield launches
    finally:
        _recording.clear()
        JITFunction.run = original_run  # type: ignore[method-assign]
        launch_helpers.simulated_device.clear()
