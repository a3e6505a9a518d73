"""Argument checks of the block ops: the one boundary where bad arguments are rejected.

Each check raises ValueError naming the argument and what was expected. The fused kernels read
activations through their strides (any layout, stride 0 included); weights and biases are
handed to them contiguous (:func:`contiguous_weights`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from wdsr_fast.dispatch import FUSED_BLOCK_DTYPES

__all__ = [
    "check_activation",
    "check_like",
    "check_weights",
    "contiguous_weights",
    "empty_channels_last",
    "empty_gradients",
]


def check_activation(name: str, t: Tensor) -> int:
    """Raise ValueError unless ``t`` is a 4-D (N, C, H, W) tensor of a dtype the fused blocks
    take, with at least one channel; return C."""
    if t.dim() != 4:
        raise ValueError(f"{name}: expected a 4-D (N, C, H, W) tensor, got shape {tuple(t.shape)}")
    if t.dtype not in FUSED_BLOCK_DTYPES:
        raise ValueError(f"{name}: expected dtype float32, float16 or bfloat16, got {t.dtype}")
    if t.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one channel, got shape {tuple(t.shape)}")
    return t.shape[1]


def check_like(name: str, t: Tensor, x: Tensor, shape: tuple[int, ...]) -> None:
    """Raise ValueError naming ``t`` unless it has ``shape`` and x's dtype and device."""
    if tuple(t.shape) != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(t.shape)}")
    if t.dtype != x.dtype:
        raise ValueError(f"{name}: expected dtype {x.dtype} (that of x), got {t.dtype}")
    if t.device != x.device:
        raise ValueError(f"{name}: expected device {x.device} (that of x), got {t.device}")


def check_weights(x: Tensor, expected: Mapping[str, tuple[Tensor, tuple[int, ...]]]) -> None:
    """:func:`check_like` for every ``name: (tensor, shape)`` of ``expected``."""
    for name, (t, shape) in expected.items():
        check_like(name, t, x, shape)


def contiguous_weights(*weights: Tensor) -> tuple[Tensor, ...]:
    """The weights and biases as contiguous tensors (no copy when they already are): the fused
    kernels index them densely."""
    return tuple(w.contiguous() for w in weights)


def empty_channels_last(x: Tensor) -> Tensor:
    """An uninitialised tensor of x's shape, dtype and device in channels_last memory format
    (what the fused block ops return)."""
    return torch.empty_like(x, memory_format=torch.channels_last)


def empty_gradients(x: Tensor, *shapes: tuple[int, ...]) -> tuple[Tensor, ...]:
    """Uninitialised contiguous tensors of the given shapes in x's dtype and device (the weight
    gradients the backward ops return)."""
    return tuple(torch.empty(shape, dtype=x.dtype, device=x.device) for shape in shapes)
