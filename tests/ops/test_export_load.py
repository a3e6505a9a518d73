"""A program exported with the fused ops loads and runs in a fresh process after
``import wdsr_fast`` (every op is registered at import, not on first use)."""

import os
import subprocess
import sys
import textwrap

import torch

from wdsr_fast import WDSRA, WDSRB

from helpers.devices import HAS_CUDA

# The fused kernels run on the GPU when there is one, else in the Triton interpreter.
DEVICE = "cuda" if HAS_CUDA else "cpu"


def test_exported_fused_model_loads_in_a_fresh_process(tmp_path):
    x = torch.rand(1, 3, 9, 7, device=DEVICE) * 255
    for name, model in (
        ("b", WDSRB(n_resblocks=2, n_feats=16)),
        ("a", WDSRA(n_resblocks=1, n_feats=8, block_feats=16)),
    ):
        model.to(DEVICE).backend = "triton"
        program = torch.export.export(model.eval(), (x,))
        ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
        assert f"wdsr_fast.wdsr_{name}_block.default" in ops
        torch.export.save(program, tmp_path / f"{name}.pt2")
        with torch.no_grad():
            torch.save(model(x), tmp_path / f"{name}_expected.pt")
    torch.save(x, tmp_path / "x.pt")
    script = textwrap.dedent(
        """
        import sys, torch, wdsr_fast
        folder = sys.argv[1]
        torch.backends.cudnn.allow_tf32 = sys.argv[2] == "1"  # float32 products as here
        x = torch.load(f"{folder}/x.pt")
        for name in ("b", "a"):
            program = torch.export.load(f"{folder}/{name}.pt2")
            with torch.no_grad():
                out = program.module()(x)
            torch.testing.assert_close(out, torch.load(f"{folder}/{name}_expected.pt"))
        print("loaded")
        """
    )
    env = dict(os.environ, TRITON_INTERPRET="0" if HAS_CUDA else "1")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(int(torch.backends.cudnn.allow_tf32))],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loaded" in proc.stdout
