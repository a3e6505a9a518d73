"""``wdsr-fast train`` in several processes (torchrun, DDP on gloo), resumed, and validated.

Two processes each take their half of every global batch and DDP averages the gradients, so
they must end with the weights of one process trained on the same global batches (float32
rounding aside: the all-reduce sums in another order). A run interrupted after a checkpoint and
resumed with ``--resume`` must end with exactly the weights of the uninterrupted run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from wdsr_fast import WDSRB
from wdsr_fast.app import patches
from wdsr_fast.app.cli import main
from wdsr_fast.app.training import init_as_bicubic
from wdsr_fast.interop.checkpoint import load_model

DEADLINE_S = 240  # both processes, start-up included; about 15 s here
RECIPE = [
    "--steps", "4", "--n-feats", "8", "--n-resblocks", "2", "--batch-size", "4",
    "--patch-size", "10", "--log-every", "2", "--checkpoint-every", "2", "--device", "cpu",
]  # fmt: skip


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 256, (40 + 4 * i, 36, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path).state_dict()


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_two_processes_equal_one_process_on_the_same_batches(capsys, photos, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    env.pop("WORLD_SIZE", None)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "wdsr_fast", "train", str(photos), "-o", str(tmp_path / "two" / "w.safetensors"),
        *RECIPE,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=DEADLINE_S)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batches shared by 2 processes" in result.stdout
    assert result.stdout.count("wrote ") == 1, result.stdout  # the first process alone logs
    assert result.stdout.count("step 4/4  L1") == 1, result.stdout

    code, _, err = run(capsys, "train", photos, "-o", tmp_path / "one.safetensors", *RECIPE)
    assert code == 0, err
    two, one = weights(tmp_path / "two" / "w.safetensors"), weights(tmp_path / "one.safetensors")
    start = start_weights()
    assert two.keys() == one.keys() == start.keys()
    for name, value in one.items():
        assert not torch.equal(value, start[name]), f"{name} was not trained"
        torch.testing.assert_close(two[name], value, rtol=1e-4, atol=1e-5, msg=name)


def start_weights() -> dict[str, torch.Tensor]:
    """The weights the recipe starts from: seed 0, initialised as bicubic."""
    torch.manual_seed(0)
    model = WDSRB(scale=2, n_resblocks=2, n_feats=8)
    init_as_bicubic(model)
    return model.state_dict()


def test_an_interrupted_run_resumes_exactly_where_it_stopped(capsys, photos, tmp_path):
    recipe = [*RECIPE, "--steps", "6", "--checkpoint-every", "3"]
    code, _, err = run(capsys, "train", photos, "-o", tmp_path / "whole.safetensors", *recipe)
    assert code == 0, err

    real_sample, calls = patches.PatchSampler.sample, []

    def sample(self):
        calls.append(1)
        if len(calls) == 5:  # during step 5, after the checkpoint of step 3
            raise KeyboardInterrupt
        return real_sample(self)

    output = tmp_path / "parts.safetensors"
    with mock.patch.object(patches.PatchSampler, "sample", sample):
        code, out, _ = run(capsys, "train", photos, "-o", output, *recipe)
    assert code == 130
    assert "hold step 3" in out and "--resume" in out
    code, out, err = run(capsys, "train", photos, "-o", output, *recipe, "--resume")
    assert code == 0, err
    assert "at step 3/6" in out and "step 6/6" in out
    whole, resumed = weights(tmp_path / "whole.safetensors"), weights(output)
    for name, value in whole.items():
        assert torch.equal(resumed[name], value), f"{name} differs after resuming"


def test_resume_refuses_another_recipe_or_a_missing_state(capsys, photos, tmp_path):
    output = tmp_path / "w.safetensors"
    code, err = run(capsys, "train", photos, "-o", output, *RECIPE, "--resume")[::2]
    assert code == 1 and "--resume: no training state" in err
    assert run(capsys, "train", photos, "-o", output, *RECIPE)[0] == 0
    code, _, err = run(capsys, "train", photos, "-o", output, *RECIPE, "--lr", "0.5", "--resume")
    assert code == 1 and "--lr is 0.5 here but 0.001" in err, err
    Path(str(output) + ".resume.pt").write_bytes(b"not a state")
    code, _, err = run(capsys, "train", photos, "-o", output, *RECIPE, "--resume")
    assert code == 1 and "is not a training state" in err and "Traceback" not in err


def test_validation_psnr_is_reported_every_n_steps(capsys, photos, tmp_path):
    code, out, err = run(
        capsys, "train", photos, "-o", tmp_path / "w.pt", *RECIPE, "--val", photos,
        "--val-every", "2",
    )  # fmt: skip
    assert code == 0, err
    assert "validation: 3 images, bicubic PSNR-Y" in out
    lines = [line for line in out.splitlines() if "validation PSNR-Y" in line]
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"], out
    assert "dB over bicubic" in lines[0]
    assert f"wrote {tmp_path / 'w.pt'}" in out


def test_a_batch_that_processes_cannot_share_is_refused(capsys, photos, tmp_path):
    with mock.patch.dict(os.environ, {"WORLD_SIZE": "3"}):
        code, _, err = run(capsys, "train", photos, "-o", tmp_path / "w.pt", *RECIPE)
    assert code == 1 and "--batch-size 4 cannot be shared equally among 3" in err
