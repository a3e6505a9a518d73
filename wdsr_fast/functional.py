"""The functional layer: each op of the network with a ``backend=`` choice.

For every op the plain-PyTorch implementation (:mod:`wdsr_fast.torch_impl`) and the fused
custom op (``torch.ops.wdsr_fast.*``, registered by :mod:`wdsr_fast.ops`) sit side by side;
:func:`wdsr_fast.dispatch.resolve_backend` picks one per call from the backend asked for and
the tensors' device and dtype. The modules of :mod:`wdsr_fast.nn` call these functions.
"""

from __future__ import annotations

import torch
from torch import Tensor

import wdsr_fast.ops  # noqa: F401  (registers the custom ops these functions call)
from wdsr_fast import torch_impl
from wdsr_fast.dispatch import TAIL_OP, resolve_backend

__all__ = ["shuffle_add_affine", "wdsr_a_block", "wdsr_b_block"]


def wdsr_b_block(
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    b3: Tensor,
    res_scale: float,
    backend: str = "auto",
) -> Tensor:
    """WDSR-B residual block: ``x + res_scale * (conv3x3(W2 · relu(W1 · x + b1) + b2, W3) + b3)``.

    x: (N, C, H, W); w1: (E, C, 1, 1), b1: (E,); w2: (L, E, 1, 1), b2: (L,); w3: (C, L, 3, 3),
    b3: (C,), the effective (weight-normalised) weights. Returns (N, C, H, W); the fused op
    returns it in channels_last memory format.
    """
    args = (x, w1, b1, w2, b2, w3, b3, float(res_scale))
    if resolve_backend(backend, "wdsr_b_block", x.device, x.dtype) == "triton":
        return torch.ops.wdsr_fast.wdsr_b_block(*args)
    return torch_impl.wdsr_b_block(*args)


def wdsr_a_block(
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    res_scale: float,
    backend: str = "auto",
) -> Tensor:
    """WDSR-A residual block: ``x + res_scale * (conv3x3(relu(conv3x3(x, w1) + b1), w2) + b2)``.

    x: (N, C, H, W); w1: (F, C, 3, 3), b1: (F,); w2: (C, F, 3, 3), b2: (C,), the effective
    weights. Returns (N, C, H, W); the fused op returns it in channels_last memory format.
    """
    args = (x, w1, b1, w2, b2, float(res_scale))
    if resolve_backend(backend, "wdsr_a_block", x.device, x.dtype) == "triton":
        return torch.ops.wdsr_fast.wdsr_a_block(*args)
    return torch_impl.wdsr_a_block(*args)


def shuffle_add_affine(
    a: Tensor, b: Tensor, r: int, scale: float, shift: Tensor, backend: str = "auto"
) -> Tensor:
    """The WDSR tail: ``out[n, c, h*r+i, w*r+j] = (a[n, c*r*r + i*r + j, h, w] + b[same]) *
    scale + shift[c]``, the two pixel shuffles, their sum and the de-normalisation in one pass.

    a, b (N, C*r*r, H, W), shift (C,) -> (N, C, H*r, W*r) in a's dtype; the fused op (the
    C++/CUDA extension) writes channels_last output for a channels_last ``a``.
    """
    if resolve_backend(backend, TAIL_OP, a.device, a.dtype) == "triton":
        return torch.ops.wdsr_fast.shuffle_add_affine(a, b, r, float(scale), shift)
    return torch_impl.shuffle_add_affine(a, b, r, scale, shift)
