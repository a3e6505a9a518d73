"""Build script: the Python packages plus the C++/CUDA extension ``wdsr_fast._C``.

The extension gets CUDA kernels when nvcc is found, its CUDA major version is torch's and torch
is a CUDA build (a GPU is not needed to compile them); otherwise it is built with its CPU
kernels only, and says why (``setup_cuda.py``): a missing or mismatched toolkit never fails the
build. CUDA code is compiled for the archs in ``TORCH_CUDA_ARCH_LIST`` (default: sm_80, sm_90).

Environment: ``WDSR_FAST_BUILD_EXTENSION=0`` builds the pure-Python package alone (the package
then uses PyTorch ops); ``WDSR_FAST_NO_CUDA=1`` skips CUDA code generation (CPU kernels only,
about a minute instead of ten on two cores); ``WDSR_FAST_DEBUG=1`` keeps debug information
(release builds are stripped).
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)  # setup_cuda.py, next to this file

from setup_cuda import NO_CUDA_VAR, choose_cuda, find_cuda_home, nvcc_version  # noqa: E402

DEFAULT_CUDA_ARCHS = "8.0;9.0"
# Supported torch releases: the oldest is tested in CI with the newest; Triton follows torch.
TORCH_REQUIREMENT = "torch>=2.6"
TRITON_REQUIREMENT = "triton>=3.2"


def _c_string(text: str) -> str:
    """``text`` as a C string literal for a -D define (``$`` is special to ninja: dropped)."""
    return json.dumps(text.replace("$", ""), ensure_ascii=True)


def _build_ext_class(base: type, summary: str) -> type:
    """``base`` (torch's BuildExtension) that says once what it builds and how long it took."""

    class BuildExt(base):
        def run(self) -> None:
            print(f"wdsr_fast build: {summary}", flush=True)
            start = time.monotonic()
            super().run()
            print(f"wdsr_fast build: done in {time.monotonic() - start:.0f} s", flush=True)

    return BuildExt


def extension_modules() -> tuple[list, dict]:
    """The ``wdsr_fast._C`` extension and its build command."""
    if os.environ.get("WDSR_FAST_BUILD_EXTENSION", "1") == "0":
        return [], {}
    cuda_home = find_cuda_home()
    if cuda_home is not None:
        # torch.utils.cpp_extension reads CUDA_HOME once, when it is imported.
        os.environ.setdefault("CUDA_HOME", cuda_home)
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    choice = choose_cuda(
        torch_version=torch.__version__,
        torch_cuda=torch.version.cuda,
        cuda_home=cuda_home,
        nvcc_cuda=nvcc_version(cuda_home) if cuda_home is not None else None,
        no_cuda=os.environ.get(NO_CUDA_VAR, "0") == "1",
    )
    debug = os.environ.get("WDSR_FAST_DEBUG", "0") == "1"
    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    # Python's compiler flags carry -g; a release build drops debug info (-g0) and symbols (-s).
    cxx_flags = ["-O3"] + ([] if debug else ["-g0"])
    link_flags = [] if debug else ["-s"]
    if torch.backends.openmp.is_available() and sys.platform.startswith("linux"):
        # at::parallel_for is inline OpenMP code: without -fopenmp it runs on one thread.
        cxx_flags.append("-fopenmp")
        link_flags.append("-fopenmp")
    define_macros: list[tuple[str, str]] = []
    if choice.use_cuda:
        archs = os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        arch_list = ";".join(a.replace(".", "").replace("+PTX", "") for a in archs.split(";"))
        define_macros += [("WDSR_FAST_WITH_CUDA", "1"), ("WDSR_FAST_CUDA_ARCHS", f'"{arch_list}"')]
        summary = (
            f"C++ extension with CUDA kernels for sm_{arch_list.replace(';', ', sm_')} "
            f"(nvcc in {cuda_home}, torch {torch.__version__}); about 10 minutes on two "
            f"cores, a minute with {NO_CUDA_VAR}=1 (CPU kernels only)"
        )
        ext = CUDAExtension(
            "wdsr_fast._C",
            sources,
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--use_fast_math"]},
            extra_link_args=link_flags,
        )
    else:
        define_macros.append(("WDSR_FAST_CUDA_NOTE", _c_string(choice.note)))
        summary = (
            f"C++ extension, {choice.note}. About a minute on two cores. The Triton kernels "
            "need no CUDA toolkit and are unaffected"
        )
        ext = CppExtension(
            "wdsr_fast._C",
            sources,
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=link_flags,
        )
    build_ext = _build_ext_class(BuildExtension.with_options(use_ninja=True), summary)
    return [ext], {"build_ext": build_ext}


def read_readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


ext_modules, cmdclass = extension_modules()

setup(
    name="wdsr_fast",
    version="0.1.0",
    description="Fast WDSR super-resolution for PyTorch: fused Triton and CUDA kernels, "
    "drop-in compatible with the reference models and checkpoints.",
    long_description=read_readme(),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    python_requires=">=3.10",
    packages=find_packages(include=["wdsr_fast", "wdsr_fast.*"]),
    # The console script's entry: parses and checks arguments before torch is imported.
    py_modules=["wdsr_fast_cli"],
    package_data={"wdsr_fast": ["py.typed"], "wdsr_fast.app": ["weights/*.safetensors"]},
    install_requires=[TORCH_REQUIREMENT, "numpy", "pillow", "safetensors", "tqdm"],
    extras_require={
        "triton": [TRITON_REQUIREMENT],
        # onnx, onnxruntime and onnxscript: the ONNX round trip of the export helper is tested.
        # Triton's interpreter (the tests' CPU path) needs numpy < 2.4 before Triton 3.7:
        # scripts/bootstrap.sh installs it there, and tests/packaging checks it.
        "test": [
            "build",  # the sdist test
            "hypothesis",  # the property-based tests
            "pytest",
            "pytest-benchmark",
            "ruff",
            "ninja",
            "pybind11",
            "onnx",
            "onnxruntime",
            "onnxscript",
            "scikit-image",  # SSIM is cross-checked against scikit-image's
            "av",  # the video tests (the video extra)
        ],
        # Video upscaling: PyAV, an FFmpeg binding that ships its own libraries in its wheel.
        "video": ["av"],
        # The photographs the bundled weights are trained on ship inside scikit-image.
        "train": ["scikit-image"],
    },
    entry_points={"console_scripts": ["wdsr-fast=wdsr_fast_cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
