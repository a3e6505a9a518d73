"""The numpy that Triton's interpreter (the test suite's CPU path) needs next to this Triton.

Before Triton 3.7 the interpreter converts one-element arrays to Python scalars, which numpy
2.4 refuses (``only 0-dimensional arrays can be converted to Python scalars``), so those
Tritons need ``numpy<2.4``. Prints that requirement when the installed Triton and numpy need
it, nothing otherwise (``scripts/bootstrap.sh`` installs what it prints).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

FIXED_IN_TRITON = (3, 7)
BREAKING_NUMPY = (2, 4)
REQUIREMENT = "numpy<2.4"


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def numpy_requirement(triton_version: str | None, numpy_version: str | None) -> str | None:
    """``"numpy<2.4"`` when this Triton's interpreter fails with this numpy, else None."""
    if triton_version is None or numpy_version is None:
        return None
    too_old_triton = _release(triton_version)[:2] < FIXED_IN_TRITON
    too_new_numpy = _release(numpy_version)[:2] >= BREAKING_NUMPY
    return REQUIREMENT if too_old_triton and too_new_numpy else None


def installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def main() -> int:
    requirement = numpy_requirement(installed_version("triton"), installed_version("numpy"))
    if requirement:
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
