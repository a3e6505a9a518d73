"""Swap the WDSR residual blocks of a live model for wdsr_fast blocks, keeping its Parameters.

Existing training code built around the authors' model files (or the EDSR-PyTorch trainer, or
anything with the same structure) gets the fused blocks with one call::

    model = replace_blocks(model)

A block is recognised by structure, not by class name: a module with a numeric ``res_scale``
attribute and a ``body`` that is an ``nn.Sequential`` of

- WDSR-B: conv 1x1 C -> E (padding 0), ReLU, conv 1x1 E -> L (padding 0), conv 3x3 L -> C
  (padding 1);
- WDSR-A: conv 3x3 C -> F (padding 1), ReLU, conv 3x3 F -> C (padding 1);

whose convs are weight-normalised (``w = g * v / ||v||``, norm over all dims but the first) in
one of three forms: ``nn.Conv2d`` with the ``torch.nn.utils.weight_norm`` hook (``weight_g``,
``weight_v``), ``nn.Conv2d`` with ``torch.nn.utils.parametrizations.weight_norm``
(``parametrizations.weight.original0`` = g, ``original1`` = v), or
:class:`~wdsr_fast.nn.weight_norm.WeightNormConv2d`. Each conv has a bias, stride 1, dilation 1,
one group and zero padding. The module's forward is taken to be ``x + res_scale * body(x)``, as
in the reference.

Blocks whose convs have no weight norm (plain ``nn.Conv2d``) are not swapped: the wdsr_fast
blocks take weight-normalised parameters. They are logged at INFO level and left as they are.
Blocks that already are wdsr_fast blocks are left alone too (set their ``backend`` instead).

The new block keeps the old block's ``body`` — the very same conv modules, hence the same
Parameter objects under the same names — so ``state_dict`` keys do not change and an optimizer
created before the swap keeps updating them. Hooks registered on the old block module itself
are not carried over. Swap before wrapping the model in DistributedDataParallel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from numbers import Real

from torch import nn

from wdsr_fast.dispatch import check_backend
from wdsr_fast.nn.blocks import ResidualBlock, WDSRABlock, WDSRBBlock
from wdsr_fast.nn.weight_norm import WeightNormConv2d, weight_norm_parts

__all__ = ["find_blocks", "replace_blocks"]

logger = logging.getLogger(__name__)

FilterFn = Callable[[nn.Module, str], bool]


def _conv_layout(module: nn.Module) -> tuple[int, int, int, int] | None:
    """``(in, out, kernel, padding)`` of a square, stride-1, ungrouped, zero-padded conv."""
    if isinstance(module, WeightNormConv2d):
        return module.in_channels, module.out_channels, module.kernel_size, module.padding
    if not isinstance(module, nn.Conv2d):
        return None
    kh, kw = module.kernel_size
    if (
        kh != kw
        or module.stride != (1, 1)
        or module.dilation != (1, 1)
        or module.groups != 1
        or module.padding_mode != "zeros"
        or not isinstance(module.padding, tuple)
        or module.padding[0] != module.padding[1]
    ):
        return None
    return module.in_channels, module.out_channels, kh, module.padding[0]


def _body_kind(body: nn.Sequential) -> str | None:
    """``"B"`` or ``"A"`` when ``body`` has that block's layers and channel chain, else None."""
    layouts = [_conv_layout(m) for m in body]
    if len(body) == 4 and isinstance(body[1], nn.ReLU) and None not in (layouts[0], *layouts[2:]):
        (c, e, k1, p1), (e2, low, k2, p2), (low2, c2, k3, p3) = layouts[0], *layouts[2:]
        chain_ok = e2 == e and low2 == low and c2 == c
        if chain_ok and (k1, p1, k2, p2, k3, p3) == (1, 0, 1, 0, 3, 1):
            return "B"
    if len(body) == 3 and isinstance(body[1], nn.ReLU) and None not in (layouts[0], layouts[2]):
        (c, f, k1, p1), (f2, c2, k2, p2) = layouts[0], layouts[2]
        if f2 == f and c2 == c and (k1, p1, k2, p2) == (3, 1, 3, 1):
            return "A"
    return None


def _block_kind(module: nn.Module, name: str) -> str | None:
    """``"A"`` or ``"B"`` for a swappable WDSR block, else None (logging near misses)."""
    if isinstance(module, ResidualBlock):
        return None
    body, res_scale = getattr(module, "body", None), getattr(module, "res_scale", None)
    if not isinstance(body, nn.Sequential) or not isinstance(res_scale, Real):
        return None
    kind = _body_kind(body)
    if kind is None or isinstance(res_scale, bool):
        return None
    if any(weight_norm_parts(body[i]) is None for i in range(len(body)) if i != 1):
        logger.info("%r is not swapped: its convs have no weight norm over dim 0", name)
        return None
    return kind


_BLOCK_TYPES = {"A": WDSRABlock, "B": WDSRBBlock}


def _matches(model: nn.Module, filter_fn: FilterFn | None) -> list[tuple[str, nn.Module, str]]:
    """``(qualified name, module, kind)`` of every swappable block, each module listed once."""
    found, seen = [], set()
    for name, module in model.named_modules():
        if id(module) in seen:
            continue
        kind = _block_kind(module, name)
        if kind is not None and (filter_fn is None or filter_fn(module, name)):
            found.append((name, module, kind))
            seen.add(id(module))
    return found


def find_blocks(model: nn.Module, filter_fn: FilterFn | None = None) -> list[str]:
    """Qualified names of the blocks :func:`replace_blocks` would swap (``""`` is ``model``).

    ``filter_fn(module, qualified_name) -> bool`` narrows the choice, as in replace_blocks.
    """
    return [name for name, _, _ in _matches(model, filter_fn)]


def replace_blocks(
    model: nn.Module, backend: str = "auto", filter_fn: FilterFn | None = None
) -> nn.Module:
    """Swap, in place, every recognised WDSR-A/B residual block of ``model`` for a wdsr_fast one.

    Each new block (a :class:`WDSRBBlock` or :class:`WDSRABlock` built with ``around``)
    computes ``x + res_scale * body(x)`` on ``backend`` (see :mod:`wdsr_fast.dispatch`) around
    the old block's own ``body``, and takes its
    ``res_scale`` and train/eval mode. ``filter_fn(module, qualified_name) -> bool``, when given,
    picks which recognised blocks to swap. A block shared by several parents is swapped
    everywhere for one new block.

    Returns ``model`` (or the new block when ``model`` itself is a block). What was swapped is
    logged at INFO level on the ``wdsr_fast.interop.replace`` logger; :func:`find_blocks` lists
    the same names beforehand, and afterwards the swapped blocks are the model's ``ResidualBlock``
    instances.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_backend(backend)
    if filter_fn is not None and not callable(filter_fn):
        raise TypeError(f"filter_fn must be callable or None, got {type(filter_fn).__name__}")
    matches = _matches(model, filter_fn)
    replacement = {}
    for _, module, kind in matches:
        block = _BLOCK_TYPES[kind].around(module.body, float(module.res_scale), backend)
        replacement[id(module)] = block.train(module.training)
    for parent in list(model.modules()):
        # _modules, not named_children(): that skips a child's second occurrence.
        for child_name, child in list(parent._modules.items()):
            if id(child) in replacement:
                setattr(parent, child_name, replacement[id(child)])
    names = [name for name, _, _ in matches]
    logger.info("replace_blocks: swapped %d block(s) on backend %r: %s", len(names), backend, names)
    return replacement.get(id(model), model)
