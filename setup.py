"""Build script: the Python packages plus the C++/CUDA extension ``wdsr_fast._C``.

The extension is a CUDAExtension whenever nvcc is found and torch is a CUDA build (a GPU is
not needed to compile it), else a CppExtension. CUDA code is compiled for the archs in
``TORCH_CUDA_ARCH_LIST`` (default: sm_80 and sm_90).
"""

from __future__ import annotations

import glob
import os
import shutil

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CUDA_ARCHS = "8.0;9.0"


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


def extension_modules() -> tuple[list, dict]:
    """The ``wdsr_fast._C`` extension and its build command.

    ``WDSR_FAST_BUILD_EXTENSION=0`` builds the pure-Python package alone (the package then
    falls back to PyTorch ops); ``WDSR_FAST_NO_CUDA=1`` builds the CPU kernels only.
    """
    if os.environ.get("WDSR_FAST_BUILD_EXTENSION", "1") == "0":
        return [], {}
    cuda_home = find_cuda_home()
    if cuda_home is not None:
        # torch.utils.cpp_extension reads CUDA_HOME once, when it is imported.
        os.environ.setdefault("CUDA_HOME", cuda_home)
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    use_cuda = cuda_home is not None and torch.version.cuda is not None
    if os.environ.get("WDSR_FAST_NO_CUDA", "0") == "1":
        use_cuda = False
    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    cxx_flags = ["-O3"]
    define_macros: list[tuple[str, str]] = []
    if use_cuda:
        archs = os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        arch_list = ";".join(a.replace(".", "").replace("+PTX", "") for a in archs.split(";"))
        define_macros += [("WDSR_FAST_WITH_CUDA", "1"), ("WDSR_FAST_CUDA_ARCHS", f'"{arch_list}"')]
        ext = CUDAExtension(
            "wdsr_fast._C",
            sources,
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--use_fast_math"]},
        )
    else:
        ext = CppExtension(
            "wdsr_fast._C",
            sources,
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx_flags},
        )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


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
    python_requires=">=3.10",
    packages=find_packages(include=["wdsr_fast", "wdsr_fast.*"]),
    package_data={"wdsr_fast": ["py.typed"], "wdsr_fast.app": ["weights/*.safetensors"]},
    install_requires=["torch>=2.6", "numpy", "pillow", "safetensors", "tqdm"],
    extras_require={
        "triton": ["triton>=3.2"],
        # onnx, onnxruntime and onnxscript: the ONNX round trip of the export helper is tested.
        "test": [
            "pytest",
            "pytest-benchmark",
            "ruff",
            "ninja",
            "pybind11",
            "onnx",
            "onnxruntime",
            "onnxscript",
            "scikit-image",  # SSIM is cross-checked against scikit-image's
        ],
        # The photographs the bundled weights are trained on ship inside scikit-image.
        "train": ["scikit-image"],
    },
    entry_points={"console_scripts": ["wdsr-fast=wdsr_fast.app.cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
