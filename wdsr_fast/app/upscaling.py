"""Upscaling image files: load, super-resolve (tiled), save; over one file or many.

Grayscale files come back grayscale and transparent ones keep their alpha channel, resized with
MATLAB-compatible bicubic (see :mod:`wdsr_fast.app.image_io` for what each file mode becomes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from wdsr_fast.app.image_io import ImageError, list_images, load_image, save_image
from wdsr_fast.app.resize import imresize_uint8
from wdsr_fast.app.tiling import upscale_tiled

__all__ = ["UpscaleJob", "plan_outputs", "upscale_file", "upscale_files"]


@dataclass(frozen=True)
class UpscaleJob:
    """How to run the network: tiling (see :mod:`wdsr_fast.app.tiling`), device, dtype."""

    tile: int | None = None
    overlap: int | None = None
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32


def plan_outputs(inputs: Sequence[str], output: str) -> list[tuple[str, str]]:
    """(input file, output file) pairs for ``upscale INPUT... -o OUTPUT``.

    One input file and an OUTPUT that is not a folder: OUTPUT is the file to write (its folder
    must exist). Otherwise (several inputs, or a folder among them) OUTPUT must be an existing
    folder and each result keeps its input's file name. A folder input contributes the image
    files directly inside it.
    """
    if not inputs:
        raise ImageError("no input given")
    if len(inputs) == 1 and not os.path.isdir(inputs[0]) and not os.path.isdir(output):
        folder = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(folder):
            raise ImageError(f"{output}: output folder {folder} does not exist")
        return [(inputs[0], output)]
    if not os.path.isdir(output):
        raise ImageError(
            f"{output}: output folder does not exist (a folder or several inputs need one)"
        )
    files: list[str] = []
    for path in inputs:
        if os.path.isdir(path):
            found = list_images(path)
            if not found:
                raise ImageError(f"{path}: no image files in this folder")
            files += found
        else:
            files.append(path)
    return [(path, os.path.join(output, os.path.basename(path))) for path in files]


def upscale_file(
    model: nn.Module, source: str, target: str, job: UpscaleJob, progress: bool = False
) -> tuple[int, int]:
    """Super-resolve the image file ``source`` into ``target``; returns the output (H, W)."""
    if os.path.exists(target) and os.path.samefile(source, target):
        raise ImageError(f"{target}: would overwrite its own input")
    image = load_image(source)
    rgb = upscale_tiled(model, image.rgb, job.tile, job.overlap, job.device, job.dtype, progress)
    alpha = None
    if image.alpha is not None:
        alpha = imresize_uint8(image.alpha, float(model.scale))
    save_image(target, rgb, alpha, image.grayscale)
    return rgb.shape[-2], rgb.shape[-1]


def upscale_files(
    model: nn.Module,
    pairs: Sequence[tuple[str, str]],
    job: UpscaleJob,
    report: Callable[[str], None] = print,
) -> list[tuple[str, str]]:
    """Upscale each (source, target) pair, going on past failures; returns (source, message)s.

    ``report`` receives each failure's one-line message (naming the file) as it happens.
    """
    failures: list[tuple[str, str]] = []
    several = len(pairs) > 1
    for source, target in tqdm(
        pairs, desc="images", unit="image", disable=None if several else True
    ):
        try:
            upscale_file(model, source, target, job, progress=True)
        except (ImageError, OSError, ValueError, RuntimeError) as exc:
            message = str(exc) if str(exc).startswith(source) else f"{source}: {exc}"
            failures.append((source, message))
            report(message)
    return failures
