"""``python -m wdsr_fast.kernels.report``: the static cost report of the block kernels.

The entry point of :mod:`wdsr_fast.kernels.aot.report` (ahead-of-time tooling, never imported
at run time): ``--arch 90 --dtype float16 --size 540x960 [--batch 1] [--json]``.
"""

from wdsr_fast.kernels.aot.report import main

if __name__ == "__main__":
    main()
