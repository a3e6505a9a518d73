"""setup_cuda.py: the build gets CUDA kernels only with a toolkit whose CUDA major version is
torch's; otherwise it builds the CPU kernels and says why and how to get the CUDA ones."""

from __future__ import annotations

from types import ModuleType

import pytest


def test_a_matching_toolkit_builds_the_cuda_kernels(setup_cuda: ModuleType):
    # Same major version: minor versions may differ (torch only warns about those).
    choice = setup_cuda.choose_cuda("2.14.1+cu130", "13.0", "/usr/local/cuda-13.2", "13.2")
    assert choice.use_cuda and choice.note is None


@pytest.mark.parametrize(
    ("torch_cuda", "cuda_home", "nvcc", "no_cuda", "words"),
    [
        ("12.4", "/usr/local/cuda-13.0", "13.0", False, ["CUDA 13.0", "CUDA 12.4", "12.x"]),
        ("12.4", None, None, False, ["no CUDA toolkit", "CUDA 12.x"]),
        ("12.4", "/opt/cuda", None, False, ["/opt/cuda/bin/nvcc", "version"]),
        (None, "/usr/local/cuda", "13.0", False, ["CPU-only build"]),
        ("13.0", "/usr/local/cuda", "13.0", True, ["WDSR_FAST_NO_CUDA=1"]),
    ],
    ids=["major-mismatch", "no-toolkit", "nvcc-silent", "cpu-torch", "disabled"],
)
def test_otherwise_the_cpu_kernels_are_built_and_the_note_says_why_and_how(
    setup_cuda: ModuleType, torch_cuda, cuda_home, nvcc, no_cuda, words
):
    choice = setup_cuda.choose_cuda("2.6.0+cu124", torch_cuda, cuda_home, nvcc, no_cuda)
    assert not choice.use_cuda
    assert choice.note.startswith("CPU kernels only: ")
    for word in words:
        assert word in choice.note
    assert "pip install --no-build-isolation -e ." in choice.note
    assert "$" not in choice.note  # the note becomes a C string define, through ninja


def test_the_nvcc_version_is_read_from_its_banner(setup_cuda: ModuleType):
    banner = (
        "nvcc: NVIDIA (R) Cuda compiler driver\n"
        "Cuda compilation tools, release 13.0, V13.0.88\n"
        "Build cuda_13.0.r13.0/compiler.36424714_0\n"
    )
    assert setup_cuda.parse_nvcc_version(banner) == "13.0"
    assert setup_cuda.parse_nvcc_version("command not found") is None


def test_a_wrapper_nvcc_outside_the_toolkit_is_not_taken_for_the_toolkit(
    setup_cuda: ModuleType, tmp_path, monkeypatch
):
    """The first nvcc on PATH may be a script that calls the real one: the toolkit is the
    folder holding bin/nvcc and libcudart.so, not the wrapper's parent."""
    wrapper_bin = tmp_path / "wrapper" / "bin"
    wrapper_bin.mkdir(parents=True)
    (wrapper_bin / "nvcc").write_text("#!/bin/sh\nexec /elsewhere/nvcc \"$@\"\n")
    (wrapper_bin / "nvcc").chmod(0o755)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setenv("PATH", str(wrapper_bin))
    home = setup_cuda.find_cuda_home()
    assert home != str(tmp_path / "wrapper")


def test_cuda_home_wins(setup_cuda: ModuleType, monkeypatch):
    monkeypatch.setenv("CUDA_HOME", "/opt/some-cuda")
    assert setup_cuda.find_cuda_home() == "/opt/some-cuda"
