"""Turn pytest-benchmark JSON into a markdown table of side-by-side ratios.

    python -m benchmarks.report bench.json [--out table.md]

Within each group (one comparison, measured in one run), every provider's median time is
shown with its speed-up over the group's first reference provider (a provider whose name
starts with ``reference``; the slowest entry if none does) and its extra info (peak memory,
saved bytes, bandwidth fraction, ...).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

HIDDEN_INFO = {"device", "provider"}


def _provider(bench: dict[str, Any]) -> str:
    return str(bench.get("extra_info", {}).get("provider") or bench["param"] or bench["name"])


def _baseline(entries: list[dict[str, Any]]) -> dict[str, Any]:
    for bench in entries:
        if _provider(bench).startswith("reference"):
            return bench
    return max(entries, key=lambda b: b["stats"]["median"])


def _format_info(info: dict[str, Any]) -> str:
    parts = []
    for key, value in sorted(info.items()):
        if key in HIDDEN_INFO:
            continue
        parts.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(parts)


def markdown_table(data: dict[str, Any]) -> str:
    """One markdown table per benchmark group, providers in the order they ran."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"] or bench["name"]].append(bench)
    lines = []
    for group, entries in groups.items():
        device = entries[0].get("extra_info", {}).get("device", "unknown device")
        base = _baseline(entries)
        lines += [
            f"### {group} ({device})",
            "",
            f"| provider | median | vs {_provider(base)} | info |",
            "|---|---|---|---|",
        ]
        for bench in entries:
            median = bench["stats"]["median"]
            speedup = base["stats"]["median"] / median
            lines.append(
                f"| {_provider(bench)} | {median * 1e3:.3f} ms | {speedup:.2f}x | "
                f"{_format_info(bench.get('extra_info', {}))} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file", type=Path)
    parser.add_argument("--out", type=Path, help="write the table here instead of stdout")
    args = parser.parse_args(argv)
    table = markdown_table(json.loads(args.json_file.read_text()))
    if args.out:
        args.out.write_text(table)
    else:
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
