"""Weight-normalised 2-D convolution with the reference's parameter names, and the one place
that reads weight norm in any of its three forms.

``w = g * v / ||v||``, the norm taken per output channel over (in, kh, kw). ``g`` (out, 1, 1, 1),
``v`` (out, in, kh, kw) and ``bias`` (out,) are plain Parameters named ``weight_g``,
``weight_v`` and ``bias``, as the deprecated ``torch.nn.utils.weight_norm`` hooks name them.
State dicts written with ``torch.nn.utils.parametrizations.weight_norm``
(``parametrizations.weight.original0`` = g, ``original1`` = v) load too.

The folded weight is recomputed on every forward (one small kernel per conv), never cached: a
cache keyed on version counters goes stale under fused optimizers, ``p.data`` writes and numpy
views, and the fold costs little next to the convolution it feeds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _WeightNorm
from torch.nn.utils.weight_norm import WeightNorm

__all__ = ["WeightNormConv2d", "fold_weight_norm", "folded_conv_parameters", "weight_norm_parts"]

_PARAMETRIZATION_KEYS = {
    "parametrizations.weight.original0": "weight_g",
    "parametrizations.weight.original1": "weight_v",
}


def fold_weight_norm(g: Tensor, v: Tensor) -> Tensor:
    """``g * v / ||v||``, the norm over every dimension but the first (``torch._weight_norm``)."""
    return torch._weight_norm(v, g, 0)


class WeightNormConv2d(nn.Module):
    """``conv2d(x, g * v / ||v||, bias, padding)``; x: (N, in, H, W) -> (N, out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.padding = padding
        # Registration order matches the reference's state_dict: bias, weight_g, weight_v.
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.weight_g = nn.Parameter(torch.empty(out_channels, 1, 1, 1))
        self.weight_v = nn.Parameter(
            torch.empty(out_channels, in_channels, kernel_size, kernel_size)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Conv2d's default initialisation of (v, bias), then g = ||v|| as weight_norm does."""
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size * self.kernel_size)
        nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            self.weight_g.copy_(
                torch.linalg.vector_norm(self.weight_v, dim=(1, 2, 3), keepdim=True)
            )

    def weight(self) -> Tensor:
        """The effective weight ``g * v / ||v||`` (out, in, k, k) of the current parameters."""
        return fold_weight_norm(self.weight_g, self.weight_v)

    def forward(self, x: Tensor) -> Tensor:
        for name in ("weight_g", "weight_v", "bias"):
            device = getattr(self, name).device
            if device != x.device:  # conv2d would return an uninitialised tensor for meta ones
                raise ValueError(f"{name}: expected device {x.device} (that of x), got {device}")
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        for old, new in _PARAMETRIZATION_KEYS.items():
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"padding={self.padding}"
        )


def weight_norm_parts(module: nn.Module) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(g, v, bias)`` of a weight-normalised conv with a bias, else None.

    Three forms are read: :class:`WeightNormConv2d`, and ``nn.Conv2d`` with the
    ``torch.nn.utils.weight_norm`` hook (``weight_g``, ``weight_v``) or with
    ``torch.nn.utils.parametrizations.weight_norm`` (``original0`` = g, ``original1`` = v), in
    both cases normalised over dim 0's complement (``dim=0``, the only form the reference uses).
    """
    if isinstance(module, WeightNormConv2d):
        return module.weight_g, module.weight_v, module.bias
    if not isinstance(module, nn.Conv2d) or module.bias is None:
        return None
    if parametrize.is_parametrized(module, "weight"):
        chain = module.parametrizations.weight
        if len(chain) == 1 and isinstance(chain[0], _WeightNorm) and chain[0].dim == 0:
            return chain.original0, chain.original1, module.bias
        return None
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm) and hook.name == "weight" and hook.dim == 0:
            return module.weight_g, module.weight_v, module.bias
    return None


def folded_conv_parameters(layers: nn.Sequential) -> list[Tensor]:
    """``[w1, b1, w2, b2, ...]``: the folded weight and the bias of every weight-normalised conv
    of ``layers``, in order (other layers are skipped)."""
    params: list[Tensor] = []
    for module in layers:
        parts = weight_norm_parts(module)
        if parts is not None:
            g, v, bias = parts
            params += [fold_weight_norm(g, v), bias]
    return params
