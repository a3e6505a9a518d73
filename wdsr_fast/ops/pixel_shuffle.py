"""The extension's pixel-shuffle ops: fake implementations, autograd formulas, typed wrappers.

``torch.ops.wdsr_fast.pixel_shuffle``, ``pixel_unshuffle`` and ``shuffle_add_affine`` have
their schemas and CPU/CUDA kernels in the C++ extension ``wdsr_fast._C`` (``csrc/``). This
module adds what PyTorch takes from Python: fake (meta) implementations, so ``torch.compile``
and ``torch.export`` trace the ops, and autograd formulas. Importing it loads the extension.

Shapes (``*``: any leading dimensions; inputs have rank >= 3)::

    pixel_shuffle(x, r):       (*, C*r*r, H, W) -> (*, C, H*r, W*r)
    pixel_unshuffle(x, r):     (*, C, H*r, W*r) -> (*, C*r*r, H, W)
    shuffle_add_affine(a, b, r, scale, shift):
        a, b (*, C*r*r, H, W), shift (C,) -> (*, C, H*r, W*r)
        out[..., c, h*r+i, w*r+j] = (a[..., c*r*r + i*r + j, h, w] + b[same]) * scale + shift[c]

Output dtype: the input's (``a``'s). ``shift`` may have any floating dtype; the sum is computed
in float32 (float64 for float64 inputs) and rounded to the output dtype once. Output memory
format: channels_last when the input (``a``) is 4-D, channels_last-contiguous and not
contiguous; contiguous otherwise. Supported dtypes: float16, bfloat16, float32, float64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from wdsr_fast.extension import extension, extension_unavailable_reason

__all__ = [
    "EXTENSION_AVAILABLE",
    "output_memory_format",
    "pixel_shuffle",
    "pixel_unshuffle",
    "shuffle_add_affine",
]

EXTENSION_AVAILABLE: bool = extension() is not None


def output_memory_format(x: Tensor) -> torch.memory_format:
    """The ops' output memory format for input ``x`` (the same rule as the C++ kernels)."""
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.channels_last
    return torch.contiguous_format


def _ops() -> torch._ops._OpNamespace:
    if not EXTENSION_AVAILABLE:
        raise RuntimeError(
            f"wdsr_fast: {extension_unavailable_reason(torch.device('cpu'))}; rebuild the "
            "package with `pip install --no-build-isolation -e .`"
        )
    return torch.ops.wdsr_fast


def pixel_shuffle(x: Tensor, r: int) -> Tensor:
    """``out[..., c, h*r+i, w*r+j] = x[..., c*r*r + i*r + j, h, w]``: (*, C*r*r, H, W) ->
    (*, C, H*r, W*r); bit-identical to ``torch.nn.functional.pixel_shuffle``."""
    return _ops().pixel_shuffle(x, r)


def pixel_unshuffle(x: Tensor, r: int) -> Tensor:
    """``out[..., c*r*r + i*r + j, h, w] = x[..., c, h*r+i, w*r+j]``: (*, C, H*r, W*r) ->
    (*, C*r*r, H, W); bit-identical to ``torch.nn.functional.pixel_unshuffle``."""
    return _ops().pixel_unshuffle(x, r)


def shuffle_add_affine(a: Tensor, b: Tensor, r: int, scale: float, shift: Tensor) -> Tensor:
    """``out[..., c, h*r+i, w*r+j] = (a[..., c*r*r + i*r + j, h, w] + b[same]) * scale +
    shift[c]``, in one pass: a, b (*, C*r*r, H, W), shift (C,) -> (*, C, H*r, W*r)."""
    return _ops().shuffle_add_affine(a, b, r, scale, shift)


def _shuffled_sizes(x: Tensor, r: int) -> list:
    torch._check(r >= 1, lambda: f"r must be >= 1, got {r}")
    torch._check(x.dim() >= 3, lambda: f"input must have rank >= 3, got shape {tuple(x.shape)}")
    channels, height, width = x.shape[-3:]
    torch._check(
        channels % (r * r) == 0,
        lambda: f"channels {channels} (dim -3) are not divisible by r*r = {r * r}",
    )
    return [*x.shape[:-3], channels // (r * r), height * r, width * r]


def _unshuffled_sizes(x: Tensor, r: int) -> list:
    torch._check(r >= 1, lambda: f"r must be >= 1, got {r}")
    torch._check(x.dim() >= 3, lambda: f"x must have rank >= 3, got shape {tuple(x.shape)}")
    channels, height, width = x.shape[-3:]
    torch._check(
        height % r == 0 and width % r == 0,
        lambda: f"height and width {height}x{width} are not divisible by r = {r}",
    )
    return [*x.shape[:-3], channels * r * r, height // r, width // r]


def _empty_like_layout(x: Tensor, sizes: list) -> Tensor:
    return torch.empty(sizes, dtype=x.dtype, device=x.device, memory_format=output_memory_format(x))


def _save_factor(ctx, inputs: tuple, output: Tensor) -> None:
    ctx.r = inputs[1]


def _pixel_shuffle_backward(ctx, grad: Tensor) -> tuple:
    return torch.ops.wdsr_fast.pixel_unshuffle(grad, ctx.r), None


def _pixel_unshuffle_backward(ctx, grad: Tensor) -> tuple:
    return torch.ops.wdsr_fast.pixel_shuffle(grad, ctx.r), None


def _save_affine(ctx, inputs: tuple, output: Tensor) -> None:
    _, _, ctx.r, ctx.scale, shift = inputs
    ctx.shift_dtype = shift.dtype


def _shuffle_add_affine_backward(ctx, grad: Tensor) -> tuple:
    """d/da = d/db = pixel_unshuffle(grad * scale); d/dshift[c] = sum of grad over channel c."""
    grad_ab = None
    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
        grad_ab = torch.ops.wdsr_fast.pixel_unshuffle(grad * ctx.scale, ctx.r)
    grad_shift = None
    if ctx.needs_input_grad[4]:
        channel_dim = grad.dim() - 3
        dims = [d for d in range(grad.dim()) if d != channel_dim]
        grad_shift = grad.sum(dim=dims, dtype=ctx.shift_dtype)
    return grad_ab, grad_ab, None, None, grad_shift


if EXTENSION_AVAILABLE:

    @torch.library.register_fake("wdsr_fast::pixel_shuffle")
    def _pixel_shuffle_fake(x: Tensor, r: int) -> Tensor:
        return _empty_like_layout(x, _shuffled_sizes(x, r))

    @torch.library.register_fake("wdsr_fast::pixel_unshuffle")
    def _pixel_unshuffle_fake(x: Tensor, r: int) -> Tensor:
        return _empty_like_layout(x, _unshuffled_sizes(x, r))

    @torch.library.register_fake("wdsr_fast::shuffle_add_affine")
    def _shuffle_add_affine_fake(
        a: Tensor, b: Tensor, r: int, scale: float, shift: Tensor
    ) -> Tensor:
        torch._check(b.shape == a.shape, lambda: f"b must have a's shape {tuple(a.shape)}")
        return _empty_like_layout(a, _shuffled_sizes(a, r))

    torch.library.register_autograd(
        "wdsr_fast::pixel_shuffle", _pixel_shuffle_backward, setup_context=_save_factor
    )
    torch.library.register_autograd(
        "wdsr_fast::pixel_unshuffle", _pixel_unshuffle_backward, setup_context=_save_factor
    )
    torch.library.register_autograd(
        "wdsr_fast::shuffle_add_affine", _shuffle_add_affine_backward, setup_context=_save_affine
    )
