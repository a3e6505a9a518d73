"""Alternative launch configurations of the fused WDSR-B block, side by side: the tool that turns
a lent GPU's minutes into tile choices.

The static report (:mod:`.report`) counts issue slots and bytes, not latency, and the fused
kernels measured on an H200 ran 4.5-8x slower than its bound: whether a configuration hides
latency better (more programs per SM, software pipelining, smaller tiles) only a GPU can say.
For the WDSR-B forward or backward at one input, this tool runs the default configuration
(:func:`~wdsr_fast.kernels.wdsr_b_block.forward_config`,
:func:`~wdsr_fast.kernels.wdsr_b_block.backward_config`) and each candidate of
:data:`CANDIDATES` -- a few fields replaced -- and gives for each:

- statically (any machine, ``--arch 80`` or ``90``): per kernel the registers, spill bytes and
  occupancy of the variant compiled exactly as it launches, and the block's static bound;
- measured (``--measure``, on a CUDA GPU of that arch): the kernels' median device time and
  the whole launcher call's, L2 flushed before each repeat (:func:`.measure.block_times`).

A candidate that spills registers is reported but not measured. The configuration functions
are replaced only inside :func:`configured`, for the launchers' calls made there.

``python -m wdsr_fast.kernels.aot.sweep --stage forward --arch 90 --size 540x960 [--batch 1]
[--dtype float16] [--measure] [--repeats 20] [--json]``
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import torch

from .. import wdsr_b_block
from .report import DTYPE_NAMES, add_input_arguments, block_report, default_scenario, parse_size

__all__ = ["CANDIDATES", "configured", "main", "sweep"]

# Per stage, the fields each candidate replaces in the default configuration (a backward
# candidate's "tile" entry replaces fields of its tile, the forward's configuration).
CANDIDATES: dict[str, list[dict[str, Any]]] = {
    "forward": [
        {"programs_per_sm": 1},
        {"programs_per_sm": 3},
        {"num_stages": 2},
        {"tile_h": 8, "tile_w": 32},
        {"tile_h": 16, "tile_w": 16},
        {"tile_h": 32, "tile_w": 32},
        {"block_e": 32},
        {"block_e": 32, "programs_per_sm": 3},  # sm_90: 79 registers, three programs fit
        {"out_chunk": 64, "halo_chunk": 64},
    ],
    "backward": [
        {"tile": {"programs_per_sm": 1}},
        {"tile": {"programs_per_sm": 3}},
        {"tile": {"num_stages": 2}},
        {"tile": {"tile_h": 8, "tile_w": 32}},
        {"tile": {"tile_h": 16, "tile_w": 16}},
        {"max_registers": None},
        {"tile": {"block_e": 16}},
    ],
}


def _replaced(config: Any, changes: dict[str, Any]) -> Any:
    """``config`` with the fields of ``changes`` replaced; a nested dict replaces fields of
    the field it names."""
    fields = {
        name: _replaced(getattr(config, name), value) if isinstance(value, dict) else value
        for name, value in changes.items()
    }
    return dataclasses.replace(config, **fields)


@contextlib.contextmanager
def configured(stage: str, changes: dict[str, Any]) -> Iterator[None]:
    """Inside, the WDSR-B launcher of ``stage`` ("forward" or "backward") takes its default
    configuration with ``changes`` (:data:`CANDIDATES`) wherever it has a fused one."""
    name = "forward_config" if stage == "forward" else "backward_config"
    default = getattr(wdsr_b_block, name)

    def candidate(*args: Any, **kwargs: Any) -> Any:
        config = default(*args, **kwargs)
        return None if config is None else _replaced(config, changes)

    setattr(wdsr_b_block, name, candidate)
    try:
        yield
    finally:
        setattr(wdsr_b_block, name, default)


def _label(changes: dict[str, Any]) -> str:
    if not changes:
        return "default"
    return ", ".join(
        _label(value) if isinstance(value, dict) else f"{name}={value}"
        for name, value in changes.items()
    )


def sweep(
    stage: str,
    arch: int,
    dtype: torch.dtype,
    shape: tuple[int, int, int],
    measure: bool = False,
    repeats: int = 20,
) -> list[dict[str, Any]]:
    """One row per configuration (the default first, then :data:`CANDIDATES`): its label, the
    static report of its kernels on ``sm_<arch>`` and, if ``measure``, their measured times
    on the current CUDA device (which must be of that arch)."""
    if measure:
        from .measure import block_times

        major, minor = torch.cuda.get_device_capability()
        if 10 * major + minor != arch:
            raise ValueError(f"--arch {arch} is not this GPU's (sm_{major}{minor})")
    scenario = default_scenario("B", stage, dtype, shape)
    rows = []
    for changes in [{}, *CANDIDATES[stage]]:
        row: dict[str, Any] = {"config": _label(changes), "changes": changes}
        try:
            with configured(stage, changes):
                row["static"] = block_report(scenario, arch)
                spills = sum(k["spill_bytes"] for k in row["static"]["kernels"])
                if measure and spills == 0:
                    row["measured"] = block_times(scenario, repeats)
        except Exception as error:  # a candidate the compiler or the launcher rejects
            row["error"] = f"{type(error).__name__}: {error}"
        rows.append(row)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a table: per configuration the largest registers and the spills of its
    kernels, its lowest occupancy, the static bound and, where measured, the times."""
    default = rows[0].get("measured", {}).get("kernels_us")
    lines = [
        f"{'configuration':<34} {'regs':>4} {'spill':>5} {'occ':>5} {'bound us':>8} "
        f"{'kernels us':>10} {'call us':>8} {'vs default':>10}"
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['config']:<34} {row['error'][:90]}")
            continue
        kernels = row["static"]["kernels"]
        line = (
            f"{row['config']:<34} {max(k['registers'] for k in kernels):>4} "
            f"{sum(k['spill_bytes'] for k in kernels):>5} "
            f"{min(k['occupancy'] for k in kernels):>5.2f} {row['static']['bound_us']:>8.1f}"
        )
        if "measured" in row:
            measured = row["measured"]
            ratio = f"{default / measured['kernels_us']:.2f}x" if default else ""
            line += (
                f" {measured['kernels_us']:>10.1f} {measured['call_us']:>8.1f} {ratio:>10}"
            )
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``--stage forward|backward --arch 80|90 --size HxW [--batch N] [--dtype D] [--measure]
    [--repeats 20] [--json]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_input_arguments(parser)
    parser.add_argument("--stage", choices=sorted(CANDIDATES), required=True)
    parser.add_argument("--arch", type=int, choices=[80, 90], required=True)
    parser.add_argument("--measure", action="store_true", help="time them on this CUDA GPU")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    shape = (args.batch, *parse_size(args.size))
    rows = sweep(args.stage, args.arch, DTYPE_NAMES[args.dtype], shape, args.measure,
                 args.repeats)  # fmt: skip
    print(json.dumps(rows, indent=1) if args.json else format_rows(rows))


if __name__ == "__main__":
    main()
