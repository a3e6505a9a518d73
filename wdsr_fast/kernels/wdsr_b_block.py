"""Host-side forward and backward of the fused WDSR-B block, composed of the chain and conv
kernels.

    out = x + res_scale * (conv3x3(l, W3) + b3),   l = W2 · relu(W1 · x + b1) + b2

Forward is two kernels: the fused pointwise chain writes the low-rank tensor l (N, L, H, W)
and the 3x3 implicit-GEMM convolution adds bias and the scaled residual in its epilogue.
Backward recomputes l from x (it lives only while the block's backward runs), takes
dl = res_scale * conv3x3^T(grad) with the same 3x3 kernel on adjoint weights, the 3x3 weight
gradient from (l, grad), and the chain's gradients from (x, dl) with the residual gradient
added in the same pass. All weight gradients are deterministic.

Arguments are checked by the op (:mod:`wdsr_fast.ops.wdsr_b_block`): x and grad of any strides,
weights contiguous, one dtype and device.
"""

from __future__ import annotations

from torch import Tensor

from .conv3x3 import conv3x3_forward, conv3x3_input_grad, conv3x3_weight_grad
from .pointwise_chain import pointwise_chain_backward, pointwise_chain_forward

__all__ = ["wdsr_b_block_backward", "wdsr_b_block_forward"]


def wdsr_b_block_forward(
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    b3: Tensor,
    res_scale: float,
) -> Tensor:
    """The block's output (N, C, H, W), channels_last; shapes as in the module docstring."""
    low = pointwise_chain_forward(x, w1, b1, w2, b2)
    return conv3x3_forward(low, w3, b3, residual=x, res_scale=res_scale)


def wdsr_b_block_backward(
    grad: Tensor,
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    res_scale: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dx, dw1, db1, dw2, db2, dw3, db3) given grad = dLoss/dout, each shaped like its
    argument, in x's dtype; dx channels_last."""
    low = pointwise_chain_forward(x, w1, b1, w2, b2)
    grad_low = conv3x3_input_grad(grad, w3, weight_scale=res_scale)
    dw3, db3 = conv3x3_weight_grad(low, grad)
    del low
    dx, dw1, db1, dw2, db2 = pointwise_chain_backward(x, grad_low, w1, b1, w2, grad_residual=grad)
    dw3 = (dw3 * res_scale).to(x.dtype)
    db3 = (db3 * res_scale).to(x.dtype)
    return dx, dw1, db1, dw2, db2, dw3, db3
