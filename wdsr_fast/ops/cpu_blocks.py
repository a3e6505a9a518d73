"""The extension's fused CPU residual blocks: fake implementations and availability.

``torch.ops.wdsr_fast.wdsr_b_block_cpu`` and ``wdsr_a_block_cpu`` have their schemas in
``csrc/library.cpp`` and their CPU kernels in ``csrc/cpu_wdsr_b_block.cpp`` and
``csrc/cpu_wdsr_a_block.cpp``. They compute a whole residual block in one pass over the image
for float32 inference (no autograd formula: backward through them raises)::

    wdsr_b_block_cpu(x, w1, b1, w2, b2, w3, b3, res_scale)
        = x + res_scale * (conv3x3(W2 · relu(W1 · x + b1) + b2, W3) + b3)
        x (N, C, H, W); w1 (E, C, 1, 1); w2 (L, E, 1, 1); w3 (C, L, 3, 3)
    wdsr_a_block_cpu(x, w1, b1, w2, b2, res_scale)
        = x + res_scale * (conv3x3(relu(conv3x3(x, W1) + b1), W2) + b2)
        x (N, C, H, W); w1 (F, C, 3, 3); w2 (C, F, 3, 3)

Both return (N, C, H, W) in channels_last memory format. The plain-PyTorch backend
(:mod:`wdsr_fast.torch_impl`) calls them where they apply (:func:`available`); an extension
built before they existed simply lacks them, and the plain ops run instead.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from wdsr_fast.extension import extension

__all__ = ["OPS", "available"]

OPS = ("wdsr_b_block_cpu", "wdsr_a_block_cpu")


@functools.cache
def available() -> bool:
    """Whether the loaded extension has the fused CPU blocks."""
    return extension() is not None and all(hasattr(torch.ops.wdsr_fast, op) for op in OPS)


def _inference_only(ctx, grad: Tensor) -> tuple:
    raise RuntimeError(
        "wdsr_fast: the fused CPU blocks are for inference and have no backward; the torch "
        "backend uses them only when no gradient is needed"
    )


def _register() -> None:
    @torch.library.register_fake("wdsr_fast::wdsr_b_block_cpu")
    def _b_fake(x, w1, b1, w2, b2, w3, b3, res_scale):  # type: ignore[no-untyped-def]
        return torch.empty_like(x, memory_format=torch.channels_last)

    @torch.library.register_fake("wdsr_fast::wdsr_a_block_cpu")
    def _a_fake(x, w1, b1, w2, b2, res_scale):  # type: ignore[no-untyped-def]
        return torch.empty_like(x, memory_format=torch.channels_last)

    for op in OPS:
        torch.library.register_autograd(f"wdsr_fast::{op}", _inference_only)


if available():
    _register()
