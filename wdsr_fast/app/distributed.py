"""Training in several processes started by ``torchrun``: torch.distributed with DDP.

``torchrun --nproc-per-node N`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous
address in each process's environment; :func:`start` joins the process group (NCCL on CUDA,
gloo on the CPU) and gives each process its device (``cuda:LOCAL_RANK`` on GPUs). Without
torchrun (or with one process) nothing is started and everything below is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Processes", "mean_over_processes", "start", "stop", "wrap"]


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes the files and the logs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start(device: torch.device) -> tuple[Processes, torch.device]:
    """Join torchrun's process group when there is one; returns this process's place and
    its device (``device``, with a CUDA device moved to ``cuda:LOCAL_RANK``)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes(), device
    if device.type == "cuda":
        local_rank, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local_rank >= count:
            raise ValueError(
                f"torchrun started more processes on this machine than it has GPUs ({count}): "
                f"give --nproc-per-node {count}, or train on the CPU with --device cpu"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size()), device


def stop(processes: Processes) -> None:
    """Leave the process group once every process is done."""
    if processes.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: nn.Module, processes: Processes, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several processes (which then
    averages the gradients of every step), else ``model`` itself."""
    if not processes.distributed:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def mean_over_processes(value: float, device: torch.device) -> float:
    """The mean of ``value`` over the processes (``value`` itself in one process). Every
    process must call it at the same point."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / dist.get_world_size()
