"""Checks of a loaded checkpoint's contents, made before any model is built from them.

Each raises :class:`CheckpointError` saying what is wrong (and listing the offending keys), so
that a malformed or hostile file never builds a model out of proportion to what it holds,
never escapes as an error of another kind, and never loads silently wrong:

- :func:`check_entries`: names are strings; values are dense floating-point tensors, none
  empty and none holding more elements than its storage (an expanded view), weight_v of rank 4,
  weight_g of one value per output channel, biases of rank 1;
- :func:`check_block_indices`: residual blocks numbered 0, 1, ..., n-1 without gaps, so that
  the number of blocks is bounded by the keys present;
- :func:`check_metadata`: the settings :func:`~wdsr_fast.interop.checkpoint.save_model` records
  have their types (integers, finite numbers, an architecture name).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "CheckpointError",
    "check_block_indices",
    "check_entries",
    "check_metadata",
    "listing",
]

_LIST_LIMIT = 20
_INT_SETTINGS = ("scale", "n_resblocks", "n_feats", "n_colors", "expand", "block_feats")
_NUMBER_SETTINGS = ("res_scale", "rgb_range", "rgb_std", "linear")
_ARCHITECTURES = ("WDSRA", "WDSRB")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit a WDSR model; the message says what is
    wrong and lists the offending keys."""


def listing(title: str, items: Sequence[str]) -> str:
    """``"\\n  title (n): a, b, ..."``, at most 20 items shown."""
    shown = ", ".join(items[:_LIST_LIMIT])
    more = f" ... and {len(items) - _LIST_LIMIT} more" if len(items) > _LIST_LIMIT else ""
    return f"\n  {title} ({len(items)}): {shown}{more}"


def _entry_problem(key: str, value: Tensor) -> str | None:
    """What is wrong with one tensor of a state dict, or None."""
    if value.layout != torch.strided:
        return f"{key}: a {value.layout} tensor, not a dense one"
    if not value.is_floating_point():
        return f"{key}: dtype {value.dtype}, not floating point"
    if value.numel() == 0:
        return f"{key}: shape {tuple(value.shape)} holds no elements"
    if value.device.type != "meta":
        held = value.untyped_storage().nbytes() // value.element_size()
        if held < value.numel():
            return (
                f"{key}: shape {tuple(value.shape)} ({value.numel()} elements) is an expanded "
                f"view of {held} stored elements"
            )
    rank = {"weight_v": 4, "bias": 1}.get(key.rsplit(".", 1)[-1])
    if rank is not None and value.dim() != rank:
        return f"{key}: rank {value.dim()} (shape {tuple(value.shape)}), expected rank {rank}"
    if key.endswith(".weight_g") and value.numel() != value.shape[0]:
        return f"{key}: shape {tuple(value.shape)}, expected one value per output channel"
    return None


def check_entries(state_dict: Mapping[Any, Any]) -> None:
    """CheckpointError unless every name is a string and every value a usable tensor."""
    not_strings = [repr(key) for key in state_dict if not isinstance(key, str)]
    if not_strings:
        raise CheckpointError(
            "checkpoint names must be strings" + listing("other names", not_strings)
        )
    not_tensors = [key for key, value in state_dict.items() if not isinstance(value, Tensor)]
    if not_tensors:
        raise CheckpointError(
            "checkpoint entries must be tensors" + listing("non-tensor entries", not_tensors)
        )
    problems = [p for key, value in state_dict.items() if (p := _entry_problem(key, value))]
    if problems:
        raise CheckpointError("checkpoint tensors are malformed" + listing("tensors", problems))


def check_block_indices(indices: Iterable[int]) -> None:
    """CheckpointError unless the block indices are exactly 0, 1, ..., n-1."""
    present = sorted(set(indices))
    if present and present[-1] != len(present) - 1:
        gaps = sorted(set(range(len(present))) - set(present))
        beyond = [str(i) for i in present if i >= len(present)]
        raise CheckpointError(
            f"residual blocks must be numbered 0 to n-1 without gaps; {len(present)} blocks "
            f"are numbered up to {present[-1]}"
            + listing("missing block indices", [str(i) for i in gaps])
            + listing("indices beyond the count", beyond)
        )


def _finite_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def check_metadata(metadata: object) -> dict[str, Any]:
    """``metadata`` as a dict; CheckpointError unless it is a mapping whose known settings have
    their types (unknown keys are left alone)."""
    if not isinstance(metadata, Mapping):
        raise CheckpointError(
            f"checkpoint metadata must be a mapping of settings, got {type(metadata).__name__}"
        )
    wrong = []
    for key, value in metadata.items():
        if key in _INT_SETTINGS:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif key in _NUMBER_SETTINGS:
            ok = _finite_number(value)
        elif key == "rgb_mean":
            ok = isinstance(value, list | tuple) and all(_finite_number(v) for v in value)
        elif key == "architecture":
            ok = value in _ARCHITECTURES
        else:
            continue
        if not ok:
            wrong.append(f"{key}={value!r}")
    if wrong:
        raise CheckpointError(
            "checkpoint metadata has settings of the wrong type" + listing("settings", wrong)
        )
    return dict(metadata)
