"""``wdsr-fast upscale`` never loses or overwrites a user's file, and reads every image right.

Output paths are decided and checked before anything is written (an output that is an input,
or two inputs with one output, stop the run with one line and exit status 1); each output is
written whole or not at all; a bad image in a batch is reported and skipped; EXIF orientation
is applied; grayscale images go through 1-channel models; transparency is kept or the CLI says
it was dropped.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wdsr_fast import WDSRB
from wdsr_fast.app.cli import main
from wdsr_fast.app.resize import imresize_uint8
from wdsr_fast.interop.checkpoint import save_model

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "tiny_x2.safetensors"
    save_model(WDSRB(scale=2, n_resblocks=1, n_feats=8), path)
    return str(path)


@pytest.fixture(scope="module")
def gray_weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "gray_x2.pt"
    save_model(WDSRB(scale=2, n_resblocks=1, n_feats=8, n_colors=1, rgb_mean=(0.45,)), path)
    return str(path)


def rgb_png(path: Path, height: int = 6, width: int = 5, channels: int = 3) -> Path:
    shape = (height, width, channels) if channels > 1 else (height, width)
    Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Every file under ``folders`` (hidden ones included) with its bytes."""
    files = {}
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                files[path] = Path(path).read_bytes()
    return files


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("wdsr-fast upscale: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ----------------------------------------------------------------------------- collisions


def test_output_that_is_another_input_is_refused_before_writing(capsys, tmp_path, weights):
    """``upscale d1/x.png d2/x.png -o d2`` used to write d1/x.png's result over d2/x.png."""
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir(), d2.mkdir()
    rgb_png(d1 / "x.png"), rgb_png(d2 / "x.png")
    before = snapshot(tmp_path)
    code, _, err = run(
        capsys, "upscale", d1 / "x.png", d2 / "x.png", "-o", d2, "--weights", weights
    )
    assert code == 1
    one_error_line(err, "would overwrite the input", "nothing was written")
    assert snapshot(tmp_path) == before


def test_two_inputs_with_one_output_name_are_refused(capsys, tmp_path, weights):
    """Two inputs of the same name used to overwrite each other's output."""
    d1, d2, out = tmp_path / "d1", tmp_path / "d2", tmp_path / "out"
    for folder in (d1, d2, out):
        folder.mkdir()
    rgb_png(d1 / "x.png"), rgb_png(d2 / "x.png")
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "upscale", d1, d2, "-o", out, "--weights", weights)
    assert code == 1
    one_error_line(err, "would both be written there", str(d1 / "x.png"), str(d2 / "x.png"))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", ["same-file", "folder-onto-itself", "symlink", "hardlink"])
def test_output_naming_its_own_input_is_refused(capsys, tmp_path, weights, case):
    folder = tmp_path / "in"
    folder.mkdir()
    source = rgb_png(folder / "x.png")
    argv = ["upscale", source, "-o", source]
    if case == "folder-onto-itself":
        argv = ["upscale", folder, "-o", folder]
    elif case in ("symlink", "hardlink"):
        out = tmp_path / "out"
        out.mkdir()
        (os.symlink if case == "symlink" else os.link)(source, out / "x.png")
        argv = ["upscale", folder, "-o", out]
    before = snapshot(tmp_path)
    code, _, err = run(capsys, *argv, "--weights", weights)
    assert code == 1
    one_error_line(err, "would overwrite the input")
    assert snapshot(tmp_path) == before


def test_unknown_output_format_is_refused_before_writing(capsys, tmp_path, weights):
    source = rgb_png(tmp_path / "x.png")
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "upscale", source, "-o", tmp_path / "y.xyz", "--weights", weights)
    assert code == 1
    one_error_line(err, "y.xyz", "no image format")
    assert snapshot(tmp_path) == before


def test_training_output_that_is_a_training_image_is_refused(capsys, tmp_path):
    source = rgb_png(tmp_path / "hr.png", 24, 24)
    before = snapshot(tmp_path)
    code = main(["train", str(tmp_path), "-o", str(source), "--steps", "1", "--n-feats", "4",
                 "--n-resblocks", "0", "--patch-size", "4", "--batch-size", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "would overwrite the training image" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- writes


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_write_leaves_nothing_half_written(
    capsys, monkeypatch, tmp_path, weights, failure, existing
):
    """A failure in the middle of saving: the final name holds the old file or nothing, and no
    temporary file is left behind."""
    source = rgb_png(tmp_path / "x.png")
    target = tmp_path / "y.png"
    if existing:
        target.write_bytes(b"the user's own file")
    real_save = Image.Image.save

    def failing_save(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # the bytes are written...
        fp.truncate(fp.tell() // 2)  # ...half of them stay, and then the process fails
        raise failure

    monkeypatch.setattr(Image.Image, "save", failing_save)
    code, _, err = run(capsys, "upscale", source, "-o", target, "--weights", weights)
    assert code == (130 if isinstance(failure, KeyboardInterrupt) else 1), err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["x.png"] + ["y.png"] * existing)
    if existing:
        assert target.read_bytes() == b"the user's own file"


def test_written_file_has_the_usual_permissions(tmp_path, capsys, weights):
    source = rgb_png(tmp_path / "x.png")
    mask = os.umask(0o022)
    os.umask(mask)
    code, _, err = run(capsys, "upscale", source, "-o", tmp_path / "y.png", "--weights", weights)
    assert code == 0, err
    assert (tmp_path / "y.png").stat().st_mode & 0o777 == 0o666 & ~mask


# ----------------------------------------------------------------------------- bad files


def bomb_png(path: Path, side: int = 20_000) -> Path:
    """A PNG that declares side x side pixels (Pillow's decompression-bomb error) in 100 bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )  # fmt: skip
    return path


def test_bad_files_in_a_batch_are_reported_and_the_rest_written(capsys, tmp_path, weights):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir(), out.mkdir()
    rgb_png(folder / "a.png"), rgb_png(folder / "c.png")
    bomb_png(folder / "b_bomb.png")
    (folder / "b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, _, err = run(capsys, "upscale", folder, "-o", out, "--weights", weights)
    assert code == 1
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 3, err
    assert "b_bomb.png" in lines[0] and "decompression bomb" in lines[0]
    assert "b_corrupt.png" in lines[1] and "not a readable image" in lines[1]
    assert "2 of 4 images failed" in lines[2]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]


def test_decompression_bomb_warning_is_a_bad_file(capsys, monkeypatch, tmp_path, weights):
    """Between Pillow's limit and twice it, Pillow only warns; the image is refused too."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)
    source = rgb_png(tmp_path / "x.png", 5, 5)  # 25 pixels: over the limit, under twice it
    code, _, err = run(capsys, "upscale", source, "-o", tmp_path / "y.png", "--weights", weights)
    assert code == 1
    one_error_line(err, "x.png", "decompression bomb")
    assert not (tmp_path / "y.png").exists()


# ----------------------------------------------------------------------------- image modes


def test_exif_orientation_is_applied(capsys, tmp_path, weights):
    pixels = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to view
    Image.fromarray(pixels).save(tmp_path / "tagged.png", exif=exif)
    Image.fromarray(np.rot90(pixels, k=-1).copy()).save(tmp_path / "upright.png")
    for name in ("tagged", "upright"):
        code, _, err = run(capsys, "upscale", tmp_path / f"{name}.png", "-o",
                           tmp_path / f"{name}_x2.png", "--weights", weights)  # fmt: skip
        assert code == 0, err
    tagged, upright = (
        Image.open(tmp_path / "tagged_x2.png"),
        Image.open(tmp_path / "upright_x2.png"),
    )
    assert tagged.size == (12, 18)
    assert np.array_equal(np.asarray(tagged), np.asarray(upright))
    assert tagged.getexif().get(0x0112) is None


def test_grayscale_images_go_through_one_channel_models(capsys, tmp_path, gray_weights):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir(), out.mkdir()
    rgb_png(folder / "gray.png", 5, 7, channels=1)
    rgb_png(folder / "colour.png", 5, 7)
    code, _, err = run(capsys, "upscale", folder, "-o", out, "--weights", gray_weights)
    assert code == 1
    gray = Image.open(out / "gray.png")
    assert gray.mode == "L" and gray.size == (14, 10)
    assert not (out / "colour.png").exists()
    assert "colour.png" in err and "grayscale (1-channel)" in err and "1 of 2" in err


def test_alpha_is_resized_with_bicubic(capsys, tmp_path, weights):
    pixels = RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "t.png")
    code, _, err = run(capsys, "upscale", tmp_path / "t.png", "-o", tmp_path / "o.png",
                       "--weights", weights)  # fmt: skip
    assert code == 0 and "note" not in err, err
    written = np.asarray(Image.open(tmp_path / "o.png"))
    alpha = torch.from_numpy(pixels[..., 3].copy())[None]
    assert np.array_equal(written[..., 3], imresize_uint8(alpha, 2.0)[0].numpy())


def test_alpha_dropped_by_the_format_is_said(capsys, tmp_path, weights):
    rgb_png(tmp_path / "t.png", channels=4)
    code, out, err = run(capsys, "upscale", tmp_path / "t.png", "-o", tmp_path / "o.jpg",
                         "--weights", weights)  # fmt: skip
    assert code == 0, err
    assert "note:" in err and "JPEG files have no alpha channel; transparency dropped" in err
    assert Image.open(tmp_path / "o.jpg").mode == "RGB" and "wrote" in out


@pytest.mark.parametrize(("name", "mode", "note"), [
    ("o.png", "LA", False), ("o.tif", "LA", False), ("o.webp", "RGBA", False),
    ("o.bmp", "L", True), ("o.jpg", "L", True),
])  # fmt: skip
def test_gray_with_alpha_in_every_format(capsys, tmp_path, weights, name, mode, note):
    Image.fromarray(RNG.integers(0, 256, (6, 5, 2), dtype=np.uint8)).save(tmp_path / "t.png")
    code, _, err = run(capsys, "upscale", tmp_path / "t.png", "-o", tmp_path / name,
                       "--weights", weights)  # fmt: skip
    assert code == 0 and ("transparency dropped" in err) == note, err
    written = Image.open(tmp_path / name)
    assert written.mode == mode and written.size == (10, 12)
