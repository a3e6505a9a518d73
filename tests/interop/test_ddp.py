"""DistributedDataParallel: two CPU processes (gloo, loopback) train a small WDSRB.

Each rank takes its half of every global batch; DDP averages the gradients, and the L1 loss
is a mean over equal halves, so both replicas must end with the parameters of one process
trained on the whole global batch.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from wdsr_fast import WDSRB

WORLD_SIZE = 2
STEPS = 3
GLOBAL_BATCH = 4
DEADLINE_S = 240.0  # whole test, spawn included; the slowest run seen here takes about 30 s


def make_model() -> WDSRB:
    torch.manual_seed(0)
    return WDSRB(n_resblocks=2, n_feats=8, backend="torch")


def global_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (
            torch.rand(GLOBAL_BATCH, 3, 6, 5, generator=generator) * 255,
            torch.rand(GLOBAL_BATCH, 3, 12, 10, generator=generator) * 255,
        )
        for _ in range(STEPS)
    ]


def train(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """Adam on the L1 loss, one step per batch; returns copies of the parameters."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in batches:
        optimizer.zero_grad()
        nn.functional.l1_loss(model(x), y).backward()
        optimizer.step()
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def run_rank(rank: int, port: int, out_dir: str) -> None:
    """One DDP replica: its half of each global batch; saves its parameters."""
    torch.set_num_threads(1)
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        half = GLOBAL_BATCH // WORLD_SIZE
        local = [
            (x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half])
            for x, y in global_batches()
        ]
        params = train(nn.parallel.DistributedDataParallel(make_model()), local)
        torch.save(params, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_bounded(out_dir: Path) -> None:
    """Run both ranks; kill them and fail when they are not done by the deadline."""
    context = mp.spawn(
        run_rank, args=(free_loopback_port(), str(out_dir)), nprocs=WORLD_SIZE, join=False
    )
    deadline = time.monotonic() + DEADLINE_S
    while not context.join(timeout=max(0.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"DDP ranks did not finish within {DEADLINE_S} s")


def test_ddp_replicas_match_single_process(tmp_path: Path) -> None:
    spawn_bounded(tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    start = dict(make_model().named_parameters())
    single = train(make_model(), global_batches())
    assert ranks[0].keys() == ranks[1].keys() == single.keys()
    for name, value in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), f"replicas differ in {name}"
        assert not torch.equal(value, start[name]), f"{name} was not trained"
        # all-reduce sums in another order than one process: float32 rounding only
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-5, atol=1e-6, msg=name)
