"""Training on a folder of images, in the reference trainer's style, in one process or many.

Data: random aligned LR/HR patches with flips (:mod:`wdsr_fast.app.patches`). Optimisation: L1
loss on [0, 255] pixel values, Adam (betas 0.9 / 0.999, eps 1e-8), learning rate halved at each
milestone, as the authors' trainer does.

:func:`train_on_images` is the ``train`` command: it runs as it is under ``torchrun
--nproc-per-node N`` (:mod:`wdsr_fast.app.distributed`: each process takes its share of every
batch and DDP averages the gradients, so N processes compute what one process computes on the
same batches; the first process alone writes files and logs), keeps a training state next to
its weights for ``--resume`` (:mod:`wdsr_fast.app.train_state`), and reports PSNR-Y on
held-out images every so many steps (:mod:`wdsr_fast.app.validation`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from wdsr_fast.app import distributed
from wdsr_fast.app.errors import ImageError
from wdsr_fast.app.patches import PatchSampler, load_training_pairs, training_files
from wdsr_fast.app.paths import file_identities, resume_path
from wdsr_fast.app.resize import cubic
from wdsr_fast.app.train_state import check_recipe, load_state, save_state
from wdsr_fast.app.validation import ValidationSet
from wdsr_fast.interop.checkpoint import save_model
from wdsr_fast.nn.models import WDSRB

__all__ = [
    "PatchSampler",
    "TrainConfig",
    "init_as_bicubic",
    "load_training_pairs",
    "make_optimizer",
    "train",
    "train_on_images",
    "training_files",
]


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


@dataclass
class TrainConfig:
    """Optimisation settings; ``milestones`` are fractions of ``steps`` where lr halves.

    Every ``log_every`` steps the mean loss is logged, every ``checkpoint_every`` steps (and at
    the end) a checkpoint is written, every ``validate_every`` steps validation runs (0: never).
    """

    steps: int = 240
    lr: float = 1e-3
    milestones: tuple[float, ...] = (0.5, 0.75)
    log_every: int = 50
    checkpoint_every: int = 0
    validate_every: int = 0


def make_optimizer(
    model: nn.Module, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Adam (betas 0.9 / 0.999, eps 1e-8) and its schedule: lr halved at each milestone."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    milestones = sorted({max(1, round(f * config.steps)) for f in config.milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.5)
    return optimizer, scheduler


def _due(step: int, every: int, last: int) -> bool:
    return step == last or bool(every and step % every == 0)


def train(
    model: nn.Module,
    sampler: PatchSampler,
    config: TrainConfig,
    device: torch.device | str = "cpu",
    on_log: Callable[[int, float, float], None] | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    start_step: int = 0,
    on_validate: Callable[[int], None] | None = None,
    progress: bool = False,
) -> list[float]:
    """Train ``model`` in place for ``config.steps`` Adam steps of L1 loss; returns the losses
    of this process's batches.

    ``on_log(step, mean_loss, seconds)`` is called every ``log_every`` steps with the mean loss
    since the last call (over all processes when torch.distributed runs), ``on_checkpoint(step)``
    every ``checkpoint_every`` steps and at the end, ``on_validate(step)`` every
    ``validate_every`` steps and at the end. ``optimizer`` and ``scheduler`` (both or neither;
    default :func:`make_optimizer`) and ``start_step`` continue an earlier run: steps
    ``start_step + 1`` to ``config.steps`` are taken. ``progress``: a progress bar on a
    terminal.
    """
    if config.steps < 1:
        raise ValueError(f"steps must be positive, got {config.steps}")
    device = torch.device(device)
    model.to(device).train()
    if optimizer is None or scheduler is None:
        optimizer, scheduler = make_optimizer(model, config)
    losses: list[float] = []
    start = time.perf_counter()
    bar = tqdm(
        total=config.steps,
        initial=start_step,
        desc="training",
        unit="step",
        disable=None if progress else True,
    )
    for step in range(start_step + 1, config.steps + 1):
        lr_batch, hr_batch = (t.to(device) for t in sampler.sample())
        loss = F.l1_loss(model(lr_batch), hr_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.update()
        if config.log_every and step % config.log_every == 0:
            recent = losses[-config.log_every :]
            mean = distributed.mean_over_processes(sum(recent) / len(recent), device)
            bar.set_postfix_str(f"L1 {mean:.3f}", refresh=False)
            if on_log is not None:
                on_log(step, mean, time.perf_counter() - start)
        validate = on_validate is not None and config.validate_every
        if validate and _due(step, config.validate_every, config.steps):
            on_validate(step)
        if on_checkpoint is not None and _due(step, config.checkpoint_every, config.steps):
            on_checkpoint(step)
    bar.close()
    model.eval()
    return losses


def _check_output(paths: Sequence[str | os.PathLike], output: str) -> None:
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise ImageError(f"{output}: output folder {folder} does not exist")
    output_keys = file_identities(output) | file_identities(resume_path(output))
    for file in training_files(paths):
        if output_keys & file_identities(file):
            raise ImageError(
                f"{output}: the weights file would overwrite the training image {file}; "
                "choose another output"
            )


def _resume(
    path: str,
    recipe: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    sampler: PatchSampler,
) -> int:
    """Restore the training state in ``path``; returns the steps it had done."""
    state = load_state(path)
    check_recipe(state["recipe"], recipe, path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    sampler.generator.set_state(state["sampler_rng"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"])


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
    device: torch.device | str = "cpu",
    bicubic_init: bool = True,
    log: Callable[[str], None] = print,
    resume: bool = False,
    val: Sequence[str | os.PathLike] | None = None,
    progress: bool = False,
) -> nn.Module:
    """Train a WDSRB x ``scale`` on the HR images ``paths`` and write it to ``output``.

    The weights file (:func:`wdsr_fast.interop.checkpoint.save_model`: safetensors for a
    ``.safetensors`` name) and the training state next to it
    (:func:`wdsr_fast.app.paths.resume_path`) are rewritten at every checkpoint and at the end.
    ``resume=True`` continues from that state. ``val``: held-out HR images, whose PSNR-Y is
    logged every ``config.validate_every`` steps. Under torchrun, ``batch_size`` is the global
    batch (a multiple of the process count) and only the first process writes and logs.
    Returns the trained model (eval mode). ``output`` must not be one of the training images.
    """
    config = config if config is not None else TrainConfig()
    output = os.fspath(output)
    state_path = resume_path(output)
    processes, device = distributed.start(torch.device(device))
    if not processes.main:
        log = lambda line: None  # noqa: E731 - the first process alone logs
    try:
        _check_output(paths, output)
        torch.manual_seed(seed)
        pairs = load_training_pairs(paths, scale, patch_size)
        pixels = sum(lr.shape[-1] * lr.shape[-2] for lr, _ in pairs)
        shared = f", batches shared by {processes.world_size} processes"
        log(f"{len(pairs)} images, {pixels} LR pixels{shared if processes.distributed else ''}")
        if batch_size % processes.world_size:
            raise ValueError(
                f"batch_size={batch_size} cannot be shared equally among "
                f"{processes.world_size} processes"
            )
        generator = torch.Generator().manual_seed(seed)
        share = (processes.rank, processes.world_size)
        sampler = PatchSampler(pairs, scale, patch_size, batch_size, generator, share)
        model = WDSRB(scale=scale, n_resblocks=n_resblocks, n_feats=n_feats)
        if bicubic_init:
            init_as_bicubic(model)
        model.to(device)
        optimizer, scheduler = make_optimizer(model, config)
        recipe = dict(
            scale=scale,
            n_feats=n_feats,
            n_resblocks=n_resblocks,
            steps=config.steps,
            batch_size=batch_size,
            patch_size=patch_size,
            lr=config.lr,
            seed=seed,
            no_bicubic_init=not bicubic_init,
        )
        start_step = 0
        if resume:
            start_step = _resume(state_path, recipe, model, optimizer, scheduler, sampler)
            log(f"resumed from {state_path} at step {start_step}/{config.steps}")
        validation = ValidationSet(val, scale) if val and processes.main else None
        if validation is not None:
            log(
                f"validation: {len(validation)} images, bicubic PSNR-Y "
                f"{validation.bicubic_psnr:.2f} dB"
            )
        checkpoint = [start_step]

        def on_log(step: int, loss: float, seconds: float) -> None:
            log(f"step {step}/{config.steps}  L1 {loss:.3f}  {seconds:.0f} s")

        def on_checkpoint(step: int) -> None:
            if processes.main:
                save_state(state_path, model, optimizer, scheduler, step, generator, recipe)
                save_model(model, output)
            checkpoint[0] = step

        def on_validate(step: int) -> None:
            if validation is not None:
                psnr = validation.psnr(model, device, progress)
                log(
                    f"step {step}/{config.steps}  validation PSNR-Y {psnr:.2f} dB "
                    f"({psnr - validation.bicubic_psnr:+.2f} dB over bicubic)"
                )

        if start_step >= config.steps:
            log(f"{state_path} is at step {start_step} of {config.steps}: nothing left to do")
            return model.eval()
        start = time.perf_counter()
        try:
            train(
                distributed.wrap(model, processes, device),
                sampler,
                config,
                device,
                on_log,
                on_checkpoint,
                optimizer=optimizer,
                scheduler=scheduler,
                start_step=start_step,
                on_validate=on_validate,
                progress=progress and processes.main,
            )
        except KeyboardInterrupt:
            if checkpoint[0]:
                log(
                    f"interrupted: {output} and {state_path} hold step {checkpoint[0]}; the "
                    "same command with --resume continues from there"
                )
            raise
        parameters = sum(p.numel() for p in model.parameters())
        log(
            f"wrote {output} (WDSR-B x{scale}, {parameters:,} parameters, step {config.steps}) "
            f"and its training state {state_path} in {time.perf_counter() - start:.0f} s"
        )
    finally:
        distributed.stop(processes)
    return model.eval()
