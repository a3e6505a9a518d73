"""Tensors of every memory layout, for the property-based tests, and hypothesis strategies
drawing them.

A layout is ``(name, dim)``: ``"contiguous"``; ``"channels_last"`` (4-D only); ``"strided"``:
stride 2 along ``dim``, NaN in the gaps (a kernel reading a gap shows up as NaN);
``"expanded"``: stride 0 along ``dim`` (the values of index 0 along ``dim`` everywhere);
``"permuted"``: dense but stored in another dimension order. :func:`lay_out` builds the view
from a leaf tensor, differentiably, so gradients flow back into the leaf.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import Tensor

Layout = tuple[str, int]
NAMES = ("contiguous", "channels_last", "strided", "expanded", "permuted")


def lay_out(leaf: Tensor, layout: Layout) -> Tensor:
    """``leaf``'s values (for ``"expanded"``: its first slice along ``dim``, repeated) as a
    tensor of ``layout``."""
    name, dim = layout
    if name == "contiguous":
        return leaf
    if name == "channels_last":
        return leaf.contiguous(memory_format=torch.channels_last)
    if name == "expanded":
        return leaf.narrow(dim, 0, 1).expand(leaf.shape)
    if name == "permuted":
        order = list(range(leaf.dim()))[::-1]
        return leaf.permute(order).contiguous().permute(order)
    if name == "strided":
        shape = list(leaf.shape)
        shape[dim] *= 2
        buffer = torch.full(shape, float("nan"), dtype=leaf.dtype, device=leaf.device)
        index = tuple(slice(None, None, 2) if d == dim else slice(None) for d in range(leaf.dim()))
        buffer[index] = leaf
        return buffer[index]
    raise ValueError(f"layout: unknown name {name!r}")


@st.composite
def layouts(draw: st.DrawFn, rank: int) -> Layout:
    """A layout for a tensor of ``rank`` dimensions."""
    names = [n for n in NAMES if n != "channels_last" or rank == 4]
    if rank == 1:
        names = [n for n in names if n != "permuted"]
    return draw(st.sampled_from(names)), draw(st.integers(0, rank - 1))


def random_tensor(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> Tensor:
    """A float64 CPU tensor of normal values times ``scale``, reproducible from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64) * scale
