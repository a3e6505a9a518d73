"""Plain-PyTorch rendition of the authors' WDSR-A and WDSR-B models (JiahuiYu/wdsr_ntire2018).

This is the yardstick the package is tested and benchmarked against, so it follows the
authors' code structure op for op: the deprecated ``torch.nn.utils.weight_norm`` hooks
(state-dict keys ``weight_g``, ``weight_v``, ``bias``), in-place ReLU, ``res += x`` and
``x += s``. The one departure: ``rgb_mean`` follows the input's device instead of the
hard-coded ``.cuda()``, so the reference also runs on CPU.

The constructors take the reference's argparse namespace: ``scale`` (a list), ``n_resblocks``,
``n_feats``, ``res_scale``, ``n_colors``, ``r_mean``, ``g_mean``, ``b_mean`` and, for WDSR-A,
``block_feats``. :func:`make_args` builds such a namespace.

Functional references for one residual block, on effective (already weight-normalised)
weights, are :func:`wdsr_b_block_reference` and :func:`wdsr_a_block_reference`.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wdsr_fast.nn.models import DIV2K_RGB_MEAN

__all__ = [
    "ReferenceWDSRA",
    "ReferenceWDSRB",
    "make_args",
    "wdsr_a_block_reference",
    "wdsr_b_block_reference",
]

def make_args(
    scale: int = 2,
    n_resblocks: int = 16,
    n_feats: int = 32,
    block_feats: int = 128,
    res_scale: float = 1.0,
    n_colors: int = 3,
    rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
) -> argparse.Namespace:
    """An argparse namespace shaped like the one the reference trainer passes to its models."""
    r_mean, g_mean, b_mean = rgb_mean
    return argparse.Namespace(
        scale=[scale],
        n_resblocks=n_resblocks,
        n_feats=n_feats,
        block_feats=block_feats,
        res_scale=res_scale,
        n_colors=n_colors,
        r_mean=r_mean,
        g_mean=g_mean,
        b_mean=b_mean,
    )


def _weight_norm(conv: nn.Conv2d) -> nn.Conv2d:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(conv)


class _ReferenceBlockB(nn.Module):
    """WDSR-B block: 1x1 C->6C, ReLU, 1x1 ->int(0.8C), 3x3 ->C; ``body(x)*res_scale + x``."""

    def __init__(
        self, n_feats: int, kernel_size: int, wn: Callable, act: nn.Module, res_scale: float
    ):
        super().__init__()
        self.res_scale = res_scale
        expand, linear = 6, 0.8
        self.body = nn.Sequential(
            wn(nn.Conv2d(n_feats, n_feats * expand, 1, padding=0)),
            act,
            wn(nn.Conv2d(n_feats * expand, int(n_feats * linear), 1, padding=0)),
            wn(nn.Conv2d(int(n_feats * linear), n_feats, kernel_size, padding=kernel_size // 2)),
        )

    def forward(self, x: Tensor) -> Tensor:
        res = self.body(x) * self.res_scale
        res += x
        return res


class _ReferenceBlockA(nn.Module):
    """WDSR-A block: 3x3 C->block_feats, ReLU, 3x3 ->C; ``out = body(x)*res_scale + x``."""

    def __init__(
        self,
        n_feats: int,
        kernel_size: int,
        block_feats: int,
        wn: Callable,
        res_scale: float,
        act: nn.Module,
    ):
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            wn(nn.Conv2d(n_feats, block_feats, kernel_size, padding=kernel_size // 2)),
            act,
            wn(nn.Conv2d(block_feats, n_feats, kernel_size, padding=kernel_size // 2)),
        )

    def forward(self, x: Tensor) -> Tensor:
        res = self.body(x) * self.res_scale
        res += x
        return res


class _ReferenceWDSR(nn.Module):
    """Head conv, residual body, tail conv + PixelShuffle, 5x5 skip conv + PixelShuffle."""

    def __init__(self, args: argparse.Namespace, make_block: Callable[..., nn.Module]):
        super().__init__()
        self.args = args
        scale = args.scale[0]
        n_feats = args.n_feats
        kernel_size = 3
        act = nn.ReLU(True)
        wn = _weight_norm
        self.rgb_mean = torch.tensor([args.r_mean, args.g_mean, args.b_mean]).view(1, 3, 1, 1)
        self.head = nn.Sequential(wn(nn.Conv2d(args.n_colors, n_feats, 3, padding=1)))
        self.body = nn.Sequential(
            *[make_block(n_feats, kernel_size, wn, act, args) for _ in range(args.n_resblocks)]
        )
        out_feats = scale * scale * args.n_colors
        self.tail = nn.Sequential(
            wn(nn.Conv2d(n_feats, out_feats, 3, padding=1)), nn.PixelShuffle(scale)
        )
        self.skip = nn.Sequential(
            wn(nn.Conv2d(args.n_colors, out_feats, 5, padding=2)), nn.PixelShuffle(scale)
        )

    def forward(self, x: Tensor) -> Tensor:
        mean = self.rgb_mean.to(device=x.device, dtype=x.dtype)
        x = (x - mean * 255) / 127.5
        s = self.skip(x)
        x = self.head(x)
        x = self.body(x)
        x = self.tail(x)
        x += s
        x = x * 127.5 + mean * 255
        return x


class ReferenceWDSRB(_ReferenceWDSR):
    """The authors' WDSR-B ``MODEL(args)``."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(
            args,
            lambda n_feats, k, wn, act, a: _ReferenceBlockB(n_feats, k, wn, act, a.res_scale),
        )


class ReferenceWDSRA(_ReferenceWDSR):
    """The authors' WDSR-A ``MODEL(args)``."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(
            args,
            lambda n_feats, k, wn, act, a: _ReferenceBlockA(
                n_feats, k, a.block_feats, wn, a.res_scale, act
            ),
        )


def wdsr_b_block_reference(
    x: Tensor,
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    b3: Tensor,
    res_scale: float,
) -> Tensor:
    """``x + res_scale * (conv3x3(W2 · relu(W1 · x + b1) + b2) + b3)`` with plain convolutions.

    x: (N, C, H, W); w1: (E, C, 1, 1); w2: (L, E, 1, 1); w3: (C, L, 3, 3); biases per out channel.
    """
    h = F.relu(F.conv2d(x, w1, b1))
    low = F.conv2d(h, w2, b2)
    return x + res_scale * F.conv2d(low, w3, b3, padding=1)


def wdsr_a_block_reference(
    x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, res_scale: float
) -> Tensor:
    """``x + res_scale * (conv3x3(relu(conv3x3(x, w1) + b1), w2) + b2)``.

    x: (N, C, H, W); w1: (F, C, 3, 3); w2: (C, F, 3, 3); biases per output channel.
    """
    h = F.relu(F.conv2d(x, w1, b1, padding=1))
    return x + res_scale * F.conv2d(h, w2, b2, padding=1)
