"""The WDSR residual blocks (``body.{i}`` of the models).

Each block keeps the reference's module tree (``body.0`` conv, ``body.1`` ReLU, ``body.2`` conv
[, ``body.3`` conv]) and parameter names, and computes ``out = x + res_scale * body(x)``
through the functional layer (:mod:`wdsr_fast.functional`) on the backend it is given (see
:mod:`wdsr_fast.dispatch`). It hands over the effective weight-normalised weights, folded from
its convs' current parameters on every call, so autograd carries gradients on into
``weight_g`` and ``weight_v``. The convs may be :class:`WeightNormConv2d` or ``nn.Conv2d`` with
either of PyTorch's weight norms (:func:`~wdsr_fast.interop.replace.replace_blocks` builds
blocks around foreign bodies).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from wdsr_fast import functional
from wdsr_fast.dispatch import check_backend
from wdsr_fast.nn.weight_norm import WeightNormConv2d, folded_conv_parameters

__all__ = ["ResidualBlock", "WDSRABlock", "WDSRBBlock"]


class ResidualBlock(nn.Module):
    """``out = x + res_scale * body(x)``, body a Sequential of weight-normalised convs and one
    ReLU; ``block_function`` (set by each block type) is its op in the functional layer."""

    block_function: Callable[..., Tensor]

    def __init__(self, body: nn.Sequential, res_scale: float, backend: str):
        super().__init__()
        self.body = body
        self.res_scale = float(res_scale)
        self.backend = check_backend(backend)

    @classmethod
    def around(cls, body: nn.Sequential, res_scale: float, backend: str = "auto") -> ResidualBlock:
        """A block of this type built around an existing ``body``: the very same modules and
        Parameters, whatever form of weight norm its convs use."""
        block = cls.__new__(cls)
        ResidualBlock.__init__(block, body, res_scale, backend)
        return block

    def effective_parameters(self) -> list[Tensor]:
        """``[w1, b1, w2, b2, ...]``: each conv's folded weight and its bias, in body order."""
        return folded_conv_parameters(self.body)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_function(
            x, *self.effective_parameters(), self.res_scale, backend=self.backend
        )

    def extra_repr(self) -> str:
        return f"res_scale={self.res_scale}, backend={self.backend!r}"


class WDSRBBlock(ResidualBlock):
    """WDSR-B block: 1x1 C -> C*expand, ReLU, 1x1 -> int(C*linear), 3x3 -> C (padding 1).

    Input and output (N, C, H, W).
    """

    block_function = staticmethod(functional.wdsr_b_block)

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

    block_function = staticmethod(functional.wdsr_a_block)

    def __init__(
        self, n_feats: int, block_feats: int, res_scale: float = 1.0, backend: str = "auto"
    ):
        body = nn.Sequential(
            WeightNormConv2d(n_feats, block_feats, 3, padding=1),
            nn.ReLU(inplace=True),
            WeightNormConv2d(block_feats, n_feats, 3, padding=1),
        )
        super().__init__(body, res_scale, backend)
