"""Reading SASS statically: instructions, loops, dynamic instruction counts, tensor-core work.

:func:`parse` turns ``nvdisasm -c`` output into :class:`Instruction` records. Loops are the
natural loops of backward branches (a branch to an earlier label; the never-executed
``BRA`` to itself that pads the end of the code is not one). :func:`dynamic_count` gives the
instructions one warp executes: each instruction once, times the trip count of every loop that
holds it -- predicated-off instructions included, since they are issued too; code skipped by a
forward branch is counted as if it ran (an upper bound). :func:`tensor_flops` gives the
multiply-adds the MMA instructions do, from their shapes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Instruction",
    "Loop",
    "dynamic_count",
    "find_loops",
    "opcode_counts",
    "parse",
    "tensor_flops",
]

_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;?\s*$")
_LABEL = re.compile(r"^(\.L_x_\d+):\s*$")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")
# HGMMA.64x128x16.F32 ... : a warpgroup MMA of m x n x k; HMMA.16816.F32: m16 n8 k16;
# HMMA.1688: m16 n8 k8 (TF32 on sm_80).
_HGMMA_SHAPE = re.compile(r"HGMMA\.(\d+)x(\d+)x(\d+)")
_HMMA_SHAPE = re.compile(r"HMMA\.(\d{2})(\d)(\d+)")
WARPGROUP_WARPS = 4


@dataclass(frozen=True)
class Instruction:
    """One SASS instruction: byte address, opcode with modifiers (``LDG.E.128``), operand
    text, guard predicate (``""``, ``"P0"``, ``"!PT"``, ...) and branch target label."""

    address: int
    opcode: str
    operands: str
    predicate: str
    target: str | None

    @property
    def base_opcode(self) -> str:
        """The opcode without modifiers (``LDG``)."""
        return self.opcode.split(".")[0]


@dataclass(frozen=True)
class Loop:
    """A natural loop: instructions at addresses ``start`` to ``end`` (the backward branch)."""

    start: int
    end: int

    def holds(self, instruction: Instruction) -> bool:
        return self.start <= instruction.address <= self.end


def parse(sass: str) -> tuple[list[Instruction], dict[str, int]]:
    """Instructions of the first kernel in ``sass``, and the address of each label."""
    instructions: list[Instruction] = []
    labels: dict[str, int] = {}
    pending: list[str] = []
    for line in sass.splitlines():
        label = _LABEL.match(line.strip())
        if label:
            pending.append(label.group(1))
            continue
        match = _LINE.match(line)
        if not match:
            continue
        address = int(match.group(1), 16)
        for name in pending:
            labels[name] = address
        pending = []
        text = match.group(2).rstrip(";").strip()
        predicate = ""
        if text.startswith("@"):
            predicate, text = text[1:].split(None, 1)
        opcode, _, operands = text.partition(" ")
        target = _TARGET.search(operands)
        instructions.append(
            Instruction(address, opcode, operands.strip(), predicate, target and target.group(1))
        )
    for name in pending:  # a label after the last instruction marks the end
        labels[name] = instructions[-1].address + 16 if instructions else 0
    return _executable(instructions, labels), labels


def _executable(instructions: list[Instruction], labels: dict[str, int]) -> list[Instruction]:
    """Drop the padding at the end: the ``BRA`` to itself that follows the code, and the NOPs."""
    for i, ins in enumerate(instructions):
        if ins.base_opcode == "BRA" and ins.target in labels and labels[ins.target] == ins.address:
            return instructions[:i]
    return instructions


def find_loops(instructions: Sequence[Instruction], labels: dict[str, int]) -> list[Loop]:
    """The natural loops, ordered by start address (an outer loop before the loops it holds)."""
    loops = {
        Loop(labels[ins.target], ins.address)
        for ins in instructions
        if ins.base_opcode == "BRA" and ins.target in labels
        and labels[ins.target] <= ins.address
    }  # fmt: skip
    return sorted(loops, key=lambda loop: (loop.start, -loop.end))


def dynamic_count(
    instructions: Sequence[Instruction], loops: Sequence[Loop], trips: Sequence[float]
) -> float:
    """Instructions one warp executes, when loop ``i`` runs ``trips[i]`` times per entry."""
    return sum(_weights(instructions, loops, trips))


def _weights(
    instructions: Sequence[Instruction], loops: Sequence[Loop], trips: Sequence[float]
) -> list[float]:
    """How many times each instruction runs: the product of the trips of its loops."""
    if len(trips) != len(loops):
        raise ValueError(f"trips: expected {len(loops)} trip counts (one per loop), got {trips}")
    weights = []
    for instruction in instructions:
        weight = 1.0
        for loop, count in zip(loops, trips, strict=True):
            if loop.holds(instruction):
                weight *= count
        weights.append(weight)
    return weights


def opcode_counts(
    instructions: Sequence[Instruction], loops: Sequence[Loop], trips: Sequence[float]
) -> dict[str, float]:
    """Dynamic count per base opcode (one warp), most frequent first."""
    counts: dict[str, float] = {}
    for instruction, weight in zip(instructions, _weights(instructions, loops, trips), strict=True):
        counts[instruction.base_opcode] = counts.get(instruction.base_opcode, 0.0) + weight
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def tensor_flops(
    instructions: Sequence[Instruction], loops: Sequence[Loop], trips: Sequence[float]
) -> float:
    """Floating-point operations (2 per multiply-add) of the MMA instructions one warp executes:
    an HGMMA m x n x k is issued by the four warps of a warpgroup, so a quarter of it counts
    per warp; an HMMA mMnNkK is one warp's."""
    flops = 0.0
    for instruction, weight in zip(instructions, _weights(instructions, loops, trips), strict=True):
        hgmma = _HGMMA_SHAPE.match(instruction.opcode)
        if hgmma:
            m, n, k = map(int, hgmma.groups())
            flops += weight * 2 * m * n * k / WARPGROUP_WARPS
            continue
        hmma = _HMMA_SHAPE.match(instruction.opcode)
        if hmma:
            m, n, k = map(int, hmma.groups())
            flops += weight * 2 * m * n * k
    return flops
