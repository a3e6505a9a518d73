"""Ahead-of-time compilation of the Triton kernels for a GPU architecture, without a GPU.

Each kernels module lists what its launchers can run as :class:`AotCase` entries (a kernel,
the Triton types of its runtime arguments, its constexpr values and launch options) from a
function ``aot_cases()``. :func:`compile_case` compiles one entry to PTX and cubin for a given
``sm_XX``; :func:`ptxas_usage` reads registers and spill bytes from Triton's bundled ``ptxas``;
:func:`compile_all` (also ``python -m wdsr_fast.kernels.aot MODULE...``) does every case of
some modules in parallel processes and reports registers and spills per case.

Compiling needs the real ``triton.jit`` (``TRITON_INTERPRET`` unset in the process).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import re
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import torch
import triton
from triton.backends.compiler import BaseBackend, GPUTarget
from triton.compiler import ASTSource

_POINTER_TYPES = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16"}


def pointer_type(dtype: torch.dtype) -> str:
    """Triton signature type of a pointer to ``dtype`` elements (e.g. ``"*fp16"``)."""
    return _POINTER_TYPES[dtype]


@dataclass(frozen=True)
class AotCase:
    """One compile of ``kernel``: runtime argument types by name, constexprs, launch options.

    ``constexprs`` also holds runtime integer arguments pinned to 1 (unit strides): Triton's
    launcher specialises integers equal to 1 into constants, so those are the variants that
    run."""

    name: str
    kernel: triton.runtime.JITFunction
    signature: dict[str, str]
    constexprs: dict[str, object]
    num_warps: int
    num_stages: int
    # Integer arguments known to be multiples of 16 (Triton's launcher specialises on that).
    divisible_by_16: tuple[str, ...] = ()
    # Instructions the PTX must contain per architecture, e.g. {90: "wgmma"} for tensor cores.
    expect_ptx: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        expected = set(self.kernel.arg_names)
        given = set(self.signature) | set(self.constexprs)
        if given != expected:
            raise ValueError(
                f"{self.name}: arguments {sorted(expected ^ given)} are missing or unknown"
            )


def _divisibility_attrs(case: AotCase) -> dict[tuple[int, ...], list]:
    """Divisibility by 16 of every pointer (16-byte aligned, as fresh allocations are) and of
    the integers in ``case.divisible_by_16``, spelled as Triton's launcher spells them; empty
    where this Triton spells attributes differently (3.2)."""
    parse_attr = getattr(BaseBackend, "parse_attr", None)
    if parse_attr is None:
        return {}
    return {
        (i,): parse_attr("D")
        for i, name in enumerate(case.kernel.arg_names)
        if case.signature.get(name, "").startswith("*") or name in case.divisible_by_16
    }


def _ast_source(case: AotCase) -> ASTSource:
    """ASTSource across Triton versions: ``constexprs=`` (>= 3.3) or ``constants=`` (3.2)."""
    params = inspect.signature(ASTSource.__init__).parameters
    signature = {name: case.signature.get(name, "constexpr") for name in case.kernel.arg_names}
    if "constexprs" in params:
        return ASTSource(
            fn=case.kernel,
            signature=signature,
            constexprs=case.constexprs,
            attrs=_divisibility_attrs(case),
        )
    return ASTSource(fn=case.kernel, signature=signature, constants=case.constexprs)


def compile_case(case: AotCase, arch: int) -> triton.compiler.CompiledKernel:
    """Compile ``case`` for ``sm_<arch>``: ``.asm`` holds ``ptx`` and ``cubin``, ``.metadata``
    the shared memory the kernel needs."""
    target = GPUTarget("cuda", arch, 32)
    options = {"num_warps": case.num_warps, "num_stages": case.num_stages}
    return triton.compile(_ast_source(case), target=target, options=options)


# Most shared memory one block may use (bytes): sm_80 (A100) and sm_90 (H100) opt-in limits.
MAX_SHARED_BYTES = {80: 163 * 1024, 90: 227 * 1024}


def ptxas_path() -> str:
    """The ``ptxas`` shipped in Triton's NVIDIA backend."""
    import triton.backends.nvidia as nvidia

    return os.path.join(os.path.dirname(nvidia.__file__), "bin", "ptxas")


@dataclass(frozen=True)
class PtxasUsage:
    """Per-thread registers and spill bytes reported by ``ptxas -v``."""

    registers: int
    spill_stores: int
    spill_loads: int


def ptxas_usage(ptx: str, arch: int) -> PtxasUsage:
    """Run ``ptxas -v`` on ``ptx`` for ``sm_<arch>`` (``sm_90a`` for 90) and parse its report."""
    sm = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        out = subprocess.run(
            [ptxas_path(), f"-arch={sm}", "-v", src, "-o", os.path.join(tmp, "kernel.cubin")],
            capture_output=True,
            text=True,
            check=True,
        )
    report = out.stdout + out.stderr
    registers = re.search(r"Used (\d+) registers", report)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    if registers is None or spills is None:
        raise RuntimeError(f"unexpected ptxas report:\n{report}")
    return PtxasUsage(int(registers.group(1)), int(spills.group(1)), int(spills.group(2)))


def case_report(module_name: str, index: int, arch: int) -> dict[str, object]:
    """Compile case ``index`` of ``module_name.aot_cases()`` for ``sm_<arch>``; a JSON-ready
    record: name, arch, registers, spill bytes, shared memory, missing expected PTX, or the
    error."""
    module = importlib.import_module(module_name)
    case = module.aot_cases()[index]
    record: dict[str, object] = {"module": module_name, "name": case.name, "arch": arch}
    try:
        kernel = compile_case(case, arch)
        asm = kernel.asm
        usage = ptxas_usage(asm["ptx"], arch)
    except Exception as exc:  # reported per case, so one failure does not hide the others
        record["error"] = f"{type(exc).__name__}: {exc}"
        return record
    record.update(
        registers=usage.registers,
        spill_stores=usage.spill_stores,
        spill_loads=usage.spill_loads,
        cubin_bytes=len(asm.get("cubin", b"")),
        shared_bytes=kernel.metadata.shared,
        max_shared_bytes=MAX_SHARED_BYTES[arch],
        missing_ptx=[] if case.expect_ptx.get(arch, "") in asm["ptx"] else [case.expect_ptx[arch]],
    )
    return record


def compile_all(
    module_names: list[str], archs: list[int], jobs: int | None = None
) -> list[dict[str, object]]:
    """:func:`case_report` for every case of every module and arch, in ``jobs`` processes."""
    tasks = [
        (name, i, arch)
        for name in module_names
        for i in range(len(importlib.import_module(name).aot_cases()))
        for arch in archs
    ]
    with ProcessPoolExecutor(max_workers=jobs or os.cpu_count()) as pool:
        return list(pool.map(case_report, *zip(*tasks, strict=True)))


def main(argv: list[str] | None = None) -> None:
    """``python -m wdsr_fast.kernels.aot MODULE... [--arch 80 90] [--json OUT]``: compile every
    case and print registers and spills per case (the table is also written as JSON)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("modules", nargs="+")
    parser.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    records = compile_all(args.modules, args.arch, args.jobs)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    for r in records:
        usage = r.get("error") or (
            f"{r['registers']:3d} registers, spills {r['spill_stores']}/{r['spill_loads']} B,"
            f" shared {r['shared_bytes']} B"
        )
        print(f"sm_{r['arch']}  {r['name']:<70} {usage}")


if __name__ == "__main__":
    main()
