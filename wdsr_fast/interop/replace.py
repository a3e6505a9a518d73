"""Swap the WDSR residual blocks of a live model for wdsr_fast blocks, keeping its Parameters.

Existing training code built around the authors' model files (or the EDSR-PyTorch trainer, or
anything with the same structure) gets the fused blocks with one call::

    model = replace_blocks(model)

A block is recognised by structure, not by class name: a module with a ``body`` that is an
``nn.Sequential`` of

- WDSR-B: conv 1x1 C -> E (padding 0), ReLU, conv 1x1 E -> L (padding 0), conv 3x3 L -> C
  (padding 1);
- WDSR-A: conv 3x3 C -> F (padding 1), ReLU, conv 3x3 F -> C (padding 1);

whose convs are weight-normalised (``w = g * v / ||v||``, norm over all dims but the first) in
one of three forms: ``nn.Conv2d`` with the ``torch.nn.utils.weight_norm`` hook (``weight_g``,
``weight_v``), ``nn.Conv2d`` with ``torch.nn.utils.parametrizations.weight_norm``
(``parametrizations.weight.original0`` = g, ``original1`` = v), or
:class:`~wdsr_fast.nn.weight_norm.WeightNormConv2d`. Each conv has a bias, stride 1, dilation 1,
one group and zero padding. A module with a numeric ``res_scale`` attribute is taken to compute
``x + res_scale * body(x)``, as in the reference. A module without one (the authors' later
release, ychfan/wdsr, folds the residual scale into the initialisation) is swapped with
``res_scale=1`` when its forward is checked to compute ``x + body(x)``: with its ``body``
stood in for by a probe that returns a random tensor, one forward on a small random input must
return exactly the input plus that tensor. Modules whose forward does anything else are left
alone.

Blocks whose convs have no weight norm (plain ``nn.Conv2d``) are not swapped: the wdsr_fast
blocks take weight-normalised parameters. They are logged at INFO level and left as they are.
Blocks that already are wdsr_fast blocks are left alone too (set their ``backend`` instead).
A call that swaps nothing in a model holding weight-normalised convs and no wdsr_fast blocks
logs a WARNING: such a model most likely has WDSR blocks of a structure not recognised here.

The new block keeps the old block's ``body`` — the very same conv modules, hence the same
Parameter objects under the same names — so ``state_dict`` keys do not change and an optimizer
created before the swap keeps updating them. Hooks registered on the old block module itself
are not carried over. Swap before wrapping the model in DistributedDataParallel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from numbers import Real

import torch
from torch import Tensor, nn

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


class _Probe(nn.Module):
    """Stands in for a block's ``body``: records its input and returns ``output``."""

    def __init__(self, output: Tensor):
        super().__init__()
        self.output = output
        self.inputs: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.inputs.append(x)
        return self.output


def _adds_body_output(module: nn.Module, body: nn.Sequential) -> bool:
    """Whether ``module.forward(x)`` is ``x + body(x)``, whatever ``body`` returns: checked with
    a probe in place of ``body`` returning a random tensor (so zero weights cannot hide a scale),
    on one small random input. The module is restored as it was."""
    first = next(iter(body.parameters()), None)
    layout = _conv_layout(body[0])
    if first is None or layout is None:
        return False
    generator = torch.Generator().manual_seed(0)
    x, noise = torch.randn(2, 1, layout[0], 4, 4, generator=generator, dtype=torch.float64)
    x, noise = (t.to(device=first.device, dtype=first.dtype) for t in (x, noise))
    probe = _Probe(noise)
    module._modules["body"] = probe
    try:
        with torch.no_grad():
            out = module.forward(x.clone())
        return (
            isinstance(out, Tensor)
            and len(probe.inputs) == 1
            and torch.equal(probe.inputs[0], x)
            and out.shape == x.shape
            and torch.allclose(out, x + noise, rtol=1e-3, atol=1e-3)
        )
    except Exception:  # a forward that cannot run on the probe is no x + body(x)
        return False
    finally:
        module._modules["body"] = body


def _block_kind(module: nn.Module, name: str) -> tuple[str, float] | None:
    """``(kind, res_scale)`` of a swappable WDSR block (kind ``"A"`` or ``"B"``), else None
    (logging near misses)."""
    if isinstance(module, ResidualBlock):
        return None
    body = getattr(module, "body", None)
    if not isinstance(body, nn.Sequential):
        return None
    kind = _body_kind(body)
    if kind is None:
        return None
    if any(weight_norm_parts(body[i]) is None for i in range(len(body)) if i != 1):
        logger.info("%r is not swapped: its convs have no weight norm over dim 0", name)
        return None
    if hasattr(module, "res_scale"):
        res_scale = module.res_scale
        if not isinstance(res_scale, Real) or isinstance(res_scale, bool):
            return None
        return kind, float(res_scale)
    if not _adds_body_output(module, body):
        logger.info("%r is not swapped: it has no res_scale and does not compute x + body(x)", name)
        return None
    return kind, 1.0


_BLOCK_TYPES = {"A": WDSRABlock, "B": WDSRBBlock}
Match = tuple[str, nn.Module, str, float]


def _matches(model: nn.Module) -> list[Match]:
    """``(qualified name, module, kind, res_scale)`` of every swappable block, each module
    listed once."""
    found, seen = [], set()
    for name, module in model.named_modules():
        if id(module) in seen:
            continue
        recognised = _block_kind(module, name)
        if recognised is not None:
            found.append((name, module, *recognised))
            seen.add(id(module))
    return found


def _filtered(matches: list[Match], filter_fn: FilterFn | None) -> list[Match]:
    return [m for m in matches if filter_fn is None or filter_fn(m[1], m[0])]


def _weight_norm_convs(model: nn.Module) -> int:
    """How many weight-normalised convs ``model`` holds."""
    return sum(1 for module in model.modules() if weight_norm_parts(module) is not None)


def find_blocks(model: nn.Module, filter_fn: FilterFn | None = None) -> list[str]:
    """Qualified names of the blocks :func:`replace_blocks` would swap (``""`` is ``model``).

    ``filter_fn(module, qualified_name) -> bool`` narrows the choice, as in replace_blocks.
    """
    return [name for name, *_ in _filtered(_matches(model), filter_fn)]


def replace_blocks(
    model: nn.Module, backend: str = "auto", filter_fn: FilterFn | None = None
) -> nn.Module:
    """Swap, in place, every recognised WDSR-A/B residual block of ``model`` for a wdsr_fast one.

    Each new block (a :class:`WDSRBBlock` or :class:`WDSRABlock` built with ``around``)
    computes ``x + res_scale * body(x)`` on ``backend`` (see :mod:`wdsr_fast.dispatch`) around
    the old block's own ``body``, and takes its ``res_scale`` (1 for a block without one that
    computes ``x + body(x)``) and train/eval mode. ``filter_fn(module, qualified_name) -> bool``,
    when given, picks which recognised blocks to swap. A block shared by several parents is swapped
    everywhere for one new block.

    Returns ``model`` (or the new block when ``model`` itself is a block). What was swapped is
    logged at INFO level on the ``wdsr_fast.interop.replace`` logger; :func:`find_blocks` lists
    the same names beforehand, and afterwards the swapped blocks are the model's ``ResidualBlock``
    instances. Swapping nothing in a model with weight-normalised convs logs a WARNING.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_backend(backend)
    if filter_fn is not None and not callable(filter_fn):
        raise TypeError(f"filter_fn must be callable or None, got {type(filter_fn).__name__}")
    recognised = _matches(model)
    matches = _filtered(recognised, filter_fn)
    replacement = {}
    for _, module, kind, res_scale in matches:
        block = _BLOCK_TYPES[kind].around(module.body, res_scale, backend)
        replacement[id(module)] = block.train(module.training)
    for parent in list(model.modules()):
        # _modules, not named_children(): that skips a child's second occurrence.
        for child_name, child in list(parent._modules.items()):
            if id(child) in replacement:
                setattr(parent, child_name, replacement[id(child)])
    names = [name for name, *_ in matches]
    logger.info("replace_blocks: swapped %d block(s) on backend %r: %s", len(names), backend, names)
    if not matches:
        _warn_if_blocks_were_missed(model, len(recognised))
    return replacement.get(id(model), model)


def _warn_if_blocks_were_missed(model: nn.Module, recognised: int) -> None:
    """Log a WARNING when a model that swapped nothing holds weight-normalised convs and no
    wdsr_fast blocks (which would mean its blocks were swapped before)."""
    convs = _weight_norm_convs(model)
    if convs == 0 or any(isinstance(m, ResidualBlock) for m in model.modules()):
        return
    if recognised:
        reason = f"filter_fn declined all {recognised} recognised block(s)"
    else:
        reason = (
            "no module has a `body` nn.Sequential of WDSR-A or WDSR-B layers and a forward of "
            "x + res_scale * body(x) (wdsr_fast.interop.replace says what is recognised)"
        )
    logger.warning(
        "replace_blocks swapped no block although the model has %d weight-normalised conv(s): %s",
        convs,
        reason,
    )
