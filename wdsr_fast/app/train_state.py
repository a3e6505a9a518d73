"""The training state ``train`` keeps next to its weights, from which ``--resume`` continues.

One torch file (``OUTPUT.resume.pt``, :func:`wdsr_fast.app.paths.resume_path`) holding the
model's weights, the optimizer's and the learning-rate schedule's states, the number of steps
done, the random states (the patch sampler's generator, torch's CPU and CUDA generators) and
the recipe (the options that must not change on resume). Written whole or not at all (a
temporary file renamed into place); read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import collections
import os
import secrets
from typing import Any

import torch
from torch import nn

from wdsr_fast.app.errors import CommandError

__all__ = ["check_recipe", "load_state", "save_state"]


def save_state(
    path: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    generator: torch.Generator,
    recipe: dict[str, Any],
) -> None:
    """Write the training state after ``step`` steps to ``path`` (whole or not at all)."""
    schedule = scheduler.state_dict()
    schedule["milestones"] = dict(schedule["milestones"])
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": schedule,
        "step": step,
        "sampler_rng": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "recipe": recipe,
    }
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        torch.save(state, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_state(path: str) -> dict[str, Any]:
    """The training state in ``path``; CommandError naming the file when it cannot be used."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, unexpected objects
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CommandError(f"--resume: {path} is not a training state ({reason})") from None
    keys = {"model", "optimizer", "scheduler", "step", "sampler_rng", "torch_rng", "recipe"}
    if not isinstance(state, dict) or not keys <= state.keys():
        raise CommandError(f"--resume: {path} is not a training state written by train")
    state["scheduler"]["milestones"] = collections.Counter(state["scheduler"]["milestones"])
    return state


def check_recipe(saved: dict[str, Any], recipe: dict[str, Any], path: str) -> None:
    """CommandError naming the first option whose value differs from the saved run's."""
    for key, value in recipe.items():
        if saved.get(key) != value:
            option = "--" + key.replace("_", "-")
            raise CommandError(
                f"--resume: {option} is {value!r} here but {saved.get(key)!r} in {path}; "
                "resume with the options of the interrupted run"
            )
