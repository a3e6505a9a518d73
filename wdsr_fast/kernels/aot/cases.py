"""The kernel variants the shipped models launch, recorded from their launchers.

A :class:`Scenario` is one call of a block's forward or backward launcher: the block's widths,
the activation's shape, dtype, dot precision and memory layout. :func:`shipped_scenarios` lists
those the shipped models make -- WDSR-B with 32 features (the bundled weights and the
reference's default), WDSR-B with 64 (the paper's 0.6M model), WDSR-A with 32 and 128 -- in
float16, bfloat16 and float32 (TF32 and full-precision dots), at inference (one 540x960 image),
training (16 patches of 48x48) and an odd size, channels_last as the models pass it plus the
other layouts a direct op call may pass. :func:`variants` records every scenario for an
architecture and keeps one launch per distinct compiled kernel.

``python -m wdsr_fast.kernels.aot.cases [--arch 80 90] [--json FILE]`` compiles them all and
prints registers, spills and shared memory per variant.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from wdsr_fast.kernels.wdsr_a_block import wdsr_a_block_backward, wdsr_a_block_forward
from wdsr_fast.kernels.wdsr_b_block import wdsr_b_block_backward, wdsr_b_block_forward

from .capture import Launch, recorded_launches
from .compile import MAX_SHARED_BYTES, compile_launch, ptxas_usage, sass, specialise

__all__ = [
    "ARCHS",
    "MULTIPROCESSORS",
    "Scenario",
    "block_call",
    "compile_all",
    "compile_report",
    "record",
    "shipped_scenarios",
    "variants",
]

ARCHS = (80, 90)
# Streaming multiprocessors of the GPU each arch is compiled for: A100 (sm_80), H100 (sm_90).
MULTIPROCESSORS = {80: 108, 90: 132}
# Tensor-core instructions in SASS: HMMA (sm_80 and sm_90 mma.sync), HGMMA (sm_90 wgmma).
TENSOR_CORE_OPCODES = ("HMMA", "HGMMA")


@dataclass(frozen=True)
class Scenario:
    """One launcher call: ``block`` "B" (widths ``channels``, ``wide``, ``low``) or "A"
    (``channels``, ``wide`` = block_feats), ``stage`` "forward" or "backward", activations of
    ``shape`` (N, H, W), ``dtype``, ``tf32`` dots for float32, ``layout`` "channels_last",
    "nchw" or "strided"."""

    block: str
    channels: int
    wide: int
    low: int
    stage: str
    shape: tuple[int, int, int]
    dtype: torch.dtype
    tf32: bool
    layout: str

    @property
    def name(self) -> str:
        n, h, w = self.shape
        precision = "tf32" if self.tf32 and self.dtype == torch.float32 else ""
        return (
            f"wdsr_{self.block.lower()}-c{self.channels}-{self.stage}-{n}x{h}x{w}-"
            f"{str(self.dtype)[6:]}{precision}-{self.layout}"
        )


# The shipped blocks: (block, channels, wide, low).
SHIPPED_BLOCKS = (("B", 32, 192, 25), ("B", 64, 384, 51), ("A", 32, 128, 0))
SIZES = ((1, 540, 960), (16, 48, 48), (2, 13, 17))
LAYOUTS = ("channels_last", "nchw", "strided")
DTYPES = ((torch.float16, False), (torch.bfloat16, False), (torch.float32, True),
          (torch.float32, False))  # fmt: skip


def shipped_scenarios() -> list[Scenario]:
    """Every launcher call of the shipped blocks: float16 at each size in channels_last (what
    the models pass) and at the odd size also NCHW and strided (direct op calls); bfloat16 and
    float32 at the inference and training sizes, channels_last."""
    scenarios = []
    for block, channels, wide, low in SHIPPED_BLOCKS:
        for stage in ("forward", "backward"):
            for dtype, tf32 in DTYPES:
                for shape in SIZES if dtype == torch.float16 else SIZES[:2]:
                    layouts = (
                        LAYOUTS if dtype == torch.float16 and shape == SIZES[2] else LAYOUTS[:1]
                    )
                    for layout in layouts:
                        scenarios.append(
                            Scenario(block, channels, wide, low, stage, shape, dtype, tf32, layout)
                        )
    return scenarios


def _in_layout(t: Tensor, layout: str) -> Tensor:
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "nchw":
        return t.contiguous()
    n, c, h, w = t.shape  # a view with odd strides into a larger buffer
    view = t.new_empty(n, 2 * c, h + 1, w + 3)[:, ::2, 1:, 2 : w + 2]
    return view.copy_(t)


def block_call(s: Scenario, make: Callable[..., Tensor] | None = None) -> Callable[[], object]:
    """The launcher call of scenario ``s``: its tensors come from ``make(*shape, dtype=...)``
    (default: uninitialised CPU tensors, all that recording launches needs)."""
    n, h, w = s.shape

    def empty(*shape: int) -> Tensor:
        return (make or torch.empty)(*shape, dtype=s.dtype)

    x = _in_layout(empty(n, s.channels, h, w), s.layout)
    grad = _in_layout(empty(n, s.channels, h, w), s.layout)
    if s.block == "B":
        c, e, low = s.channels, s.wide, s.low
        w1, b1, w2, b2 = empty(e, c, 1, 1), empty(e), empty(low, e, 1, 1), empty(low)
        w3, b3 = empty(c, low, 3, 3), empty(c)
        if s.stage == "forward":
            return lambda: wdsr_b_block_forward(x, w1, b1, w2, b2, w3, b3, 1.0)
        return lambda: wdsr_b_block_backward(grad, x, w1, b1, w2, b2, w3, 1.0)
    c, f = s.channels, s.wide
    w1, b1, w2, b2 = empty(f, c, 3, 3), empty(f), empty(c, f, 3, 3), empty(c)
    if s.stage == "forward":
        return lambda: wdsr_a_block_forward(x, w1, b1, w2, b2, 1.0)
    return lambda: wdsr_a_block_backward(grad, x, w1, b1, w2, 1.0)


@contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous


def record(scenario: Scenario, arch: int, multiprocessors: int | None = None) -> list[Launch]:
    """The launches of ``scenario`` on an ``sm_<arch>`` GPU of ``multiprocessors`` SMs (default:
    the GPU ``arch`` is compiled for, :data:`MULTIPROCESSORS`), in launch order."""
    call = block_call(scenario)
    sms = multiprocessors if multiprocessors is not None else MULTIPROCESSORS[arch]
    with _tf32(scenario.tf32), recorded_launches(sms, arch) as launches:
        call()
    return launches


def variants(arch: int, scenarios: list[Scenario] | None = None) -> dict[str, tuple[Scenario, int]]:
    """One launch per distinct kernel variant over ``scenarios`` (default: the shipped ones):
    ``{specialisation key: (first scenario launching it, index of the launch in it)}``."""
    found: dict[str, tuple[Scenario, int]] = {}
    for scenario in scenarios if scenarios is not None else shipped_scenarios():
        for index, launch in enumerate(record(scenario, arch)):
            found.setdefault(specialise(launch, arch).key, (scenario, index))
    return found


def compile_report(scenario: Scenario, index: int, arch: int) -> dict[str, object]:
    """Compile launch ``index`` of ``scenario`` for ``sm_<arch>``: a JSON-ready record of its
    registers, spills, shared memory, warps and tensor-core instruction counts, or the error."""
    launch = record(scenario, arch)[index]
    spec = specialise(launch, arch)
    record_: dict[str, object] = {
        "arch": arch,
        "scenario": scenario.name,
        "key": spec.key,
        "kernel": launch.kernel.fn.__name__,
    }
    try:
        kernel = compile_launch(spec)
        usage = ptxas_usage(kernel.asm["ptx"], arch)
        code = sass(kernel.asm["cubin"])
    except Exception as exc:  # reported per variant, so one failure does not hide the others
        record_["error"] = f"{type(exc).__name__}: {exc}"
        return record_
    opcodes = [line.split()[0] for line in _instructions(code)]
    record_.update(
        registers=usage.registers,
        spill_stores=usage.spill_stores,
        spill_loads=usage.spill_loads,
        shared_bytes=kernel.metadata.shared,
        max_shared_bytes=MAX_SHARED_BYTES[arch],
        num_warps=kernel.metadata.num_warps,
        tensor_core_instructions={
            op: sum(1 for o in opcodes if o.split(".")[0] == op) for op in TENSOR_CORE_OPCODES
        },
        expects_tensor_cores=_expects_tensor_cores(scenario, launch),
    )
    return record_


def _expects_tensor_cores(scenario: Scenario, launch: Launch) -> bool:
    """Every matrix product runs on tensor cores but full-precision float32 ones (FMA)."""
    precision = launch.kwargs.get("DOT_PRECISION", launch.kwargs.get("INPUT_PRECISION"))
    return precision is not None and not (scenario.dtype == torch.float32 and precision == "ieee")


def _instructions(code: str) -> Iterator[str]:
    """The instruction text of each SASS line (``/*0010*/  IMAD R1, ... ;`` -> ``IMAD R1, ...``),
    predicates dropped."""
    for line in code.splitlines():
        text = line.split("*/", 1)[1].strip() if line.lstrip().startswith("/*") else ""
        text = text.split(";")[0].strip()
        if text.startswith("@"):
            text = text.split(None, 1)[1] if " " in text else ""
        if text:
            yield text


def compile_all(archs: tuple[int, ...] = ARCHS, jobs: int | None = None) -> list[dict[str, object]]:
    """:func:`compile_report` of every distinct shipped variant for every arch, in ``jobs``
    processes."""
    tasks = [(scenario, index, arch) for arch in archs
             for scenario, index in variants(arch).values()]  # fmt: skip
    # spawn: a forked child of a process that has run torch's OpenMP threads can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs or os.cpu_count(), mp_context=context) as pool:
        return list(pool.map(compile_report, *zip(*tasks, strict=True)))


def main(argv: list[str] | None = None) -> None:
    """Compile every distinct launched variant for each arch; print and optionally save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, nargs="+", default=list(ARCHS))
    parser.add_argument("--json", default=None, help="write the records to this file")
    args = parser.parse_args(argv)
    records = compile_all(tuple(args.arch))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    for r in records:
        usage = r.get("error") or (
            f"{r['registers']:3d} regs, spills {r['spill_stores']}/{r['spill_loads']} B, "
            f"shared {r['shared_bytes']} B, {r['num_warps']} warps, "
            f"HMMA {r['tensor_core_instructions']['HMMA']} HGMMA "
            f"{r['tensor_core_instructions']['HGMMA']}"
        )
        print(f"sm_{r['arch']} {r['kernel']:<36} {r['scenario']:<48} {usage}")


if __name__ == "__main__":
    main()
