"""What the command line checks after parsing, before torch is imported or any weights load.

Every input and output path, the weights file, the tile against its overlap, and what each
command needs (PyAV for videos; a batch that torchrun's processes can share). Standard library
only. A failure raises :class:`~wdsr_fast.app.errors.CommandError` or
:class:`~wdsr_fast.app.errors.ImageError` naming the argument or the file.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Sequence

from wdsr_fast.app.errors import CommandError, ImageError
from wdsr_fast.app.paths import (
    check_creatable_folder,
    file_identities,
    is_video,
    list_images,
    plan_outputs,
    resume_path,
)

__all__ = ["check_args", "image_files", "require_pyav", "world_size"]

PYAV_MISSING = (
    "reading and writing videos needs PyAV, which is not installed here: pip install av "
    "(or install wdsr_fast with its video extra)"
)


def require_pyav() -> None:
    """CommandError saying how to install PyAV when it is missing."""
    if importlib.util.find_spec("av") is None:
        raise CommandError(PYAV_MISSING)


def world_size() -> int:
    """The number of processes torchrun started (``WORLD_SIZE``); 1 outside torchrun."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def image_files(paths: Sequence[str | os.PathLike], what: str = "") -> list[str]:
    """The image files ``paths`` name: files as given, and the images inside folders; every
    path must exist and every folder must hold images (ImageError naming it otherwise)."""
    files: list[str] = []
    for path in map(os.fspath, paths):
        if not os.path.exists(path):
            raise ImageError(f"{what}{path}: no such file or folder")
        found = list_images(path) if os.path.isdir(path) else [path]
        if not found:
            raise ImageError(f"{what}{path}: no image files in this folder")
        files += found
    return files


def _check_weights(args: argparse.Namespace) -> None:
    if args.weights is not None and not os.path.isfile(args.weights):
        raise CommandError(f"--weights {args.weights}: no such weights file")


def _check_tile(args: argparse.Namespace) -> None:
    overlap = args.tile_overlap
    if overlap is not None and args.tile <= 2 * overlap:
        raise CommandError(
            f"--tile {args.tile} is too small for a tile overlap of {overlap}: it must be "
            f"larger than twice the overlap ({2 * overlap})"
        )


def _check_upscale(args: argparse.Namespace) -> None:
    pairs = plan_outputs(args.inputs, args.output)
    if any(is_video(source) for source, _ in pairs):
        require_pyav()
    if args.compare_reference and is_video(pairs[0][0]):
        raise CommandError("--compare-reference times an image, and the first input is a video")
    _check_weights(args)
    _check_tile(args)


def _check_eval(args: argparse.Namespace) -> None:
    image_files(args.inputs)
    _check_weights(args)
    _check_tile(args)


def _check_train(args: argparse.Namespace) -> None:
    files = image_files(args.inputs)
    output = os.fspath(args.output)
    if os.path.isdir(output):
        raise ImageError(f"-o {output}: is a folder; give the weights file to write")
    check_creatable_folder(os.path.dirname(os.path.abspath(output)), output)
    output_keys = file_identities(output) | file_identities(resume_path(output))
    for file in files:
        if output_keys & file_identities(file):
            raise ImageError(
                f"{output}: the weights file would overwrite the training image {file}; "
                "choose another output"
            )
    if args.val is not None:
        image_files([args.val], "--val ")
    if args.resume and not os.path.isfile(resume_path(output)):
        raise CommandError(
            f"--resume: no training state {resume_path(output)} (train writes it next to its "
            "weights at every checkpoint; run without --resume to start afresh)"
        )
    processes = world_size()
    if args.batch_size % processes:
        raise CommandError(
            f"--batch-size {args.batch_size} cannot be shared equally among {processes} "
            "processes; give a multiple of the process count"
        )


_CHECKS = {"upscale": _check_upscale, "eval": _check_eval, "train": _check_train}


def check_args(args: argparse.Namespace) -> None:
    """Check the parsed ``args`` of their command (see the module docstring)."""
    check = _CHECKS.get(args.command)
    if check is not None:
        check(args)
