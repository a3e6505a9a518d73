"""WDSR-B residual block and training step: the reference against wdsr_fast, side by side.

Suites (C=32, expand 6, linear 0.8, i.e. E=192, L=25):
- block forward on one LR image (540x960 fp16 on a GPU, 256x256 fp32 on a CPU), with the
  fraction of the roofline bound on a GPU (docs/design.md section 6);
- block forward + backward on a training batch (16 x 48 x 48), with peak memory and the bytes
  autograd saves for backward;
- training step of the whole WDSR-B x2 (B=16) model: forward, L1 loss, backward, Adam step,
  batch 16 of 48x48 LR patches (float16 autocast on a GPU, float32 on a CPU).
Whole-model inference is in test_bench_models.py.

Providers: ``reference_eager`` (plain PyTorch, same dtype, channels_last), ``reference_compiled``
(``torch.compile(mode="max-autotune")`` of it on a GPU, default mode on a CPU) and
``wdsr_fast`` (the fused Triton op on a GPU; on a CPU its ``torch`` backend, since the Triton
interpreter is never timed). On a GPU the training step also runs ``wdsr_fast_compiled``: the
same ``torch.compile`` around wdsr_fast's model.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from wdsr_fast import WDSRB, functional
from wdsr_fast.testing.reference import wdsr_b_block_reference

from benchmarks import harness
from benchmarks.block_suite import (
    bench_block_forward,
    bench_block_forward_backward,
    bench_training_step,
    block_input,
    select_block_function,
)

PROVIDERS = ["reference_eager", "reference_compiled", "wdsr_fast"]
# On a GPU the training step also runs wdsr_fast's model under the same torch.compile: its
# CUDA graphs replay the fused kernels without the launchers' host time.
TRAINING_PROVIDERS = PROVIDERS + (["wdsr_fast_compiled"] if harness.ON_GPU else [])
N_FEATS, EXPAND, LINEAR = 32, 6, 0.8
TRAIN_BATCH, TRAIN_PATCH, SCALE = 16, (48, 48), 2


def block_weights(dtype: torch.dtype) -> list[nn.Parameter]:
    """Effective weights w1, b1, w2, b2, w3, b3 of one block (Parameters, so the saved-bytes
    count leaves them out, as it does a model's weights)."""
    c, e, low = N_FEATS, N_FEATS * EXPAND, int(N_FEATS * LINEAR)
    shapes = [(e, c, 1, 1), (e,), (low, e, 1, 1), (low,), (c, low, 3, 3), (c,)]
    return [
        nn.Parameter(0.1 * torch.randn(s, device=harness.DEVICE, dtype=torch.float32).to(dtype))
        for s in shapes
    ]


def block_function(provider: str) -> Callable[..., Tensor]:
    return select_block_function(provider, wdsr_b_block_reference, functional.wdsr_b_block)


def block_flops(x: Tensor) -> float:
    """FLOP of one block forward on x."""
    c, e, low = N_FEATS, N_FEATS * EXPAND, int(N_FEATS * LINEAR)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    return 2.0 * (c * e + e * low + 9 * low * c) * pixels


@pytest.mark.parametrize("provider", PROVIDERS)
def test_block_forward(benchmark, provider):
    x = block_input(1, N_FEATS, harness.IMAGE_HW)
    bench_block_forward(
        benchmark, block_function(provider), x, block_weights(harness.DTYPE),
        flops=block_flops(x),
        group=f"WDSR-B block forward 1x{N_FEATS}x{x.shape[2]}x{x.shape[3]} {x.dtype}",
        provider=provider,
    )  # fmt: skip


@pytest.mark.parametrize("provider", PROVIDERS)
def test_block_forward_backward(benchmark, provider):
    x = block_input(TRAIN_BATCH, N_FEATS, TRAIN_PATCH, requires_grad=True)
    bench_block_forward_backward(
        benchmark, block_function(provider), x, block_weights(harness.DTYPE),
        group=f"WDSR-B block forward+backward {TRAIN_BATCH}x{N_FEATS}x{TRAIN_PATCH[0]}x"
        f"{TRAIN_PATCH[1]} {x.dtype}",
        provider=provider,
    )  # fmt: skip


def training_model(provider: str) -> tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """(module holding the parameters, callable running its forward) in train mode."""
    ref = harness.reference_model("B", dtype=torch.float32, channels_last=True).train()
    if provider == "reference_eager":
        return ref, ref
    if provider == "reference_compiled":
        return ref, harness.compiled(ref)
    fast = WDSRB(scale=SCALE).to(harness.DEVICE).train()
    fast.load_state_dict(ref.state_dict())
    return fast, harness.compiled(fast) if provider == "wdsr_fast_compiled" else fast


@pytest.mark.parametrize("provider", TRAINING_PROVIDERS)
def test_training_step(benchmark, provider):
    module, forward = training_model(provider)
    bench_training_step(
        benchmark, module, forward, TRAIN_BATCH, TRAIN_PATCH, SCALE,
        group=f"WDSR-B x{SCALE} training step, batch {TRAIN_BATCH} x {TRAIN_PATCH[0]}x"
        f"{TRAIN_PATCH[1]} LR",
        provider=provider,
    )  # fmt: skip
