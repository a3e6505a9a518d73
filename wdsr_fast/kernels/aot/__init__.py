"""Ahead-of-time tooling for the Triton kernels: compile exactly what the launchers launch, for
a GPU architecture, without a GPU; read registers, spills and SASS; estimate costs statically.

- :mod:`.capture`: run a launcher on CPU tensors and record its kernel launches instead of
  running them, sizing its grids for the GPU compiled for.
- :mod:`.compile`: turn a recorded launch into the kernel Triton's own launcher would build for
  it (its specialisation of the arguments: integers equal to 1 as constants, divisibility by
  16, pointer alignment), compile it for ``sm_XX`` and read ``ptxas`` usage and SASS.
- :mod:`.cases`: the launches the shipped models make (shapes, dtypes, layouts, forward and
  backward), recorded and reduced to their distinct variants; ``python -m
  wdsr_fast.kernels.aot.cases`` compiles them all and prints registers and spills.
- :mod:`.report`: the static cost report of one block forward and backward.
- :mod:`.measure`: on a CUDA GPU, the measured time of each kernel the report covers, beside
  its static bound.

Nothing here is imported at run time; compiling needs the real ``triton.jit`` (the process
must not have ``TRITON_INTERPRET=1``).
"""
