"""The fused WDSR-B residual block as the custom op ``wdsr_fast::wdsr_b_block``.

    out = x + res_scale * (conv3x3(W2 · relu(W1 · x + b1) + b2, W3) + b3)

x: (N, C, H, W); w1: (E, C, 1, 1), b1: (E,); w2: (L, E, 1, 1), b2: (L,); w3: (C, L, 3, 3),
b3: (C,) -- the effective (already weight-normalised) weights, so autograd carries their
gradients on into ``weight_g`` and ``weight_v``. Every floating argument shares x's dtype
(float32, float16 or bfloat16) and device; accumulation is in float32, and float32 dots use
TF32 only when ``torch.backends.cudnn.allow_tf32`` is on.

Forward is two kernels: the fused pointwise chain writes the low-rank tensor l (N, L, H, W)
and the 3x3 implicit-GEMM convolution adds bias and the scaled residual in its epilogue.
Autograd saves only x and the weights: the backward op recomputes l (it lives only while the
block's backward runs), takes dl = res_scale * conv3x3^T(grad) with the same 3x3 kernel on
flipped weights, the 3x3 weight gradient from (l, grad), and the chain's gradients from (x, dl)
with the residual gradient added in the same pass. All weight gradients are deterministic.

Autocast: :func:`wdsr_b_block` casts the floating arguments to the active autocast dtype of x's
device (as autocast does for convolutions) and runs the op with autocast off.
``torch.library.register_autocast`` is not used: it fixes one cast dtype per device, which
would turn bfloat16 autocast into float16. Calling ``torch.ops.wdsr_fast.wdsr_b_block``
directly inside an autocast region therefore needs arguments of one dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wdsr_fast.kernels.conv3x3 import conv3x3_forward, conv3x3_weight_grad
from wdsr_fast.kernels.pointwise_chain import pointwise_chain_backward, pointwise_chain_forward
from wdsr_fast.ops._common import adjoint_3x3, check_block_input, check_like, check_runnable

__all__ = ["wdsr_b_block"]


def _check_arguments(
    x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, w3: Tensor, b3: Tensor | None
) -> None:
    """Raise ValueError naming the first argument of wrong rank, shape, dtype or device."""
    c = check_block_input(x)
    if w1.dim() != 4 or tuple(w1.shape[1:]) != (c, 1, 1) or w1.shape[0] < 1:
        raise ValueError(f"w1: expected shape (E, {c}, 1, 1), got {tuple(w1.shape)}")
    e = w1.shape[0]
    if w2.dim() != 4 or tuple(w2.shape[1:]) != (e, 1, 1) or w2.shape[0] < 1:
        raise ValueError(f"w2: expected shape (L, {e}, 1, 1), got {tuple(w2.shape)}")
    low = w2.shape[0]
    expected = {
        "w1": (w1, (e, c, 1, 1)),
        "b1": (b1, (e,)),
        "w2": (w2, (low, e, 1, 1)),
        "b2": (b2, (low,)),
        "w3": (w3, (c, low, 3, 3)),
        "b3": (b3, (c,)),
    }
    for name, (t, shape) in expected.items():
        if t is not None:
            check_like(name, t, x, shape)


@torch.library.custom_op("wdsr_fast::wdsr_b_block", mutates_args=())
def _wdsr_b_block(
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    b3: Tensor,
    res_scale: float,
) -> Tensor:
    _check_arguments(x, w1, b1, w2, b2, w3, b3)
    check_runnable(x, "WDSR-B")
    low = pointwise_chain_forward(x, w1, b1, w2, b2)
    return conv3x3_forward(low, w3, b3, residual=x, res_scale=res_scale)


@_wdsr_b_block.register_fake
def _wdsr_b_block_fake(
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    b3: Tensor,
    res_scale: float,
) -> Tensor:
    _check_arguments(x, w1, b1, w2, b2, w3, b3)
    return torch.empty_like(x, memory_format=torch.channels_last)


@torch.library.custom_op("wdsr_fast::wdsr_b_block_backward", mutates_args=())
def _wdsr_b_block_backward(
    grad: Tensor,
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    res_scale: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dx, dw1, db1, dw2, db2, dw3, db3) of the block given grad = dLoss/dout."""
    low = pointwise_chain_forward(x, w1, b1, w2, b2)
    w3_adjoint = adjoint_3x3(w3, res_scale)
    grad_low = conv3x3_forward(grad, w3_adjoint, None)
    dw3, db3 = conv3x3_weight_grad(low, grad)
    del low
    dx, dw1, db1, dw2, db2 = pointwise_chain_backward(x, grad_low, w1, b1, w2, grad_residual=grad)
    dw3 = (dw3 * res_scale).to(x.dtype)
    db3 = (db3 * res_scale).to(x.dtype)
    return dx, dw1, db1, dw2, db2, dw3, db3


@_wdsr_b_block_backward.register_fake
def _wdsr_b_block_backward_fake(
    grad: Tensor,
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    res_scale: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    def like(t: Tensor) -> Tensor:
        return torch.empty(t.shape, dtype=x.dtype, device=x.device)

    return (
        torch.empty_like(x, memory_format=torch.channels_last),
        like(w1),
        like(b1),
        like(w2),
        like(b2),
        like(w3),
        torch.empty((w3.shape[0],), dtype=x.dtype, device=x.device),
    )


def _setup_context(ctx, inputs: tuple, output: Tensor) -> None:
    x, w1, b1, w2, b2, w3, _b3, res_scale = inputs
    ctx.save_for_backward(x, w1, b1, w2, b2, w3)
    ctx.res_scale = res_scale


def _backward(ctx, grad: Tensor) -> tuple:
    x, w1, b1, w2, b2, w3 = ctx.saved_tensors
    grads = _wdsr_b_block_backward(grad, x, w1, b1, w2, b2, w3, ctx.res_scale)
    return (*grads, None)


_wdsr_b_block.register_autograd(_backward, setup_context=_setup_context)


def wdsr_b_block(
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    b3: Tensor,
    res_scale: float,
) -> Tensor:
    """``x + res_scale * (conv3x3(W2 · relu(W1 · x + b1) + b2, W3) + b3)``, fused.

    x: (N, C, H, W), any strides; w1: (E, C, 1, 1); b1: (E,); w2: (L, E, 1, 1); b2: (L,);
    w3: (C, L, 3, 3); b3: (C,). Returns (N, C, H, W) in channels_last memory format. Inside an
    autocast region, the floating arguments are first cast to the autocast dtype.
    """
    args = (x, w1, b1, w2, b2, w3, b3)
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        args = tuple(t.to(dtype) if t.is_floating_point() else t for t in args)
        with torch.autocast(device_type, enabled=False):
            return _wdsr_b_block(*args, float(res_scale))
    return _wdsr_b_block(*args, float(res_scale))
