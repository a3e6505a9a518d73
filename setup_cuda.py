"""Which CUDA toolkit the build of ``wdsr_fast._C`` uses, and whether it gets CUDA kernels.

The build never fails for want of a matching toolkit: without nvcc, or with an nvcc whose CUDA
major version differs from torch's (torch refuses to compile with it), the extension is built
with its CPU kernels only, and the reason, with how to get the CUDA kernels, is recorded in the
extension (``wdsr_fast.build_info()["cuda_build_note"]``). The Triton kernels need no toolkit.

No torch import here: setup.py passes torch's versions in, so the decision is tested alone.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

REBUILD = "pip install --no-build-isolation -e ."
NO_CUDA_VAR = "WDSR_FAST_NO_CUDA"


@dataclass(frozen=True)
class CudaChoice:
    """``use_cuda``: compile the CUDA kernels. ``note``: why not and how to get them (None when
    they are compiled)."""

    use_cuda: bool
    note: str | None


def _has_cudart(home: str) -> bool:
    return any(
        os.path.exists(os.path.join(home, sub, "libcudart.so"))
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib")
    )


def find_cuda_home() -> str | None:
    """The CUDA toolkit folder: CUDA_HOME / CUDA_PATH if set, else the toolkit holding nvcc.

    The first ``nvcc`` on PATH may be a wrapper script outside the toolkit, so candidates are
    checked for ``bin/nvcc`` and ``libcudart.so`` rather than trusted.
    """
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates.append("/usr/local/cuda")
    candidates.extend(sorted(glob.glob("/usr/local/cuda-*"), reverse=True))
    for home in candidates:
        if os.path.exists(os.path.join(home, "bin", "nvcc")) and _has_cudart(home):
            return home
    return None


def parse_nvcc_version(text: str) -> str | None:
    """``"13.0"`` from the output of ``nvcc --version`` (``... release 13.0, V13.0.88``)."""
    match = re.search(r"release (\d+)\.(\d+)", text)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def nvcc_version(cuda_home: str) -> str | None:
    """The CUDA version of the toolkit's nvcc, or None when it does not run."""
    try:
        result = subprocess.run(
            [os.path.join(cuda_home, "bin", "nvcc"), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_nvcc_version(result.stdout)


def _major(version: str) -> str:
    return version.split(".")[0]


def choose_cuda(
    torch_version: str,
    torch_cuda: str | None,
    cuda_home: str | None,
    nvcc_cuda: str | None,
    no_cuda: bool = False,
) -> CudaChoice:
    """Whether to compile the CUDA kernels, given torch's version and CUDA version
    (``torch.version.cuda``, None for a CPU-only torch), the toolkit found and its nvcc's CUDA
    version, and whether ``WDSR_FAST_NO_CUDA=1`` is set."""
    rebuild = f"then rebuild with `{REBUILD}`"
    if no_cuda:
        note = f"{NO_CUDA_VAR}=1 was set; unset it and rebuild with `{REBUILD}`"
    elif torch_cuda is None:
        note = f"torch {torch_version} is a CPU-only build; install a CUDA build, {rebuild}"
    elif cuda_home is None:
        note = (
            f"no CUDA toolkit found (nvcc; CUDA_HOME); install CUDA {_major(torch_cuda)}.x, "
            f"the version torch {torch_version} was built with ({torch_cuda}), {rebuild}"
        )
    elif nvcc_cuda is None:
        note = f"{cuda_home}/bin/nvcc did not report its version; fix or reinstall it, {rebuild}"
    elif _major(nvcc_cuda) != _major(torch_cuda):
        note = (
            f"the CUDA toolkit at {cuda_home} is CUDA {nvcc_cuda}, but torch {torch_version} "
            f"was built with CUDA {torch_cuda}; install CUDA {_major(torch_cuda)}.x and set "
            f"CUDA_HOME to it (or install a torch built with CUDA {_major(nvcc_cuda)}), {rebuild}"
        )
    else:
        return CudaChoice(use_cuda=True, note=None)
    return CudaChoice(use_cuda=False, note=f"CPU kernels only: {note}")
