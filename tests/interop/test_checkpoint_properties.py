"""Property-based tests of load_model on damaged and hostile checkpoints.

Hypothesis mutates valid checkpoints, structurally (keys deleted, renamed to other block
indices, tensors replaced by others of random rank, size and dtype, expanded views, entries
that are no tensors, random metadata) and byte by byte (truncation, overwritten bytes), in
torch and safetensors files. Whatever the file, load_model returns a WDSR model or raises
CheckpointError naming the file, quickly: never another kind of error, never a model out of
proportion to the file. Budgets and the derandomised profile:
tests/helpers/hypothesis_profiles.py.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is in the test extras")

import safetensors.torch  # noqa: E402
import torch  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from wdsr_fast import WDSRA, WDSRB  # noqa: E402
from wdsr_fast.interop.checkpoint import CheckpointError, load_model, save_model  # noqa: E402

from helpers import hypothesis_profiles  # noqa: E402

hypothesis_profiles.load()

DTYPES = [torch.float32, torch.float16, torch.float64, torch.int64, torch.bool]
SETTINGS = ("architecture", "scale", "n_resblocks", "n_feats", "n_colors", "expand", "linear",
            "block_feats", "res_scale", "rgb_mean", "rgb_range", "rgb_std")  # fmt: skip
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**8) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6,
)  # fmt: skip


def valid_state(kind: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = WDSRA(n_resblocks=2, n_feats=4, block_feats=6) if kind == "A" else WDSRB(
        n_resblocks=2, n_feats=4)  # fmt: skip
    return {k: v.clone() for k, v in model.state_dict().items()}


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    shape = draw(st.lists(st.integers(0, 4), max_size=5))
    dtype = draw(st.sampled_from(DTYPES))
    value = torch.ones(shape, dtype=dtype)
    if draw(st.booleans()) and value.dim() > 0:  # an expanded view: 1000x the stored rows
        value = value[:1].expand(shape[0] * 1000, *shape[1:])
    return value


@st.composite
def mutated_states(draw: st.DrawFn) -> dict:
    state: dict = valid_state(draw(st.sampled_from(["A", "B"])))
    for _ in range(draw(st.integers(1, 3))):
        keys = sorted(state)
        action = draw(st.sampled_from(["delete", "replace", "renumber", "add", "not-a-tensor"]))
        key = draw(st.sampled_from(keys)) if keys else "head.0.weight_v"
        if action == "delete":
            state.pop(key, None)
        elif action == "replace":
            state[key] = draw(tensors())
        elif action == "renumber" and key.startswith("body."):
            index = draw(st.integers(0, 10**7))
            rest = key.split(".", 2)[2]
            state[f"body.{index}.{rest}"] = state.pop(key)
        elif action == "add":
            block, layer = draw(st.integers(0, 10**7)), draw(st.integers(0, 4))
            state[f"body.{block}.body.{layer}.weight_v"] = draw(tensors())
        elif action == "not-a-tensor":
            state[key] = draw(st.sampled_from([3, "x", [1.0], None]))
    return state


def check_loads_or_refuses(path: Path) -> None:
    start = time.perf_counter()
    try:
        model = load_model(path)
    except CheckpointError as error:
        assert str(error).startswith(f"{path}: "), str(error)
    else:
        assert isinstance(model, WDSRA | WDSRB)
        assert sum(p.numel() for p in model.parameters()) <= 10 * path.stat().st_size
    assert time.perf_counter() - start < 10.0


@hypothesis_profiles.budget(80)
@given(
    state=mutated_states(),
    metadata=st.none() | st.dictionaries(st.sampled_from(SETTINGS), JSON_VALUES, max_size=3),
    as_safetensors=st.booleans(),
)
def test_mutated_checkpoints_load_or_raise_checkpoint_error(state, metadata, as_safetensors):
    with tempfile.TemporaryDirectory() as folder:
        if as_safetensors:
            tensors_only = {k: v.contiguous() for k, v in state.items()
                            if isinstance(v, torch.Tensor)}  # fmt: skip
            header = None if metadata is None else {"wdsr_fast": json.dumps(metadata)}
            path = Path(folder) / "m.safetensors"
            safetensors.torch.save_file(tensors_only, path, metadata=header)
        else:
            path = Path(folder) / "m.pt"
            if metadata is not None:
                state = _with_torch_metadata(state, metadata)
            torch.save(state, path)
        check_loads_or_refuses(path)


def _with_torch_metadata(state: dict, metadata: dict) -> dict:
    """``state`` as a state dict whose ``_metadata`` records ``metadata`` as save_model does."""
    from collections import OrderedDict

    ordered = OrderedDict(state)
    ordered._metadata = OrderedDict({"": {"wdsr_fast": metadata}})  # type: ignore[attr-defined]
    return ordered


@hypothesis_profiles.budget(80)
@given(
    kind=st.sampled_from(["A", "B"]),
    suffix=st.sampled_from([".pt", ".safetensors"]),
    cut=st.none() | st.floats(0.0, 1.0),
    overwrites=st.lists(st.tuples(st.floats(0.0, 1.0), st.binary(min_size=1, max_size=8)),
                        max_size=3),
)  # fmt: skip
def test_damaged_files_load_or_raise_checkpoint_error(kind, suffix, cut, overwrites):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"m{suffix}"
        model = WDSRA(n_resblocks=1, n_feats=4, block_feats=6) if kind == "A" else WDSRB(
            n_resblocks=1, n_feats=4)  # fmt: skip
        save_model(model, path)
        data = bytearray(path.read_bytes())
        for where, patch in overwrites:
            at = int(where * (len(data) - len(patch)))
            data[at : at + len(patch)] = patch
        if cut is not None:
            data = data[: int(cut * len(data))]
        path.write_bytes(bytes(data))
        check_loads_or_refuses(path)
