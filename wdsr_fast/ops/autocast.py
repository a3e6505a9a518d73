"""The autocast rule of the compute ops: cast to the autocast dtype that is active at the call.

Inside ``torch.autocast(device_type, dtype=...)``, an op registered here sees its floating
tensor arguments on that device (float64 excepted, as autocast does) cast to ``dtype``, then
runs with autocast off -- the treatment autocast gives convolutions -- so the op returns that
dtype. The rule sits on the op's ``Autocast<Device>`` dispatch keys, so it applies to
``torch.ops`` calls, ``torch.compile`` and ``torch.export`` alike.
``torch.library.register_autocast`` is not used because it fixes one cast dtype per device at
registration, which would turn bfloat16 autocast into float16. The layout ops of the extension
(pixel shuffles and the tail) have no rule: like ``torch.nn.functional.pixel_shuffle`` they run
in their input's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["register_autocast_to_active_dtype"]

_AUTOCAST_KEYS = {"cuda": "AutocastCUDA", "cpu": "AutocastCPU"}
_LIBRARIES: list[torch.library.Library] = []


def _cast(value: object, device_type: str, dtype: torch.dtype) -> object:
    if (
        isinstance(value, Tensor)
        and value.is_floating_point()
        and value.dtype != torch.float64
        and value.device.type == device_type
    ):
        return value.to(dtype)
    return value


def register_autocast_to_active_dtype(
    qualname: str, device_types: tuple[str, ...] = ("cuda", "cpu")
) -> None:
    """Register the rule for the op ``qualname`` (``"namespace::name"``, default overload) on
    every device type of ``device_types``."""
    namespace, name = qualname.split("::")
    op = getattr(getattr(torch.ops, namespace), name).default
    lib = torch.library.Library(namespace, "FRAGMENT")
    _LIBRARIES.append(lib)  # registrations live as long as their Library object
    for device_type in device_types:

        def autocast_kernel(*args: object, device_type: str = device_type) -> object:
            dtype = torch.get_autocast_dtype(device_type)
            with torch.autocast(device_type, enabled=False):
                return op(*(_cast(a, device_type, dtype) for a in args))

        lib.impl(name, autocast_kernel, _AUTOCAST_KEYS[device_type])
