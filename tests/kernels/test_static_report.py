"""Trip counts of the static cost report (wdsr_fast/kernels/aot/report.py) on hand-written SASS.

A source loop of constant trip count may reach the SASS unrolled, partly unrolled or with some
trips peeled off in front of the loop; the report must count each product exactly once per
trip the source asks for.
"""

from __future__ import annotations

import pytest

from wdsr_fast.kernels.aot.report import _trips_from_products
from wdsr_fast.kernels.aot.sass import find_loops, parse, tensor_flops

HMMA = "HMMA.16816.F32 R4, R8, R12, R4"  # one warp's m16 n8 k16: 4096 FLOPs
HMMA_FLOPS = 2 * 16 * 8 * 16


def sass(*lines: str) -> str:
    """An nvdisasm-like listing: labels as given, instructions at consecutive addresses."""
    out, address = [], 0
    for line in lines:
        if line.endswith(":"):
            out.append(line)
            continue
        out.append(f"        /*{address:04x}*/                   {line} ;")
        address += 16
    return "\n".join(out + [f"        /*{address:04x}*/                   EXIT ;"])


def read(listing: str):
    instructions, labels = parse(listing)
    return instructions, find_loops(instructions, labels)


def test_peeled_trip_and_two_products_per_trip():
    """9 taps of one HMMA each: one peeled in front, then a loop doing two per trip."""
    instructions, loops = read(sass(HMMA, ".L_x_0:", HMMA, HMMA, "@P0 BRA `(.L_x_0)"))
    trips = _trips_from_products(9 * HMMA_FLOPS * 8, 8, instructions, loops)
    assert trips == [4]
    assert tensor_flops(instructions, loops, trips) == 9 * HMMA_FLOPS


def test_fully_unrolled_loop_has_no_trips():
    instructions, loops = read(sass(*[HMMA] * 9))
    assert loops == []
    assert _trips_from_products(9 * HMMA_FLOPS, 1, instructions, loops) == []


def test_products_that_do_not_add_up_raise():
    """Two products per trip cannot make 9 taps."""
    instructions, loops = read(sass(".L_x_0:", HMMA, HMMA, "@P0 BRA `(.L_x_0)"))
    with pytest.raises(ValueError, match="do not add up"):
        _trips_from_products(9 * HMMA_FLOPS, 1, instructions, loops)
