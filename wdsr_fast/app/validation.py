"""Validation during training: PSNR-Y on held-out high-resolution images.

The images are prepared once as ``eval`` prepares them (cropped to a multiple of the scale,
MATLAB-compatible bicubic downscaling rounded to 8 bits, :func:`wdsr_fast.app.resize.make_pair`),
with bicubic upsampling's PSNR-Y as the baseline. Each validation runs the model on every LR
image and reports the mean PSNR-Y of the BT.601 luma, ``scale`` border pixels shaved
(:func:`wdsr_fast.app.metrics.psnr_y`). Validation draws no random numbers, so it does not
change the training run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn
from tqdm import tqdm

from wdsr_fast.app.checks import image_files
from wdsr_fast.app.image_io import load_image
from wdsr_fast.app.metrics import psnr_y
from wdsr_fast.app.resize import imresize_uint8, make_pair
from wdsr_fast.app.tiling import upscale_tiled

__all__ = ["ValidationSet"]


class ValidationSet:
    """Held-out (LR, HR) pairs of the image files or folders ``paths``, at ``scale``."""

    def __init__(self, paths: Sequence[str | os.PathLike], scale: int, tile: int = 512):
        self.scale, self.tile = scale, tile
        self.pairs = [make_pair(load_image(f).rgb, scale) for f in image_files(paths, "--val ")]
        self.bicubic_psnr = sum(
            psnr_y(imresize_uint8(lr, float(scale)), hr, scale) for lr, hr in self.pairs
        ) / len(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    @torch.no_grad()
    def psnr(self, model: nn.Module, device: torch.device, progress: bool = False) -> float:
        """Mean PSNR-Y (dB) of ``model`` (float32 on ``device``) on the held-out images."""
        was_training = model.training
        model.eval()
        total = 0.0
        try:
            for lr, hr in tqdm(
                self.pairs,
                desc="validation",
                unit="image",
                disable=None if progress else True,
                leave=False,
            ):
                output = upscale_tiled(model, lr, self.tile, None, device, torch.float32)
                total += psnr_y(output, hr, self.scale)
        finally:
            model.train(was_training)
        return total / len(self.pairs)
