"""What this installation has: versions, devices, backends, the extension's build, weights."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import torch

from wdsr_fast.app.pretrained import bundled_scales
from wdsr_fast.dispatch import ENV_VAR, OPS, fused_unavailable_reason, resolve_backend
from wdsr_fast.extension import build_info

__all__ = ["environment_info", "format_info"]

_PACKAGES = ("wdsr_fast", "torch", "triton", "numpy", "pillow", "safetensors", "tqdm", "av")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _devices() -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = [
        {
            "device": "cpu",
            "name": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
        }
    ]
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            {
                "device": f"cuda:{index}",
                "name": props.name,
                "compute_capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1),
            }
        )
    return devices


def _backends(devices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per device and op (float32 tensors): what ``auto`` picks, and why the fused kernel
    cannot run when it cannot."""
    result: dict[str, dict[str, Any]] = {}
    for entry in devices:
        device = torch.device(entry["device"])
        result[entry["device"]] = {
            op: {
                "auto": resolve_backend("auto", op, device, torch.float32),
                "fused_unavailable": fused_unavailable_reason(op, device, torch.float32),
            }
            for op in OPS
        }
    return result


def environment_info() -> dict[str, Any]:
    """Versions, devices, the backend ``auto`` picks per device, build info, bundled scales."""
    devices = _devices()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {package: _version(package) for package in _PACKAGES},
        "devices": devices,
        "backends": _backends(devices),
        "backend_override": os.environ.get(ENV_VAR),
        "build": build_info(),
        "bundled_weights": [f"x{scale}" for scale in bundled_scales()],
    }


def format_info(info: dict[str, Any]) -> str:
    """``environment_info()`` as indented ``key: value`` lines."""
    lines = []

    def emit(key: str, value: Any, depth: int) -> None:
        pad = "  " * depth
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            for sub_key, sub_value in value.items():
                emit(sub_key, sub_value, depth + 1)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            lines.append(f"{pad}{key}:")
            for item in value:
                emit(
                    str(item.get("device", "-")),
                    {k: v for k, v in item.items() if k != "device"},
                    depth + 1,
                )
        else:
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"{pad}{key}: {'-' if shown in (None, '') else shown}")

    for key, value in info.items():
        emit(key, value, 0)
    return "\n".join(lines)
