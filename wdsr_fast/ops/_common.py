"""Argument checks and weight helpers shared by the fused block ops."""

from __future__ import annotations

import torch
from torch import Tensor

from wdsr_fast.backend import triton_usable_for
from wdsr_fast.kernels.conv3x3 import check_like

__all__ = ["SUPPORTED_DTYPES", "adjoint_3x3", "check_block_input", "check_like", "check_runnable"]

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_block_input(x: Tensor) -> int:
    """Raise ValueError unless x is a 4-D tensor of a supported dtype with at least one
    channel; return its channel count."""
    if x.dim() != 4:
        raise ValueError(f"x: expected a 4-D (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"x: expected dtype float32, float16 or bfloat16, got {x.dtype}")
    c = x.shape[1]
    if c < 1:
        raise ValueError(f"x: expected at least one channel, got shape {tuple(x.shape)}")
    return c


def check_runnable(x: Tensor, block: str) -> None:
    """Raise ValueError unless the Triton kernels of the fused ``block`` can run on x's device."""
    if not triton_usable_for(x.device):
        raise ValueError(
            f"x: the fused {block} block needs a CUDA tensor on a device of compute capability "
            f">= 8.0 (or a CPU tensor with TRITON_INTERPRET=1), got device {x.device}"
        )


def adjoint_3x3(w: Tensor, scale: float = 1.0) -> Tensor:
    """Weights of the input gradient of a 3x3 convolution by ``scale * w``: flipped, in and out
    channels swapped; the scaling is done in float32 and rounded once (none when scale is 1)."""
    if scale != 1.0:
        w = (w.float() * scale).to(w.dtype)
    return w.flip(2, 3).transpose(0, 1)
