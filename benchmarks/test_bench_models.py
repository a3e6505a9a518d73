"""Whole-model inference, WDSR-B x2 (C=32, B=16), one LR image: the reference as written (NCHW
eager), the reference in channels_last, torch.compile of the reference, and wdsr_fast."""

from __future__ import annotations

import pytest
import torch

from wdsr_fast import WDSRB

from benchmarks import harness

PROVIDERS = ["reference_nchw", "reference_channels_last", "reference_compiled", "wdsr_fast"]


def make_provider(name: str):
    ref = harness.reference_model("B", channels_last=name != "reference_nchw")
    if name == "reference_nchw":
        return ref, harness.rgb_image()
    if name == "reference_channels_last":
        return ref, harness.rgb_image(channels_last=True)
    if name == "reference_compiled":
        return harness.compiled(ref), harness.rgb_image(channels_last=True)
    fast = WDSRB().to(harness.DEVICE, harness.DTYPE).eval()
    fast.load_state_dict(ref.state_dict())
    return fast, harness.rgb_image()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_wdsr_b_inference(benchmark, provider):
    model, x = make_provider(provider)
    benchmark.group = f"WDSR-B x2 inference {x.shape[2]}x{x.shape[3]} {harness.DTYPE}"
    with torch.inference_mode():
        model(x)  # compile / warm caches outside the timing
        harness.run(benchmark, lambda: model(x), provider=provider)
