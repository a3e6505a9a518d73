"""Reading and writing 8-bit images through Pillow, as the models see them.

What each kind of file becomes (:func:`load_image`):

- RGB (PNG, JPEG, WebP, BMP, TIFF, ...): the three channels.
- Grayscale (``L``, 1-bit ``1``): the gray channel copied into R, G and B; :func:`save_image`
  writes the result back as grayscale (the mean of the three output channels).
- With transparency (``RGBA``, ``LA``, palette with transparency): the colour goes through the
  network; the alpha channel is kept apart and resized with bicubic interpolation by the caller.
- Palette (``P``), ``CMYK``, ``YCbCr``: converted to RGB (or RGBA) by Pillow.
- 16-bit or floating-point images (``I;16``, ``I``, ``F``, 48/64-bit PNG): rejected with an
  :class:`ImageError`, since Pillow would silently drop their low bits; convert them to 8 bits
  first.
- An EXIF orientation tag is applied to the pixels (``ImageOps.exif_transpose``), so the image
  is seen upright; the written image is upright and carries no orientation tag.
- Images larger than Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) are
  rejected with an :class:`ImageError`, warning level included.

:func:`save_image` writes each file whole or not at all: into a temporary file in the target's
folder, renamed over the target only once complete, so an interrupted or failed write leaves
the target as it was.

Tensors are ``uint8`` of shape (C, H, W).
"""

from __future__ import annotations

import io
import os
import secrets
import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from wdsr_fast.app.errors import ImageError
from wdsr_fast.app.paths import IMAGE_EXTENSIONS, file_identities, list_images, output_format

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageError",
    "LoadedImage",
    "file_identities",
    "list_images",
    "load_image",
    "output_format",
    "save_image",
]

_GRAY_MODES = ("L", "1")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_HIGH_DEPTH_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S")


@dataclass(frozen=True)
class LoadedImage:
    """An image as the models take it.

    rgb: (3, H, W) uint8. alpha: (1, H, W) uint8 or None. grayscale: the file had one colour
    channel (R = G = B here).
    """

    rgb: Tensor
    alpha: Tensor | None
    grayscale: bool


def _high_bit_depth(image: Image.Image) -> bool:
    if image.mode in _HIGH_DEPTH_MODES:
        return True
    # Pillow opens 16-bit-per-channel RGB(A) PNGs as 8-bit RGB(A); only the decoder says so.
    return any(";16" in str(tile.args) for tile in getattr(image, "tile", []) or [])


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Read an 8-bit image file (see the module docstring for what each mode becomes)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a folder, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if _high_bit_depth(image):
                    raise ImageError(
                        f"{path}: {image.mode} images of more than 8 bits per channel are not "
                        "supported; convert to 8-bit first"
                    )
                upright = ImageOps.exif_transpose(image)
                upright.load()
                grayscale = upright.mode in _GRAY_MODES or upright.mode in ("LA", "La")
                has_alpha = upright.mode in _ALPHA_MODES or (
                    upright.mode == "P" and "transparency" in upright.info
                )
                converted = upright.convert("RGBA" if has_alpha else "RGB")
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except Exception as exc:  # Pillow's decoders raise many kinds on broken files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"{path}: not a readable image ({reason})") from None
    array = np.asarray(converted, dtype=np.uint8)
    pixels = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    alpha = pixels[3:4].clone() if has_alpha else None
    return LoadedImage(rgb=pixels[:3].contiguous(), alpha=alpha, grayscale=grayscale)


@cache
def _holds_alpha(image_format: str, mode: str) -> bool:
    """Whether an image of ``mode`` written in ``image_format`` reads back with its alpha
    channel (Pillow writes RGBA BMP and PPM files, but they read back as RGB)."""
    buffer = io.BytesIO()
    try:
        Image.new(mode, (1, 1)).save(buffer, format=image_format)
        buffer.seek(0)
        with Image.open(buffer) as image:
            return "A" in image.mode
    except (OSError, ValueError, KeyError):
        return False


def _file_mode(image_format: str, channels: int, alpha: bool) -> tuple[str, bool]:
    """(Pillow mode to write, alpha kept) for ``channels`` (1 or 3) colour channels."""
    gray = channels == 1
    if alpha:
        for mode in ("LA", "RGBA") if gray else ("RGBA",):
            if _holds_alpha(image_format, mode):
                return mode, True
    return ("L" if gray else "RGB"), False


def _write_atomically(image: Image.Image, path: str, image_format: str) -> None:
    """Write ``image`` to a temporary file next to ``path``, then rename it to ``path``."""
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as f:
            image.save(f, format=image_format)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_image(
    path: str | os.PathLike,
    pixels: Tensor,
    alpha: Tensor | None = None,
    grayscale: bool = False,
) -> bool:
    """Write a (3, H, W) or (1, H, W) uint8 image, with an optional (1, H, W) uint8 alpha
    channel; returns whether the file holds the alpha channel.

    One channel, or ``grayscale=True`` (the rounded mean of R, G and B), writes a grayscale
    file. The format follows the file extension; formats without alpha (JPEG, BMP, PPM) drop
    it, and grayscale with alpha is written as RGBA where the format has no gray-with-alpha
    mode (WebP).
    The folder must exist. The file appears whole or not at all (see the module docstring).
    """
    path = os.fspath(path)
    if pixels.dtype != torch.uint8 or pixels.dim() != 3 or pixels.shape[0] not in (1, 3):
        raise ValueError(
            f"pixels must be a (3, H, W) or (1, H, W) uint8 tensor, got {pixels.dtype} "
            f"{tuple(pixels.shape)}"
        )
    if alpha is not None and (alpha.dtype != torch.uint8 or alpha.shape != (1, *pixels.shape[1:])):
        raise ValueError(
            f"alpha must be a (1, {pixels.shape[1]}, {pixels.shape[2]}) uint8 tensor, "
            f"got {alpha.dtype} {tuple(alpha.shape)}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ImageError(f"{path}: output folder {folder} does not exist")
    image_format = output_format(path)
    if grayscale and pixels.shape[0] == 3:
        pixels = pixels.double().mean(dim=0, keepdim=True).round().byte()
    mode, keeps_alpha = _file_mode(image_format, pixels.shape[0], alpha is not None)
    channels = pixels.expand(3, -1, -1) if mode == "RGBA" else pixels
    if keeps_alpha:
        channels = torch.cat([channels, alpha])
    array = np.ascontiguousarray(channels.permute(1, 2, 0).numpy())
    # Pillow infers the mode from the shape: (H, W) L, (H, W, 2) LA, (H, W, 3) RGB, (H, W, 4) RGBA.
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    try:
        _write_atomically(image, path, image_format)
    except (OSError, ValueError, KeyError) as exc:
        raise ImageError(f"{path}: cannot write image ({exc})") from None
    return keeps_alpha
