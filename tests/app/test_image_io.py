"""Reading and writing images: RGB, grayscale, alpha, palette, and the files that are refused."""

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from wdsr_fast.app.image_io import ImageError, list_images, load_image, save_image

RNG = np.random.default_rng(0)


def _pixels(*shape: int, dtype=np.uint8, high: int = 256) -> np.ndarray:
    return RNG.integers(0, high, shape).astype(dtype)


def _png16_rgb(path, height: int = 4, width: int = 5) -> None:
    """A 48-bit RGB PNG, written by hand (Pillow cannot write one)."""
    data = _pixels(height, width, 3, dtype=">u2", high=65536)
    raw = b"".join(b"\x00" + data[i].tobytes() for i in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_rgb_round_trip(tmp_path):
    array = _pixels(7, 9, 3)
    Image.fromarray(array).save(tmp_path / "a.png")
    image = load_image(tmp_path / "a.png")
    assert image.rgb.shape == (3, 7, 9) and image.rgb.dtype == torch.uint8
    assert image.alpha is None and not image.grayscale
    assert np.array_equal(image.rgb.permute(1, 2, 0).numpy(), array)
    save_image(tmp_path / "b.png", image.rgb)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), array)


def test_grayscale_is_copied_to_three_channels_and_saved_gray(tmp_path):
    array = _pixels(6, 5)
    Image.fromarray(array).save(tmp_path / "g.png")
    image = load_image(tmp_path / "g.png")
    assert image.grayscale
    for channel in image.rgb:
        assert np.array_equal(channel.numpy(), array)
    save_image(tmp_path / "out.png", image.rgb, grayscale=True)
    saved = Image.open(tmp_path / "out.png")
    assert saved.mode == "L" and np.array_equal(np.asarray(saved), array)


def test_alpha_is_kept_apart_and_written_back(tmp_path):
    array = _pixels(6, 5, 4)
    Image.fromarray(array).save(tmp_path / "t.png")
    image = load_image(tmp_path / "t.png")
    assert image.alpha is not None and image.alpha.shape == (1, 6, 5)
    assert np.array_equal(image.alpha[0].numpy(), array[..., 3])
    assert np.array_equal(image.rgb.permute(1, 2, 0).numpy(), array[..., :3])
    save_image(tmp_path / "out.png", image.rgb, image.alpha)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), array)
    save_image(tmp_path / "out.jpg", image.rgb, image.alpha)  # JPEG has no alpha: dropped
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"


def test_palette_image_becomes_rgb(tmp_path):
    Image.fromarray(_pixels(6, 5, 3)).convert("P").save(tmp_path / "p.png")
    image = load_image(tmp_path / "p.png")
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    assert np.array_equal(image.rgb.permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("kind", ["gray16", "rgb48", "float"])
def test_more_than_8_bits_is_refused(tmp_path, kind):
    path = tmp_path / f"{kind}.png"
    if kind == "gray16":
        Image.fromarray(_pixels(4, 4, dtype=np.uint16, high=65536)).save(path)
    elif kind == "rgb48":
        _png16_rgb(path)
    else:
        path = tmp_path / "f.tif"
        Image.fromarray(RNG.random((4, 4)).astype(np.float32)).save(path)
    with pytest.raises(ImageError, match="more than 8 bits"):
        load_image(path)


def test_unreadable_files_name_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageError, match=r"bad\.png: not a readable image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_save_checks_its_inputs_and_folder(tmp_path):
    rgb = torch.zeros(3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ImageError, match="output folder .* does not exist"):
        save_image(tmp_path / "nowhere" / "x.png", rgb)
    with pytest.raises(ValueError, match="pixels must be"):
        save_image(tmp_path / "x.png", rgb.float())
    with pytest.raises(ValueError, match="alpha must be"):
        save_image(tmp_path / "x.png", rgb, torch.zeros(1, 3, 4, dtype=torch.uint8))
    with pytest.raises(ImageError, match="no image format for the extension '.unknown'"):
        save_image(tmp_path / "x.unknown", rgb)


def test_list_images_keeps_image_files_only(tmp_path):
    for name in ("b.PNG", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.rsplit("/", 1)[-1] for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]
    with pytest.raises(ImageError, match="no such folder"):
        list_images(tmp_path / "missing")
