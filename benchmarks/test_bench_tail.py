"""The WDSR x2 tail: ``PixelShuffle(tail) + PixelShuffle(skip)``, then ``* 127.5 + mean``.

Providers, side by side per size and layout: torch's eager sequence (five passes over the
high-resolution image) and the extension's fused ``shuffle_add_affine`` (one pass: read a and
b, write the output). Targets: on the CPU, fused at least 2x eager; on a GPU, at least 70% of
the bandwidth of a device-to-device copy measured in the same run (``fraction_of_copy`` in
extra_info; bytes counted are the fused minimum, reading a and b and writing the output).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wdsr_fast.extension import extension_unavailable_reason
from wdsr_fast.functional import shuffle_add_affine

from benchmarks import harness

R = 2
SCALE = 127.5
RGB_MEAN = (0.4488, 0.4371, 0.4040)
# (N, C*r*r, H, W) of a and b: one 256x256 and one 540x960 LR image on the CPU; on a GPU one
# and eight 540x960 images (enough bytes to reach full bandwidth).
SIZES = (
    [(1, 12, 540, 960), (8, 12, 540, 960)]
    if harness.ON_GPU
    else [(1, 12, 256, 256), (1, 12, 540, 960)]
)
DTYPES = [torch.float16, torch.float32] if harness.ON_GPU else [torch.float32]
PROVIDERS = ["reference_torch_eager", "wdsr_fast"]


def make_inputs(size, dtype, layout):
    a, b = (torch.randn(size, device=harness.DEVICE, dtype=dtype) for _ in range(2))
    if layout == "channels_last":
        a, b = (t.contiguous(memory_format=torch.channels_last) for t in (a, b))
    shift = torch.tensor(RGB_MEAN, device=harness.DEVICE, dtype=dtype) * 255
    return a, b, shift


def make_provider(name, a, b, shift):
    if name == "wdsr_fast":
        reason = extension_unavailable_reason(a.device)
        if reason is not None:
            pytest.skip(reason)
        return lambda: shuffle_add_affine(a, b, R, SCALE, shift, backend="triton")
    mean = shift.view(1, -1, 1, 1)
    return lambda: (F.pixel_shuffle(a, R) + F.pixel_shuffle(b, R)) * SCALE + mean


def cuda_time_s(fn, iterations: int = 50) -> float:
    """Mean seconds per call of ``fn`` on the current stream, timed with CUDA events."""
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iterations):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / iterations


def bandwidth_vs_copy(fn, a: torch.Tensor) -> dict[str, float]:
    """Achieved bandwidth of ``fn`` (bytes: read a and b, write the output, as many bytes again
    as a) against a device-to-device copy of a tensor of a's size, both timed now."""
    moved = 3 * a.numel() * a.element_size()
    src, dst = torch.empty_like(a), torch.empty_like(a)
    copy_gbps = 2 * a.numel() * a.element_size() / cuda_time_s(lambda: dst.copy_(src)) / 1e9
    gbps = moved / cuda_time_s(fn) / 1e9
    return {"GBps": gbps, "copy_GBps": copy_gbps, "fraction_of_copy": gbps / copy_gbps}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_tail(benchmark, provider, layout, dtype, size):
    a, b, shift = make_inputs(size, dtype, layout)
    fn = make_provider(provider, a, b, shift)
    benchmark.group = f"tail x{R} {tuple(size)} {dtype} {layout}"
    extra = bandwidth_vs_copy(fn, a) if harness.ON_GPU else {}
    rounds = 100 if harness.ON_GPU or size[-1] <= 256 else 20
    with torch.no_grad():
        harness.run(benchmark, fn, rounds=rounds, warmup_rounds=2, provider=provider, **extra)
