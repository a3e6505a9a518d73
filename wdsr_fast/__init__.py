"""wdsr_fast: fast WDSR super-resolution networks for PyTorch."""

from wdsr_fast._extension import build_info

__all__ = ["build_info"]
__version__ = "0.1.0"
