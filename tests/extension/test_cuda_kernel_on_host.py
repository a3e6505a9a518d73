"""The pixel-shuffle CUDA kernels' per-thread code, run on the host.

``csrc/pixel_shuffle_vector.h`` is what each CUDA thread executes (16-byte output vectors,
coordinate stepping, the partial vector at the end). ``cuda_kernel_on_host.cpp`` runs it for
every thread of the launch grid, with the launcher's specialisations (r = 2, 3, 4 compiled in,
others at run time; 32- and 64-bit indices), so it is tested here without a GPU. float32 and
float64 (the host has no CUDA half types); the GPU tests cover every dtype on a GPU.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
DRIVER_SOURCE = Path(__file__).resolve().parent / "cuda_kernel_on_host.cpp"
COMPILER = shutil.which("g++") or shutil.which("c++")
NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
SCALE = 127.5

pytestmark = pytest.mark.skipif(COMPILER is None, reason="needs a C++ compiler (g++ or c++)")


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    binary = tmp_path_factory.mktemp("driver") / "cuda_kernel_on_host"
    subprocess.run(
        [COMPILER, "-std=c++17", "-O1", "-Wall", "-Werror", f"-I{ROOT / 'csrc'}"]
        + [str(DRIVER_SOURCE), "-o", str(binary)],
        check=True,
        timeout=300,
    )
    return binary


def to_memory_order(x: torch.Tensor, layout: str) -> np.ndarray:
    return (x.permute(0, 2, 3, 1) if layout == "nhwc" else x).contiguous().numpy()


def from_memory_order(data: np.ndarray, shape: tuple[int, ...], layout: str) -> torch.Tensor:
    if layout == "nhwc":
        n, c, h, w = shape
        return torch.from_numpy(data.reshape(n, h, w, c)).permute(0, 3, 1, 2)
    return torch.from_numpy(data.reshape(shape))


def run_driver(driver: Path, workdir: Path, kind, layout, dtype, bits, lowres_shape, r, inputs):
    """Writes the inputs, runs every thread of the launch on the host, returns the output."""
    for name, tensor in inputs.items():
        data = tensor.numpy() if tensor.dim() == 1 else to_memory_order(tensor, layout)
        data.tofile(workdir / f"{name}.bin")
    n, k, h, w = lowres_shape
    args = [kind, layout, str(dtype)[6:], str(bits), n, k // (r * r), h, w, r, SCALE, workdir]
    subprocess.run([str(driver), *map(str, args)], check=True, timeout=60)
    return np.fromfile(workdir / "out.bin", dtype=NUMPY_DTYPES[dtype])


# (N, C*r*r, H, W) multiples: one vector-aligned, one with a partial last vector, one of
# several blocks.
LOWRES_SIZES = [(1, 1, 7, 5), (2, 3, 9, 13), (1, 1, 1, 1)]


@pytest.mark.parametrize("size", LOWRES_SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("r", [2, 3, 4, 5])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_kernel_body(driver, tmp_path, dtype, layout, r, bits, size):
    n, groups, h, w = size
    lowres_shape = (n, groups * r * r, h, w)
    a, b = torch.randn(lowres_shape, dtype=dtype), torch.randn(lowres_shape, dtype=dtype)
    shift = torch.randn(groups, dtype=dtype)
    highres = F.pixel_shuffle(a, r)

    out = run_driver(driver, tmp_path, "shuffle", layout, dtype, bits, lowres_shape, r, {"a": a})
    assert torch.equal(from_memory_order(out, highres.shape, layout), highres)

    out = run_driver(
        driver, tmp_path, "unshuffle", layout, dtype, bits, lowres_shape, r, {"a": highres}
    )
    assert torch.equal(from_memory_order(out, lowres_shape, layout), a)

    inputs = {"a": a, "b": b, "shift": shift}
    out = run_driver(driver, tmp_path, "affine", layout, dtype, bits, lowres_shape, r, inputs)
    exact = (F.pixel_shuffle(a.double() + b.double(), r)) * SCALE + shift.double().view(-1, 1, 1)
    fused = from_memory_order(out, highres.shape, layout).double()
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(fused, exact, rtol=4 * eps, atol=4 * eps * exact.abs().max().item())
