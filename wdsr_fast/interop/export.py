"""A plain-PyTorch copy of a WDSR model, for ``torch.export``, ONNX and other tools.

:func:`to_plain_module` folds each weight norm into an ordinary ``nn.Conv2d`` weight
(``w = g * v / ||v||``) and rebuilds the network from ``nn.Conv2d``, ``nn.ReLU`` and
``nn.PixelShuffle`` alone — no custom ops, no extension ops — computing the same function::

    x = (x - rgb_mean * rgb_range) / (rgb_std * rgb_range)
    y = PixelShuffle(tail(body(head(x)))) + PixelShuffle(skip(x))
    out = y * (rgb_std * rgb_range) + rgb_mean * rgb_range

with each block ``x + res_scale * body(x)``. The copy keeps the module tree (``head.0``,
``body.{i}.body.{j}``, ``tail.0``, ``skip.0``), so its keys are the reference's with ``weight``
in place of ``weight_g`` / ``weight_v``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from wdsr_fast.nn.models import WDSRA, WDSRB
from wdsr_fast.nn.weight_norm import WeightNormConv2d

__all__ = ["PlainResidualBlock", "PlainWDSR", "to_plain_module"]


def _plain_conv(conv: WeightNormConv2d) -> nn.Conv2d:
    """An ``nn.Conv2d`` holding copies of ``conv``'s folded weight and bias (same dtype, device)."""
    weight = conv.weight_v
    plain = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        padding=conv.padding,
        device=weight.device,
        dtype=weight.dtype,
    )
    with torch.no_grad():
        plain.weight.copy_(conv.weight())
        plain.bias.copy_(conv.bias)
    return plain


def _plain_sequential(sequential: nn.Sequential) -> nn.Sequential:
    """``sequential`` with every WeightNormConv2d folded and every ReLU out of place."""
    layers = []
    for layer in sequential:
        if isinstance(layer, WeightNormConv2d):
            layers.append(_plain_conv(layer))
        elif isinstance(layer, nn.ReLU):
            layers.append(nn.ReLU())
        elif isinstance(layer, nn.PixelShuffle):
            layers.append(nn.PixelShuffle(layer.upscale_factor))
        else:
            raise TypeError(f"cannot export layer of type {type(layer).__name__}")
    return nn.Sequential(*layers)


class PlainResidualBlock(nn.Module):
    """``out = x + res_scale * body(x)``; body an ``nn.Sequential`` of plain layers."""

    def __init__(self, body: nn.Sequential, res_scale: float):
        super().__init__()
        self.body = body
        self.res_scale = float(res_scale)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.body(x)

    def extra_repr(self) -> str:
        return f"res_scale={self.res_scale}"


class PlainWDSR(nn.Module):
    """WDSR from plain layers: (N, n_colors, H, W) -> (N, n_colors, H*scale, W*scale).

    ``shift`` is the buffer ``rgb_mean * rgb_range`` (1, n_colors, 1, 1) and ``spread`` the
    float ``rgb_std * rgb_range``.
    """

    def __init__(
        self,
        head: nn.Sequential,
        body: nn.Sequential,
        tail: nn.Sequential,
        skip: nn.Sequential,
        shift: Tensor,
        spread: float,
    ):
        super().__init__()
        self.head, self.body, self.tail, self.skip = head, body, tail, skip
        self.register_buffer("shift", shift)
        self.spread = float(spread)

    def forward(self, x: Tensor) -> Tensor:
        x = (x - self.shift) / self.spread
        y = self.tail(self.body(self.head(x))) + self.skip(x)
        return y * self.spread + self.shift


def to_plain_module(model: WDSRA | WDSRB) -> PlainWDSR:
    """A plain-PyTorch copy of ``model`` with weight norm folded, in eval mode.

    The copy holds its own tensors (same dtype and device); ``model`` is left as it is.
    """
    if not isinstance(model, WDSRA | WDSRB):
        raise TypeError(f"model must be a WDSRA or WDSRB, got {type(model).__name__}")
    blocks = [
        PlainResidualBlock(_plain_sequential(block.body), block.res_scale) for block in model.body
    ]
    shift = (model.rgb_mean * model.rgb_range).to(model.head[0].weight_v.dtype).clone()
    plain = PlainWDSR(
        _plain_sequential(model.head),
        nn.Sequential(*blocks),
        _plain_sequential(model.tail),
        _plain_sequential(model.skip),
        shift,
        model.rgb_std * model.rgb_range,
    )
    return plain.eval()
