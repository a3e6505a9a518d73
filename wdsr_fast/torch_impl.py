"""Plain-PyTorch implementations of the ops: the ``"torch"`` backend (any device and dtype).

Each function computes what its fused counterpart computes (:mod:`wdsr_fast.functional` picks
one of the two) with standard PyTorch ops, so autograd, autocast and ``torch.compile`` treat
it as they treat any PyTorch code.

CPU inference (float32, no gradient needed, outside autocast and ``torch.compile``) runs each
residual block as one op of the C++ extension (:mod:`wdsr_fast.ops.cpu_blocks`): threads take
bands of image rows and compute the whole block on them row by row, with the wide and low-rank
activations in their cache and oneDNN's matrix-product micro-kernel run single-threaded; a
thread that runs out of rows takes half of another's, so a block is one parallel region with no
barrier inside and a busy core slows it only in proportion. Its outputs come from a pool that
keeps the last two freed block outputs of 4 MiB or more for the next blocks (no page faults on
large images). Without the extension the WDSR-B block runs its pointwise chain as chunked
matrix products (:func:`pointwise_chain_chunked`), so the wide activation stays in cache instead
of being written out and read back.

Every tensor argument must be on the first one's device (ValueError naming the argument
otherwise): PyTorch's own convolution returns an uninitialised CPU tensor for a CPU input and
a meta weight instead of refusing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from wdsr_fast.ops import cpu_blocks

__all__ = [
    "check_devices",
    "pointwise_chain_chunked",
    "shuffle_add_affine",
    "wdsr_a_block",
    "wdsr_b_block",
]

# Pixels per thread in a chunk of the CPU inference path: each thread's share of the wide
# activation (768 KiB for E=192 in float32) stays in its cache between the two matrix products.
CPU_CHUNK_PIXELS_PER_THREAD = 1024


def check_devices(first: str, reference: Tensor, **others: Tensor) -> None:
    """ValueError naming the first of ``others`` that is not on ``reference``'s device."""
    for name, t in others.items():
        if t.device != reference.device:
            raise ValueError(
                f"{name}: expected device {reference.device} (that of {first}), got {t.device}"
            )


def pointwise_chain_chunked(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """``W2 · relu(W1 · x + b1) + b2`` per pixel, as matrix products over chunks of pixels.

    x: (N, C, H, W); w1: (E, C, 1, 1); w2: (L, E, 1, 1), all of one dtype. Returns (N, L, H, W)
    channels_last. No autograd support: the inference path of the torch backend on CPU.
    """
    n, c, h, w = x.shape
    wide_channels, low_channels = w1.shape[0], w2.shape[0]
    pixels = x.permute(0, 2, 3, 1).reshape(-1, c)
    w1_t = w1.view(wide_channels, c).t().contiguous()
    w2_t = w2.view(low_channels, wide_channels).t().contiguous()
    chunk_pixels = CPU_CHUNK_PIXELS_PER_THREAD * torch.get_num_threads()
    low = torch.empty(pixels.shape[0], low_channels, dtype=x.dtype, device=x.device)
    wide = torch.empty(min(chunk_pixels, pixels.shape[0]), wide_channels, dtype=x.dtype)
    for start in range(0, pixels.shape[0], chunk_pixels):
        stop = min(start + chunk_pixels, pixels.shape[0])
        chunk = wide[: stop - start]
        torch.addmm(b1, pixels[start:stop], w1_t, out=chunk).relu_()
        torch.addmm(b2, chunk, w2_t, out=low[start:stop])
    return low.view(n, h, w, low_channels).permute(0, 3, 1, 2)


def _fused_cpu_block_applies(x: Tensor, *weights: Tensor) -> bool:
    """The extension's fused blocks serve float32 CPU inference outside autocast and
    torch.compile (which traces the plain ops): they have no backward."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and all(t.dtype == torch.float32 for t in weights)
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in (x, *weights)))
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and cpu_blocks.available()
    )


def _chunked_chain_applies(x: Tensor, *weights: Tensor) -> bool:
    """The chunked chain serves CPU inference outside autocast and torch.compile (which fuses
    on its own): no autograd through it, and ``addmm(out=)`` is not autocast."""
    return (
        x.device.type == "cpu"
        and not (torch.is_grad_enabled() and any(t.requires_grad for t in (x, *weights)))
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
    )


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
    """``x + res_scale * (conv3x3(W2 · relu(W1 · x + b1) + b2) + b3)`` in plain PyTorch ops.

    x: (N, C, H, W); w1: (E, C, 1, 1); w2: (L, E, 1, 1); w3: (C, L, 3, 3). Returns (N, C, H, W),
    channels_last from the fused CPU op.
    """
    check_devices("x", x, w1=w1, b1=b1, w2=w2, b2=b2, w3=w3, b3=b3)
    if _fused_cpu_block_applies(x, w1, b1, w2, b2, w3, b3):
        return torch.ops.wdsr_fast.wdsr_b_block_cpu(x, w1, b1, w2, b2, w3, b3, res_scale)
    if _chunked_chain_applies(x, w1, b1, w2, b2):
        low = pointwise_chain_chunked(x, w1, b1, w2, b2)
    else:
        low = F.conv2d(F.relu(F.conv2d(x, w1, b1), inplace=True), w2, b2)
    return torch.add(x, F.conv2d(low, w3, b3, padding=1), alpha=res_scale)


def wdsr_a_block(
    x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, res_scale: float
) -> Tensor:
    """``x + res_scale * (conv3x3(relu(conv3x3(x, w1) + b1), w2) + b2)`` in plain PyTorch ops.

    x: (N, C, H, W); w1: (F, C, 3, 3); w2: (C, F, 3, 3). Returns (N, C, H, W), channels_last
    from the fused CPU op.
    """
    check_devices("x", x, w1=w1, b1=b1, w2=w2, b2=b2)
    if _fused_cpu_block_applies(x, w1, b1, w2, b2):
        return torch.ops.wdsr_fast.wdsr_a_block_cpu(x, w1, b1, w2, b2, res_scale)
    wide = F.relu(F.conv2d(x, w1, b1, padding=1), inplace=True)
    return torch.add(x, F.conv2d(wide, w2, b2, padding=1), alpha=res_scale)


def shuffle_add_affine(a: Tensor, b: Tensor, r: int, scale: float, shift: Tensor) -> Tensor:
    """``out[n, c, h*r+i, w*r+j] = (a[n, c*r*r + i*r + j, h, w] + b[same]) * scale + shift[c]``;
    a, b (N, C*r*r, H, W), shift (C,) -> (N, C, H*r, W*r), in a's dtype."""
    check_devices("a", a, b=b, shift=shift)
    return (F.pixel_shuffle(a + b, r) * scale + shift.view(-1, 1, 1)).to(a.dtype)
