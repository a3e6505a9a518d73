"""wdsr_fast: fast WDSR super-resolution networks for PyTorch.

``WDSRA`` and ``WDSRB`` are drop-in replacements for the authors' reference models (same
constructor arguments, parameter names and state-dict keys) whose residual blocks run on fused
Triton kernels on CUDA, or on plain PyTorch ops elsewhere.
"""

from wdsr_fast._extension import build_info
from wdsr_fast.backend import BACKENDS
from wdsr_fast.blocks import WDSRABlock, WDSRBBlock
from wdsr_fast.checkpoint import CheckpointError, load_model, save_model
from wdsr_fast.export import to_plain_module
from wdsr_fast.models import WDSRA, WDSRB
from wdsr_fast.replace import find_blocks, replace_blocks

__all__ = [
    "BACKENDS",
    "WDSRA",
    "WDSRB",
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
