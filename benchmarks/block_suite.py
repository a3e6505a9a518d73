"""Bodies of the residual-block benchmarks, shared by the WDSR-A and WDSR-B suites.

Each function takes pytest-benchmark's ``benchmark`` fixture plus what differs between block
kinds (the block function and its weights, the model and its forward), sets the group, warms
up outside the timing, records the extras (roofline fraction on a GPU, peak memory, bytes
saved for backward) and times through :func:`benchmarks.harness.run`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks import harness


def median_cuda_seconds(fn: Callable[[], object], repeats: int = 10) -> float:
    """Median wall time of ``fn`` on the current CUDA stream, measured with CUDA events."""
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
def measured_roofs() -> tuple[float, float]:
    """(bytes/s of a large device-to-device copy, FLOP/s of a large fp16 matmul) on this GPU:
    the roofline's two roofs, measured rather than taken from a data sheet."""
    src = torch.empty(1 << 28, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    copy_s = median_cuda_seconds(lambda: dst.copy_(src))
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    mm_s = median_cuda_seconds(lambda: a @ a)
    return 2 * src.numel() / copy_s, 2 * 8192**3 / mm_s


def select_block_function(
    provider: str, reference: Callable[..., Tensor], fast: Callable[..., Tensor]
) -> Callable[..., Tensor]:
    """The block function of ``provider``: the reference (eager or compiled with the suite's
    mode), or wdsr_fast's functional block on its default backend (the fused op on a GPU, the
    torch backend on a CPU)."""
    if provider == "reference_eager":
        return reference
    if provider == "reference_compiled":
        return harness.compiled(reference)
    return fast


def block_input(
    batch: int, channels: int, hw: tuple[int, int], requires_grad: bool = False
) -> Tensor:
    """Random block input on the suite's device and dtype, channels_last."""
    x = torch.randn(batch, channels, *hw, device=harness.DEVICE, dtype=harness.DTYPE)
    return x.contiguous(memory_format=torch.channels_last).requires_grad_(requires_grad)


def bench_block_forward(
    benchmark,
    fn: Callable[..., Tensor],
    x: Tensor,
    weights: list[Tensor],
    flops: float,
    group: str,
    provider: str,
) -> None:
    """Time ``fn(x, *weights, 1.0)`` without autograd; on a GPU also record the fraction of the
    roofline bound max(flops / FLOP rate, (read x + write output) / copy bandwidth)."""
    benchmark.group = group
    with torch.inference_mode():
        fn(x, *weights, 1.0)  # compile / warm caches outside the timing
        peak = harness.peak_memory_bytes(lambda: fn(x, *weights, 1.0))
        info = {"provider": provider, "peak_memory_bytes": peak}
        if harness.ON_GPU:
            bandwidth, flop_rate = measured_roofs()
            bound = max(flops / flop_rate, 2.0 * x.numel() * x.element_size() / bandwidth)
            info["roofline_fraction"] = bound / median_cuda_seconds(lambda: fn(x, *weights, 1.0))
        harness.run(benchmark, lambda: fn(x, *weights, 1.0), **info)


def bench_block_forward_backward(
    benchmark, fn: Callable[..., Tensor], x: Tensor, weights: list[Tensor], group: str,
    provider: str,
) -> None:  # fmt: skip
    """Time ``fn(x, *weights, 1.0).backward(grad)``; record saved and peak bytes."""
    benchmark.group = group
    grad = torch.randn_like(x)

    def step() -> None:
        # Each step is a new run of a compiled provider's CUDA graphs: their outputs of the step
        # before may be overwritten (torch.compile's max-autotune mode records CUDA graphs).
        torch.compiler.cudagraph_mark_step_begin()
        fn(x, *weights, 1.0).backward(grad)

    step()  # compile / warm caches outside the timing
    saved = harness.saved_activation_bytes(lambda: fn(x, *weights, 1.0))
    peak = harness.peak_memory_bytes(step)
    harness.run(
        benchmark, step, provider=provider, saved_activation_bytes=saved, peak_memory_bytes=peak
    )


def bench_training_step(
    benchmark,
    module: nn.Module,
    forward: Callable[[Tensor], Tensor],
    batch: int,
    patch: tuple[int, int],
    scale: int,
    group: str,
    provider: str,
) -> None:
    """Time one step: forward of ``batch`` random RGB LR patches, L1 loss to random HR
    targets, backward, Adam; float16 autocast on a GPU, float32 on a CPU."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    lr = harness.rgb_image(batch, patch, torch.float32, channels_last=True)
    hr = torch.rand(batch, 3, scale * patch[0], scale * patch[1], device=harness.DEVICE)
    hr.mul_(255)
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=harness.ON_GPU)
    benchmark.group = f"{group}, {'float16 autocast' if harness.ON_GPU else 'float32'}"

    def step() -> None:
        torch.compiler.cudagraph_mark_step_begin()  # as in bench_block_forward_backward
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
