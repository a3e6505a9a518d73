"""Weight-normalised 2-D convolution with the reference's parameter names.

``w = g * v / ||v||``, the norm taken per output channel over (in, kh, kw). ``g`` (out, 1, 1, 1),
``v`` (out, in, kh, kw) and ``bias`` (out,) are plain Parameters named ``weight_g``,
``weight_v`` and ``bias``, as the deprecated ``torch.nn.utils.weight_norm`` hooks name them.
State dicts written with ``torch.nn.utils.parametrizations.weight_norm``
(``parametrizations.weight.original0`` = g, ``original1`` = v) load too.

While the parameters cannot receive gradients (eval under ``torch.no_grad`` or inference
mode, or frozen parameters) the folded weight is computed once and cached; the cache is keyed
on the parameters' storage, dtype and version counters, so an in-place update (an optimizer
step, ``load_state_dict``, ``.to()``) recomputes it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["WeightNormConv2d", "fold_weight_norm"]

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
        self._cache_key: tuple | None = None
        self._cached_weight: Tensor | None = None
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
        """The effective weight ``g * v / ||v||`` (out, in, k, k), cached while it cannot change."""
        g, v = self.weight_g, self.weight_v
        # Under torch.compile the fold is part of the graph: the cache key's data pointers cannot
        # be traced, and a cached tensor would be baked in past parameter updates.
        grads_flow = torch.is_grad_enabled() and (g.requires_grad or v.requires_grad)
        if grads_flow or torch.compiler.is_compiling():
            return fold_weight_norm(g, v)
        key = (g.data_ptr(), v.data_ptr(), g._version, v._version, g.dtype, v.dtype, g.device)
        if key != self._cache_key or self._cached_weight is None:
            with torch.no_grad():
                self._cached_weight = fold_weight_norm(g, v)
            self._cache_key = key
        return self._cached_weight

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        self._cache_key, self._cached_weight = None, None
        return super()._apply(fn, recurse)

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
