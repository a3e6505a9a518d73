"""The fused WDSR-A residual block as the custom op ``wdsr_fast::wdsr_a_block``.

    out = x + res_scale * (conv3x3(relu(conv3x3(x, w1) + b1), w2) + b2)

x: (N, C, H, W); w1: (F, C, 3, 3), b1: (F,); w2: (C, F, 3, 3), b2: (C,) -- the effective
(already weight-normalised) weights, so autograd carries their gradients on into ``weight_g``
and ``weight_v``; F (block_feats) is any width. Every floating argument shares x's dtype
(float32, float16 or bfloat16) and device; accumulation is in float32, and float32 dots use
TF32 only when ``torch.backends.cudnn.allow_tf32`` is on.

Forward is two launches of the 3x3 implicit-GEMM kernel (:mod:`wdsr_fast.kernels.conv3x3`):
the first with a bias + ReLU epilogue writes the wide activation h (N, F, H, W), the second
adds bias and the scaled residual in its epilogue. Autograd saves only x and the weights (and
b1); the backward op, itself a custom op so ``torch.compile`` traces it, recomputes h, then::

    dh  = conv3x3(grad, flip(res_scale * w2)^T) where h > 0, else 0   (mask epilogue)
    dw2 = res_scale * wgrad(h, grad),    db2 = res_scale * sum(grad)
    dw1 = wgrad(x, dh),                  db1 = sum(dh)
    dx  = grad + conv3x3(dh, flip(w1)^T)                               (residual epilogue)

Weight gradients are deterministic (fixed-order reductions). h and dh live only while the
block's backward runs.

Autocast: a rule on the op's autocast dispatch keys (:mod:`wdsr_fast.ops.autocast`) casts the
floating arguments to the active autocast dtype, as autocast does for convolutions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wdsr_fast.kernels.conv3x3 import conv3x3_forward, conv3x3_weight_grad
from wdsr_fast.ops._common import adjoint_3x3, check_block_input, check_like, check_runnable
from wdsr_fast.ops.autocast import register_autocast_to_active_dtype

__all__ = ["wdsr_a_block"]


def _check_arguments(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor | None) -> None:
    """Raise ValueError naming the first argument of wrong rank, shape, dtype or device."""
    c = check_block_input(x)
    if w1.dim() != 4 or tuple(w1.shape[1:]) != (c, 3, 3) or w1.shape[0] < 1:
        raise ValueError(f"w1: expected shape (F, {c}, 3, 3), got {tuple(w1.shape)}")
    f = w1.shape[0]
    expected = {"w1": (w1, (f, c, 3, 3)), "b1": (b1, (f,)), "w2": (w2, (c, f, 3, 3))}
    if b2 is not None:
        expected["b2"] = (b2, (c,))
    for name, (t, shape) in expected.items():
        check_like(name, t, x, shape)


def _check_like_x(name: str, t: Tensor, x: Tensor) -> None:
    if tuple(t.shape) != tuple(x.shape) or t.dtype != x.dtype or t.device != x.device:
        raise ValueError(
            f"{name}: expected shape {tuple(x.shape)}, dtype {x.dtype} and device {x.device} "
            f"(those of x), got {tuple(t.shape)}, {t.dtype}, {t.device}"
        )


def _wide_activation(x: Tensor, w1: Tensor, b1: Tensor) -> Tensor:
    """h = relu(conv3x3(x, w1) + b1): (N, F, H, W), channels_last."""
    return conv3x3_forward(x, w1, b1, relu=True)


@torch.library.custom_op("wdsr_fast::wdsr_a_block", mutates_args=())
def _wdsr_a_block(
    x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, res_scale: float
) -> Tensor:
    _check_arguments(x, w1, b1, w2, b2)
    check_runnable(x, "WDSR-A")
    h = _wide_activation(x, w1, b1)
    return conv3x3_forward(h, w2, b2, residual=x, res_scale=res_scale)


@_wdsr_a_block.register_fake
def _wdsr_a_block_fake(
    x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, res_scale: float
) -> Tensor:
    _check_arguments(x, w1, b1, w2, b2)
    return torch.empty_like(x, memory_format=torch.channels_last)


@torch.library.custom_op("wdsr_fast::wdsr_a_block_backward", mutates_args=())
def _wdsr_a_block_backward(
    grad: Tensor, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, res_scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dx, dw1, db1, dw2, db2) of the block given grad = dLoss/dout."""
    _check_arguments(x, w1, b1, w2, None)
    _check_like_x("grad", grad, x)
    h = _wide_activation(x, w1, b1)
    dw2, db2 = conv3x3_weight_grad(h, grad)
    dh = conv3x3_forward(grad, adjoint_3x3(w2, res_scale), None, relu_mask=h)
    del h
    dw1, db1 = conv3x3_weight_grad(x, dh)
    dx = conv3x3_forward(dh, adjoint_3x3(w1), None, residual=grad)
    return (
        dx,
        dw1.to(x.dtype, copy=True),
        db1.to(x.dtype, copy=True),
        (dw2 * res_scale).to(x.dtype),
        (db2 * res_scale).to(x.dtype),
    )


@_wdsr_a_block_backward.register_fake
def _wdsr_a_block_backward_fake(
    grad: Tensor, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, res_scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    _check_arguments(x, w1, b1, w2, None)
    _check_like_x("grad", grad, x)

    def like(shape: tuple[int, ...]) -> Tensor:
        return torch.empty(shape, dtype=x.dtype, device=x.device)

    return (
        torch.empty_like(x, memory_format=torch.channels_last),
        like(tuple(w1.shape)),
        like((w1.shape[0],)),
        like(tuple(w2.shape)),
        like((w2.shape[0],)),
    )


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    x, w1, b1, w2, _b2, res_scale = inputs
    ctx.save_for_backward(x, w1, b1, w2)
    ctx.res_scale = res_scale


def _backward(ctx, grad: Tensor) -> tuple:
    x, w1, b1, w2 = ctx.saved_tensors
    return (*_wdsr_a_block_backward(grad, x, w1, b1, w2, ctx.res_scale), None)


_wdsr_a_block.register_autograd(_backward, setup_context=_setup_context)
register_autocast_to_active_dtype(
    torch.ops.wdsr_fast.wdsr_a_block.default, "wdsr_fast::wdsr_a_block"
)


def wdsr_a_block(
    x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, res_scale: float
) -> Tensor:
    """``x + res_scale * (conv3x3(relu(conv3x3(x, w1) + b1), w2) + b2)``, fused (padding 1).

    x: (N, C, H, W), any strides; w1: (F, C, 3, 3); b1: (F,); w2: (C, F, 3, 3); b2: (C,), all
    of x's dtype and device. Returns (N, C, H, W) in channels_last memory format.
    """
    return _wdsr_a_block(x, w1, b1, w2, b2, float(res_scale))
