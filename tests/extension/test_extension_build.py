"""The built extension wdsr_fast._C: its ops, its build information, its CUDA code.

Where the build found nvcc (as here, even without a GPU), the library must hold sm_80 and
sm_90 code; cuobjdump lists the ELF images inside the shared object. A build without CUDA
kernels says why; an extension built against another torch is not used, and says so.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import wdsr_fast
from wdsr_fast.extension import REBUILD_HINT, extension, torch_mismatch

EXTENSION = extension()
requires_extension = pytest.mark.skipif(
    EXTENSION is None, reason="the C++ extension wdsr_fast._C is not built"
)
OPS = ("pixel_shuffle", "pixel_unshuffle", "shuffle_add_affine")


def find_cuobjdump() -> str | None:
    """cuobjdump from PATH, the CUDA toolkit, or the copy Triton's NVIDIA backend ships."""
    candidates = [shutil.which("cuobjdump")]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var], "bin", "cuobjdump"))
    candidates += ["/usr/local/cuda/bin/cuobjdump", *glob.glob("/usr/local/cuda-*/bin/cuobjdump")]
    try:
        import triton

        triton_dir = os.path.dirname(triton.__file__)
        candidates.append(os.path.join(triton_dir, "backends", "nvidia", "bin", "cuobjdump"))
    except ImportError:
        pass
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@requires_extension
def test_importing_the_extension_registers_the_ops():
    """Importing wdsr_fast._C alone (a fresh interpreter) registers torch.ops.wdsr_fast."""
    code = (
        "import torch, wdsr_fast._C\n"
        f"for name in {OPS!r}:\n"
        "    print(getattr(torch.ops.wdsr_fast, name).default._schema)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "wdsr_fast::pixel_shuffle(Tensor x, int r) -> Tensor" in result.stdout
    assert "wdsr_fast::pixel_unshuffle(Tensor x, int r) -> Tensor" in result.stdout
    assert (
        "wdsr_fast::shuffle_add_affine(Tensor a, Tensor b, int r, float scale, Tensor shift)"
        " -> Tensor" in result.stdout
    )


@requires_extension
def test_ops_have_cpu_kernels_and_cuda_kernels_when_built_with_cuda():
    info = wdsr_fast.build_info()
    for name in OPS:
        op = f"wdsr_fast::{name}"
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CPU")
        has_cuda = torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA")
        assert has_cuda == info["cuda_kernels"], name


def test_build_info_reports_the_extension():
    info = wdsr_fast.build_info()
    assert info["extension"] == (EXTENSION is not None)
    assert (info["extension_error"] is None) == (EXTENSION is not None)
    if not info["cuda_kernels"]:
        assert info["cuda_archs"] == []
    assert all(re.fullmatch(r"sm_\d+a?", arch) for arch in info["cuda_archs"])


def test_build_info_says_why_cuda_kernels_are_missing():
    info = wdsr_fast.build_info()
    if info["cuda_kernels"]:
        assert info["cuda_build_note"] is None
    elif info["extension"] and info["built_with_torch"] is not None:
        # A build that records its torch also records why it has no CUDA kernels.
        assert info["cuda_build_note"].startswith("CPU kernels only: ")
        assert "pip install --no-build-isolation -e ." in info["cuda_build_note"]


def test_a_loaded_extension_was_built_against_this_torch():
    info = wdsr_fast.build_info()
    if info["extension"] and info["built_with_torch"] is not None:
        assert torch_mismatch(info["built_with_torch"], torch.__version__) is None
        assert torch.__version__.startswith(info["built_with_torch"])


def test_another_torch_release_means_rebuild():
    assert torch_mismatch("2.14.1", "2.14.1+cu130") is None
    assert torch_mismatch(None, "2.14.1") is None  # built before releases were recorded
    message = torch_mismatch("2.11.0", "2.14.1+cu130")
    assert "built against torch 2.11.0, this is torch 2.14.1+cu130" in message
    assert REBUILD_HINT in message and "pip install --no-build-isolation -e ." in message
    assert torch_mismatch("2.14.0", "2.14.1") is not None


@requires_extension
def test_library_holds_the_code_of_its_archs():
    """sm_80 and sm_90 by default (TORCH_CUDA_ARCH_LIST, when set, chooses others), each as
    machine code in the library."""
    info = wdsr_fast.build_info()
    if not info["cuda_kernels"]:
        why = info["cuda_build_note"] or "no nvcc, a CPU-only torch or WDSR_FAST_NO_CUDA=1"
        pytest.skip(f"the extension was built without CUDA kernels ({why}): no GPU code")
    assert info["cuda_archs"], "CUDA kernels without an arch"
    if "TORCH_CUDA_ARCH_LIST" not in os.environ:
        assert {"sm_80", "sm_90"} <= set(info["cuda_archs"])
    cuobjdump = find_cuobjdump()
    assert cuobjdump is not None, "cuobjdump not found (CUDA toolkit bin or Triton's nvidia/bin)"
    result = subprocess.run(
        [cuobjdump, "--list-elf", EXTENSION.__file__],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    elf_archs = set(re.findall(r"\.(sm_\d+a?)\.cubin", result.stdout))
    assert set(info["cuda_archs"]) <= elf_archs, result.stdout
