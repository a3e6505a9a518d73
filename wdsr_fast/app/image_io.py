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

Tensors are ``uint8`` of shape (C, H, W).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageError",
    "LoadedImage",
    "list_images",
    "load_image",
    "save_image",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

_GRAY_MODES = ("L", "1")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_HIGH_DEPTH_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S")


class ImageError(ValueError):
    """An image file that cannot be read, written or used; the message names the file."""


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
        with Image.open(path) as image:
            if _high_bit_depth(image):
                raise ImageError(
                    f"{path}: {image.mode} images of more than 8 bits per channel are not "
                    "supported; convert to 8-bit first"
                )
            image.load()
            grayscale = image.mode in _GRAY_MODES or image.mode in ("LA", "La")
            has_alpha = image.mode in _ALPHA_MODES or (
                image.mode == "P" and "transparency" in image.info
            )
            converted = image.convert("RGBA" if has_alpha else "RGB")
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from None
    array = np.asarray(converted, dtype=np.uint8)
    pixels = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    alpha = pixels[3:4].clone() if has_alpha else None
    return LoadedImage(rgb=pixels[:3].contiguous(), alpha=alpha, grayscale=grayscale)


def save_image(
    path: str | os.PathLike,
    rgb: Tensor,
    alpha: Tensor | None = None,
    grayscale: bool = False,
) -> None:
    """Write a (3, H, W) uint8 image, with an optional (1, H, W) uint8 alpha channel.

    ``grayscale=True`` writes one channel, the rounded mean of R, G and B. The format follows
    the file extension; formats without alpha (JPEG) drop it. The folder must exist.
    """
    path = os.fspath(path)
    if rgb.dtype != torch.uint8 or rgb.dim() != 3 or rgb.shape[0] != 3:
        raise ValueError(
            f"rgb must be a (3, H, W) uint8 tensor, got {rgb.dtype} {tuple(rgb.shape)}"
        )
    if alpha is not None and (alpha.dtype != torch.uint8 or alpha.shape != (1, *rgb.shape[1:])):
        raise ValueError(
            f"alpha must be a (1, {rgb.shape[1]}, {rgb.shape[2]}) uint8 tensor, "
            f"got {alpha.dtype} {tuple(alpha.shape)}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ImageError(f"{path}: output folder {folder} does not exist")
    channels = rgb.double().mean(dim=0, keepdim=True).round().byte() if grayscale else rgb
    if alpha is not None and not path.lower().endswith((".jpg", ".jpeg")):
        channels = torch.cat([channels, alpha])
    # Pillow infers the mode from the shape: (H, W) L, (H, W, 2) LA, (H, W, 3) RGB, (H, W, 4) RGBA.
    array = channels.permute(1, 2, 0).numpy()
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array.copy())
    try:
        image.save(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ImageError(f"{path}: cannot write image ({exc})") from None


def list_images(folder: str | os.PathLike) -> list[str]:
    """The image files (by extension, case-insensitive) directly inside ``folder``, sorted."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ImageError(f"{folder}: no such folder")
    return sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, name))
    )
