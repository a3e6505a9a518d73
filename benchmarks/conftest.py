"""Benchmarks run where they stand: on CUDA when present, else on the CPU.

``pytest benchmarks/ --benchmark-only``. The Triton interpreter is never used here.
"""

import os

os.environ.pop("TRITON_INTERPRET", None)
