"""WDSR-A and WDSR-B super-resolution models, drop-in compatible with the reference.

Module tree, parameter names and ``state_dict`` keys are the reference's (``head.0.weight_g``,
``body.3.body.2.weight_v``, ``tail.0.bias``, ``skip.0.weight_v``, ...), so its checkpoints load
as they are. Inputs and outputs are RGB in ``[0, rgb_range]``:

    x = (x - rgb_mean * rgb_range) / (rgb_std * rgb_range)
    y = PixelShuffle(tail(body(head(x)))) + PixelShuffle(skip(x))
    out = y * (rgb_std * rgb_range) + rgb_mean * rgb_range

The reference's values are ``rgb_range=255``, ``rgb_std=0.5`` (its ``/ 127.5``) and DIV2K's mean.

Input (N, n_colors, H, W) floating point; output (N, n_colors, H*scale, W*scale) in
channels_last memory format, in the input's dtype; under ``torch.autocast`` in the autocast
dtype (the blocks return it, and the tail keeps the dtype of its input). The residual blocks
run on the backend chosen by ``backend`` (see :mod:`wdsr_fast.dispatch`); the pixel shuffles,
skip add and de-normalisation are one fused op
(:func:`wdsr_fast.functional.shuffle_add_affine`), on the same backend.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor, nn

from wdsr_fast.dispatch import check_backend
from wdsr_fast.functional import shuffle_add_affine
from wdsr_fast.nn.blocks import ResidualBlock, WDSRABlock, WDSRBBlock
from wdsr_fast.nn.weight_norm import WeightNormConv2d

__all__ = ["DIV2K_RGB_MEAN", "WDSRA", "WDSRB"]

# The mean RGB colour of the DIV2K training images, the reference's default ``rgb_mean``.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)

_Model = TypeVar("_Model", bound="_WDSR")


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _finite(value: float, name: str, positive: bool = False) -> float:
    """``value`` as a float; ValueError naming ``name`` unless it is a finite real number
    (and > 0 when ``positive``)."""
    try:
        number = float(value) if not isinstance(value, str | bytes | bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(number) or (positive and not number > 0):
        kind = "a finite positive" if positive else "a finite"
        raise ValueError(f"{name} must be {kind} number, got {value!r}")
    return number


class _WDSR(nn.Module):
    """Head conv 3x3, ``n_resblocks`` residual blocks, tail conv 3x3 and 5x5 skip conv, each
    followed by PixelShuffle(scale)."""

    def __init__(
        self,
        scale: int,
        n_resblocks: int,
        n_feats: int,
        n_colors: int,
        rgb_mean: Sequence[float],
        rgb_range: float,
        rgb_std: float,
        make_block: Callable[[], ResidualBlock],
        backend: str,
    ):
        super().__init__()
        self._tail_backend = check_backend(backend)
        self.scale = _positive_int(scale, "scale")
        self.n_colors = _positive_int(n_colors, "n_colors")
        self.n_feats = _positive_int(n_feats, "n_feats")
        if isinstance(n_resblocks, bool) or not isinstance(n_resblocks, int) or n_resblocks < 0:
            raise ValueError(f"n_resblocks must be >= 0, got {n_resblocks!r}")
        if len(rgb_mean) != n_colors:
            raise ValueError(f"rgb_mean must have n_colors={n_colors} values, got {len(rgb_mean)}")
        rgb_mean = [_finite(value, "rgb_mean") for value in rgb_mean]
        self.rgb_range = _finite(rgb_range, "rgb_range", positive=True)
        self.rgb_std = _finite(rgb_std, "rgb_std", positive=True)
        self.register_buffer(
            "rgb_mean",
            torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1),
            persistent=False,
        )
        out_feats = scale * scale * n_colors
        self.head = nn.Sequential(WeightNormConv2d(n_colors, n_feats, 3, padding=1))
        self.body = nn.Sequential(*[make_block() for _ in range(n_resblocks)])
        self.tail = nn.Sequential(
            WeightNormConv2d(n_feats, out_feats, 3, padding=1), nn.PixelShuffle(scale)
        )
        self.skip = nn.Sequential(
            WeightNormConv2d(n_colors, out_feats, 5, padding=2), nn.PixelShuffle(scale)
        )

    # Fields of the reference namespace, beyond the shared ones, that the constructor takes.
    reference_args: tuple[str, ...] = ()

    @classmethod
    def from_args(cls: type[_Model], args: argparse.Namespace, backend: str = "auto") -> _Model:
        """Build from the reference trainer's argparse namespace (``args.scale`` is a list;
        ``n_resblocks``, ``n_feats``, ``res_scale``, ``n_colors``, ``r_mean``, ``g_mean``,
        ``b_mean``, and ``block_feats`` for WDSR-A)."""
        return cls(
            scale=args.scale[0],
            n_resblocks=args.n_resblocks,
            n_feats=args.n_feats,
            res_scale=args.res_scale,
            n_colors=args.n_colors,
            rgb_mean=(args.r_mean, args.g_mean, args.b_mean),
            backend=backend,
            **{name: getattr(args, name) for name in cls.reference_args},
        )

    @property
    def backend(self) -> str:
        """The backend of the residual blocks and the tail (``"mixed"`` when they differ);
        setting it switches them all."""
        backends = {block.backend for block in self.body} | {self._tail_backend}
        return backends.pop() if len(backends) == 1 else "mixed"

    @backend.setter
    def backend(self, value: str) -> None:
        self._tail_backend = check_backend(value)
        for block in self.body:
            block.backend = value

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(
                f"x must be 4-D (N, {self.n_colors}, H, W), got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.n_colors:
            raise ValueError(
                f"x must have n_colors={self.n_colors} channels (dim 1), got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        if x.numel() == 0:
            raise ValueError(f"x must not be empty, got shape {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        spread = self.rgb_std * self.rgb_range
        shift = self.rgb_mean.to(x.dtype) * self.rgb_range
        x = ((x - shift) / spread).contiguous(memory_format=torch.channels_last)
        skip = self.skip[0](x)
        features = self.tail[0](self.body(self.head(x)))
        return shuffle_add_affine(
            features, skip, self.scale, spread, shift.flatten(), backend=self._tail_backend
        )


class WDSRB(_WDSR):
    """WDSR-B (wide activation, low-rank 1x1 convs); constructor defaults are the reference's.

    ``WDSRB(scale=2, n_resblocks=16, n_feats=32)`` has 303,604 parameters.
    """

    def __init__(
        self,
        scale: int = 2,
        n_resblocks: int = 16,
        n_feats: int = 32,
        expand: int = 6,
        linear: float = 0.8,
        res_scale: float = 1.0,
        n_colors: int = 3,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        rgb_range: float = 255.0,
        rgb_std: float = 0.5,
        backend: str = "auto",
    ):
        check_backend(backend)
        _positive_int(n_feats, "n_feats")
        _positive_int(expand, "expand")
        _finite(res_scale, "res_scale")
        if int(n_feats * _finite(linear, "linear", positive=True)) < 1:
            raise ValueError(
                f"linear must make int(n_feats * linear) >= 1 (n_feats={n_feats}), got {linear!r}"
            )
        super().__init__(
            scale,
            n_resblocks,
            n_feats,
            n_colors,
            rgb_mean,
            rgb_range,
            rgb_std,
            lambda: WDSRBBlock(n_feats, expand, linear, res_scale, backend),
            backend,
        )
        self.expand, self.linear, self.res_scale = expand, linear, float(res_scale)


class WDSRA(_WDSR):
    """WDSR-A (wide activation, 3x3 convs); constructor defaults are the reference's.

    ``WDSRA(scale=2, n_resblocks=16, n_feats=32, block_feats=128)`` has 1,190,100 parameters.
    """

    reference_args = ("block_feats",)

    def __init__(
        self,
        scale: int = 2,
        n_resblocks: int = 16,
        n_feats: int = 32,
        block_feats: int = 128,
        res_scale: float = 1.0,
        n_colors: int = 3,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        rgb_range: float = 255.0,
        rgb_std: float = 0.5,
        backend: str = "auto",
    ):
        check_backend(backend)
        _positive_int(block_feats, "block_feats")
        _finite(res_scale, "res_scale")
        super().__init__(
            scale,
            n_resblocks,
            n_feats,
            n_colors,
            rgb_mean,
            rgb_range,
            rgb_std,
            lambda: WDSRABlock(n_feats, block_feats, res_scale, backend),
            backend,
        )
        self.block_feats, self.res_scale = block_feats, float(res_scale)
