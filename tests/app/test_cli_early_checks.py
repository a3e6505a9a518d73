"""The command line fails fast: every argument and path is checked before weights load.

``wdsr-fast --help``, usage errors and bad paths answer without importing torch (the console
script ``wdsr_fast_cli``); missing output folders are created; a slow CPU dtype, a dropped
alpha channel and what ``train`` wrote are each said in one line.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from wdsr_fast import WDSRB
from wdsr_fast.app import pretrained
from wdsr_fast.app.cli import main
from wdsr_fast.interop.checkpoint import save_model

ENTRY = Path(__file__).resolve().parents[2] / "wdsr_fast_cli.py"
RNG = np.random.default_rng(0)
needs_entry = pytest.mark.skipif(not ENTRY.is_file(), reason="wdsr_fast_cli.py is not in this tree")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "tiny_x2.safetensors"
    save_model(WDSRB(scale=2, n_resblocks=1, n_feats=8), path)
    return str(path)


@pytest.fixture()
def photo(tmp_path) -> Path:
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir()
    Image.fromarray(RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(path)
    return path


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def entry(*argv: str) -> tuple[subprocess.CompletedProcess, list[str], float, list[str]]:
    """Run the console script's module: its result, the modules it imported, its time in
    seconds, and its stderr lines other than the import times."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(ENTRY), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ENTRY.parent,
    )
    elapsed = time.perf_counter() - start
    imported = [
        line.rsplit("|", 1)[-1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    ]
    message = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    return result, imported, elapsed, message


@pytest.mark.parametrize(
    "argv,code,fragment",
    [
        (["--help"], 0, None),
        (["upscale", "--help"], 0, None),
        (["upscale", "x.png", "-o", "y.png", "--tile", "0"], 2, "--tile: must be > 0"),
        (["upscale", "examples/chelsea_lr.png", "-o", "out.xyz"], 1, "extension '.xyz'"),
        (["upscale", "examples/chelsea_lr.png", "-o", "out"], 1, "out: no file extension"),
        (["train", "nowhere", "-o", "w.pt"], 1, "nowhere: no such file or folder"),
    ],
    ids=["help", "upscale-help", "usage", "extension", "no-extension", "train-input"],
)
@needs_entry
def test_answers_without_importing_torch(argv, code, fragment):
    result, imported, elapsed, message = entry(*argv)
    assert result.returncode == code, result.stderr[-2000:]
    assert "torch" not in imported and "wdsr_fast.ops" not in imported
    if fragment is not None:
        assert fragment in message[-1] and "Traceback" not in result.stderr, message
    if code == 0:
        assert "usage: wdsr-fast" in result.stdout
    assert elapsed < 10  # about 0.1 s; torch alone takes seconds to import


@needs_entry
def test_the_console_script_runs_a_command(tmp_path, photo, weights):
    result, imported, _, _ = entry("upscale", str(photo), "-o", str(tmp_path / "o.png"),
                                   "--weights", weights)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "torch" in imported and Image.open(tmp_path / "o.png").size == (20, 24)


@pytest.mark.parametrize(
    "inputs,options,fragments",
    [
        (["{photo}"], ["-o", "{tmp}/out.xyz"], ["out.xyz", "extension '.xyz'", ".png", ".mp4"]),
        (["{photo}"], ["-o", "{tmp}/out"], ["no file extension", ".png", "existing folder"]),
        (["{photo}"], ["-o", "{tmp}/out.mp4"], ["a video extension for an image", ".png"]),
        (["{photo}", "{tmp}/gone.png"], ["-o", "{tmp}/o"], ["gone.png: no such file or folder"]),
        (["{folder}"], ["-o", "{tmp}/o.png"], ["need an output folder", "names a file"]),
        (["{photo}"], ["--weights", "{tmp}/none.pt"], ["--weights", "no such weights file"]),
        (["{photo}"], ["--tile", "8", "--tile-overlap", "4"], ["--tile 8 is too small"]),
        (["{photo}"], ["-o", "{photo}/x/o.png"], ["cannot create the output folder", "a file"]),
    ],
    ids=[
        "extension",
        "no-extension",
        "video-ext",
        "missing-input",
        "folder-to-file",
        "weights",
        "tile",
        "folder-under-file",
    ],  # fmt: skip
)
def test_upscale_checks_come_before_any_weights_load(
    capsys, tmp_path, photo, weights, inputs, options, fragments
):
    values = {"tmp": tmp_path, "folder": photo.parent, "photo": photo}
    argv = [a.format(**values) for a in inputs + options]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "o.png")]
    if "--weights" not in argv:
        argv += ["--weights", weights]
    before = sorted(tmp_path.rglob("*"))
    with mock.patch.object(pretrained, "load_weights", side_effect=AssertionError("loaded")):
        code, _, err = run(capsys, "upscale", *argv)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert sorted(tmp_path.rglob("*")) == before


def test_missing_output_folders_are_created(capsys, tmp_path, photo, weights):
    target = tmp_path / "new" / "deeper" / "o.png"
    code, out, err = run(capsys, "upscale", photo, "-o", target, "--weights", weights)
    assert code == 0, err
    assert Image.open(target).size == (20, 24)
    assert f"created the output folder {target.parent}" in err
    code, _, err = run(capsys, "upscale", photo.parent, "-o", tmp_path / "many", "--weights",
                       weights)  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "many" / "photo.png").is_file()
    code, out, err = run(capsys, "train", photo.parent, "-o", tmp_path / "w" / "w.pt",
                         "--steps", "1", "--n-resblocks", "0", "--n-feats", "4",
                         "--patch-size", "4", "--batch-size", "1", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "w" / "w.pt").is_file()


def test_train_checks_its_paths_first(capsys, tmp_path, photo):
    common = ["--steps", "1", "--device", "cpu"]
    cases = [
        (["nowhere", "-o", tmp_path / "w.pt"], "nowhere: no such file or folder"),
        ([photo, "-o", tmp_path / "w.pt", "--val", tmp_path / "none"], "--val "),
        ([photo, "-o", tmp_path], "is a folder; give the weights file"),
        ([photo, "-o", tmp_path / "w.pt", "--resume"], "--resume: no training state"),
    ]
    for argv, fragment in cases:
        code, _, err = run(capsys, "train", *argv, *common)
        assert code == 1 and fragment in err and "Traceback" not in err, err


def test_train_ends_by_saying_what_it_wrote(capsys, tmp_path, photo):
    output = tmp_path / "w.safetensors"
    code, out, err = run(capsys, "train", photo, "-o", output, "--steps", "2", "--n-resblocks",
                         "1", "--n-feats", "4", "--patch-size", "4", "--batch-size", "2",
                         "--device", "cpu")  # fmt: skip
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"wrote {output} (WDSR-B x2, ") and "step 2" in last
    assert f"{output}.resume.pt" in last
    assert "training:" not in err  # no progress bar when stderr is no terminal


def test_a_slow_cpu_dtype_is_said_in_one_line(capsys, tmp_path, photo, weights):
    code, _, err = run(capsys, "upscale", photo, "-o", tmp_path / "o.png", "--weights", weights,
                       "--device", "cpu", "--dtype", "bfloat16")  # fmt: skip
    assert code == 0, err
    notes = [line for line in err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "--dtype bfloat16 on the CPU is slower than float32" in notes[0]


def test_a_dropped_alpha_channel_is_said_in_one_line(capsys, tmp_path, weights):
    source = tmp_path / "rgba.png"
    Image.fromarray(RNG.integers(0, 256, (8, 8, 4), dtype=np.uint8)).save(source)
    code, _, err = run(capsys, "upscale", source, "-o", tmp_path / "o.jpg", "--weights", weights)
    assert code == 0, err
    assert err.strip().splitlines() == [
        f"wdsr-fast upscale: note: {tmp_path / 'o.jpg'}: JPEG files have no alpha channel; "
        "transparency dropped"
    ]
