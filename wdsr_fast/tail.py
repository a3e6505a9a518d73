"""The WDSR tail: pixel shuffle of two tensors, their sum, and an affine de-normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from wdsr_fast._extension import warn_extension_missing
from wdsr_fast.ops.pixel_shuffle import EXTENSION_AVAILABLE, extension_supports

__all__ = ["shuffle_add_affine"]


def shuffle_add_affine(a: Tensor, b: Tensor, r: int, scale: float, shift: Tensor) -> Tensor:
    """``out[n, c, h*r+i, w*r+j] = (a[n, c*r*r + i*r + j, h, w] + b[same]) * scale + shift[c]``

    The WDSR tail ``PixelShuffle(tail) + PixelShuffle(skip)`` followed by ``* scale + shift``
    in one pass: a, b (*, C*r*r, H, W), shift (C,) -> (*, C, H*r, W*r), in a's dtype. Runs the
    extension's op (``torch.ops.wdsr_fast.shuffle_add_affine``: autograd, torch.compile) on
    the devices it has kernels for; otherwise plain PyTorch ops, with a one-time warning when
    the extension is missing. Output memory format: channels_last for a channels_last ``a``.
    """
    if extension_supports(a.device):
        return torch.ops.wdsr_fast.shuffle_add_affine(a, b, r, scale, shift)
    if not EXTENSION_AVAILABLE and not torch.compiler.is_compiling():
        warn_extension_missing()
    return (F.pixel_shuffle(a + b, r) * scale + shift.view(-1, 1, 1)).to(a.dtype)
