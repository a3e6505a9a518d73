"""Training on a folder of images, in the reference trainer's style.

Data: each high-resolution (HR) image is cropped to a multiple of ``scale`` and downscaled once
with MATLAB-compatible bicubic (:mod:`wdsr_fast.app.resize`), rounded to 8 bits, the way the
literature's low-resolution (LR) sets are made. A batch is ``batch_size`` random aligned crops,
``patch_size`` LR pixels square (``patch_size * scale`` HR), each randomly flipped horizontally,
vertically and transposed (the 8 symmetries of the square).

Optimisation: L1 loss on [0, 255] pixel values, Adam (betas 0.9 / 0.999, eps 1e-8), learning rate
halved at each milestone, as the authors' trainer does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wdsr_fast.app.image_io import ImageError, file_identities, list_images, load_image
from wdsr_fast.app.resize import cubic, make_pair
from wdsr_fast.interop.checkpoint import save_model
from wdsr_fast.nn.models import WDSRB

__all__ = [
    "PatchSampler",
    "TrainConfig",
    "init_as_bicubic",
    "load_training_pairs",
    "train",
    "training_files",
]


def training_files(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The image files ``paths`` name: files as given, and the images inside folders."""
    files: list[str] = []
    for path in paths:
        files += list_images(path) if os.path.isdir(path) else [os.fspath(path)]
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


def init_as_bicubic(model: nn.Module, tail_gain: float = 0.1) -> None:
    """Start a WDSR ``model`` near bicubic upsampling: a faster start for short trainings.

    The 5x5 skip conv becomes bicubic upsampling by the model's ``scale``; the tail conv's bias
    is zeroed and its ``weight_g`` multiplied by ``tail_gain``, so the residual branch starts
    small instead of adding noise.

    HR pixel ``h*s + i`` sits at LR position ``h + d_i``, ``d_i = (i + 0.5) / s - 0.5``; its
    bicubic weight on LR pixel ``h + k`` (k = -2..2) is ``cubic(d_i - k)`` (normalised), and the
    2-D filter of output phase (i, j) of colour c is the outer product of the row and column
    weights, reading only input colour c. Bias 0, so ``skip(norm(x)) = norm(bicubic(x))`` and the
    untrained model starts at bicubic quality; the residual body then learns the difference.
    """
    tail = model.tail[0]
    with torch.no_grad():
        tail.weight_g.mul_(tail_gain)
        tail.bias.zero_()
    conv = model.skip[0]
    s, n_colors = model.scale, conv.in_channels
    offsets = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
    taps = torch.arange(-2, 3, dtype=torch.float64)
    weights = cubic(offsets[:, None] - taps[None, :])
    weights = weights / weights.sum(dim=1, keepdim=True)  # (s, 5)
    phase_filters = weights[:, None, :, None] * weights[None, :, None, :]  # (s, s, 5, 5)
    v = torch.zeros(n_colors, s, s, n_colors, 5, 5, dtype=torch.float64)
    for c in range(n_colors):
        v[c, :, :, c] = phase_filters
    v = v.reshape(n_colors * s * s, n_colors, 5, 5)
    with torch.no_grad():
        conv.weight_v.copy_(v)
        conv.weight_g.copy_(torch.linalg.vector_norm(v, dim=(1, 2, 3), keepdim=True))
        conv.bias.zero_()


class PatchSampler:
    """Random aligned LR/HR patch batches from (LR, HR) uint8 pairs.

    ``sample()`` returns float32 LR (N, 3, p, p) and HR (N, 3, p*scale, p*scale) in [0, 255].
    Images are drawn with probability proportional to their area, so every pixel is equally
    likely to be seen.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Tensor, Tensor]],
        scale: int,
        patch_size: int,
        batch_size: int,
        generator: torch.Generator | None = None,
    ):
        if not pairs:
            raise ValueError("pairs must not be empty")
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
        areas = torch.tensor([float(lr.shape[-2] * lr.shape[-1]) for lr, _ in pairs])
        self.weights = areas / areas.sum()

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (), generator=self.generator))

    def sample(self) -> tuple[Tensor, Tensor]:
        p, s = self.patch_size, self.scale
        picks = torch.multinomial(self.weights, self.batch_size, True, generator=self.generator)
        lr_patches, hr_patches = [], []
        for index in picks.tolist():
            lr, hr = self.pairs[index]
            top = self._randint(lr.shape[-2] - p + 1)
            left = self._randint(lr.shape[-1] - p + 1)
            lr_patch = lr[:, top : top + p, left : left + p]
            hr_patch = hr[:, top * s : (top + p) * s, left * s : (left + p) * s]
            flips = torch.randint(2, (3,), generator=self.generator).tolist()
            if flips[0]:
                lr_patch, hr_patch = lr_patch.flip(-1), hr_patch.flip(-1)
            if flips[1]:
                lr_patch, hr_patch = lr_patch.flip(-2), hr_patch.flip(-2)
            if flips[2]:
                lr_patch, hr_patch = lr_patch.transpose(-1, -2), hr_patch.transpose(-1, -2)
            lr_patches.append(lr_patch)
            hr_patches.append(hr_patch)
        return torch.stack(lr_patches).float(), torch.stack(hr_patches).float()


@dataclass
class TrainConfig:
    """Optimisation settings; ``milestones`` are fractions of ``steps`` where lr halves."""

    steps: int = 240
    lr: float = 1e-3
    milestones: tuple[float, ...] = (0.5, 0.75)
    log_every: int = 50
    checkpoint_every: int = 0


def train(
    model: nn.Module,
    sampler: PatchSampler,
    config: TrainConfig,
    device: torch.device | str = "cpu",
    on_log: Callable[[int, float, float], None] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> list[float]:
    """Train ``model`` in place for ``config.steps`` Adam steps of L1 loss; returns the losses.

    ``on_log(step, mean_loss, seconds)`` is called every ``log_every`` steps with the mean loss
    since the last call; ``on_checkpoint(step)`` every ``checkpoint_every`` steps and at the end.
    """
    if config.steps < 1:
        raise ValueError(f"steps must be positive, got {config.steps}")
    device = torch.device(device)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    milestones = sorted({max(1, round(f * config.steps)) for f in config.milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.5)
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        lr_batch, hr_batch = (t.to(device) for t in sampler.sample())
        loss = F.l1_loss(model(lr_batch), hr_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if on_log is not None and config.log_every and step % config.log_every == 0:
            recent = losses[-config.log_every :]
            on_log(step, sum(recent) / len(recent), time.perf_counter() - start)
        if on_checkpoint is not None and (
            step == config.steps
            or (config.checkpoint_every and step % config.checkpoint_every == 0)
        ):
            on_checkpoint(step)
    model.eval()
    return losses


def train_on_images(
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    scale: int = 2,
    n_feats: int = 32,
    n_resblocks: int = 8,
    batch_size: int = 8,
    patch_size: int = 32,
    config: TrainConfig | None = None,
    seed: int = 0,
    device: str = "cpu",
    bicubic_init: bool = True,
    log: Callable[[str], None] = print,
) -> nn.Module:
    """Train a WDSRB x ``scale`` on the HR images ``paths`` and write it to ``output``.

    The weights file (:func:`wdsr_fast.interop.checkpoint.save_model`: safetensors for a
    ``.safetensors`` name) is rewritten at every checkpoint and at the end. Returns the trained
    model (eval mode). ``output`` must not be one of the training images.
    """
    config = config if config is not None else TrainConfig()
    output_folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(output_folder):
        raise ImageError(f"{output}: output folder {output_folder} does not exist")
    output_keys = file_identities(output)
    for file in training_files(paths):
        if output_keys & file_identities(file):
            raise ImageError(
                f"{output}: the weights file would overwrite the training image {file}; "
                "choose another output"
            )
    torch.manual_seed(seed)
    pairs = load_training_pairs(paths, scale, patch_size)
    log(f"{len(pairs)} images, {sum(lr.shape[-1] * lr.shape[-2] for lr, _ in pairs)} LR pixels")
    sampler = PatchSampler(
        pairs, scale, patch_size, batch_size, torch.Generator().manual_seed(seed)
    )
    model = WDSRB(scale=scale, n_resblocks=n_resblocks, n_feats=n_feats)
    if bicubic_init:
        init_as_bicubic(model)

    def on_log(step: int, loss: float, seconds: float) -> None:
        log(f"step {step}/{config.steps}  L1 {loss:.3f}  {seconds:.0f} s")

    train(model, sampler, config, device, on_log, lambda step: save_model(model, output))
    return model
