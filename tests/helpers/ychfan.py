"""Models shaped like the authors' later release (ychfan/wdsr), for the interop tests.

Their residual blocks have no ``res_scale`` attribute (the scale is folded into the
initialisation of the last conv's g) and compute ``x + body(x)``; the model keeps head conv,
blocks and tail conv in one ``body`` Sequential and works on ``[0, 1]`` images minus a mean.
"""

from __future__ import annotations

import argparse
import warnings

import torch
from torch import nn


def weight_norm(conv: nn.Conv2d) -> nn.Conv2d:
    """``torch.nn.utils.weight_norm`` (hook form), its deprecation warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(conv)


class YchfanBlock(nn.Module):
    """WDSR-A block: conv k x k C -> C * width_multiplier, ReLU, conv k x k back to C;
    ``forward(x) = body(x) + x``."""

    def __init__(self, num_residual_units: int, kernel_size: int, width_multiplier: float):
        super().__init__()
        wide = int(num_residual_units * width_multiplier)
        self.body = nn.Sequential(
            weight_norm(nn.Conv2d(num_residual_units, wide, kernel_size, padding=kernel_size // 2)),
            nn.ReLU(True),
            weight_norm(nn.Conv2d(wide, num_residual_units, kernel_size, padding=kernel_size // 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x) + x
        return x


class YchfanBlockB(nn.Module):
    """WDSR-B block: conv 1x1 C -> C * width_multiplier, ReLU, conv 1x1 -> int(C * 0.8),
    conv 3x3 -> C; ``forward(x) = body(x) + x``."""

    def __init__(self, num_residual_units: int, width_multiplier: float):
        super().__init__()
        wide, low = int(num_residual_units * width_multiplier), int(num_residual_units * 0.8)
        self.body = nn.Sequential(
            weight_norm(nn.Conv2d(num_residual_units, wide, 1)),
            nn.ReLU(True),
            weight_norm(nn.Conv2d(wide, low, 1)),
            weight_norm(nn.Conv2d(low, num_residual_units, 3, padding=1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x) + x
        return x


class YchfanWDSR(nn.Module):
    """The single-frame model: ``body`` = head conv, blocks, tail conv; a 5x5 skip conv."""

    def __init__(self, params: argparse.Namespace):
        super().__init__()
        self.image_mean = params.image_mean
        num_inputs = params.num_channels
        num_outputs = params.scale * params.scale * params.num_channels
        units = params.num_residual_units
        body = [weight_norm(nn.Conv2d(num_inputs, units, 3, padding=1))]
        for _ in range(params.num_blocks):
            body.append(YchfanBlock(units, 3, params.width_multiplier))
        body.append(weight_norm(nn.Conv2d(units, num_outputs, 3, padding=1)))
        self.body = nn.Sequential(*body)
        self.skip = nn.Sequential(weight_norm(nn.Conv2d(num_inputs, num_outputs, 5, padding=2)))
        self.shuf = nn.Sequential(nn.PixelShuffle(params.scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x -= self.image_mean
        x = self.body(x) + self.skip(x)
        x = self.shuf(x)
        x += self.image_mean
        return x
