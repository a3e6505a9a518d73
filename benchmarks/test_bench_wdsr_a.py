"""WDSR-A residual block, whole model and training step: the reference against wdsr_fast.

Suites (C=32, block_feats=128, the authors' released configuration):
- block forward on one LR image (540x960 fp16 on a GPU, 256x256 fp32 on a CPU), with the
  fraction of the roofline bound on a GPU;
- block forward + backward on a training batch (16 x 48 x 48), with peak memory and the bytes
  autograd saves for backward;
- whole WDSR-A x2 (B=16) inference on one LR image (channels_last input);
- training step of the whole model: forward, L1 loss, backward, Adam step, batch 16 of 48x48
  LR patches (float16 autocast on a GPU, float32 on a CPU).

Providers: ``reference_eager`` (plain PyTorch, same dtype, channels_last), ``reference_compiled``
(``torch.compile(mode="max-autotune")`` of it on a GPU, default mode on a CPU) and
``wdsr_fast`` (the fused Triton op on a GPU; on a CPU its ``torch`` backend, since the Triton
interpreter is never timed). On a GPU the training step also runs ``wdsr_fast_compiled``: the
same ``torch.compile`` around wdsr_fast's model. GPU targets (docs/design.md section 6): block
forward >= 2x the reference eager in float16 channels_last, training step >= 1.3x.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from wdsr_fast import WDSRA, functional
from wdsr_fast.testing.reference import wdsr_a_block_reference

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
N_FEATS, BLOCK_FEATS = 32, 128
TRAIN_BATCH, TRAIN_PATCH, SCALE = 16, (48, 48), 2
MODEL_SIZES = dict(n_feats=N_FEATS, block_feats=BLOCK_FEATS)


def block_weights(dtype: torch.dtype) -> list[nn.Parameter]:
    """Effective weights w1, b1, w2, b2 of one block (Parameters, so the saved-bytes count
    leaves them out, as it does a model's weights)."""
    c, f = N_FEATS, BLOCK_FEATS
    shapes = [((f, c, 3, 3), (9 * c) ** -0.5), ((f,), 0.1), ((c, f, 3, 3), (9 * f) ** -0.5),
              ((c,), 0.1)]  # fmt: skip
    return [
        nn.Parameter((scale * torch.randn(s, device=harness.DEVICE)).to(dtype))
        for s, scale in shapes
    ]


def block_function(provider: str) -> Callable[..., Tensor]:
    return select_block_function(provider, wdsr_a_block_reference, functional.wdsr_a_block)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_block_forward(benchmark, provider):
    x = block_input(1, N_FEATS, harness.IMAGE_HW)
    pixels = x.shape[2] * x.shape[3]
    bench_block_forward(
        benchmark, block_function(provider), x, block_weights(harness.DTYPE),
        flops=2.0 * 2 * 9 * N_FEATS * BLOCK_FEATS * pixels,
        group=f"WDSR-A block forward 1x{N_FEATS}x{x.shape[2]}x{x.shape[3]} F={BLOCK_FEATS} "
        f"{x.dtype}",
        provider=provider,
    )  # fmt: skip


@pytest.mark.parametrize("provider", PROVIDERS)
def test_block_forward_backward(benchmark, provider):
    x = block_input(TRAIN_BATCH, N_FEATS, TRAIN_PATCH, requires_grad=True)
    bench_block_forward_backward(
        benchmark, block_function(provider), x, block_weights(harness.DTYPE),
        group=f"WDSR-A block forward+backward {TRAIN_BATCH}x{N_FEATS}x{TRAIN_PATCH[0]}x"
        f"{TRAIN_PATCH[1]} F={BLOCK_FEATS} {x.dtype}",
        provider=provider,
    )  # fmt: skip


def fast_model(ref: nn.Module) -> WDSRA:
    """WDSRA holding the reference's weights, on DEVICE (backend ``auto``: Triton on a GPU)."""
    fast = WDSRA(scale=SCALE, **MODEL_SIZES).to(harness.DEVICE)
    fast.load_state_dict(ref.state_dict())
    return fast


@pytest.mark.parametrize("provider", PROVIDERS)
def test_model_inference(benchmark, provider):
    ref = harness.reference_model("A", channels_last=True, **MODEL_SIZES)
    if provider == "reference_eager":
        model = ref
    elif provider == "reference_compiled":
        model = harness.compiled(ref)
    else:
        model = fast_model(ref).to(harness.DTYPE).eval()
    x = harness.rgb_image(channels_last=True)
    benchmark.group = f"WDSR-A x{SCALE} inference {x.shape[2]}x{x.shape[3]} {harness.DTYPE}"
    with torch.inference_mode():
        model(x)  # compile / warm caches outside the timing
        peak = harness.peak_memory_bytes(lambda: model(x))
        harness.run(benchmark, lambda: model(x), provider=provider, peak_memory_bytes=peak)


def training_model(provider: str) -> tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """(module holding the parameters, callable running its forward) in train mode."""
    ref = harness.reference_model("A", torch.float32, channels_last=True, **MODEL_SIZES).train()
    if provider == "reference_eager":
        return ref, ref
    if provider == "reference_compiled":
        return ref, harness.compiled(ref)
    fast = fast_model(ref).train()
    return fast, harness.compiled(fast) if provider == "wdsr_fast_compiled" else fast


@pytest.mark.parametrize("provider", TRAINING_PROVIDERS)
def test_training_step(benchmark, provider):
    module, forward = training_model(provider)
    bench_training_step(
        benchmark, module, forward, TRAIN_BATCH, TRAIN_PATCH, SCALE,
        group=f"WDSR-A x{SCALE} training step, batch {TRAIN_BATCH} x {TRAIN_PATCH[0]}x"
        f"{TRAIN_PATCH[1]} LR",
        provider=provider,
    )  # fmt: skip
