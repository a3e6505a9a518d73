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


@pytest.fixture(autouse=True)
def _float32_products_in_full_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 products run in full precision unless a test turns TF32 on: the kernels follow
    ``torch.backends.cudnn.allow_tf32`` (on by default), while cuDNN, the plain comparison, uses
    TF32 only for the shapes it picks. The TF32 tests compare with TF32 operands
    (:mod:`helpers.tf32`)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
