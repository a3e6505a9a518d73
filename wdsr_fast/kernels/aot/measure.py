"""Measured times of the kernels one residual block launches, on a CUDA GPU: the measured side
of the static cost report (:mod:`.report`), kernel by kernel in the same launch order.

For each block and stage the report covers (WDSR-B and WDSR-A, forward and backward, float16 or
another dtype, channels_last), the launcher runs on random CUDA tensors under torch's profiler;
each of its Triton kernels' device time is the median over the repeats, and the block's time is
the median wall time of the whole launcher call (CUDA events: the kernels plus the gaps and
allocations between them). The L2 cache is flushed before every repeat (a 256 MiB write), so
inputs are read from HBM as in a network, where the block's input was written long before.

The kernels measured must be exactly those :func:`.cases.record` records for the device's
architecture, in that order, or the measurement fails: the static report then describes
something other than what runs.

``python -m wdsr_fast.kernels.aot.measure --dtype float16 --size 540x960 [--batch 1]
[--repeats 50] [--static] [--json]`` prints it; it needs a CUDA device. With ``--static`` it
also compiles the kernels for the device's architecture and puts the static report's bound
beside each measured time (sm_80 and sm_90, whose GPU models the report has).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from .cases import Scenario, block_call, record
from .report import (
    DTYPE_NAMES,
    add_input_arguments,
    by_block,
    default_scenario,
    parse_size,
    report,
    stages,
)

__all__ = [
    "add_static_bounds",
    "block_times",
    "format_times",
    "main",
    "measure",
    "per_launch_medians",
]

FLUSH_BYTES = 256 * 1024 * 1024


def per_launch_medians(
    names: list[str], kernels: list[tuple[str, float]], repeats: int
) -> list[float]:
    """Median duration of each launch of one call, from the kernels of ``repeats`` calls.

    ``names``: the kernel names of one call, in launch order; ``kernels``: (name, duration)
    of every kernel the profiler saw, in start order, others than the call's left out.
    Raises ValueError unless they are ``repeats`` times exactly ``names``.
    """
    seen = [name for name, _ in kernels]
    if seen != names * repeats:
        raise ValueError(
            f"expected {repeats} x {names} kernels, the profiler saw {len(seen)}: {seen[:12]}"
        )
    width = len(names)
    return [
        statistics.median(kernels[i + r * width][1] for r in range(repeats)) for i in range(width)
    ]


def _random(device: torch.device) -> Callable[..., torch.Tensor]:
    def make(*shape: int, dtype: torch.dtype) -> torch.Tensor:
        return (0.1 * torch.randn(shape, device=device)).to(dtype)

    return make


def block_times(scenario: Scenario, repeats: int = 50) -> dict[str, Any]:
    """Measured times of ``scenario`` on the current CUDA device: per kernel (name, median
    device time in us) and the whole call's median wall time in us."""
    device = torch.device("cuda", torch.cuda.current_device())
    props = torch.cuda.get_device_properties(device)
    launches = record(scenario, 10 * props.major + props.minor, props.multi_processor_count)
    names = [launch.kernel.fn.__name__ for launch in launches]
    call = block_call(scenario, _random(device))
    flush = torch.empty(FLUSH_BYTES, dtype=torch.uint8, device=device)
    call()  # compile outside the measurement
    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            flush.zero_()
            call()
        torch.cuda.synchronize(device)
    ours = set(names)
    events = sorted(
        (e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
         and e.name in ours),
        key=lambda e: e.time_range.start,
    )  # fmt: skip
    medians = per_launch_medians(
        names, [(e.name, float(e.time_range.elapsed_us())) for e in events], repeats
    )
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    walls = []
    for _ in range(repeats):
        flush.zero_()
        start.record()
        call()
        end.record()
        end.synchronize()
        walls.append(start.elapsed_time(end) * 1e3)
    return {
        "kernels": [{"name": n, "measured_us": t} for n, t in zip(names, medians, strict=True)],
        "kernels_us": sum(medians),
        "call_us": statistics.median(walls),
    }


def measure(
    dtype: torch.dtype, size: tuple[int, int], batch: int, repeats: int = 50
) -> dict[str, Any]:
    """Measured times of the default WDSR-B and WDSR-A blocks, forward and backward, laid out
    as :func:`.report.report` lays out its estimates."""
    if not torch.cuda.is_available():
        raise RuntimeError("measuring kernel times needs a CUDA device")
    return {
        "device": torch.cuda.get_device_name(),
        "dtype": str(dtype).removeprefix("torch."),
        "input": {"batch": batch, "height": size[0], "width": size[1]},
        "repeats": repeats,
        **by_block(
            lambda block, stage: block_times(
                default_scenario(block, stage, dtype, (batch, *size)), repeats
            )
        ),
    }


def add_static_bounds(measured: dict[str, Any], static: dict[str, Any]) -> None:
    """Put the static report's bound times (``static``, from :func:`.report.report` for the
    same input) beside the measured ones: ``static_bound_us`` per kernel and per stage."""
    for (title, times), (_, bounds) in zip(stages(measured), stages(static), strict=True):
        names = [k["name"] for k in times["kernels"]]
        if names != [k["name"] for k in bounds["kernels"]]:
            raise ValueError(f"{title}: the static report's kernels are not those measured")
        for kernel, bound in zip(times["kernels"], bounds["kernels"], strict=True):
            kernel["static_bound_us"] = bound["bound_us"]
        times["static_bound_us"] = bounds["bound_us"]
    measured["static_model"] = f"{static['arch']} ({static['gpu_model']['name']} model)"


def format_times(result: dict[str, Any]) -> str:
    """The measurement as text, one line per kernel (with the static bound, if added)."""
    size = result["input"]
    lines = [
        f"{result['device']}, {result['dtype']}, {size['batch']}x{size['height']}x{size['width']}"
        f", median of {result['repeats']}"
        + (f"; static bounds of {result['static_model']}" if "static_model" in result else "")
    ]

    def bound(entry: dict[str, Any]) -> str:
        return (
            f"  (static bound {entry['static_bound_us']:.1f})" if "static_bound_us" in entry else ""
        )

    for title, stage in stages(result):
        lines.append(
            f"{title}: kernels {stage['kernels_us']:.1f} us{bound(stage)}, "
            f"call {stage['call_us']:.1f} us"
        )
        lines += [
            f"  {k['name']:<36} {k['measured_us']:>8.1f} us{bound(k)}" for k in stage["kernels"]
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``--dtype float16 --size 540x960 [--batch 1] [--repeats 50] [--static] [--json]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_input_arguments(parser)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument(
        "--static", action="store_true",
        help="also compile the kernels for this GPU's arch and give the static report's bounds",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    dtype, size = DTYPE_NAMES[args.dtype], parse_size(args.size)
    result = measure(dtype, size, args.batch, args.repeats)
    if args.static:
        major, minor = torch.cuda.get_device_capability()
        add_static_bounds(result, report(10 * major + minor, dtype, size, args.batch))
    print(json.dumps(result, indent=1) if args.json else format_times(result))


if __name__ == "__main__":
    main()
