"""The fused blocks' launchers issue their Triton kernels and nothing else that runs on a GPU.

Every PyTorch op a launcher calls besides allocations and views would be one more kernel launch
and its host time per block call (at training sizes the blocks are host-bound on a GPU). The
launchers run with their Triton launches recorded, as on an sm_80 and an sm_90 GPU, once to
fill their caches and then under a dispatch mode that lists every PyTorch op they call: in a
subprocess without
``TRITON_INTERPRET`` (the interpreter replaces the kernels that recording intercepts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

LIST_OPS = """
import json, torch
from torch.utils._python_dispatch import TorchDispatchMode
from wdsr_fast.kernels.aot.capture import recorded_launches
from wdsr_fast.kernels.aot.cases import block_call
from wdsr_fast.kernels.aot.report import default_scenario

class OpList(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))

out = {}
for block in "BA":
    for stage in ("forward", "backward"):
        for arch in (80, 90):
            for n in (16, 0):
                call = block_call(default_scenario(block, stage, torch.float16, (n, 48, 48)))
                with recorded_launches(132, arch) as launches:
                    call()  # builds what the launcher caches (the reduction's targets)
                    launches.clear()
                    with OpList() as ops:
                        call()
                out[f"{block} {stage} sm_{arch} n={n}"] = [ops.names, len(launches)]
print(json.dumps(out))
"""

# Ops that launch nothing on a GPU: allocations and views.
NO_LAUNCH = {
    "empty", "empty_strided", "view", "_unsafe_view", "as_strided", "t", "transpose", "permute",
    "slice", "select", "split", "split_with_sizes", "unsqueeze", "alias",
}  # fmt: skip


@pytest.fixture(scope="module")
def launcher_ops() -> dict[str, list]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", LIST_OPS], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_launchers_call_no_pytorch_kernels(launcher_ops: dict[str, list]):
    assert len(launcher_ops) == 16
    for case, (names, launches) in launcher_ops.items():
        assert sorted({n for n in names if n not in NO_LAUNCH}) == [], case
        assert "empty" in names, case  # the mode saw the launcher's allocations
        assert launches > 0 or case.endswith("n=0"), case
