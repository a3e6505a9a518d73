"""WDSR-B residual block and training step: the reference against wdsr_fast, side by side.

Suites (C=32, expand 6, linear 0.8, i.e. E=192, L=25):
- block forward on one LR image (540x960 fp16 on a GPU, 256x256 fp32 on a CPU), with the
  fraction of the roofline bound on a GPU (DESIGN.md section 6);
- block forward + backward on a training batch (16 x 48 x 48), with peak memory and the bytes
  autograd saves for backward;
- training step of the whole WDSR-B x2 (B=16) model: forward, L1 loss, backward, Adam step,
  batch 16 of 48x48 LR patches (float16 autocast on a GPU, float32 on a CPU).
Whole-model inference is in test_bench_models.py.

Providers: ``reference_eager`` (plain PyTorch, same dtype, channels_last), ``reference_compiled``
(``torch.compile(mode="max-autotune")`` of it on a GPU, default mode on a CPU) and
``wdsr_fast`` (the fused Triton op on a GPU; on a CPU its ``torch`` backend, since the Triton
interpreter is never timed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks import harness
from wdsr_fast import WDSRB
from wdsr_fast.blocks import wdsr_b_block_torch
from wdsr_fast.reference import wdsr_b_block_reference

PROVIDERS = ["reference_eager", "reference_compiled", "wdsr_fast"]
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
    if provider == "reference_eager":
        return wdsr_b_block_reference
    if provider == "reference_compiled":
        if harness.COMPILE_MODE is None:
            return torch.compile(wdsr_b_block_reference)
        return torch.compile(wdsr_b_block_reference, mode=harness.COMPILE_MODE)
    if harness.ON_GPU:
        from wdsr_fast.ops.wdsr_b_block import wdsr_b_block

        return wdsr_b_block
    return wdsr_b_block_torch


def block_input(batch: int, hw: tuple[int, int], requires_grad: bool = False) -> Tensor:
    x = torch.randn(batch, N_FEATS, *hw, device=harness.DEVICE, dtype=harness.DTYPE)
    return x.contiguous(memory_format=torch.channels_last).requires_grad_(requires_grad)


def block_flops_and_bytes(x: Tensor) -> tuple[float, float]:
    """FLOP of one block forward and its fewest bytes (read x, write the output)."""
    c, e, low = N_FEATS, N_FEATS * EXPAND, int(N_FEATS * LINEAR)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    flops = 2.0 * (c * e + e * low + 9 * low * c) * pixels
    return flops, 2.0 * x.numel() * x.element_size()


def _median_seconds(fn: Callable[[], object], repeats: int = 10) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return sorted(times)[len(times) // 2]


@functools.cache
def measured_peaks() -> tuple[float, float]:
    """(bytes/s of a large device-to-device copy, FLOP/s of a large fp16 matmul) on this GPU:
    the roofline's two roofs, measured rather than taken from a data sheet."""
    src = torch.empty(1 << 28, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    copy_s = _median_seconds(lambda: dst.copy_(src))
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    mm_s = _median_seconds(lambda: a @ a)
    return 2 * src.numel() / copy_s, 2 * 8192**3 / mm_s


@pytest.mark.parametrize("provider", PROVIDERS)
def test_block_forward(benchmark, provider):
    fn = block_function(provider)
    weights = block_weights(harness.DTYPE)
    x = block_input(1, harness.IMAGE_HW)
    benchmark.group = f"WDSR-B block forward 1x{N_FEATS}x{x.shape[2]}x{x.shape[3]} {x.dtype}"
    with torch.inference_mode():
        fn(x, *weights, 1.0)  # compile / warm caches outside the timing
        peak = harness.peak_memory_bytes(lambda: fn(x, *weights, 1.0))
        info = {"provider": provider, "peak_memory_bytes": peak}
        if harness.ON_GPU:
            bandwidth, flop_rate = measured_peaks()
            flops, min_bytes = block_flops_and_bytes(x)
            bound = max(flops / flop_rate, min_bytes / bandwidth)
            seconds = _median_seconds(lambda: fn(x, *weights, 1.0))
            info["roofline_fraction"] = bound / seconds
        harness.run(benchmark, lambda: fn(x, *weights, 1.0), **info)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_block_forward_backward(benchmark, provider):
    fn = block_function(provider)
    weights = block_weights(harness.DTYPE)
    x = block_input(TRAIN_BATCH, TRAIN_PATCH, requires_grad=True)
    grad = torch.randn_like(x)
    benchmark.group = (
        f"WDSR-B block forward+backward {TRAIN_BATCH}x{N_FEATS}x{TRAIN_PATCH[0]}x"
        f"{TRAIN_PATCH[1]} {x.dtype}"
    )

    def step() -> None:
        fn(x, *weights, 1.0).backward(grad)

    step()  # compile / warm caches outside the timing
    saved = harness.saved_activation_bytes(lambda: fn(x, *weights, 1.0))
    peak = harness.peak_memory_bytes(step)
    harness.run(
        benchmark, step, provider=provider, saved_activation_bytes=saved, peak_memory_bytes=peak
    )


def training_model(provider: str) -> tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """(module holding the parameters, callable running its forward) in train mode."""
    ref = harness.reference_model("B", dtype=torch.float32, channels_last=True).train()
    if provider == "reference_eager":
        return ref, ref
    if provider == "reference_compiled":
        return ref, harness.compiled(ref)
    fast = WDSRB(scale=SCALE).to(harness.DEVICE).train()
    fast.load_state_dict(ref.state_dict())
    return fast, fast


@pytest.mark.parametrize("provider", PROVIDERS)
def test_training_step(benchmark, provider):
    module, forward = training_model(provider)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    lr = harness.rgb_image(TRAIN_BATCH, TRAIN_PATCH, torch.float32, channels_last=True)
    hr = torch.rand(TRAIN_BATCH, 3, SCALE * TRAIN_PATCH[0], SCALE * TRAIN_PATCH[1],
                    device=harness.DEVICE).mul_(255)  # fmt: skip
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=harness.ON_GPU)
    benchmark.group = (
        f"WDSR-B x{SCALE} training step, batch {TRAIN_BATCH} x {TRAIN_PATCH[0]}x"
        f"{TRAIN_PATCH[1]} LR, {'float16 autocast' if harness.ON_GPU else 'float32'}"
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.l1_loss(forward(lr).float(), hr)
        loss.backward()
        optimizer.step()

    step()  # compile / warm caches outside the timing

    def forward_only() -> None:
        with autocast:
            forward(lr)

    saved = harness.saved_activation_bytes(forward_only)
    peak = harness.peak_memory_bytes(step)
    harness.run(
        benchmark, step, provider=provider, saved_activation_bytes=saved, peak_memory_bytes=peak
    )
