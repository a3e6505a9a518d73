"""TF32 products in plain PyTorch: the comparison point of the correctness rule for float32
kernels whose dots use TF32 (``torch.backends.cudnn.allow_tf32`` on; docs/design.md section 5).

Inside :func:`tf32_products`, every float32 convolution and matrix product, forward and
backward, first rounds its two product operands to the nearest TF32 value (10 mantissa bits,
ties to even) and then computes in float32: the products TF32 tensor cores compute from
operands rounded to nearest, on any device. A convolution's bias is not a product operand and
is left alone. cuDNN's own choice (it may or may not use TF32 for a given shape) does not decide
what the kernels are held to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from helpers.accuracy import assert_within_rule

aten = torch.ops.aten

# Positions of the product operands among each op's arguments.
_OPERANDS = {
    aten.convolution.default: (0, 1),
    aten.convolution_backward.default: (0, 1, 2),
    aten.mm.default: (0, 1),
    aten.bmm.default: (0, 1),
    aten.addmm.default: (1, 2),
}


def round_to_tf32(t: Tensor) -> Tensor:
    """float32 ``t`` rounded to the nearest TF32 value (ties to even); NaN and infinities kept."""
    bits = t.view(torch.int32)
    rounded = ((bits + 0x0FFF + ((bits >> 13) & 1)) & -0x2000).view(torch.float32)
    return torch.where(torch.isfinite(t), rounded, t)


class _TF32Products(TorchDispatchMode):
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        positions = _OPERANDS.get(func, ())
        args = tuple(
            round_to_tf32(a)
            if i in positions and isinstance(a, Tensor) and a.dtype == torch.float32
            else a
            for i, a in enumerate(args)
        )
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def tf32_products() -> Iterator[None]:
    """Float32 convolutions and matrix products inside round their operands to TF32."""
    with _TF32Products():
        yield


def plain_products(dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """How plain PyTorch's products of ``dtype`` are held to compute the rule's comparison point:
    TF32 operands for float32 when the kernels use TF32 (cuDNN's flag), else as they are."""
    if dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        return tf32_products()
    return contextlib.nullcontext()


def _relative_error(results: dict[str, Tensor], exact: dict[str, Tensor], name: str) -> float:
    scale = exact[name].abs().max().item()
    return (results[name].double() - exact[name]).abs().max().item() / scale


def assert_tf32_products(
    fast: dict[str, Tensor], plain: dict[str, Tensor], exact: dict[str, Tensor], rel_atol: float
) -> None:
    """The rule against plain products with TF32 operands, and ``fast`` at TF32's error level:
    on the entry where plain's error is largest (relative to the entry's scale), fast's is at
    least a quarter of it. Products left in float32 fail that; products with truncated
    operands (the tensor cores' own conversion) fail the rule, at about 2.6 times plain's."""
    assert_within_rule(fast, plain, exact, rel_atol)
    name = max(exact, key=lambda k: _relative_error(plain, exact, k))
    fast_error, plain_error = (_relative_error(r, exact, name) for r in (fast, plain))
    assert fast_error >= plain_error / 4, (
        f"{name}: relative error {fast_error:.3g}, far below TF32's {plain_error:.3g}: "
        "the products were not rounded to TF32"
    )


def assert_within_rule_for(
    dtype: torch.dtype,
    fast: dict[str, Tensor],
    plain: dict[str, Tensor],
    exact: dict[str, Tensor],
    rel_atol: float,
) -> None:
    """:func:`assert_within_rule`, or :func:`assert_tf32_products` where ``dtype``'s products
    use TF32 (``plain`` computed under :func:`plain_products`)."""
    if dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        assert_tf32_products(fast, plain, exact, rel_atol)
    else:
        assert_within_rule(fast, plain, exact, rel_atol)
