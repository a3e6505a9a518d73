"""The wdsr-fast command line: each command on small inputs, exit codes, one-line errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from wdsr_fast import WDSRB
from wdsr_fast.app.cli import main
from wdsr_fast.app.pretrained import bundled_scales, model_for_scale
from wdsr_fast.interop.checkpoint import save_model

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "tiny_x2.safetensors"
    save_model(WDSRB(scale=2, n_resblocks=1, n_feats=8), path)
    return str(path)


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(folder / "rgb.png")
    Image.fromarray(RNG.integers(0, 256, (9, 11), dtype=np.uint8)).save(folder / "gray.png")
    Image.fromarray(RNG.integers(0, 256, (8, 8, 4), dtype=np.uint8)).save(folder / "rgba.png")
    Image.fromarray(RNG.integers(0, 65536, (8, 8), dtype=np.uint16)).save(folder / "deep.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    return folder


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("wdsr-fast ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_upscale_one_file(capsys, images, tmp_path, weights):
    out = tmp_path / "out.png"
    code, _, err = _run(capsys, "upscale", images / "rgb.png", "-o", out, "--weights", weights)
    assert code == 0, err
    assert Image.open(out).size == (20, 24) and Image.open(out).mode == "RGB"


def test_upscale_compare_reference_prints_both_times(capsys, images, tmp_path, weights):
    out = tmp_path / "out.png"
    code, stdout, err = _run(
        capsys, "upscale", images / "rgb.png", "-o", out, "--weights", weights,
        "--compare-reference",
    )  # fmt: skip
    assert code == 0, err
    assert "wrote " in stdout and "(20x24)" in stdout
    assert "wdsr_fast " in stdout and "reference as written" in stdout


def test_reference_twin_computes_the_same_function():
    from wdsr_fast.app.measure import reference_twin

    model = WDSRB(scale=3, n_resblocks=2, n_feats=16, res_scale=0.5).eval()
    x = torch.rand(1, 3, 9, 7) * 255
    with torch.no_grad():
        torch.testing.assert_close(reference_twin(model)(x), model(x), rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="rgb_range=255"):
        reference_twin(WDSRB(n_resblocks=1, rgb_range=1.0))


def test_upscale_folder_reports_failures_and_finishes_the_rest(capsys, images, tmp_path, weights):
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _run(capsys, "upscale", images, "-o", out, "--weights", weights, "--tile", "20")
    assert code == 1
    assert Image.open(out / "rgb.png").mode == "RGB"
    gray = Image.open(out / "gray.png")
    assert gray.mode == "L" and gray.size == (22, 18)
    assert Image.open(out / "rgba.png").mode == "RGBA"
    assert not (out / "deep.png").exists() and not (out / "corrupt.jpg").exists()
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 3, err
    assert "corrupt.jpg" in lines[0] and "not a readable image" in lines[0]
    assert "deep.png" in lines[1] and "more than 8 bits" in lines[1]
    assert "2 of 5 images failed" in lines[2]


@pytest.mark.parametrize(
    "extra,expected",
    [
        (["-o", "{tmp}/out.xyz"], ["out.xyz", "extension '.xyz'", ".png, .jpg"]),
        (
            ["{images}/gray.png", "-o", "{images}/rgb.png/sub"],
            ["cannot create the output folder", "rgb.png is a file"],
        ),
        (["--scale", "3"], ["weights are for scale 2", "scale 3"]),
        (["--tile", "8", "--tile-overlap", "4"], ["--tile 8 is too small", "overlap of 4"]),
        (["--weights", "{images}/rgb.png"], ["rgb.png", "not usable WDSR weights"]),
        (["--weights", "{tmp}/none.safetensors"], ["no such weights file"]),
        (
            ["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "nope"],
            ["--device"],
        ),
    ],
    ids=[
        "out-extension",
        "out-folder-under-a-file",
        "scale",
        "tile",
        "weights-kind",
        "weights-missing",
        "device",
    ],
)
def test_upscale_bad_input_is_one_line(capsys, images, tmp_path, weights, extra, expected):
    argv = ["upscale", str(images / "rgb.png")] + [
        a.format(tmp=tmp_path, images=images) for a in extra
    ]
    if "-o" not in extra:
        argv += ["-o", str(tmp_path / "o.png")]
    if "--weights" not in extra:
        argv += ["--weights", weights]
    code, _, err = _run(capsys, *argv)
    assert code == 1
    _one_error_line(err, *expected)


def test_missing_input_file_is_one_line(capsys, tmp_path, weights):
    code, _, err = _run(
        capsys, "upscale", tmp_path / "nope.png", "-o", tmp_path / "o.png", "--weights", weights
    )
    assert code == 1
    assert "nope.png: no such file" in err and "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["upscale", "x.png", "-o", "y.png", "--tile", "0"])
    assert exit_info.value.code == 2
    assert "must be > 0" in capsys.readouterr().err


def test_eval_prints_bicubic_and_model_scores(capsys, tmp_path, weights):
    Image.fromarray(RNG.integers(0, 256, (34, 30, 3), dtype=np.uint8)).save(tmp_path / "hr.png")
    code, out, err = _run(capsys, "eval", tmp_path / "hr.png", "--weights", weights)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert "bicubic PSNR-Y" in lines[0] and "WDSR-B x2 PSNR-Y" in lines[0]
    assert lines[2].startswith("| hr.png |") and lines[3].startswith("| **mean** |")


def test_info_reports_versions_backends_and_build(capsys):
    code, out, _ = _run(capsys, "info")
    assert code == 0
    assert f"torch: {torch.__version__.split('+')[0]}" in out
    for key in ("backends:", "auto:", "extension:", "cuda_available:", "bundled_weights:"):
        assert key in out


def test_bench_prints_the_side_by_side_table(capsys):
    code, out, err = _run(
        capsys,
        "bench",
        "--device",
        "cpu",
        "--size",
        "8",
        "8",
        "--batch",
        "1",
        "--patch",
        "6",
        "--n-resblocks",
        "1",
        "--n-feats",
        "8",
        "--repeats",
        "1",
        "--video-size",
        "6",
        "10",
        "--video-batch",
        "2",
    )
    assert code == 0, err
    assert "reference ms" in out and "wdsr_fast ms" in out
    assert "| inference 1x3x8x8 |" in out and "| train step 1x3x6x6 |" in out
    assert "reference frames/s | wdsr_fast frames/s" in out and "| 2 frames 6x10 -> 12x20 |" in out
    assert "bench" not in err  # no progress bar when stderr is no terminal


def test_train_writes_weights_that_upscale_uses(capsys, tmp_path):
    Image.fromarray(RNG.integers(0, 256, (24, 22, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    weights = tmp_path / "w.safetensors"
    code, out, err = _run(
        capsys,
        "train",
        tmp_path / "a.png",
        "-o",
        weights,
        "--steps",
        "2",
        "--n-resblocks",
        "1",
        "--n-feats",
        "8",
        "--batch-size",
        "2",
        "--patch-size",
        "6",
        "--log-every",
        "1",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "step 2/2" in out
    code, _, err = _run(
        capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "b.png", "--weights", weights
    )
    assert code == 0, err


def test_bundled_weights_are_the_default():
    assert 2 in bundled_scales()
    model = model_for_scale(None, None)
    assert isinstance(model, WDSRB) and model.scale == 2
    with pytest.raises(ValueError, match="no bundled weights for scale 5"):
        model_for_scale(None, 5)


def test_module_entry_point_reports_without_traceback(tmp_path, weights):
    (tmp_path / "bad.png").write_bytes(b"nope")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wdsr_fast",
            "upscale",
            str(tmp_path / "bad.png"),
            "-o",
            str(tmp_path / "o.png"),
            "--weights",
            weights,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    _one_error_line(result.stderr, "bad.png", "not a readable image")
