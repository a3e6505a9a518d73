"""The WDSR tail: pixel shuffle of two tensors, their sum, and an affine de-normalisation."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["shuffle_add_affine"]


def shuffle_add_affine(a: Tensor, b: Tensor, r: int, scale: float, shift: Tensor) -> Tensor:
    """``out[n, c, h*r+i, w*r+j] = (a[n, c*r*r + i*r + j, h, w] + b[same]) * scale + shift[c]``."""
    return F.pixel_shuffle(a + b, r) * scale + shift.view(1, -1, 1, 1)
