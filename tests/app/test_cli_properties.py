"""Property-based tests of ``wdsr-fast upscale`` on the file system: no user file is lost.

Hypothesis draws folders of good and broken images, the inputs (files and folders, repeats
allowed) and the output folder (a fresh one or an input folder), and failures in the middle of
writing. Whatever is drawn: a plan in which an output is an input or two outputs coincide stops
the run with one line and exit status 1 and changes nothing; otherwise every good image is
written, every bad one is reported and skipped, the exit status says whether any failed, and
no file other than the outputs changes; an interrupted write leaves the old file or nothing
under the final name, and no temporary file. Budgets and the derandomised profile:
tests/helpers/hypothesis_profiles.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from unittest import mock

import pytest

pytest.importorskip("hypothesis", reason="hypothesis is in the test extras")

import numpy as np  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from wdsr_fast import WDSRB  # noqa: E402
from wdsr_fast.app.cli import main  # noqa: E402
from wdsr_fast.interop.checkpoint import save_model  # noqa: E402

from helpers import hypothesis_profiles  # noqa: E402

hypothesis_profiles.load()

NAMES = ("a.png", "b.png", "c.jpg")
FOLDERS = ("d0", "d1")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "tiny_x2.safetensors"
    save_model(WDSRB(scale=2, n_resblocks=0, n_feats=2), path)
    return str(path)


def write_image(path: Path, good: bool, seed: int) -> None:
    if good:
        pixels = np.random.default_rng(seed).integers(0, 256, (3, 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
    else:
        path.write_bytes(b"\x89PNG\r\n\x1a\n broken" if path.suffix == ".png" else b"\xff\xd8")


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def run(*argv: object) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    return code, err.getvalue().strip().splitlines()


@st.composite
def batches(draw: st.DrawFn) -> dict:
    """Folders of images (name -> good?), the inputs and the output folder."""
    files = {
        folder: draw(st.dictionaries(st.sampled_from(NAMES), st.booleans(), max_size=3))
        for folder in FOLDERS
    }
    candidates = list(FOLDERS) + [f"{d}/{n}" for d in FOLDERS for n in files[d]]
    inputs = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=4))
    return {"files": files, "inputs": inputs, "output": draw(st.sampled_from(["out", *FOLDERS]))}


def expected_plan(batch: dict) -> tuple[list[tuple[str, str]], bool]:
    """(input, output) pairs of the batch (paths relative to the root), and whether the plan
    must be refused (an empty input folder, an output that is an input, a repeated output)."""
    pairs = []
    for item in batch["inputs"]:
        if item in FOLDERS:
            names = sorted(batch["files"][item])
            if not names:
                return [], True
            pairs += [(f"{item}/{n}", f"{batch['output']}/{n}") for n in names]
        else:
            pairs.append((item, f"{batch['output']}/{item.split('/')[1]}"))
    sources = {s for s, _ in pairs}
    targets = [t for _, t in pairs]
    refused = bool(sources & set(targets)) or len(set(targets)) < len(targets)
    return pairs, refused


@hypothesis_profiles.budget(40)
@given(batch=batches())
def test_batches_lose_no_file(weights: str, batch: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name in (*FOLDERS, "out"):
            (root / name).mkdir()
        for i, (d, files) in enumerate(batch["files"].items()):
            for j, (name, good) in enumerate(files.items()):
                write_image(root / d / name, good, 10 * i + j)
        before = snapshot(root)
        code, err = run("upscale", *(root / i for i in batch["inputs"]), "-o",
                        root / batch["output"], "--weights", weights)  # fmt: skip
        pairs, refused = expected_plan(batch)
        after = snapshot(root)
        assert all("Traceback" not in line for line in err)
        if refused:
            assert code == 1 and len(err) == 1, err
            assert after == before
            return
        good = {s: before[s] != b"\xff\xd8" and not before[s].endswith(b" broken")
                for s, _ in pairs}  # fmt: skip
        assert code == (0 if all(good.values()) else 1), err
        bad = sum(not g for g in good.values())
        assert len(err) == bad + (1 if bad and len(pairs) > 1 else 0), err  # and the summary
        targets = {t: s for s, t in pairs}
        for path, content in before.items():
            if path not in targets:
                assert after[path] == content, f"{path} changed"
        for target, source in targets.items():
            if good[source]:
                with Image.open(root / target) as image:
                    assert image.size == (8, 6)
            else:
                assert after.get(target) == before.get(target), f"{target} changed"
        assert not [p for p in after if os.path.basename(p).startswith(".")]


@hypothesis_profiles.budget(30)
@given(
    n_files=st.integers(1, 3),
    existing=st.lists(st.booleans(), min_size=3, max_size=3),
    failing=st.integers(0, 2),
    kept=st.floats(0.0, 1.0),
    interrupt=st.booleans(),
)
def test_interrupted_writes_leave_old_file_or_nothing(
    weights: str, n_files: int, existing: list, failing: int, kept: float, interrupt: bool
) -> None:
    failing = min(failing, n_files - 1)
    names = [f"{k}.png" for k in "abc"[:n_files]]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "in").mkdir(), (root / "out").mkdir()
        for i, name in enumerate(names):
            write_image(root / "in" / name, True, i)
            if existing[i]:
                (root / "out" / name).write_bytes(f"user file {i}".encode())
        before = snapshot(root)
        real_save = Image.Image.save
        calls = []

        def save(self, fp, *args, **kwargs):
            if isinstance(fp, io.BytesIO):
                return real_save(self, fp, *args, **kwargs)
            calls.append(fp)
            real_save(self, fp, *args, **kwargs)
            if len(calls) == failing + 1:
                fp.truncate(int(fp.tell() * kept))
                raise KeyboardInterrupt if interrupt else OSError("device full")

        with mock.patch.object(Image.Image, "save", save):
            code, _ = run("upscale", root / "in", "-o", root / "out", "--weights", weights)
        after = snapshot(root)
        assert code == (130 if interrupt else 1)
        for i, name in enumerate(names):
            path = f"out/{name}"
            written = i < failing or (i > failing and not interrupt)
            if written:
                with Image.open(root / path) as image:
                    assert image.size == (8, 6)
            else:
                assert after.get(path) == before.get(path), f"{path}: half-written or lost"
        assert set(after) <= set(before) | {f"out/{n}" for n in names}, "stray files left"
