"""Tiled inference: upscale images of any size in windows of bounded size.

The low-resolution image is cut into cores of ``tile - 2 * overlap`` pixels a side; each core is
run through the network inside a window that adds ``overlap`` pixels of real image around it
(fewer at the image's own borders, where the network zero-pads as it does untiled), and only
the core's part of the output is kept. An output pixel depends on input pixels no further than
the network's receptive radius (:func:`receptive_radius`), so with ``overlap`` at least that
radius every kept pixel sees exactly the input it sees untiled: tiled and untiled results agree
to floating-point rounding. Peak memory is that of one ``tile`` x ``tile`` window.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from tqdm import tqdm

__all__ = ["receptive_radius", "tile_spans", "upscale_tiled"]


def receptive_radius(model: nn.Module) -> int:
    """LR pixels an output pixel can see beyond its own on each side: the sum of conv radii.

    For the WDSR models: head (1) + each block's convs (WDSR-B: 1, WDSR-A: 2) + tail (1); the
    skip branch (5x5: 2) runs in parallel, so it counts only if larger.
    """

    def conv_radius(module: nn.Module) -> int:
        return sum(getattr(m, "padding", 0) for m in module.modules() if hasattr(m, "weight_v"))

    main = conv_radius(model.head) + conv_radius(model.body) + conv_radius(model.tail)
    return max(main, conv_radius(model.skip))


def tile_spans(length: int, tile: int, overlap: int) -> Iterator[tuple[int, int, int, int]]:
    """``(core_start, core_end, window_start, window_end)`` along one dimension of ``length``.

    Cores of ``tile - 2 * overlap`` cover [0, length) without gaps or overlaps; each window is
    its core widened by ``overlap`` on both sides, clipped to the image.
    """
    core = tile - 2 * overlap
    if core < 1:
        raise ValueError(
            f"tile ({tile}) must be larger than twice the tile overlap ({overlap}): "
            f"each tile keeps tile - 2 * overlap pixels"
        )
    for start in range(0, length, core):
        end = min(start + core, length)
        yield start, end, max(0, start - overlap), min(length, end + overlap)


@torch.no_grad()
def upscale_tiled(
    model: nn.Module,
    image: Tensor,
    tile: int | None = None,
    overlap: int | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
) -> Tensor:
    """Super-resolve a (C, H, W) uint8 image, or an (N, C, H, W) batch of them (C: the model's
    n_colors); returns (C, H*s, W*s), or (N, C, H*s, W*s), uint8 on the CPU.

    ``tile=None`` runs the whole image at once; otherwise windows of at most ``tile`` pixels a
    side (see the module docstring), each window of a batch run as one batch. ``overlap=None``
    takes :func:`receptive_radius`, which makes tiling exact. The network runs on ``device`` in
    ``dtype``; its output is clamped to [0, 255] and rounded.
    """
    if image.dtype != torch.uint8 or image.dim() not in (3, 4):
        raise ValueError(
            "image must be a (C, H, W) or (N, C, H, W) uint8 tensor, got "
            f"{image.dtype} {tuple(image.shape)}"
        )
    batch = image if image.dim() == 4 else image.unsqueeze(0)
    scale = model.scale
    height, width = batch.shape[-2:]
    if overlap is None:
        overlap = receptive_radius(model)
    if overlap < 0:
        raise ValueError(f"tile overlap must be >= 0, got {overlap}")
    if tile is None:
        tile = max(height, width) + 2 * overlap
    rows = list(tile_spans(height, tile, overlap))
    cols = list(tile_spans(width, tile, overlap))
    out = torch.empty(*batch.shape[:2], height * scale, width * scale, dtype=torch.uint8)
    bar = tqdm(
        total=len(rows) * len(cols),
        desc="tiles",
        unit="tile",
        disable=None if progress and len(rows) * len(cols) > 1 else True,
        leave=False,
    )
    for top, bottom, win_top, win_bottom in rows:
        for left, right, win_left, win_right in cols:
            window = batch[..., win_top:win_bottom, win_left:win_right]
            y = model(window.to(device=device, dtype=dtype))
            y = y[
                ...,
                (top - win_top) * scale : (bottom - win_top) * scale,
                (left - win_left) * scale : (right - win_left) * scale,
            ]
            out[..., top * scale : bottom * scale, left * scale : right * scale] = (
                y.float().clamp(0, 255).round().to(torch.uint8).cpu()
            )
            bar.update()
    bar.close()
    return out if image.dim() == 4 else out[0]
