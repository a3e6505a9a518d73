"""Evaluation against high-resolution images, with bicubic upsampling as the baseline.

For each HR image (cropped to a multiple of the scale): LR = MATLAB-compatible bicubic
downscale rounded to 8 bits (:func:`wdsr_fast.app.resize.make_pair`); the baseline is the bicubic
upscale of LR, the model's output is the tiled network output, both rounded to 8 bits; scores are
PSNR and SSIM of the BT.601 luma with ``scale`` border pixels shaved (:mod:`wdsr_fast.app.metrics`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn
from tqdm import tqdm

from wdsr_fast.app.image_io import ImageError, list_images, load_image
from wdsr_fast.app.metrics import psnr_y, ssim_y
from wdsr_fast.app.resize import imresize_uint8, make_pair
from wdsr_fast.app.tiling import upscale_tiled
from wdsr_fast.app.upscaling import UpscaleJob

__all__ = ["Scores", "evaluate", "evaluate_image", "format_table"]


@dataclass(frozen=True)
class Scores:
    """PSNR-Y (dB) and SSIM-Y of bicubic and of the model on one image (or their means)."""

    name: str
    bicubic_psnr: float
    bicubic_ssim: float
    model_psnr: float
    model_ssim: float


def evaluate_image(model: nn.Module, path: str, job: UpscaleJob) -> Scores:
    """Scores of bicubic and ``model`` on the HR image file ``path``."""
    scale = model.scale
    lr, hr = make_pair(load_image(path).rgb, scale)
    bicubic = imresize_uint8(lr, float(scale))
    output = upscale_tiled(model, lr, job.tile, job.overlap, job.device, job.dtype)
    return Scores(
        name=os.path.basename(path),
        bicubic_psnr=psnr_y(bicubic, hr, scale),
        bicubic_ssim=ssim_y(bicubic, hr, scale),
        model_psnr=psnr_y(output, hr, scale),
        model_ssim=ssim_y(output, hr, scale),
    )


def evaluate(model: nn.Module, inputs: Sequence[str], job: UpscaleJob) -> list[Scores]:
    """Scores per HR image file (folders contribute the images inside), then their mean."""
    files: list[str] = []
    for path in inputs:
        files += list_images(path) if os.path.isdir(path) else [path]
    if not files:
        raise ImageError(f"no image files in {', '.join(inputs)}")
    rows = [
        evaluate_image(model, path, job)
        for path in tqdm(
            files, desc="images", unit="image", disable=True if len(files) == 1 else None
        )
    ]
    means = [
        sum(getattr(r, field) for r in rows) / len(rows)
        for field in ("bicubic_psnr", "bicubic_ssim", "model_psnr", "model_ssim")
    ]
    return [*rows, Scores("mean", *means)]


def format_table(rows: Sequence[Scores], model_name: str = "model") -> str:
    """A Markdown table: image, bicubic PSNR/SSIM, model PSNR/SSIM, PSNR gain."""
    lines = [
        f"| image | bicubic PSNR-Y (dB) | bicubic SSIM-Y | {model_name} PSNR-Y (dB) "
        f"| {model_name} SSIM-Y | gain (dB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        name = f"**{r.name}**" if r.name == "mean" else r.name
        lines.append(
            f"| {name} | {r.bicubic_psnr:.2f} | {r.bicubic_ssim:.4f} | {r.model_psnr:.2f} "
            f"| {r.model_ssim:.4f} | {r.model_psnr - r.bicubic_psnr:+.2f} |"
        )
    return "\n".join(lines)
