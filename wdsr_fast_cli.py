"""The ``wdsr-fast`` console script: answers ``--help``, usage errors and bad paths at once.

``import wdsr_fast`` imports torch and registers the package's custom ops, seconds before the
first line of output. This module parses the arguments and checks every path first, with the
package's standard-library-only modules (:mod:`wdsr_fast.app.errors`, :mod:`wdsr_fast.app.paths`,
:mod:`wdsr_fast.app.checks`, :mod:`wdsr_fast.app.arguments`), loaded from their files without
running ``wdsr_fast/__init__.py``. Only a command that passes the checks imports the package and
runs (:func:`wdsr_fast.app.cli.main`, which parses and checks again, in microseconds).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["main"]

# The modules the checks need, in import order; each imports only the ones before it.
_LIGHT_MODULES = ("errors", "paths", "checks", "arguments")


def _load_light_modules() -> dict[str, ModuleType]:
    """Load ``wdsr_fast.app.<name>`` for each light module, without the package's __init__
    (imported as usual when the package is imported already)."""
    if "wdsr_fast" in sys.modules:
        return {name: importlib.import_module(f"wdsr_fast.app.{name}") for name in _LIGHT_MODULES}
    spec = importlib.util.find_spec("wdsr_fast")  # finds the package; does not import it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("wdsr_fast is not installed")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "app")
    modules = {}
    for name in _LIGHT_MODULES:
        full_name = f"wdsr_fast.app.{name}"
        module_spec = importlib.util.spec_from_file_location(
            full_name, os.path.join(folder, f"{name}.py")
        )
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[full_name] = module  # the next light modules import this one
        module_spec.loader.exec_module(module)
        modules[name] = module
    return modules


def _unload_light_modules(loaded: bool) -> None:
    """Forget the light modules loaded from their files, so that the package imports them
    afresh, in order (``loaded``: whether they were loaded that way)."""
    if loaded:
        for name in _LIGHT_MODULES:
            sys.modules.pop(f"wdsr_fast.app.{name}", None)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and check ``argv`` without torch; then run the command (exit status as
    :func:`wdsr_fast.app.cli.main`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    loaded = "wdsr_fast" not in sys.modules
    try:
        light = _load_light_modules()
        args = light["arguments"].parse_args(argv)  # --help and usage errors exit here
        try:
            light["checks"].check_args(args)
        except (light["errors"].CommandError, ValueError, OSError) as exc:
            print(light["errors"].error_line(args.command, exc), file=sys.stderr)
            return 1
    finally:
        _unload_light_modules(loaded)
    from wdsr_fast.app.cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
