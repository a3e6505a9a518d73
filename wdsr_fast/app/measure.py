"""Side-by-side speed and memory of the reference model and wdsr_fast on this device.

Measurements of WDSR-B (the reference's defaults unless given): inference on one LR image, one
training step (forward, L1 loss, backward) on a batch of LR patches, and optionally inference
on a batch of video frames, reported in frames per second (the network alone: decoding and
encoding are not timed). Times are the
median of ``repeats`` runs after one warm-up, synchronised on CUDA. Memory: the peak CUDA
memory a run allocates above what was allocated before it (CUDA only), and, for training, the
bytes autograd saves for backward (activations, parameters excluded), on any device.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from wdsr_fast.nn.models import WDSRA, WDSRB
from wdsr_fast.testing.reference import ReferenceWDSRA, ReferenceWDSRB, make_args

__all__ = [
    "BenchResult",
    "compare_inference",
    "reference_twin",
    "format_results",
    "peak_cuda_memory_bytes",
    "run_bench",
    "saved_activation_bytes",
    "time_call",
]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs, after one warm-up run."""
    fn()
    _synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_cuda_memory_bytes(fn: Callable[[], Any], device: torch.device) -> int | None:
    """Peak CUDA memory allocated while ``fn()`` runs, above what was allocated before.

    None off CUDA.
    """
    if device.type != "cuda":
        return None
    _synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    fn()
    _synchronize(device)
    return torch.cuda.max_memory_allocated(device) - start


def saved_activation_bytes(fn: Callable[[], Any]) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn()`` runs forward,
    parameters excluded."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, nn.Parameter):
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


@dataclass(frozen=True)
class BenchResult:
    """One measurement of one model: seconds, peak CUDA bytes, saved-for-backward bytes, and
    for video the frames each run takes."""

    measurement: str
    model: str
    seconds: float
    peak_bytes: int | None
    saved_bytes: int | None
    frames: int | None = None  # video measurements: frames per run


def _models(
    scale: int, n_resblocks: int, n_feats: int, device: torch.device, dtype: torch.dtype
) -> dict[str, nn.Module]:
    reference = ReferenceWDSRB(make_args(scale, n_resblocks, n_feats)).to(device, dtype)
    fast = WDSRB(scale, n_resblocks, n_feats).to(device, dtype)
    fast.load_state_dict(reference.state_dict())
    return {"reference": reference, "wdsr_fast": fast}


def _video_result(
    name: str,
    model: nn.Module,
    frames: torch.Tensor,
    scale: int,
    device: torch.device,
    repeats: int,
) -> BenchResult:
    def infer() -> None:
        with torch.inference_mode():
            model.eval()(frames)

    n, _, height, width = frames.shape
    measurement = f"{n} frames {height}x{width} -> {height * scale}x{width * scale}"
    return BenchResult(
        measurement,
        name,
        time_call(infer, device, repeats),
        peak_cuda_memory_bytes(infer, device),
        None,
        frames=frames.shape[0],
    )


def run_bench(
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    image_hw: tuple[int, int] = (256, 256),
    batch: int = 4,
    patch: int = 48,
    scale: int = 2,
    n_resblocks: int = 16,
    n_feats: int = 32,
    repeats: int = 3,
    video_hw: tuple[int, int] | None = None,
    video_batch: int = 4,
    progress: bool = False,
) -> list[BenchResult]:
    """Inference on one (3, *image_hw) image and a training step on (batch, 3, patch, patch),
    reference (as written: NCHW, eager) and wdsr_fast (backend ``auto``), same weights; with
    ``video_hw``, also inference on ``video_batch`` frames of that LR size (frames per second).
    ``progress``: a progress bar over the measurements on a terminal."""
    device = torch.device(device)
    models = _models(scale, n_resblocks, n_feats, device, dtype)
    image = torch.rand(1, 3, *image_hw, device=device).mul(255).to(dtype)
    lr = torch.rand(batch, 3, patch, patch, device=device).mul(255).to(dtype)
    hr = torch.rand(batch, 3, patch * scale, patch * scale, device=device).mul(255).to(dtype)
    frames = None
    if video_hw is not None:
        frames = torch.rand(video_batch, 3, *video_hw, device=device).mul(255).to(dtype)
    results = []
    bar = tqdm(
        total=len(models) * (2 if frames is None else 3),
        desc="bench",
        unit="measurement",
        disable=None if progress else True,
        leave=False,
    )
    for name, model in models.items():

        def infer(model: nn.Module = model) -> None:
            with torch.inference_mode():
                model.eval()(image)

        def step(model: nn.Module = model) -> None:
            model.train()
            F.l1_loss(model(lr), hr).backward()
            model.zero_grad(set_to_none=True)

        def forward(model: nn.Module = model) -> None:
            model.train()(lr)

        bar.set_postfix_str(f"{name} inference", refresh=True)
        results.append(
            BenchResult(
                f"inference 1x3x{image_hw[0]}x{image_hw[1]}",
                name,
                time_call(infer, device, repeats),
                peak_cuda_memory_bytes(infer, device),
                None,
            )
        )
        bar.update()
        bar.set_postfix_str(f"{name} train step", refresh=True)
        results.append(
            BenchResult(
                f"train step {batch}x3x{patch}x{patch}",
                name,
                time_call(step, device, repeats),
                peak_cuda_memory_bytes(step, device),
                saved_activation_bytes(forward),
            )
        )
        bar.update()
        if frames is not None:
            bar.set_postfix_str(f"{name} video frames", refresh=True)
            results.append(_video_result(name, model, frames, scale, device, repeats))
            bar.update()
    bar.close()
    return results


def _megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def format_results(results: list[BenchResult]) -> str:
    """A Markdown table, reference and wdsr_fast side by side per measurement, with speedups;
    video measurements follow in a table of frames per second."""
    by_key = {(r.measurement, r.model): r for r in results}
    lines = [
        "| measurement | reference ms | wdsr_fast ms | speedup | reference peak MB "
        "| wdsr_fast peak MB | reference saved MB | wdsr_fast saved MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    video = []
    for measurement in dict.fromkeys(r.measurement for r in results):
        ref, fast = by_key[(measurement, "reference")], by_key[(measurement, "wdsr_fast")]
        if ref.frames is not None:
            video.append((measurement, ref, fast))
            continue
        lines.append(
            f"| {measurement} | {ref.seconds * 1e3:.1f} | {fast.seconds * 1e3:.1f} "
            f"| {ref.seconds / fast.seconds:.2f}x | {_megabytes(ref.peak_bytes)} "
            f"| {_megabytes(fast.peak_bytes)} | {_megabytes(ref.saved_bytes)} "
            f"| {_megabytes(fast.saved_bytes)} |"
        )
    if video:
        lines += [
            "",
            "| video (LR frames) | reference frames/s | wdsr_fast frames/s | speedup "
            "| reference peak MB | wdsr_fast peak MB |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
    for measurement, ref, fast in video:
        lines.append(
            f"| {measurement} | {ref.frames / ref.seconds:.1f} | {fast.frames / fast.seconds:.1f} "
            f"| {ref.seconds / fast.seconds:.2f}x | {_megabytes(ref.peak_bytes)} "
            f"| {_megabytes(fast.peak_bytes)} |"
        )
    return "\n".join(lines)


def reference_twin(model: WDSRA | WDSRB) -> nn.Module:
    """The reference model (as the authors wrote it) holding ``model``'s weights, same device
    and dtype. Raises ValueError for a normalisation the reference cannot express."""
    if (model.rgb_range, model.rgb_std, model.n_colors) != (255.0, 0.5, 3):
        raise ValueError(
            "the reference model needs rgb_range=255, rgb_std=0.5 and 3 colours; this model has "
            f"rgb_range={model.rgb_range}, rgb_std={model.rgb_std}, n_colors={model.n_colors}"
        )
    r_mean, g_mean, b_mean = model.rgb_mean.flatten().tolist()
    args = make_args(
        scale=model.scale,
        n_resblocks=len(model.body),
        n_feats=model.n_feats,
        block_feats=getattr(model, "block_feats", 128),
        res_scale=model.res_scale,
        rgb_mean=(r_mean, g_mean, b_mean),
    )
    if isinstance(model, WDSRB) and (model.expand, model.linear) != (6, 0.8):
        raise ValueError("the reference WDSR-B block has expand=6, linear=0.8")
    twin = (ReferenceWDSRA if isinstance(model, WDSRA) else ReferenceWDSRB)(args)
    twin.load_state_dict(model.state_dict())
    weight = next(model.parameters())
    return twin.to(weight.device, weight.dtype).eval()


def compare_inference(
    model: WDSRA | WDSRB, image: torch.Tensor, repeats: int = 3
) -> dict[str, float]:
    """Median seconds of one inference of ``image`` (N, 3, H, W), on its device and in its
    dtype, by ``model`` and by its :func:`reference_twin`: ``{"wdsr_fast": s, "reference": s}``."""
    twin = reference_twin(model)
    model = model.eval()
    times = {}
    for name, net in (("wdsr_fast", model), ("reference", twin)):
        with torch.inference_mode():
            times[name] = time_call(lambda net=net: net(image), image.device, repeats)
    return times
