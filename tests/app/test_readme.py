"""Every code block of README.md runs as written, and the README's numbers match the code.

Each ```python block runs in a fresh interpreter, in an empty temporary folder (a block makes the
files it needs). Each ```bash block runs with bash in a temporary folder that holds the clone's
``examples/`` and ``scripts/``, with the environment's programs in place of ``.venv/bin/...``
(``wdsr-fast``, ``python``, ``torchrun``), CUDA hidden so that two torchrun processes need no two
GPUs. What is not run here, and why:

- ``bash scripts/bootstrap.sh``: it creates the environment these tests run in; CI runs it on a
  fresh machine.
- ``pip install``: the test environment has the extras already; a block whose extra is missing
  is skipped, naming it.
- ``python -m pytest``: the test suite itself, and the benchmarks (minutes; CI and
  ``scripts/gpu_check.sh`` run them).
- ``train`` runs 2 steps instead of the recipe's 2,400 (30 minutes): every option is used as
  written, the last ``--steps`` wins.
- ``clip.mp4`` stands for the reader's own video: the test makes one with PyAV.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TIMEOUT_S = 900
SHORT_TRAINING = "--steps 2 --checkpoint-every 2"
NOT_RUN = {
    "scripts/bootstrap.sh": "the set-up creates the environment the tests run in; CI runs it",
    "-m pytest": "the test and benchmark suites themselves (CI and scripts/gpu_check.sh)",
    "pip install": "the test environment has the extras installed",
}


@dataclass(frozen=True)
class Block:
    language: str
    line: int
    text: str


def code_blocks(language: str) -> list[Block]:
    """The README's fenced blocks of ``language``, with the line each starts on."""
    found = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", README, re.MULTILINE | re.DOTALL):
        if match.group(1) == language:
            found.append(Block(language, README.count("\n", 0, match.start()) + 1, match[2]))
    return found


def wdsr_fast_command() -> str:
    """The environment's ``wdsr-fast`` console script (or ``python -m wdsr_fast``)."""
    script = Path(sys.executable).parent / "wdsr-fast"
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m wdsr_fast"


def runnable(line: str) -> tuple[str | None, str | None]:
    """(command to run, or None; why a part is not run, or None) for one README shell line."""
    if "scripts/bootstrap.sh" in line and "&&" in line:
        line = line.split("&&")[-1].strip()
    code, hash_, comment = line.partition(" #")
    for marker, reason in NOT_RUN.items():
        if marker in code:
            return None, reason
    programs = {
        "wdsr-fast": wdsr_fast_command(),
        "torchrun": f"{shlex.quote(sys.executable)} -m torch.distributed.run",
        "python": shlex.quote(sys.executable),
    }
    code = re.sub(r"\.venv/bin/(wdsr-fast|torchrun|python)\b", lambda m: programs[m[1]], code)
    if re.search(r"(wdsr-fast|wdsr_fast) train ", code):
        code = f"{code.rstrip()} {SHORT_TRAINING}"
    return code + hash_ + comment, None


def make_clip(path: Path) -> None:
    """A 1-second 64x48 H.264 clip with an AAC tone: the reader's own video."""
    av = pytest.importorskip("av", reason="videos need PyAV (the video extra): pip install av")
    import numpy as np

    with av.open(str(path), "w") as container:
        picture = container.add_stream("libx264", rate=10)
        picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=8000)
        for i in range(10):
            pixels = np.full((48, 64, 3), 20 * i, np.uint8)
            container.mux(picture.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(picture.encode(None))
        tone = np.sin(np.arange(8000) * 0.3).astype(np.float32)[None] * 0.2
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = 8000
        container.mux(sound.encode(frame))
        container.mux(sound.encode(None))


PYTHON_BLOCKS = code_blocks("python")
BASH_BLOCKS = code_blocks("bash")


def test_the_readme_has_the_blocks_this_test_expects():
    assert len(PYTHON_BLOCKS) >= 4 and len(BASH_BLOCKS) >= 5
    assert any("wdsr-fast upscale" in b.text for b in BASH_BLOCKS)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: f"line-{b.line}")
def test_python_block_runs(block: Block, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, f"README line {block.line}:\n{result.stderr[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("block", BASH_BLOCKS, ids=lambda b: f"line-{b.line}")
def test_bash_block_runs(block: Block, tmp_path: Path):
    commands, reasons = [], []
    for line in block.text.splitlines():
        command, reason = runnable(line)
        if reason is not None:
            reasons.append(reason)
        if command:
            commands.append(command)
    if not any(c.strip() and not c.lstrip().startswith("#") for c in commands):
        pytest.skip("; ".join(dict.fromkeys(reasons)))
    script = "\n".join(["set -euo pipefail", *commands])
    if "skimage_photos.py" in script:
        pytest.importorskip("skimage", reason="the photos ship in scikit-image: the train extra")
    for name in ("examples", "scripts"):
        (tmp_path / name).symlink_to(ROOT / name)
    if "clip.mp4" in script:
        make_clip(tmp_path / "clip.mp4")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", GLOO_SOCKET_IFNAME="lo")
    env.pop("WORLD_SIZE", None)
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"README line {block.line}:\n{script}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )


def test_the_receptive_radius_is_the_bundled_models():
    from wdsr_fast.app.pretrained import model_for_scale
    from wdsr_fast.app.tiling import receptive_radius

    stated = re.search(r"receptive radius, (\d+)\s+for the bundled model", README)
    assert stated is not None, "the README no longer states the bundled model's radius"
    assert int(stated[1]) == receptive_radius(model_for_scale(None, 2))


def test_the_bundled_models_parameter_count():
    from wdsr_fast.app.pretrained import model_for_scale

    stated = re.search(r"16 residual blocks, ([\d,]+) parameters", README)
    if stated is None:
        pytest.skip("the README states no parameter count of the bundled x2 model")
    model = model_for_scale(None, 2)
    assert int(stated[1].replace(",", "")) == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_the_benchmark_run_prints_the_side_by_side_tables():
    """``pytest benchmarks/ --benchmark-only`` ends with benchmarks.report's tables (here on
    two of the tail's cases, which take a second)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_bench_tail.py", "--benchmark-only",
         "-k", "nchw and 256", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tables = result.stdout.split("side by side", 1)[-1]
    assert "### tail x2 (1, 12, 256, 256)" in tables
    assert "| provider | median | vs reference_torch_eager | info |" in tables
    assert "| wdsr_fast |" in tables
