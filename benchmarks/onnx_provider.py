"""ONNX Runtime as a provider of the CPU model benchmarks.

The model is the one wdsr_fast runs, exported with :func:`wdsr_fast.to_plain_module` (plain
convolutions and pixel shuffles, weight norm folded) through ``torch.onnx.export`` with dynamic
height and width, once per model and process; each session runs it on the
CPUExecutionProvider with ``intra_op_num_threads`` set to the benchmark's thread count (one
inter-op thread), ONNX Runtime's default graph optimisations on.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from wdsr_fast.interop.export import to_plain_module

__all__ = ["onnxruntime_runner"]

_EXPORT_DIR = tempfile.TemporaryDirectory(prefix="wdsr_fast_bench_onnx_")


@functools.cache
def _exported(model: nn.Module) -> Path:
    path = Path(_EXPORT_DIR.name) / f"model_{id(model)}.onnx"
    plain = to_plain_module(model).eval()
    example = torch.rand(1, model.n_colors, 32, 32) * 255
    height, width = torch.export.Dim("height", min=2), torch.export.Dim("width", min=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            plain,
            (example,),
            str(path),
            dynamo=True,
            dynamic_shapes={"x": {2: height, 3: width}},
            verbose=False,
        )
    return path


def onnxruntime_runner(model: nn.Module, threads: int) -> Callable[[torch.Tensor], object]:
    """``run(x)``: ``model``'s plain export on ONNX Runtime with ``threads`` intra-op threads,
    for a float32 CPU tensor x (N, C, H, W)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(_exported(model)), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> object:
        return session.run(None, {name: x.contiguous().numpy()})

    return run
