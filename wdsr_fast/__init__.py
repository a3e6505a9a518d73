"""wdsr_fast: fast WDSR super-resolution networks for PyTorch.

``WDSRA`` and ``WDSRB`` are drop-in replacements for the authors' reference models (same
constructor arguments, parameter names and state-dict keys) whose residual blocks run on fused
Triton kernels on CUDA, or on plain PyTorch ops elsewhere. Importing the package registers every
custom op of the ``wdsr_fast`` namespace (``torch.ops.wdsr_fast.*``), so programs saved with
``torch.export`` load after ``import wdsr_fast``.
"""

import wdsr_fast.ops  # noqa: F401  (registers the custom ops)
from wdsr_fast.dispatch import BACKENDS, BackendUnavailableError
from wdsr_fast.extension import build_info
from wdsr_fast.interop.checkpoint import CheckpointError, load_model, save_model
from wdsr_fast.interop.export import to_plain_module
from wdsr_fast.interop.replace import find_blocks, replace_blocks
from wdsr_fast.nn.blocks import WDSRABlock, WDSRBBlock
from wdsr_fast.nn.models import WDSRA, WDSRB

__all__ = [
    "BACKENDS",
    "WDSRA",
    "WDSRB",
    "BackendUnavailableError",
    "CheckpointError",
    "WDSRABlock",
    "WDSRBBlock",
    "build_info",
    "find_blocks",
    "load_model",
    "replace_blocks",
    "save_model",
    "to_plain_module",
]
__version__ = "0.1.0"
