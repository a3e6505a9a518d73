"""Training data: (LR, HR) pairs of high-resolution images, and random aligned patch batches.

Each high-resolution (HR) image is cropped to a multiple of ``scale`` and downscaled once with
MATLAB-compatible bicubic (:mod:`wdsr_fast.app.resize`), rounded to 8 bits, the way the
literature's low-resolution (LR) sets are made. A batch is ``batch_size`` random aligned crops,
``patch_size`` LR pixels square (``patch_size * scale`` HR), each randomly flipped horizontally,
vertically and transposed (the 8 symmetries of the square).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor

from wdsr_fast.app.checks import image_files
from wdsr_fast.app.errors import ImageError
from wdsr_fast.app.image_io import load_image
from wdsr_fast.app.resize import make_pair

__all__ = ["PatchSampler", "load_training_pairs", "training_files"]


def training_files(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The image files ``paths`` name: files as given, and the images inside folders."""
    files = image_files(paths)
    if not files:
        raise ImageError(f"no image files in {', '.join(map(os.fspath, paths))}")
    return files


def load_training_pairs(
    paths: Sequence[str | os.PathLike], scale: int, min_lr_size: int
) -> list[tuple[Tensor, Tensor]]:
    """(LR, HR) pairs for the image files ``paths`` (or the images inside any folder among them).

    Images whose LR side would be shorter than ``min_lr_size`` are refused with an ImageError.
    """
    pairs = []
    for file in training_files(paths):
        lr, hr = make_pair(load_image(file).rgb, scale)
        if min(lr.shape[-2:]) < min_lr_size:
            raise ImageError(
                f"{file}: too small for patch size {min_lr_size} at scale {scale} "
                f"(its low-resolution side is {min(lr.shape[-2:])})"
            )
        pairs.append((lr, hr))
    return pairs


class PatchSampler:
    """Random aligned LR/HR patch batches from (LR, HR) uint8 pairs.

    ``sample()`` returns float32 LR (n, 3, p, p) and HR (n, 3, p*scale, p*scale) in [0, 255].
    Images are drawn with probability proportional to their area, so every pixel is equally
    likely to be seen.

    ``share=(rank, processes)``: the batch of ``batch_size`` patches is shared out among
    ``processes`` processes, and this one returns its part, patches ``rank * n`` to
    ``(rank + 1) * n - 1`` with ``n = batch_size / processes``. Every process draws the random
    numbers of the whole batch, so processes that start from the same generator state take
    their parts of the very batches one process would take whole.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Tensor, Tensor]],
        scale: int,
        patch_size: int,
        batch_size: int,
        generator: torch.Generator | None = None,
        share: tuple[int, int] = (0, 1),
    ):
        if not pairs:
            raise ValueError("pairs must not be empty")
        rank, processes = share
        if processes < 1 or not 0 <= rank < processes or batch_size % processes:
            raise ValueError(
                f"share must be (rank, processes) with 0 <= rank < processes and processes "
                f"dividing batch_size={batch_size}, got {share}"
            )
        for lr, hr in pairs:
            if min(lr.shape[-2:]) < patch_size:
                raise ValueError(
                    f"an LR image of shape {tuple(lr.shape)} is smaller than "
                    f"patch_size={patch_size}"
                )
            if hr.shape[-2:] != (lr.shape[-2] * scale, lr.shape[-1] * scale):
                raise ValueError("each HR image must be scale times its LR image")
        self.pairs = list(pairs)
        self.scale, self.patch_size, self.batch_size = scale, patch_size, batch_size
        self.generator = generator if generator is not None else torch.Generator()
        part = batch_size // processes
        self.part = range(rank * part, (rank + 1) * part)
        areas = torch.tensor([float(lr.shape[-2] * lr.shape[-1]) for lr, _ in pairs])
        self.weights = areas / areas.sum()

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (), generator=self.generator))

    def sample(self) -> tuple[Tensor, Tensor]:
        p, s = self.patch_size, self.scale
        picks = torch.multinomial(self.weights, self.batch_size, True, generator=self.generator)
        lr_patches, hr_patches = [], []
        for position, index in enumerate(picks.tolist()):
            lr, hr = self.pairs[index]
            top = self._randint(lr.shape[-2] - p + 1)
            left = self._randint(lr.shape[-1] - p + 1)
            flips = torch.randint(2, (3,), generator=self.generator).tolist()
            if position not in self.part:
                continue
            lr_patch = lr[:, top : top + p, left : left + p]
            hr_patch = hr[:, top * s : (top + p) * s, left * s : (left + p) * s]
            if flips[0]:
                lr_patch, hr_patch = lr_patch.flip(-1), hr_patch.flip(-1)
            if flips[1]:
                lr_patch, hr_patch = lr_patch.flip(-2), hr_patch.flip(-2)
            if flips[2]:
                lr_patch, hr_patch = lr_patch.transpose(-1, -2), hr_patch.transpose(-1, -2)
            lr_patches.append(lr_patch)
            hr_patches.append(hr_patch)
        return torch.stack(lr_patches).float(), torch.stack(hr_patches).float()
