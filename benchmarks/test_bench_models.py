"""Whole-model inference, WDSR x2 (C=32, B=16), one LR image.

GPU (WDSR-B, 540x960): the reference as written (NCHW eager), the reference in channels_last,
``torch.compile`` of the reference, and wdsr_fast.

CPU (float32), each group at a fixed thread count (``torch.set_num_threads``; ONNX Runtime's
``intra_op_num_threads``):

- WDSR-B at 256x256 and 540x960 LR, 1 and 2 threads: the reference in channels_last, ONNX
  Runtime on the model exported with ``to_plain_module`` (``onnxruntime``), and wdsr_fast; at
  256x256 also the reference as written and compiled.
- WDSR-A at 256x256, 1 and 2 threads: the reference in channels_last, ONNX Runtime, wdsr_fast.
- Loaded: WDSR-B at 256x256 with 2 threads while a competing process keeps one core busy
  (:mod:`benchmarks.cpu_load`; started before and stopped after each loaded measurement): the
  reference in channels_last, ONNX Runtime and wdsr_fast.

Extra info per CPU provider: ``gflops`` (convolution FLOP per second) and ``sgemm_fraction``
(that rate over the machine's float32 sgemm rate at the same thread count,
:mod:`benchmarks.cpu_rates`); wdsr_fast's ``vs_onnxruntime`` (ONNX Runtime's median over
wdsr_fast's, measured in the same run); in the loaded groups, ``slowdown`` (loaded median over
the same provider's quiet median at 256x256 and 2 threads).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import torch

from wdsr_fast import WDSRA, WDSRB

from benchmarks import harness
from benchmarks.cpu_load import busy_core
from benchmarks.cpu_rates import model_flops_per_pixel, sgemm_rate, threads

GPU_PROVIDERS = ["reference_nchw", "reference_channels_last", "reference_compiled", "wdsr_fast"]
CPU_PROVIDERS = ["reference_channels_last", "onnxruntime", "wdsr_fast"]
REFERENCE_AS_WRITTEN = ["reference_nchw", "reference_compiled"]
SMALL, LARGE = (256, 256), (540, 960)


def cpu_cases() -> list[tuple[str, tuple[int, int], int, bool, str]]:
    """(kind, LR size, threads, loaded, provider), in the order they run: a group's providers
    one after the other, ONNX Runtime before wdsr_fast, quiet groups before loaded ones."""
    cases = []
    for hw, thread_count in [(SMALL, 1), (SMALL, 2), (LARGE, 1), (LARGE, 2)]:
        extra = REFERENCE_AS_WRITTEN if hw == SMALL else []
        cases += [("B", hw, thread_count, False, p) for p in extra + CPU_PROVIDERS]
    for thread_count in (1, 2):
        cases += [("A", SMALL, thread_count, False, p) for p in CPU_PROVIDERS]
    cases += [("B", SMALL, 2, True, p) for p in CPU_PROVIDERS]
    return cases


def case_id(case: tuple) -> str:
    kind, (h, w), thread_count, loaded, provider = case
    return f"{kind}-{h}x{w}-{thread_count}t{'-loaded' if loaded else ''}-{provider}"


def make_models(kind: str, channels_last: bool):
    """The reference model and wdsr_fast's, holding the same weights, on DEVICE, eval mode."""
    ref = harness.reference_model(kind, channels_last=channels_last)
    fast = (WDSRA() if kind == "A" else WDSRB()).to(harness.DEVICE, harness.DTYPE).eval()
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def make_runner(kind: str, provider: str, hw: tuple[int, int], thread_count: int):
    """(function of no arguments that runs the model once, the wdsr_fast model for FLOPs)."""
    ref, fast = make_models(kind, channels_last=provider != "reference_nchw")
    if provider == "reference_nchw":
        x = harness.rgb_image(hw=hw)
        return (lambda: ref(x)), fast
    if provider == "reference_channels_last":
        x = harness.rgb_image(hw=hw, channels_last=True)
        return (lambda: ref(x)), fast
    if provider == "reference_compiled":
        model, x = harness.compiled(ref), harness.rgb_image(hw=hw, channels_last=True)
        return (lambda: model(x)), fast
    if provider == "onnxruntime":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
        from benchmarks.onnx_provider import onnxruntime_runner

        run, x = onnxruntime_runner(fast, thread_count), harness.rgb_image(hw=hw)
        return (lambda: run(x)), fast
    x = harness.rgb_image(hw=hw)
    return (lambda: fast(x)), fast


# Medians of this run, by (kind, size, threads, loaded, provider), for the cross-provider info.
_MEDIANS: dict[tuple, float] = {}


def cross_info(case: tuple, median: float) -> dict[str, Any]:
    """wdsr_fast's speed-up over ONNX Runtime, and a loaded provider's slowdown."""
    kind, hw, thread_count, loaded, provider = case
    info: dict[str, Any] = {}
    ort = _MEDIANS.get((kind, hw, thread_count, loaded, "onnxruntime"))
    if provider == "wdsr_fast" and ort is not None:
        info["vs_onnxruntime"] = ort / median
    quiet = _MEDIANS.get((kind, hw, thread_count, False, provider))
    if loaded and quiet is not None:
        info["slowdown"] = median / quiet
    return info


@pytest.mark.skipif(harness.ON_GPU, reason="the CPU model suite; the GPU one is below")
@pytest.mark.parametrize("case", cpu_cases(), ids=case_id)
def test_cpu_inference(benchmark, case):
    kind, hw, thread_count, loaded, provider = case
    benchmark.group = (
        f"WDSR-{kind} x2 inference {hw[0]}x{hw[1]} float32, {thread_count} thread"
        f"{'s' if thread_count > 1 else ''}{', one core busy' if loaded else ''}"
    )
    with threads(thread_count), torch.inference_mode():
        run, fast = make_runner(kind, provider, hw, thread_count)
        rate = sgemm_rate(thread_count)
        load = busy_core() if loaded else contextlib.nullcontext()
        with load:
            run()  # compile / warm caches outside the timing
            harness.run(benchmark, run, provider=provider, threads=thread_count)
    median = benchmark.stats.stats.median
    _MEDIANS[case] = median
    gflops = model_flops_per_pixel(fast) * hw[0] * hw[1] / median / 1e9
    benchmark.extra_info.update(gflops=gflops, sgemm_fraction=gflops * 1e9 / rate)
    benchmark.extra_info["device"] = f"CPU ({thread_count} thread{'s' if thread_count > 1 else ''})"
    benchmark.extra_info.update(cross_info(case, median))


@pytest.mark.skipif(not harness.ON_GPU, reason="the GPU model suite; the CPU one is above")
@pytest.mark.parametrize("provider", GPU_PROVIDERS)
def test_wdsr_b_inference(benchmark, provider):
    channels_last = provider != "reference_nchw"
    ref, fast = make_models("B", channels_last=channels_last)
    x = harness.rgb_image(channels_last=provider != "wdsr_fast" and channels_last)
    model = {"reference_compiled": harness.compiled(ref), "wdsr_fast": fast}.get(provider, ref)
    benchmark.group = f"WDSR-B x2 inference {x.shape[2]}x{x.shape[3]} {harness.DTYPE}"
    with torch.inference_mode():
        model(x)  # compile / warm caches outside the timing
        harness.run(benchmark, lambda: model(x), provider=provider)
