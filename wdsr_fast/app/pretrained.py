"""The bundled trained weights, and the models the command line runs.

``wdsr_fast/app/weights/wdsr_b_x{scale}.safetensors`` are WDSR-B checkpoints written by
:func:`wdsr_fast.interop.checkpoint.save_model` (the reference's keys plus the architecture in the
header); README.md (`eval` and the bundled weights) says how they were trained and how well they do.
"""

from __future__ import annotations

import os
from importlib import resources

from wdsr_fast.interop.checkpoint import CheckpointError, load_model
from wdsr_fast.nn.models import WDSRA, WDSRB

__all__ = [
    "DEFAULT_SCALE",
    "WeightsError",
    "bundled_scales",
    "bundled_weights_path",
    "load_weights",
    "model_for_scale",
]

DEFAULT_SCALE = 2
_PREFIX, _SUFFIX = "wdsr_b_x", ".safetensors"
_REASON_LIMIT = 160


class WeightsError(ValueError):
    """Weights that cannot be found, read or used as asked; the message names the file."""


def _weights_folder() -> str:
    return str(resources.files("wdsr_fast.app") / "weights")


def bundled_scales() -> list[int]:
    """The scales that have bundled weights, e.g. ``[2]``."""
    folder = _weights_folder()
    names = os.listdir(folder) if os.path.isdir(folder) else []
    stems = [
        n[len(_PREFIX) : -len(_SUFFIX)]
        for n in names
        if n.startswith(_PREFIX) and n.endswith(_SUFFIX)
    ]
    return sorted(int(stem) for stem in stems if stem.isdigit())


def bundled_weights_path(scale: int) -> str:
    """The bundled weight file for ``scale``; WeightsError when there is none."""
    path = os.path.join(_weights_folder(), f"{_PREFIX}{scale}{_SUFFIX}")
    if not os.path.isfile(path):
        have = ", ".join(f"x{s}" for s in bundled_scales()) or "none"
        raise WeightsError(
            f"no bundled weights for scale {scale} (bundled: {have}); pass --weights FILE"
        )
    return path


def load_weights(path: str | os.PathLike) -> WDSRA | WDSRB:
    """The model in the checkpoint file ``path`` (any layout :func:`load_model` reads), eval."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"{path}: no such weights file")
    try:
        return load_model(path).eval()
    except (CheckpointError, OSError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if len(reason) > _REASON_LIMIT:
            reason = reason[: _REASON_LIMIT - 3] + "..."
        raise WeightsError(f"{path}: not usable WDSR weights ({reason})") from None


def model_for_scale(weights: str | os.PathLike | None, scale: int | None) -> WDSRA | WDSRB:
    """The model of the file ``weights``, or the bundled one for ``scale`` (default x2).

    With both given, the file's scale must be ``scale`` (WeightsError otherwise).
    """
    path = (
        os.fspath(weights) if weights is not None else bundled_weights_path(scale or DEFAULT_SCALE)
    )
    model = load_weights(path)
    if scale is not None and model.scale != scale:
        raise WeightsError(
            f"{path}: weights are for scale {model.scale}, not the requested scale {scale}"
        )
    return model
