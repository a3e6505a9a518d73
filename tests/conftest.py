"""Test configuration: without a GPU, Triton kernels run in the interpreter on CPU tensors.

TRITON_INTERPRET must be set before triton is first imported, so it is set here, at collection
(:mod:`helpers.devices` tells whether a GPU is present). Shared helpers live in the ``helpers``
package (``tests/`` is on the path, see pyproject.toml), never here.
"""

import os

import pytest
import torch

from helpers.devices import HAS_CUDA

if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

pytest_plugins = ("helpers.kernels",)  # the guarded_buffers fixture


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
