"""Upscaling image files: load, super-resolve (tiled), save; over one file or many (video
files go to :mod:`wdsr_fast.app.video`).

Grayscale files come back grayscale and transparent ones keep their alpha channel, resized with
MATLAB-compatible bicubic (see :mod:`wdsr_fast.app.image_io` for what each file mode becomes).
Models of three colour channels take every image (grayscale ones as R = G = B); models of one
channel take grayscale images.

No user file is lost: every output path is decided and checked before anything is written
(:func:`plan_outputs` refuses a plan in which an output is an input or two outputs coincide),
and each output is written whole or not at all (:func:`wdsr_fast.app.image_io.save_image`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from wdsr_fast.app.errors import ImageError
from wdsr_fast.app.image_io import LoadedImage, load_image, output_format, save_image
from wdsr_fast.app.paths import check_plan, is_video, plan_outputs
from wdsr_fast.app.resize import imresize_uint8
from wdsr_fast.app.tiling import upscale_tiled
from wdsr_fast.app.video import upscale_video

__all__ = ["UpscaleJob", "Upscaled", "check_plan", "plan_outputs", "upscale_file", "upscale_files"]


@dataclass(frozen=True)
class UpscaleJob:
    """How to run the network: tiling (see :mod:`wdsr_fast.app.tiling`), device, dtype, and
    the video frames run at once."""

    tile: int | None = None
    overlap: int | None = None
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32
    batch: int = 4


@dataclass(frozen=True)
class Upscaled:
    """What :func:`upscale_file` wrote: the output's size, and a note (or None) saying what the
    output file could not hold (an alpha channel in a format without one); for a video, its
    frames and the audio tracks kept."""

    height: int
    width: int
    note: str | None = None
    frames: int | None = None
    audio_tracks: int = 0


def _model_input(image: LoadedImage, n_colors: int, source: str) -> torch.Tensor:
    """The (n_colors, H, W) uint8 pixels a model of ``n_colors`` channels takes."""
    if n_colors == 3:
        return image.rgb
    if n_colors == 1 and image.grayscale:
        return image.rgb[:1]
    if n_colors == 1:
        raise ImageError(
            f"{source}: the weights take grayscale (1-channel) images and this one is in "
            "colour; convert it to grayscale first"
        )
    raise ValueError(f"model: upscaling takes 1- or 3-channel models, got n_colors={n_colors}")


def upscale_file(
    model: nn.Module, source: str, target: str, job: UpscaleJob, progress: bool = False
) -> Upscaled:
    """Super-resolve the image or video file ``source`` into ``target`` (written whole or not
    at all; videos by :func:`wdsr_fast.app.video.upscale_video`)."""
    if is_video(source):
        video = upscale_video(model, source, target, job, job.batch, progress)
        return Upscaled(video.height, video.width, None, video.frames, video.audio_tracks)
    check_plan([(source, target)])
    image = load_image(source)
    pixels = _model_input(image, model.n_colors, source)
    out = upscale_tiled(model, pixels, job.tile, job.overlap, job.device, job.dtype, progress)
    alpha = None
    if image.alpha is not None:
        alpha = imresize_uint8(image.alpha, float(model.scale))
    kept_alpha = save_image(target, out, alpha, image.grayscale)
    note = None
    if alpha is not None and not kept_alpha:
        kind = output_format(target)
        note = f"{target}: {kind} files have no alpha channel; transparency dropped"
    return Upscaled(out.shape[-2], out.shape[-1], note)


def upscale_files(
    model: nn.Module,
    pairs: Sequence[tuple[str, str]],
    job: UpscaleJob,
    report: Callable[[str], None] = print,
    note: Callable[[str], None] | None = None,
) -> list[tuple[str, str]]:
    """Upscale each (source, target) pair, going on past failures; returns (source, message)s.

    ``report`` receives each failure's one-line message (naming the file) as it happens, and
    ``note`` (when given) each written file's note (see :class:`Upscaled`).
    """
    failures: list[tuple[str, str]] = []
    several = len(pairs) > 1
    for source, target in tqdm(
        pairs, desc="images", unit="image", disable=None if several else True
    ):
        try:
            written = upscale_file(model, source, target, job, progress=True)
        except (ImageError, OSError, ValueError, RuntimeError, MemoryError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            message = reason if reason.startswith(source) else f"{source}: {reason}"
            failures.append((source, message))
            report(message)
            continue
        if written.note is not None and note is not None:
            note(written.note)
    return failures
