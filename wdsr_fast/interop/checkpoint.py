"""Loading WDSR checkpoints of every known layout into WDSRA/WDSRB, and saving reference ones.

Layouts read (``torch.load(weights_only=True)`` files, or safetensors files):

- the reference's ``state_dict`` (JiahuiYu/wdsr_ntire2018 models, saved plain by the
  EDSR-PyTorch trainer): ``head.0``, ``body.{i}.body.{j}``, ``tail.0``, ``skip.0``, each conv
  ``weight_g``, ``weight_v``, ``bias``;
- the same with ``torch.nn.utils.parametrizations.weight_norm`` names
  (``parametrizations.weight.original0`` = g, ``original1`` = v);
- either of those under a common ``module.`` (DataParallel) or ``model.`` (the EDSR-PyTorch
  trainer's wrapper) prefix, or inside a dict under ``state_dict`` / ``model_state_dict``;
- the authors' later release (ychfan/wdsr): a dict whose ``model_state_dict`` has ``body.0``
  (head conv), ``body.1..B`` (blocks), ``body.B+1`` (tail conv) and ``skip.0``; that model
  works on ``[0, 1]`` images minus 0.5 and has no res_scale multiply, so it loads with
  ``rgb_range=1``, ``rgb_std=1``, ``rgb_mean=0.5`` and ``res_scale=1`` (weights untouched).

The architecture (A or B, scale, n_feats, n_resblocks, block_feats or expand and linear,
n_colors) is read off the tensors' names and shapes. What the tensors cannot tell — res_scale
and the normalisation — comes from the file's wdsr_fast metadata when :func:`save_model` wrote
it, else from the layout's defaults (reference: ``res_scale=1``, DIV2K mean, ``rgb_range=255``,
``rgb_std=0.5``), and an explicit keyword argument overrides either.

A checkpoint that does not fit raises :class:`CheckpointError` listing its missing, unexpected
and mis-shaped keys. Every check is made before the model is built (its shapes are checked on
a model built on the meta device, which allocates nothing), and every malformed file (truncated,
not a checkpoint, wrong types, ranks or sizes, bad metadata) raises CheckpointError naming the
file and what is wrong (see :mod:`wdsr_fast.interop.checkpoint_checks`).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import safetensors.torch
import torch
from torch import Tensor, nn

from wdsr_fast.dispatch import check_backend
from wdsr_fast.interop.checkpoint_checks import (
    CheckpointError,
    check_block_indices,
    check_entries,
    check_metadata,
    listing,
)
from wdsr_fast.nn.models import DIV2K_RGB_MEAN, WDSRA, WDSRB

__all__ = [
    "CheckpointError",
    "infer_config",
    "load_model",
    "model_config",
    "model_from_state_dict",
    "read_checkpoint",
    "save_model",
]

METADATA_KEY = "wdsr_fast"
_PARAMETRIZATION_SUFFIXES = {
    ".parametrizations.weight.original0": ".weight_g",
    ".parametrizations.weight.original1": ".weight_v",
}
_WRAPPER_PREFIXES = ("module.", "model.")
_STATE_DICT_ENTRIES = ("model_state_dict", "state_dict")
_REFERENCE_SETTINGS = {
    "res_scale": 1.0,
    "rgb_mean": DIV2K_RGB_MEAN,
    "rgb_range": 255.0,
    "rgb_std": 0.5,
}
_YCHFAN_SETTINGS = {"res_scale": 1.0, "rgb_mean": None, "rgb_range": 1.0, "rgb_std": 1.0}

WDSRModel = WDSRA | WDSRB


def _mismatch_error(
    what: str, missing: list[str], unexpected: list[str], misshaped: list[str]
) -> CheckpointError:
    message = what
    for title, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("mis-shaped keys (checkpoint vs model)", misshaped),
    ):
        if items:
            message += listing(title, items)
    return CheckpointError(message)


# ----------------------------------------------------------------------------- reading files


def _is_safetensors(path: str) -> bool:
    """safetensors files start with an 8-byte header length and then the JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _read_safetensors(path: str, map_location: str | torch.device) -> tuple[Any, Any]:
    """``(tensors, wdsr_fast metadata)`` of a safetensors file."""
    try:
        with safetensors.safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
        contents = safetensors.torch.load_file(path, device=str(map_location))
    except Exception as error:  # safetensors raises SafetensorError, OSError, ... on bad files
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({type(error).__name__}: {error})"
        ) from error
    try:
        return contents, json.loads(header.get(METADATA_KEY, "{}"))
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"{path}: the {METADATA_KEY!r} metadata of the header is not valid JSON ({error})"
        ) from None


def _torch_file_metadata(contents: Any) -> Any:
    """What :func:`save_model` recorded in a state dict's ``_metadata``, else ``{}``."""
    recorded = getattr(contents, "_metadata", None)
    entry = recorded.get("", {}) if isinstance(recorded, Mapping) else {}
    return entry.get(METADATA_KEY, {}) if isinstance(entry, Mapping) else {}


def read_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """``(contents, wdsr_fast metadata)`` of a torch or safetensors file.

    Torch files load with ``weights_only=True``; the metadata is what :func:`save_model` wrote
    (an empty dict for files written elsewhere). CheckpointError, naming the file, for a file
    that neither format reads or whose metadata is malformed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no checkpoint file at {path!r}")
    if _is_safetensors(path):
        contents, metadata = _read_safetensors(path, map_location)
    else:
        try:
            contents = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as error:
            raise CheckpointError(
                f"{path}: neither a safetensors file nor a torch file that loads with "
                f"weights_only=True ({type(error).__name__}: {error})"
            ) from error
        metadata = _torch_file_metadata(contents)
    try:
        return contents, check_metadata(metadata)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None


# ----------------------------------------------------------------------------- key layouts


def _unwrap(contents: Any) -> Mapping[str, Any]:
    """The state dict inside a training checkpoint dict, or ``contents`` itself."""
    if not isinstance(contents, Mapping):
        raise CheckpointError(
            f"checkpoint must hold a state dict (a mapping of names to tensors), "
            f"got {type(contents).__name__}"
        )
    for entry in _STATE_DICT_ENTRIES:
        if isinstance(contents.get(entry), Mapping):
            return contents[entry]
    return contents


def _strip_wrapper_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    keys = list(state_dict)
    stripped = True
    while stripped and keys:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if all(key.startswith(prefix) for key in keys):
                keys = [key[len(prefix) :] for key in keys]
                stripped = True
    return dict(zip(keys, state_dict.values(), strict=True))


def _rename_parametrizations(key: str) -> str:
    for old, new in _PARAMETRIZATION_SUFFIXES.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def _is_ychfan_layout(keys: Sequence[str]) -> bool:
    """Head conv at ``body.0`` (no ``head.*`` keys): the ychfan/wdsr layout."""
    return "body.0.weight_v" in keys and not any(key.startswith("head.") for key in keys)


def _from_ychfan_layout(state_dict: dict[str, Any]) -> dict[str, Any]:
    """``body.0`` -> ``head.0``, ``body.i.body`` -> ``body.{i-1}.body``, ``body.B+1`` -> ``tail.0``.

    The tail is the highest ``body.{i}`` holding a conv of its own; other keys stay as they are.
    """
    conv_at = re.compile(r"body\.(\d+)\.(weight_g|weight_v|bias)$")
    block_at = re.compile(r"body\.(\d+)\.(body\..*)$")
    conv_indices = [int(m.group(1)) for key in state_dict if (m := conv_at.match(key))]
    tail = max(conv_indices)
    renamed = {}
    for key, value in state_dict.items():
        if (m := conv_at.match(key)) and int(m.group(1)) in (0, tail):
            key = f"{'head' if int(m.group(1)) == 0 else 'tail'}.0.{m.group(2)}"
        elif (m := block_at.match(key)) and 0 < int(m.group(1)) < tail:
            key = f"body.{int(m.group(1)) - 1}.{m.group(2)}"
        renamed[key] = value
    if len(renamed) < len(state_dict):
        raise CheckpointError(
            "checkpoint in the ychfan/wdsr layout has keys that name the same tensor once "
            "renamed (a block under body.0, the head conv's index)"
        )
    return renamed


def normalize_state_dict(contents: Any) -> tuple[dict[str, Tensor], str]:
    """``(state dict in the reference layout, layout name)`` of a loaded checkpoint.

    Layout names: ``"reference"`` or ``"ychfan"``. Only keys are renamed; tensors are the
    checkpoint's own.
    """
    state_dict = _unwrap(contents)
    check_entries(state_dict)
    state_dict = _strip_wrapper_prefixes(state_dict)
    renamed = {_rename_parametrizations(key): value for key, value in state_dict.items()}
    if len(renamed) < len(state_dict):
        twice = [
            f"{key} and {_rename_parametrizations(key)}"
            for key in state_dict
            if _rename_parametrizations(key) != key and _rename_parametrizations(key) in state_dict
        ]
        raise CheckpointError(
            "checkpoint holds some weights twice (weight_g/weight_v and parametrizations)"
            + listing("keys", twice)
        )
    check_entries(renamed)  # the parametrizations' g and v under their checked names
    state_dict = renamed
    if _is_ychfan_layout(list(state_dict)):
        return _from_ychfan_layout(state_dict), "ychfan"
    return state_dict, "reference"


# ----------------------------------------------------------------------------- architecture


def _block_linear(n_feats: int, low: int) -> float:
    """A ``linear`` with ``int(n_feats * linear) == low``: the reference's 0.8 when it fits."""
    for linear in (0.8, low / n_feats, (low + 0.5) / n_feats):
        if int(n_feats * linear) == low:
            return linear
    raise AssertionError("unreachable: (low + 0.5) / n_feats always fits")


def infer_config(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """The architecture of a reference-layout state dict, read off its names and shapes.

    Returns ``{"architecture": "WDSRA" | "WDSRB", "scale", "n_resblocks", "n_feats",
    "n_colors"}`` plus ``"block_feats"`` (A) or ``"expand"`` and ``"linear"`` (B).
    The block indices must run from 0 to n_resblocks - 1 without gaps (CheckpointError
    otherwise), so the number of blocks is bounded by the keys the file holds.
    """
    needed = ["head.0.weight_v", "tail.0.weight_v"]
    missing = [key for key in needed if key not in state_dict]
    if missing:
        raise _mismatch_error(
            "not a WDSR checkpoint: the head and tail convs are missing",
            missing,
            sorted(state_dict),
            [],
        )
    n_feats, n_colors = state_dict["head.0.weight_v"].shape[:2]
    out_feats = state_dict["tail.0.weight_v"].shape[0]
    scale = math.isqrt(out_feats // n_colors)
    if scale * scale * n_colors != out_feats:
        raise CheckpointError(
            f"tail.0.weight_v has {out_feats} output channels: not scale**2 * n_colors for "
            f"n_colors={n_colors} (the input channels of head.0.weight_v)"
        )
    config: dict[str, Any] = {"scale": scale, "n_feats": n_feats, "n_colors": n_colors}
    block_at = re.compile(r"body\.(\d+)\.body\.")
    indices = sorted({int(m.group(1)) for key in state_dict if (m := block_at.match(key))})
    check_block_indices(indices)
    config["n_resblocks"] = len(indices)
    first = next((i for i in indices if f"body.{i}.body.0.weight_v" in state_dict), None)
    if first is None:  # no blocks: the layout alone cannot tell A from B
        return {"architecture": "WDSRB", **config, "expand": 6, "linear": 0.8}
    wide = state_dict[f"body.{first}.body.0.weight_v"]
    if wide.shape[-1] == 3:
        return {"architecture": "WDSRA", **config, "block_feats": wide.shape[0]}
    low_key = f"body.{first}.body.2.weight_v"
    if wide.shape[0] % n_feats or low_key not in state_dict:
        raise CheckpointError(
            f"body.{first}.body.0.weight_v has shape {tuple(wide.shape)}: a WDSR-B block needs "
            f"a 1x1 conv to a multiple of n_feats={n_feats} channels followed by {low_key}"
        )
    low = state_dict[low_key].shape[0]
    return {
        "architecture": "WDSRB",
        **config,
        "expand": wide.shape[0] // n_feats,
        "linear": _block_linear(n_feats, low),
    }


def model_config(model: nn.Module) -> dict[str, Any]:
    """Every constructor setting of a WDSRA/WDSRB (the metadata :func:`save_model` writes)."""
    if not isinstance(model, WDSRA | WDSRB):
        raise TypeError(f"model must be a WDSRA or WDSRB, got {type(model).__name__}")
    config = {
        "architecture": type(model).__name__,
        "scale": model.scale,
        "n_resblocks": len(model.body),
        "n_feats": model.n_feats,
        "n_colors": model.n_colors,
        "res_scale": model.res_scale,
        "rgb_mean": model.rgb_mean.flatten().tolist(),
        "rgb_range": model.rgb_range,
        "rgb_std": model.rgb_std,
    }
    if isinstance(model, WDSRA):
        config["block_feats"] = model.block_feats
    else:
        config["expand"], config["linear"] = model.expand, model.linear
    return config


def _agree_with_metadata(config: dict[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the metadata's ``linear`` when equivalent; CheckpointError on conflicts.

    ``linear`` agrees when it gives the same ``int(n_feats * linear)``.
    """
    disagree = []
    for key, value in config.items():
        recorded = metadata.get(key, value)
        if key == "linear":
            same = int(config["n_feats"] * recorded) == int(config["n_feats"] * value)
        else:
            same = recorded == value
        if not same:
            disagree.append(f"{key}: metadata {recorded!r}, tensors {value!r}")
    if disagree:
        raise CheckpointError(
            "checkpoint metadata disagrees with its tensors" + listing("settings", disagree)
        )
    if "linear" in config and "linear" in metadata:
        return {**config, "linear": metadata["linear"]}
    return config


def _build(config: Mapping[str, Any], backend: str, device: str = "cpu") -> WDSRModel:
    """The model of ``config``; on the ``"meta"`` device it allocates nothing (for checking
    shapes). CheckpointError when the settings make no model."""
    kwargs = {k: v for k, v in config.items() if k != "architecture"}
    cls = WDSRA if config["architecture"] == "WDSRA" else WDSRB
    try:
        with torch.device(device):
            return cls(**kwargs, backend=backend)
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"the settings (from the file and the keyword arguments) make no model: {error}"
        ) from None


def _check_fits(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    misshaped = [
        f"{key} {tuple(value.shape)} vs {tuple(expected[key].shape)}"
        for key, value in state_dict.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if missing or unexpected or misshaped:
        raise _mismatch_error(
            f"checkpoint does not fit the {type(model).__name__} its tensors describe",
            missing,
            unexpected,
            misshaped,
        )


def model_from_state_dict(
    contents: Any,
    backend: str = "auto",
    *,
    metadata: Mapping[str, Any] | None = None,
    res_scale: float | None = None,
    rgb_mean: Sequence[float] | None = None,
    rgb_range: float | None = None,
    rgb_std: float | None = None,
) -> WDSRModel:
    """A WDSRA/WDSRB holding the weights of a loaded checkpoint (any layout of this module).

    ``metadata`` is what :func:`save_model` recorded (see :func:`read_checkpoint`); its
    architecture values must agree with the tensors. The keyword settings override the
    metadata and the layout's defaults. Raises CheckpointError when the tensors do not fit.
    """
    check_backend(backend)
    state_dict, layout = normalize_state_dict(contents)
    metadata = check_metadata(metadata if metadata is not None else {})
    config = _agree_with_metadata(infer_config(state_dict), metadata)
    given = dict(res_scale=res_scale, rgb_mean=rgb_mean, rgb_range=rgb_range, rgb_std=rgb_std)
    defaults = _YCHFAN_SETTINGS if layout == "ychfan" else _REFERENCE_SETTINGS
    for name, default in defaults.items():
        config[name] = given[name] if given[name] is not None else metadata.get(name, default)
    if config["rgb_mean"] is None:  # ychfan/wdsr subtracts one image_mean from every channel
        config["rgb_mean"] = (0.5,) * config["n_colors"]
    config["rgb_mean"] = tuple(config["rgb_mean"])
    _check_fits(_build(config, backend, device="meta"), state_dict)  # before allocating
    model = _build(config, backend)
    model.load_state_dict(state_dict, strict=True)
    return model


def load_model(
    path: str | os.PathLike,
    backend: str = "auto",
    *,
    map_location: str | torch.device = "cpu",
    res_scale: float | None = None,
    rgb_mean: Sequence[float] | None = None,
    rgb_range: float | None = None,
    rgb_std: float | None = None,
) -> WDSRModel:
    """Load a WDSR checkpoint file (torch or safetensors, any layout) as a WDSRA or WDSRB.

    The model's parameters are float32 on the CPU whatever the file's dtype; move it with
    ``.to()``. See the module docstring for the layouts and for where ``res_scale``,
    ``rgb_mean``, ``rgb_range`` and ``rgb_std`` come from when not given. A file that cannot
    be read or does not make a model raises CheckpointError naming the file.
    """
    check_backend(backend)
    contents, metadata = read_checkpoint(path, map_location)
    try:
        return model_from_state_dict(
            contents,
            backend,
            metadata=metadata,
            res_scale=res_scale,
            rgb_mean=rgb_mean,
            rgb_range=rgb_range,
            rgb_std=rgb_std,
        )
    except CheckpointError as error:
        raise CheckpointError(f"{os.fspath(path)}: {error}") from None


def _write_atomically(path: str, write: Callable[[str], None]) -> None:
    """``write(name)`` into a temporary file next to ``path``, then rename it to ``path``: the
    file at ``path`` is the old one or the new one whole, never a half-written one."""
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_model(model: nn.Module, path: str | os.PathLike) -> None:
    """Write ``model``'s state dict in the reference layout, which the authors' code loads.

    A path ending in ``.safetensors`` gets a safetensors file, any other a ``torch.save`` file
    holding the plain state dict. For a WDSRA/WDSRB the constructor settings the tensors cannot
    tell (res_scale, normalisation) are recorded too: in the safetensors header, or in the
    state dict's ``_metadata`` (which ``load_state_dict`` ignores), so :func:`load_model`
    restores the model exactly. A DistributedDataParallel/DataParallel wrapper is unwrapped.
    The file is written whole or not at all (a temporary file renamed into place).
    """
    if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    path = os.fspath(path)
    state_dict = model.state_dict()
    config = model_config(model) if isinstance(model, WDSRA | WDSRB) else None
    if path.endswith(".safetensors"):
        tensors = {key: value.detach().contiguous() for key, value in state_dict.items()}
        metadata = {METADATA_KEY: json.dumps(config)} if config is not None else None
        _write_atomically(
            path, lambda name: safetensors.torch.save_file(tensors, name, metadata=metadata)
        )
        return
    if config is not None:  # state_dict() made this dict for this call: safe to extend
        state_dict._metadata[""][METADATA_KEY] = config  # type: ignore[attr-defined]
    _write_atomically(path, lambda name: torch.save(state_dict, name))
