"""Shared ``tl.dot`` operand choices of the kernels: channel padding and input precision."""

from __future__ import annotations

import torch
import triton


def padded_channels(n: int) -> int:
    """Channel count padded for ``tl.dot``: the next power of two, at least 16."""
    return max(16, triton.next_power_of_2(n))


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision: TF32 for float32 only when cuDNN may use it (the reference's
    convolutions follow ``torch.backends.cudnn.allow_tf32``), else full precision."""
    if dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "ieee"
