"""Host-side forward and backward of the fused WDSR-A block, composed of 3x3 conv kernels.

    out = x + res_scale * (conv3x3(h, w2) + b2),   h = relu(conv3x3(x, w1) + b1)

Forward is two launches of the 3x3 implicit-GEMM kernel: the first with a bias + ReLU epilogue
writes the wide activation h (N, F, H, W), the second adds bias and the scaled residual in its
epilogue. Backward recomputes h, then::

    dh  = conv3x3(grad, flip(res_scale * w2)^T) where h > 0, else 0   (mask epilogue)
    dw2 = res_scale * wgrad(h, grad),    db2 = res_scale * sum(grad)
    dw1 = wgrad(x, dh),                  db1 = sum(dh)
    dx  = grad + conv3x3(dh, flip(w1)^T)                               (residual epilogue)

Weight gradients are deterministic (fixed-order reductions); h and dh live only while the
block's backward runs. Arguments are checked by the op (:mod:`wdsr_fast.ops.wdsr_a_block`).
"""

from __future__ import annotations

from torch import Tensor

from .conv3x3 import conv3x3_forward, conv3x3_input_grad, conv3x3_weight_grad

__all__ = ["wdsr_a_block_backward", "wdsr_a_block_forward"]


def wdsr_a_block_forward(
    x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, res_scale: float
) -> Tensor:
    """The block's output (N, C, H, W), channels_last; x (N, C, H, W), w1 (F, C, 3, 3), b1 (F,),
    w2 (C, F, 3, 3), b2 (C,)."""
    h = conv3x3_forward(x, w1, b1, relu=True)
    return conv3x3_forward(h, w2, b2, residual=x, res_scale=res_scale)


def wdsr_a_block_backward(
    grad: Tensor, x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, res_scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dx, dw1, db1, dw2, db2) given grad = dLoss/dout, each shaped like its argument,
    in x's dtype; dx channels_last."""
    h = conv3x3_forward(x, w1, b1, relu=True)
    dw2, db2 = conv3x3_weight_grad(h, grad)
    dh = conv3x3_input_grad(grad, w2, weight_scale=res_scale, relu_mask=h)
    del h
    dw1, db1 = conv3x3_weight_grad(x, dh)
    dx = conv3x3_input_grad(dh, w1, residual=grad)
    return (
        dx,
        dw1.to(x.dtype, copy=True),
        db1.to(x.dtype, copy=True),
        (dw2 * res_scale).to(x.dtype),
        (db2 * res_scale).to(x.dtype),
    )
