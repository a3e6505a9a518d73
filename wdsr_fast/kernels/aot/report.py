"""Static cost report of one residual block, forward and backward, from the compiled kernels.

For the kernels one WDSR-B block forward and one backward launch (and the same for WDSR-A) on a
given input, compiled for ``sm_<arch>`` exactly as they run (:mod:`.cases`, :mod:`.compile`),
the report gives per kernel: registers, spill bytes, shared memory, theoretical occupancy
(fraction of the SM's 64 warp slots), tensor-core instructions in the SASS, dynamic
warp-instructions per LR pixel, HBM bytes per LR pixel and a bound time; and the sums per
block. Nothing runs on a GPU.

- Dynamic warp-instructions: from the SASS (:mod:`.sass`), every instruction once per warp,
  times the trip counts of the loops holding it (derived from the launch's arguments, per
  kernel: :data:`LOOP_TRIPS`, or :data:`PRODUCT_FLOPS` for a loop the compiler may unroll or
  peel), times the warps of the launch.
- HBM bytes: what the launch reads and writes (:data:`TRAFFIC`), each tensor argument once;
  ``l2_bytes_per_pixel`` also counts the re-reads of the same elements by other programs of
  the launch (which L2 serves when those programs run close in time).
- Bound time: the largest of HBM time, tensor-core time (the MMA instructions' own FLOPs, so
  channel padding counts) and issue time (4 warp-instructions per clock per SM), on the GPU
  model of the arch (:data:`GPUS`).

``python -m wdsr_fast.kernels.report --arch 90 --dtype float16 --size 540x960 [--batch 1]
[--json]`` prints it.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import triton

from ..reduce import MAX_OUTPUTS
from .capture import Launch
from .cases import Scenario, record
from .compile import compile_launch, ptxas_usage, sass, specialise
from .sass import Instruction, Loop, find_loops, opcode_counts, parse, tensor_flops

__all__ = [
    "DEFAULT_BLOCKS",
    "DTYPE_NAMES",
    "GPUS",
    "GpuModel",
    "add_input_arguments",
    "block_report",
    "by_block",
    "default_scenario",
    "main",
    "parse_size",
    "report",
    "stages",
]


@dataclass(frozen=True)
class GpuModel:
    """What the bound times assume of a GPU: SMs, clock, HBM bandwidth, dense tensor-core
    throughput per operand kind ("half": float16/bfloat16, "tf32"), shared memory per SM."""

    name: str
    multiprocessors: int
    clock_ghz: float
    hbm_tb_per_s: float
    tensor_tflops: dict[str, float]
    shared_bytes_per_sm: int


GPUS = {
    80: GpuModel("A100", 108, 1.41, 2.0, {"half": 312.0, "tf32": 156.0}, 164 * 1024),
    90: GpuModel("H100", 132, 1.8, 3.0, {"half": 989.0, "tf32": 494.0}, 228 * 1024),
}
WARP_SLOTS_PER_SM = 64
MAX_CTAS_PER_SM = 32
REGISTERS_PER_SM = 65536
REGISTER_ALLOCATION_UNIT = 256  # registers per warp are allocated in units of this
SHARED_RESERVED_PER_CTA = 1024
ISSUE_PER_CLOCK_PER_SM = 4


def _args(launch: Launch) -> dict[str, Any]:
    """The launch's arguments by parameter name (positional ones, then keywords)."""
    return {**dict(zip(launch.kernel.arg_names, launch.args, strict=False)), **launch.kwargs}


# Trip counts of each kernel's SASS loops (ordered by address), from its launch arguments.
LOOP_TRIPS: dict[str, Callable[[dict[str, Any], Launch], list[float]]] = {
    "pointwise_chain_fwd_kernel": lambda a, _: [triton.cdiv(a["E"], a["BLOCK_E"])],
    "pointwise_chain_bwd_input_kernel": lambda a, _: [triton.cdiv(a["E"], a["BLOCK_E"])],
    "pointwise_chain_bwd_weight_kernel": lambda a, launch: [
        triton.cdiv(triton.cdiv(a["n_pixels"], a["BLOCK_P"]), launch.grid[1])
    ],
    # The bias row's loop (one row of programs), then the taps' loop (the other rows).
    "conv3x3_weight_grad_kernel": lambda a, launch: [
        _tiles(a) / launch.grid[2] / launch.grid[0],
        _tiles(a) / launch.grid[2] * (launch.grid[0] - 1) / launch.grid[0],
    ],
    "gradients_from_partials_kernel": lambda a, _: [a["n_rows"]],
    "wdsr_b_block_fwd_kernel": lambda a, launch: [
        _tiles(a) / launch.programs,
        a["halo_chunks"],
        a["out_chunks"],
    ],
    "wdsr_b_block_bwd_tile_kernel": lambda a, launch: [
        _tiles(a) / launch.programs,
        a["halo_chunks"],
        a["out_chunks"],
        a["taps"],
        a["out_chunks"],
        *([a["wide_chunks"], a["out_chunks"]] if a["CHAIN_WEIGHT_GRAD"] else []),
    ],
    "wdsr_b_block_bwd_weight_kernel": lambda a, launch: [_tiles(a) / launch.grid[1]],
    "wdsr_a_block_fwd_kernel": lambda a, launch: [
        _tiles(a) / launch.programs,
        a["halo_chunks"],
        *([] if a["UNROLL_TAPS"] else [a["taps"]] * (a["F_PAD"] // a["BLOCK_F"])),
        a["out_chunks"],
    ],
    "wdsr_b_block_bwd_input_kernel": lambda a, launch: [],
}


# Kernels whose one source loop has a constant trip count, which the compiler may unroll, or
# peel trips off (some trips outside the SASS loop, several per SASS trip): tensor-core FLOPs
# one program computes, from which the SASS loop's trip count follows.
PRODUCT_FLOPS: dict[str, Callable[[dict[str, Any]], float]] = {
    "conv3x3_forward_kernel": lambda a: 9 * 2 * a["TILE_H"] * a["TILE_W"] * a["BLOCK_N"]
    * triton.cdiv(a["CIN"], a["BLOCK_K"]) * a["BLOCK_K"],
}


def _tiles(a: dict[str, Any]) -> int:
    """Output tiles of a tiled launch."""
    return a["N"] * a["tiles_h"] * a["tiles_w"]


def _reread(dims: tuple[int, ...]) -> Callable[[Launch], int]:
    """Programs along grid ``dims`` read the same elements: that many reads of them."""
    return lambda launch: math.prod(launch.grid[d] for d in dims)


_ONCE = _reread(())
# Per kernel: pointer argument -> ("r" or "w", how many programs read each of its elements).
TRAFFIC: dict[str, dict[str, tuple[str, Callable[[Launch], int]]]] = {
    "pointwise_chain_fwd_kernel": {
        **{p: ("r", _ONCE) for p in ("x_ptr", "w1_ptr", "b1_ptr", "w2_ptr", "b2_ptr")},
        "low_ptr": ("w", _ONCE),
    },
    "pointwise_chain_bwd_input_kernel": {
        **{p: ("r", _ONCE) for p in ("x_ptr", "dlow_ptr", "w1_ptr", "b1_ptr", "w2_ptr")},
        "gres_ptr": ("r", _ONCE),
        "dx_ptr": ("w", _ONCE),
    },
    "pointwise_chain_bwd_weight_kernel": {
        **{p: ("r", _reread((0,))) for p in ("x_ptr", "dlow_ptr")},
        **{p: ("r", _ONCE) for p in ("w1_ptr", "b1_ptr", "w2_ptr")},
        "partial_ptr": ("w", _ONCE),
    },
    "conv3x3_forward_kernel": {
        **{p: ("r", _ONCE) for p in ("x_ptr", "w_ptr", "bias_ptr", "mask_ptr", "res_ptr")},
        "y_ptr": ("w", _ONCE),
    },
    "conv3x3_weight_grad_kernel": {
        # Every row of programs but the bias row reads x.
        "x_ptr": ("r", lambda launch: (launch.grid[0] - 1) * launch.grid[1]),
        "g_ptr": ("r", _reread((0,))),
        "part_ptr": ("w", _ONCE),
    },
    "gradients_from_partials_kernel": {
        **{p: ("r", _ONCE) for p in ("part_ptr", "target_ptr")},
        **{f"out{i}_ptr": ("w", _ONCE) for i in range(MAX_OUTPUTS)},
    },
    "wdsr_b_block_fwd_kernel": {
        **{p: ("r", _ONCE) for p in ("x_ptr", "w1_ptr", "b1_ptr", "w2_ptr", "b2_ptr")},
        **{p: ("r", _ONCE) for p in ("w3_ptr", "b3_ptr")},
        "out_ptr": ("w", _ONCE),
    },
    "wdsr_b_block_bwd_tile_kernel": {
        **{p: ("r", _ONCE) for p in ("x_ptr", "g_ptr", "w1_ptr", "b1_ptr", "w2_ptr")},
        **{p: ("r", _ONCE) for p in ("b2_ptr", "w3_ptr")},
        **{p: ("w", _ONCE) for p in ("dx_ptr", "dl_ptr", "partial_ptr")},
    },
    "wdsr_b_block_bwd_weight_kernel": {
        **{p: ("r", _reread((0,))) for p in ("x_ptr", "dl_ptr")},
        **{p: ("r", _ONCE) for p in ("w1_ptr", "b1_ptr", "w2_ptr")},
        "partial_ptr": ("w", _ONCE),
    },
    "wdsr_a_block_fwd_kernel": {
        **{p: ("r", _ONCE) for p in ("x_ptr", "w1_ptr", "b1_ptr", "w2_ptr", "b2_ptr")},
        "out_ptr": ("w", _ONCE),
    },
    "wdsr_b_block_bwd_input_kernel": {
        **{p: ("r", _ONCE) for p in ("x_ptr", "dl_ptr", "g_ptr", "w1_ptr", "b1_ptr", "w2_ptr")},
        "dx_ptr": ("w", _ONCE),
    },
}


def _scratch_l2_bytes(launch: Launch) -> float:
    """L2 traffic of a tiled kernel's per-program scratch slot: per tile, the halo chunks
    written once and, per output pixel, nine windows read (of the slot's channels)."""
    a = _args(launch)
    if "scratch_ptr" not in a:
        return 0.0
    itemsize = a["scratch_ptr"].element_size()
    halo = a["halo_chunks"] * a["HALO_CHUNK"]
    channels = a["L_PAD"] if "L_PAD" in a else a["F_PAD"]
    per_tile = (halo + 9 * a["TILE_H"] * a["TILE_W"]) * channels * itemsize
    return _tiles(a) * per_tile


def _flag_off(flag: str) -> Callable[[dict[str, Any]], bool]:
    """Whether a launch sets ``flag`` off (a kernel without the flag always uses the pointer)."""
    return lambda a: not a.get(flag, True)


# Pointer arguments a launch passes only as placeholders when its arguments leave them unused.
_UNUSED_WHEN: dict[str, Callable[[dict[str, Any]], bool]] = {
    "bias_ptr": _flag_off("HAS_BIAS"),
    "mask_ptr": _flag_off("HAS_MASK"),
    "res_ptr": _flag_off("HAS_RESIDUAL"),
    "gres_ptr": _flag_off("HAS_RESIDUAL_GRAD"),
    "dx_ptr": _flag_off("INPUT_GRAD"),
    **{f"out{i}_ptr": (lambda a, i=i: a["OUTPUTS"] <= i) for i in range(MAX_OUTPUTS)},
}


def _traffic_bytes(launch: Launch) -> tuple[float, float]:
    """(HBM bytes: each tensor argument read or written once; L2 bytes: with the re-reads)."""
    args = _args(launch)
    name = launch.kernel.fn.__name__
    hbm = l2 = 0.0
    for arg, (_, readers) in TRAFFIC[name].items():
        unused = _UNUSED_WHEN.get(arg)
        if unused is not None and unused(args):
            continue
        tensor = args[arg]
        size = tensor.numel() * tensor.element_size()
        hbm += size
        l2 += size * readers(launch)
    return hbm, l2 + _scratch_l2_bytes(launch)


def _occupancy(registers: int, shared: int, warps: int, gpu: GpuModel) -> float:
    """Resident warps per SM over its 64 warp slots, from registers, shared memory and warps."""
    per_warp = math.ceil(registers * 32 / REGISTER_ALLOCATION_UNIT) * REGISTER_ALLOCATION_UNIT
    limits = [
        REGISTERS_PER_SM // (per_warp * warps),
        WARP_SLOTS_PER_SM // warps,
        MAX_CTAS_PER_SM,
        gpu.shared_bytes_per_sm // (shared + SHARED_RESERVED_PER_CTA),
    ]
    return min(limits) * warps / WARP_SLOTS_PER_SM


def _sass_trips(
    logical: list[float], instructions: list[Instruction], loops: list[Loop]
) -> list[float]:
    """Trip counts of the SASS loops from those of the source loops. A loop of one trip (its
    count specialised to the constant 1) has no SASS loop. A source loop the compiler unrolled
    by u shows as two consecutive loops, the unrolled one (n // u trips) and its remainder
    (n % u); u is the ratio of their global loads."""
    if len(loops) != len(logical):
        logical = [t for i, t in enumerate(logical) if t != 1 or i == 0]
    if len(loops) == len(logical):
        return logical
    if len(logical) == 1 and len(loops) == 2 and loops[0].end < loops[1].start:

        def loads(loop: Loop) -> int:
            return sum(1 for i in instructions if loop.holds(i) and i.base_opcode == "LDG")

        unroll = loads(loops[0]) // max(loads(loops[1]), 1)
        return [logical[0] // unroll, logical[0] % unroll]
    raise ValueError(f"{len(loops)} SASS loops do not match the source loops' trips {logical}")


def _trips_from_products(
    program_flops: float, warps: int, instructions: list[Instruction], loops: list[Loop]
) -> list[float]:
    """Trip count of a kernel's one SASS loop: the tensor-core FLOPs a warp must compute
    (``program_flops / warps``) less those outside the loop (peeled trips), over those of one
    trip of the loop, checked to be a whole number. No SASS loop left (the compiler unrolled
    it): no trips, each instruction counts once."""
    if not loops:
        return []
    if len(loops) > 1:
        raise ValueError(f"{len(loops)} SASS loops where at most one was expected")
    outside = tensor_flops(instructions, loops, [0])
    per_trip = tensor_flops(instructions, loops, [1]) - outside
    trips = (program_flops / warps - outside) / per_trip if per_trip else 0.0
    if trips < 1 or trips != round(trips):
        raise ValueError(f"the SASS loop's products do not add up to the program's: {trips} trips")
    return [trips]


def _kernel_report(launch: Launch, arch: int, pixels: int, operand: str) -> dict[str, Any]:
    gpu = GPUS[arch]
    kernel = compile_launch(specialise(launch, arch))
    usage = ptxas_usage(kernel.asm["ptx"], arch)
    instructions, labels = parse(sass(kernel.asm["cubin"]))
    loops = find_loops(instructions, labels)
    name = launch.kernel.fn.__name__
    args = _args(launch)
    if name in PRODUCT_FLOPS:
        program_flops = PRODUCT_FLOPS[name](args)
        trips = _trips_from_products(program_flops, kernel.metadata.num_warps, instructions, loops)
    else:
        trips = _sass_trips(LOOP_TRIPS[name](args, launch), instructions, loops)
    counts = opcode_counts(instructions, loops, trips)
    warps = kernel.metadata.num_warps * launch.programs
    warp_instructions = sum(counts.values()) * warps
    flops = tensor_flops(instructions, loops, trips) * warps
    hbm, l2 = _traffic_bytes(launch)
    times = {
        "hbm": hbm / (gpu.hbm_tb_per_s * 1e12) * 1e6,
        "tensor": flops / (gpu.tensor_tflops[operand] * 1e12) * 1e6,
        "issue": warp_instructions
        / (ISSUE_PER_CLOCK_PER_SM * gpu.multiprocessors * gpu.clock_ghz * 1e9)
        * 1e6,
    }
    tensor_opcodes = ("HGMMA", "HMMA")
    return {
        "name": name,
        "grid": list(launch.grid),
        "num_warps": kernel.metadata.num_warps,
        "registers": usage.registers,
        "spill_bytes": usage.spill_stores + usage.spill_loads,
        "shared_bytes": kernel.metadata.shared,
        "occupancy": _occupancy(usage.registers, kernel.metadata.shared,
                                kernel.metadata.num_warps, gpu),  # fmt: skip
        "tensor_core_instructions": {
            op: sum(1 for i in instructions if i.base_opcode == op) for op in tensor_opcodes
        },
        "warp_instructions_per_pixel": warp_instructions / pixels,
        "hbm_bytes_per_pixel": hbm / pixels,
        "l2_bytes_per_pixel": l2 / pixels,
        "tensor_flops_per_pixel": flops / pixels,
        "bound_us": max(times.values()),
        "bound_by": max(times, key=lambda k: times[k]),
        "top_opcodes_per_pixel": {
            op: count * warps / pixels for op, count in list(counts.items())[:8]
        },
    }


def _block_flops(block: str, c: int, wide: int, low: int) -> tuple[float, float]:
    """Minimum FLOP per pixel of a block's forward and backward (backward: recompute the
    activations it needs, then the input and weight gradients of every layer)."""
    if block == "B":
        chain, conv = 2 * (c * wide + wide * low), 2 * 9 * low * c
        return chain + conv, chain + 2 * (chain + conv)
    first, second = 2 * 9 * c * wide, 2 * 9 * wide * c
    return first + second, first + 2 * (first + second)


def block_report(scenario: Scenario, arch: int) -> dict[str, Any]:
    """The report of one block forward or backward (``scenario.stage``)."""
    gpu = GPUS[arch]
    n, h, w = scenario.shape
    pixels = n * h * w
    operand = "half" if scenario.dtype != torch.float32 else "tf32"
    kernels = [_kernel_report(launch, arch, pixels, operand) for launch in record(scenario, arch)]
    itemsize = torch.tensor([], dtype=scenario.dtype).element_size()
    flops = _block_flops(scenario.block, scenario.channels, scenario.wide, scenario.low)
    forward = scenario.stage == "forward"
    min_bytes = (2 if forward else 3) * scenario.channels * itemsize
    roofline_us = max(
        pixels * min_bytes / (gpu.hbm_tb_per_s * 1e12),
        pixels * flops[0 if forward else 1] / (gpu.tensor_tflops[operand] * 1e12),
    ) * 1e6  # fmt: skip
    bound_us = sum(k["bound_us"] for k in kernels)
    return {
        "warp_instructions_per_pixel": sum(k["warp_instructions_per_pixel"] for k in kernels),
        "hbm_bytes_per_pixel": sum(k["hbm_bytes_per_pixel"] for k in kernels),
        "bound_us": bound_us,
        "roofline_us": roofline_us,
        "fraction_of_roofline": roofline_us / bound_us,
        "min_hbm_bytes_per_pixel": min_bytes,
        "min_flops_per_pixel": flops[0 if forward else 1],
        "kernels": kernels,
    }


# The default blocks the report covers: block -> (channels, wide, low).
DEFAULT_BLOCKS = {"B": (32, 192, 25), "A": (32, 128, 0)}


def default_scenario(
    block: str, stage: str, dtype: torch.dtype, shape: tuple[int, int, int]
) -> Scenario:
    """The default ``block``'s ``stage`` on a channels_last input of ``shape`` (N, H, W)."""
    channels, wide, low = DEFAULT_BLOCKS[block]
    return Scenario(block, channels, wide, low, stage, shape, dtype, True, "channels_last")


def by_block(stage_result: Callable[[str, str], dict[str, Any]]) -> dict[str, Any]:
    """``{"forward", "backward", "wdsr_a": {"forward", "backward"}}`` of
    ``stage_result(block, stage)``: the report's layout, shared with the measured times."""
    return {
        "forward": stage_result("B", "forward"),
        "backward": stage_result("B", "backward"),
        "wdsr_a": {
            "forward": stage_result("A", "forward"),
            "backward": stage_result("A", "backward"),
        },
    }


def stages(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(title, stage) of each block and stage of a result laid out by :func:`by_block`."""
    return [("WDSR-B forward", result["forward"]), ("WDSR-B backward", result["backward"]),
            ("WDSR-A forward", result["wdsr_a"]["forward"]),
            ("WDSR-A backward", result["wdsr_a"]["backward"])]  # fmt: skip


def report(arch: int, dtype: torch.dtype, size: tuple[int, int], batch: int) -> dict[str, Any]:
    """Forward and backward of the default WDSR-B block (C=32, E=192, L=25) and of the default
    WDSR-A block (C=32, block_feats=128), channels_last input of ``batch`` x ``size``."""
    gpu = GPUS[arch]
    return {
        "arch": f"sm_{arch}",
        "gpu_model": {
            "name": gpu.name,
            "multiprocessors": gpu.multiprocessors,
            "clock_ghz": gpu.clock_ghz,
            "hbm_tb_per_s": gpu.hbm_tb_per_s,
            "tensor_tflops": gpu.tensor_tflops,
        },
        "dtype": str(dtype).removeprefix("torch."),
        "input": {"batch": batch, "height": size[0], "width": size[1]},
        "triton": triton.__version__,
        **by_block(
            lambda block, stage: block_report(
                default_scenario(block, stage, dtype, (batch, *size)), arch
            )
        ),
    }


def format_report(result: dict[str, Any]) -> str:
    """The report as a text table per block and stage."""
    gpu = result["gpu_model"]
    lines = [
        f"{result['arch']} ({gpu['name']} model), {result['dtype']}, "
        f"{result['input']['batch']}x{result['input']['height']}x{result['input']['width']}, "
        f"triton {result['triton']}"
    ]
    for title, stage in stages(result):
        lines.append(
            f"\n{title}: {stage['warp_instructions_per_pixel']:.1f} warp-instr/px, "
            f"{stage['hbm_bytes_per_pixel']:.1f} B/px, bound {stage['bound_us']:.1f} us, "
            f"roofline {stage['roofline_us']:.1f} us "
            f"({100 * stage['fraction_of_roofline']:.0f}% of roofline)"
        )
        lines.append(
            f"  {'kernel':<36} {'regs':>4} {'spill':>5} {'smem':>6} {'occ':>5} "
            f"{'TC':>5} {'instr/px':>8} {'B/px':>7} {'bound us':>8}"
        )
        for k in stage["kernels"]:
            tc = sum(k["tensor_core_instructions"].values())
            lines.append(
                f"  {k['name']:<36} {k['registers']:>4} {k['spill_bytes']:>5} "
                f"{k['shared_bytes']:>6} {k['occupancy']:>5.2f} {tc:>5} "
                f"{k['warp_instructions_per_pixel']:>8.1f} {k['hbm_bytes_per_pixel']:>7.1f} "
                f"{k['bound_us']:>7.1f}{k['bound_by'][0]}"
            )
    return "\n".join(lines)


DTYPE_NAMES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say which input the blocks run on: --dtype, --size, --batch."""
    parser.add_argument("--dtype", choices=sorted(DTYPE_NAMES), default="float16")
    parser.add_argument("--size", default="540x960", help="LR height x width, e.g. 540x960")
    parser.add_argument("--batch", type=int, default=1)


def parse_size(text: str) -> tuple[int, int]:
    """``"540x960"`` -> ``(540, 960)``."""
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def main(argv: list[str] | None = None) -> None:
    """``--arch 90 --dtype float16 --size 540x960 [--batch 1] [--json]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, choices=sorted(GPUS), default=90)
    add_input_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = report(args.arch, DTYPE_NAMES[args.dtype], parse_size(args.size), args.batch)
    print(json.dumps(result, indent=1) if args.json else format_report(result))


if __name__ == "__main__":
    main()
