"""The fused WDSR-A residual block as the custom ops ``wdsr_fast::wdsr_a_block`` and
``wdsr_fast::wdsr_a_block_backward``.

    out = x + res_scale * (conv3x3(relu(conv3x3(x, w1) + b1), w2) + b2)

x: (N, C, H, W), any strides; w1: (F, C, 3, 3), b1: (F,); w2: (C, F, 3, 3), b2: (C,) -- the
effective (already weight-normalised) weights; F (block_feats) is any width. Every floating
argument shares x's dtype (float32, float16 or bfloat16) and device; accumulation is in
float32, and float32 dots use TF32 only when ``torch.backends.cudnn.allow_tf32`` is on. Returns
(N, C, H, W) in channels_last memory format.

Autograd saves only x and the weights: the backward op recomputes the wide activation
(:mod:`wdsr_fast.kernels.wdsr_a_block`). Under autocast both ops cast their floating arguments
to the active autocast dtype (:mod:`wdsr_fast.ops.autocast`). The Triton kernels are imported on
the first call, so registering the ops needs no triton.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wdsr_fast.dispatch import require_fused
from wdsr_fast.ops.autocast import register_autocast_to_active_dtype
from wdsr_fast.ops.checks import (
    check_activation,
    check_like,
    check_weights,
    contiguous_weights,
    empty_channels_last,
    empty_gradients,
)

__all__ = ["wdsr_a_block", "wdsr_a_block_backward"]


def check_arguments(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor | None) -> None:
    """Raise ValueError naming the first argument of wrong rank, shape, dtype or device."""
    c = check_activation("x", x)
    if w1.dim() != 4 or tuple(w1.shape[1:]) != (c, 3, 3) or w1.shape[0] < 1:
        raise ValueError(f"w1: expected shape (F, {c}, 3, 3), got {tuple(w1.shape)}")
    f = w1.shape[0]
    expected = {"w1": (w1, (f, c, 3, 3)), "b1": (b1, (f,)), "w2": (w2, (c, f, 3, 3))}
    if b2 is not None:
        expected["b2"] = (b2, (c,))
    check_weights(x, expected)


@torch.library.custom_op("wdsr_fast::wdsr_a_block", mutates_args=())
def wdsr_a_block(
    x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, res_scale: float
) -> Tensor:
    """The block's output; see the module docstring."""
    check_arguments(x, w1, b1, w2, b2)
    require_fused("wdsr_a_block", x.device, x.dtype)
    from wdsr_fast.kernels.wdsr_a_block import wdsr_a_block_forward

    return wdsr_a_block_forward(x, *contiguous_weights(w1, b1, w2, b2), res_scale)


@wdsr_a_block.register_fake
def _(x, w1, b1, w2, b2, res_scale):  # type: ignore[no-untyped-def]
    check_arguments(x, w1, b1, w2, b2)
    return empty_channels_last(x)


@torch.library.custom_op("wdsr_fast::wdsr_a_block_backward", mutates_args=())
def wdsr_a_block_backward(
    grad: Tensor, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, res_scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dx, dw1, db1, dw2, db2) of the block given grad = dLoss/dout."""
    check_arguments(x, w1, b1, w2, None)
    check_like("grad", grad, x, tuple(x.shape))
    require_fused("wdsr_a_block", x.device, x.dtype)
    from wdsr_fast.kernels.wdsr_a_block import wdsr_a_block_backward as launch

    return launch(grad, x, *contiguous_weights(w1, b1, w2), res_scale)


@wdsr_a_block_backward.register_fake
def _(grad, x, w1, b1, w2, res_scale):  # type: ignore[no-untyped-def]
    check_arguments(x, w1, b1, w2, None)
    check_like("grad", grad, x, tuple(x.shape))
    shapes = (w1.shape, b1.shape, w2.shape, (w2.shape[0],))
    return (empty_channels_last(x), *empty_gradients(x, *shapes))


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:  # type: ignore[no-untyped-def]
    x, w1, b1, w2, _b2, res_scale = inputs
    ctx.save_for_backward(x, w1, b1, w2)
    ctx.res_scale = res_scale


def _backward(ctx, grad: Tensor) -> tuple:  # type: ignore[no-untyped-def]
    return (*wdsr_a_block_backward(grad, *ctx.saved_tensors, ctx.res_scale), None)


wdsr_a_block.register_autograd(_backward, setup_context=_setup_context)
register_autocast_to_active_dtype("wdsr_fast::wdsr_a_block")
register_autocast_to_active_dtype("wdsr_fast::wdsr_a_block_backward")
