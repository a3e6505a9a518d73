"""Triton's interpreter (the CPU path of the kernel tests) fails with numpy >= 2.4 before
Triton 3.7: scripts/numpy_for_triton.py says when to pin numpy, and this environment must
not need the pin where the tests use the interpreter."""

from __future__ import annotations

import os
from types import ModuleType

import pytest


@pytest.mark.parametrize(
    ("triton", "numpy", "needed"),
    [
        ("3.2.0", "2.4.6", "numpy<2.4"),
        ("3.6.0", "2.4.0", "numpy<2.4"),
        ("3.6.0", "2.3.5", None),
        ("3.7.0", "2.4.6", None),
        ("3.8.0", "2.4.6", None),
        (None, "2.4.6", None),
    ],
)
def test_numpy_is_pinned_only_before_triton_3_7(
    numpy_for_triton: ModuleType, triton, numpy, needed
):
    assert numpy_for_triton.numpy_requirement(triton, numpy) == needed


def test_this_environment_has_a_numpy_the_interpreter_accepts(numpy_for_triton: ModuleType):
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("the tests do not use Triton's interpreter here (a GPU runs the kernels)")
    triton = numpy_for_triton.installed_version("triton")
    numpy = numpy_for_triton.installed_version("numpy")
    needed = numpy_for_triton.numpy_requirement(triton, numpy)
    assert needed is None, (
        f"Triton {triton}'s interpreter fails with numpy {numpy} (only 0-dimensional arrays "
        f"can be converted to Python scalars): pip install '{needed}' (scripts/bootstrap.sh "
        "does)"
    )
