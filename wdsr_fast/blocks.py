"""The WDSR residual blocks (``body.{i}`` of the models), dispatching to a backend.

Each block keeps the reference's module tree (``body.0`` conv, ``body.1`` ReLU, ``body.2`` conv
[, ``body.3`` conv]) and parameter names, and computes ``out = x + res_scale * body(x)`` with
either plain PyTorch ops (backend ``"torch"``) or one fused custom op (backend ``"triton"``); see
:mod:`wdsr_fast.backend`. Both receive the effective weight-normalised weights, so autograd
carries gradients on into ``weight_g`` and ``weight_v``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wdsr_fast.backend import check_backend, resolve_backend
from wdsr_fast.weight_norm import WeightNormConv2d

__all__ = [
    "ResidualBlock",
    "WDSRABlock",
    "WDSRBBlock",
    "pointwise_chain_chunked",
    "wdsr_a_block_torch",
    "wdsr_b_block_torch",
]


# Pixels per thread in a chunk of the CPU inference path: each thread's share of the wide
# activation (768 KiB for E=192 in float32) stays in its cache between the two matrix products.
CPU_CHUNK_PIXELS_PER_THREAD = 1024


def pointwise_chain_chunked(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    """``W2 · relu(W1 · x + b1) + b2`` per pixel, as matrix products over chunks of pixels.

    x: (N, C, H, W); w1: (E, C, 1, 1); w2: (L, E, 1, 1). Returns (N, L, H, W) channels_last.
    No autograd support: the inference path of the torch backend on CPU, where it keeps the
    wide activation in cache instead of writing and re-reading all of it.
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


def _needs_autograd(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def wdsr_b_block_torch(
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

    x: (N, C, H, W); w1: (E, C, 1, 1); w2: (L, E, 1, 1); w3: (C, L, 3, 3). Returns (N, C, H, W).
    On CPU without autograd (and outside torch.compile, which fuses on its own) the pointwise
    chain runs chunk by chunk (:func:`pointwise_chain_chunked`).
    """
    if (
        x.device.type == "cpu"
        and not _needs_autograd(x, w1, b1, w2, b2)
        and not torch.compiler.is_compiling()
    ):
        low = pointwise_chain_chunked(x, w1, b1, w2, b2)
    else:
        low = F.conv2d(F.relu(F.conv2d(x, w1, b1), inplace=True), w2, b2)
    return torch.add(x, F.conv2d(low, w3, b3, padding=1), alpha=res_scale)


def wdsr_a_block_torch(
    x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, res_scale: float
) -> Tensor:
    """``x + res_scale * (conv3x3(relu(conv3x3(x, w1) + b1), w2) + b2)`` in plain PyTorch ops.

    x: (N, C, H, W); w1: (F, C, 3, 3); w2: (C, F, 3, 3). Returns (N, C, H, W).
    """
    wide = F.relu(F.conv2d(x, w1, b1, padding=1), inplace=True)
    return torch.add(x, F.conv2d(wide, w2, b2, padding=1), alpha=res_scale)


# The fused ops import triton, so they are imported on first use. A local import statement (not
# importlib, which torch.compile refuses to trace) keeps them usable under fullgraph compiles.
def _fused_wdsr_b_block(*args: Tensor | float) -> Tensor:
    from wdsr_fast.ops.wdsr_b_block import wdsr_b_block

    return wdsr_b_block(*args)


def _fused_wdsr_a_block(*args: Tensor | float) -> Tensor:
    from wdsr_fast.ops.wdsr_a_block import wdsr_a_block

    return wdsr_a_block(*args)


class ResidualBlock(nn.Module):
    """``out = x + res_scale * body(x)``, body a Sequential of WeightNormConv2d and one ReLU."""

    def __init__(self, body: nn.Sequential, res_scale: float, backend: str):
        super().__init__()
        self.body = body
        self.res_scale = float(res_scale)
        self.backend = check_backend(backend)

    # Set by each block type: its plain-PyTorch function, and a function calling its fused op.
    torch_block: Callable[..., Tensor]
    fused_block: Callable[..., Tensor]

    def effective_parameters(self) -> list[Tensor]:
        """``[w1, b1, w2, b2, ...]``: each conv's folded weight and its bias, in body order."""
        params: list[Tensor] = []
        for module in self.body:
            if isinstance(module, WeightNormConv2d):
                params += [module.weight(), module.bias]
        return params

    def forward(self, x: Tensor) -> Tensor:
        params = self.effective_parameters()
        if resolve_backend(self.backend, x.device) == "triton":
            return self.fused_block(x, *params, self.res_scale)
        return self.torch_block(x, *params, self.res_scale)

    def extra_repr(self) -> str:
        return f"res_scale={self.res_scale}, backend={self.backend!r}"


class WDSRBBlock(ResidualBlock):
    """WDSR-B block: 1x1 C -> C*expand, ReLU, 1x1 -> int(C*linear), 3x3 -> C (padding 1).

    Input and output (N, C, H, W).
    """

    torch_block = staticmethod(wdsr_b_block_torch)
    fused_block = staticmethod(_fused_wdsr_b_block)

    def __init__(
        self,
        n_feats: int,
        expand: int = 6,
        linear: float = 0.8,
        res_scale: float = 1.0,
        backend: str = "auto",
    ):
        wide, low = n_feats * expand, int(n_feats * linear)
        body = nn.Sequential(
            WeightNormConv2d(n_feats, wide, 1, padding=0),
            nn.ReLU(inplace=True),
            WeightNormConv2d(wide, low, 1, padding=0),
            WeightNormConv2d(low, n_feats, 3, padding=1),
        )
        super().__init__(body, res_scale, backend)


class WDSRABlock(ResidualBlock):
    """WDSR-A block: 3x3 C -> block_feats, ReLU, 3x3 -> C (padding 1).

    Input and output (N, C, H, W).
    """

    torch_block = staticmethod(wdsr_a_block_torch)
    fused_block = staticmethod(_fused_wdsr_a_block)

    def __init__(
        self, n_feats: int, block_feats: int, res_scale: float = 1.0, backend: str = "auto"
    ):
        body = nn.Sequential(
            WeightNormConv2d(n_feats, block_feats, 3, padding=1),
            nn.ReLU(inplace=True),
            WeightNormConv2d(block_feats, n_feats, 3, padding=1),
        )
        super().__init__(body, res_scale, backend)
