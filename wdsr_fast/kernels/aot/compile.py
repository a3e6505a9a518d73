"""Compiling a recorded launch for a GPU architecture, as Triton's own launcher would.

:func:`specialise` runs Triton's launcher code on the recorded arguments -- its argument binder
(which turns integers equal to 1 into constants, marks integers and pointers divisible by 16,
types integers as i32 or i64) and its packing of signature, constexprs and attributes -- for a
``GPUTarget`` of the chosen architecture instead of the current device. The result is the very
kernel variant a GPU run of that launch compiles. Triton 3.2 spells this differently from 3.3
and later; both are followed.

:func:`compile_launch` compiles it to PTX and cubin; :func:`ptxas_usage` reads registers and
spill bytes from Triton's bundled ``ptxas``; :func:`sass` disassembles the cubin with its
bundled ``nvdisasm``.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.compiler.compiler import make_backend
from triton.runtime.jit import JITFunction, create_function_from_signature

from .capture import Launch

__all__ = [
    "MAX_SHARED_BYTES",
    "PtxasUsage",
    "Specialisation",
    "compile_launch",
    "nvidia_tool",
    "ptxas_usage",
    "sass",
    "specialise",
]

# Most shared memory one block may use (bytes): sm_80 (A100) and sm_90 (H100) opt-in limits.
MAX_SHARED_BYTES = {80: 163 * 1024, 90: 227 * 1024}


@dataclass(frozen=True)
class Specialisation:
    """What Triton compiles for a launch: the source (signature, constants, attributes), the
    target, the compile options, and a key equal for launches that compile the same kernel."""

    source: ASTSource
    target: GPUTarget
    options: dict[str, Any]
    key: str


def _modern_source(kernel: JITFunction, backend: Any, args: tuple, kwargs: dict) -> tuple:
    """Triton >= 3.3: the binder returns (bound args, specialisation, options);
    ``JITFunction._pack_args`` turns them into signature, constexprs and attributes."""
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound_args, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(
        backend, kwargs, bound_args, specialization, options
    )
    return ASTSource(kernel, signature, constexprs, attrs), options, (signature, constexprs, attrs)


def _legacy_source(kernel: JITFunction, backend: Any, args: tuple, kwargs: dict) -> tuple:
    """Triton 3.2: the binder returns signature types and specialisation keys; the attributes
    descriptor says which integer arguments are constants (equal to 1) and which divisible."""
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound_args, sig_and_spec, _, _, _ = binder(*args, **kwargs)
    options = backend.parse_options(kwargs)
    bound_vals = tuple(bound_args.values())
    sigkeys = [p.name for p in kernel.params if not p.is_constexpr]
    types = sig_and_spec[: len(sigkeys)]
    signature = {k: ("*i8" if v == "none" else v) for k, v in zip(sigkeys, types, strict=True)}
    attrs = backend.get_attrs_descriptor(kernel.params, bound_vals)
    constant_params = attrs.get_constants()
    constants = {
        p.name: v
        for v, p in zip(bound_vals, kernel.params, strict=True)
        if p.is_constexpr or p.num in constant_params or v is None
    }
    source = ASTSource(kernel, signature, constants, attrs)
    return source, options, (signature, constants, attrs.to_dict())


def specialise(launch: Launch, arch: int) -> Specialisation:
    """The kernel variant a launch like ``launch`` compiles on an ``sm_<arch>`` GPU."""
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    kwargs = {"debug": False, **launch.kwargs}
    build = _modern_source if hasattr(JITFunction, "_pack_args") else _legacy_source
    source, options, parts = build(launch.kernel, backend, launch.args, kwargs)
    options_dict = dict(options.__dict__)
    digest = hashlib.sha256(
        repr((launch.kernel.fn.__qualname__, parts, sorted(options_dict.items()))).encode()
    ).hexdigest()[:16]
    return Specialisation(source, target, options_dict, f"{launch.kernel.fn.__name__}-{digest}")


def compile_launch(spec: Specialisation) -> triton.compiler.CompiledKernel:
    """Compile a specialisation: ``.asm`` holds ``ptx`` and ``cubin``, ``.metadata`` the shared
    memory, warps and stages."""
    return triton.compile(spec.source, target=spec.target, options=spec.options)


def nvidia_tool(name: str) -> str:
    """Path of a tool (``ptxas``, ``nvdisasm``, ``cuobjdump``) shipped in Triton's NVIDIA
    backend."""
    import triton.backends.nvidia as nvidia

    return os.path.join(os.path.dirname(nvidia.__file__), "bin", name)


@dataclass(frozen=True)
class PtxasUsage:
    """Per-thread registers and spill bytes reported by ``ptxas -v``."""

    registers: int
    spill_stores: int
    spill_loads: int


def _sm_name(arch: int) -> str:
    return f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"


def ptxas_usage(ptx: str, arch: int) -> PtxasUsage:
    """Run ``ptxas -v`` on ``ptx`` for ``sm_<arch>`` (``sm_90a`` for 90) and parse its report."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        out = subprocess.run(
            [nvidia_tool("ptxas"), f"-arch={_sm_name(arch)}", "-v", src, "-o",
             os.path.join(tmp, "kernel.cubin")],
            capture_output=True,
            text=True,
            check=True,
        )  # fmt: skip
    report = out.stdout + out.stderr
    registers = re.search(r"Used (\d+) registers", report)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    if registers is None or spills is None:
        raise RuntimeError(f"unexpected ptxas report:\n{report}")
    return PtxasUsage(int(registers.group(1)), int(spills.group(1)), int(spills.group(2)))


def sass(cubin: bytes) -> str:
    """The SASS of a cubin, as ``nvdisasm`` prints it (one instruction per line, with
    ``.L_x_N`` branch labels)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        out = subprocess.run(
            [nvidia_tool("nvdisasm"), "-c", path], capture_output=True, text=True, check=True
        )
    return out.stdout
