"""Malformed and hostile checkpoints: each raises CheckpointError naming the file and what is
wrong, before any model is built, and never an error of another kind (SafetensorError,
ZeroDivisionError, IndexError, AttributeError, JSONDecodeError, ...)."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch

from wdsr_fast import WDSRB
from wdsr_fast.interop.checkpoint import CheckpointError, load_model, save_model


def state(n_resblocks: int = 2) -> dict[str, torch.Tensor]:
    """A small valid WDSR-B state dict (reference keys)."""
    return dict(WDSRB(n_resblocks=n_resblocks, n_feats=8).state_dict())


def edited(**changes: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """``state()`` with keys replaced (``None`` deletes; dots spelled ``__``)."""
    result = state()
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            result.pop(key)
        else:
            result[key] = value
    return result


def torch_file(contents: object) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        torch.save(contents, folder / "bad.pt")
        return folder / "bad.pt"

    return write


def safetensors_file(metadata: dict[str, str] | None) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        safetensors.torch.save_file(state(), folder / "bad.safetensors", metadata=metadata)
        return folder / "bad.safetensors"

    return write


def raw_file(data: bytes, name: str = "bad.safetensors") -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return write


def safetensors_header(header: object, payload: bytes = b"") -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text)) + text + payload


def with_metadata(metadata: object) -> Callable[[Path], Path]:
    """A torch file whose state dict records ``metadata`` as save_model's settings."""

    def write(folder: Path) -> Path:
        sd = WDSRB(n_resblocks=1, n_feats=8).state_dict()
        sd._metadata[""]["wdsr_fast"] = metadata
        torch.save(sd, folder / "bad.pt")
        return folder / "bad.pt"

    return write


CASES = {
    # sizes out of proportion to the file
    "huge-block-index": (
        torch_file({**state(1), "body.10000000.body.0.weight_v": torch.zeros(48, 8, 1, 1)}),
        "numbered 0 to n-1 without gaps",
    ),
    "gap-in-blocks": (
        torch_file({k: v for k, v in state(3).items() if not k.startswith("body.1.")}),
        "missing block indices (1): 1",
    ),
    "expanded-tensor": (
        torch_file(edited(head__0__weight_v=torch.zeros(1, 1, 1, 1).expand(100_000, 3, 3, 3))),
        "expanded view of 1 stored elements",
    ),
    # wrong types
    "integer-keys": (torch_file({1: torch.zeros(1)}), "names must be strings"),
    "integer-tensor": (
        torch_file(edited(tail__0__bias=torch.zeros(12, dtype=torch.int64))),
        "tail.0.bias: dtype torch.int64, not floating point",
    ),
    "not-a-tensor": (torch_file(edited(tail__0__bias=[0.0] * 12)), "non-tensor entries"),
    # wrong ranks
    "head-rank-1": (
        torch_file(edited(head__0__weight_v=torch.zeros(8))),
        "head.0.weight_v: rank 1",
    ),
    "bias-rank-2": (torch_file(edited(tail__0__bias=torch.zeros(3, 4))), "tail.0.bias: rank 2"),
    "g-per-element": (
        torch_file(edited(head__0__weight_g=torch.ones(8, 3, 3, 3))),
        "one value per output channel",
    ),
    "block-rank-2": (
        torch_file(edited(body__0__body__0__weight_v=torch.zeros(48, 8))),
        "body.0.body.0.weight_v: rank 2",
    ),
    # zero channels
    "zero-features": (
        torch_file(edited(head__0__weight_v=torch.zeros(0, 3, 3, 3))),
        "holds no elements",
    ),
    "zero-colours": (
        torch_file(edited(head__0__weight_v=torch.zeros(8, 0, 3, 3))),
        "holds no elements",
    ),
    "missing-head": (torch_file(edited(head__0__weight_v=None)), "head and tail convs"),
    # truncated and foreign files
    "truncated-safetensors": (
        lambda folder: raw_file(_bytes_of_valid_safetensors(folder)[:300])(folder),
        "not a readable safetensors file",
    ),
    "header-too-long": (
        raw_file(struct.pack("<Q", 2**40) + b"{}"),
        "not a readable safetensors file",
    ),
    "header-not-json": (raw_file(safetensors_header(b"{not json}")), "safetensors"),
    "header-bad-dtype": (
        raw_file(
            safetensors_header(
                {"x": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}, b"\x00" * 4
            )
        ),  # fmt: skip
        "not a readable safetensors file",
    ),
    "header-offsets-past-end": (
        raw_file(
            safetensors_header(
                {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\x00" * 4
            )
        ),  # fmt: skip
        "not a readable safetensors file",
    ),
    "torch-file-garbage": (raw_file(b"PK\x03\x04 garbage", "bad.pt"), "weights_only=True"),
    # bad metadata
    "metadata-not-json": (safetensors_file({"wdsr_fast": "{nope"}), "not valid JSON"),
    "metadata-a-list": (safetensors_file({"wdsr_fast": "[1, 2]"}), "must be a mapping"),
    "metadata-string-int": (
        safetensors_file({"wdsr_fast": '{"n_feats": "8"}'}),
        "n_feats='8'",
    ),
    "metadata-string-linear": (
        safetensors_file({"wdsr_fast": '{"linear": "0.8"}'}),
        "linear='0.8'",
    ),
    "metadata-infinite-range": (
        safetensors_file({"wdsr_fast": '{"rgb_range": Infinity}'}),
        "rgb_range=inf",
    ),
    "metadata-zero-range": (
        safetensors_file({"wdsr_fast": '{"rgb_range": 0}'}),
        "make no model: rgb_range must be a finite positive number",
    ),
    "metadata-architecture": (
        safetensors_file({"wdsr_fast": '{"architecture": "EDSR"}'}),
        "architecture='EDSR'",
    ),
    "metadata-short-mean": (
        safetensors_file({"wdsr_fast": '{"rgb_mean": [0.5]}'}),
        "rgb_mean must have n_colors=3 values",
    ),
    "torch-metadata-not-a-dict": (with_metadata("WDSRB"), "must be a mapping"),
}


def _bytes_of_valid_safetensors(folder: Path) -> bytes:
    save_model(WDSRB(n_resblocks=1, n_feats=8), folder / "valid.safetensors")
    return (folder / "valid.safetensors").read_bytes()


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_checkpoint_raises_checkpoint_error(tmp_path: Path, case: str) -> None:
    write, expected = CASES[case]
    path = write(tmp_path)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert time.perf_counter() - start < 5.0  # nothing out of proportion was built
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_huge_block_index_builds_nothing(tmp_path: Path, monkeypatch) -> None:
    """A 25 KB file naming block 10,000,000 used to build ten million blocks first."""
    torch.save({**state(1), "body.10000000.body.0.weight_v": torch.zeros(48, 8, 1, 1)},
               tmp_path / "huge.pt")  # fmt: skip
    assert (tmp_path / "huge.pt").stat().st_size < 30_000
    built = []
    real_init = WDSRB.__init__

    def counting_init(self, *args, **kwargs):
        built.append(kwargs.get("n_resblocks", args[1] if len(args) > 1 else None))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(WDSRB, "__init__", counting_init)
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "huge.pt")
    assert built == []


def test_blocks_smaller_than_the_first_are_refused_before_allocating(tmp_path: Path) -> None:
    """Every block is built like the first: later blocks of other shapes are mis-shaped keys,
    found on a model built on the meta device (no memory), not after building the real one."""
    sd = state(3)
    for key in [k for k in sd if k.startswith("body.2.")]:
        sd[key] = sd[key][:1].clone()
    torch.save(sd, tmp_path / "small_blocks.pt")
    with pytest.raises(CheckpointError, match="mis-shaped keys"):
        load_model(tmp_path / "small_blocks.pt")


def test_both_forms_of_weight_norm_for_one_conv(tmp_path: Path) -> None:
    sd = state()
    sd["head.0.parametrizations.weight.original0"] = sd["head.0.weight_g"].clone()
    torch.save(sd, tmp_path / "twice.pt")
    with pytest.raises(CheckpointError, match="holds some weights twice"):
        load_model(tmp_path / "twice.pt")


def test_cli_reports_a_malformed_checkpoint_in_one_line(tmp_path: Path, capsys) -> None:
    from PIL import Image

    from wdsr_fast.app.cli import main

    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    path = CASES["metadata-a-list"][0](tmp_path)
    code = main(["upscale", str(tmp_path / "x.png"), "-o", str(tmp_path / "y.png"),
                 "--weights", str(path)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "not usable WDSR weights" in err[0]
    assert not (tmp_path / "y.png").exists()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_interrupted_save_keeps_the_previous_file(tmp_path: Path, monkeypatch, suffix) -> None:
    """A checkpoint rewritten during training is the old one or the new one, never half."""
    path = tmp_path / f"m{suffix}"
    save_model(WDSRB(n_resblocks=1, n_feats=8), path)
    before = path.read_bytes()
    module = torch if suffix == ".pt" else safetensors.torch
    name = "save" if suffix == ".pt" else "save_file"
    real = getattr(module, name)

    def half_then_fail(obj, target, *args, **kwargs):
        real(obj, target, *args, **kwargs)
        data = Path(target).read_bytes()
        Path(target).write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(module, name, half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        save_model(WDSRB(n_resblocks=2, n_feats=8), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
