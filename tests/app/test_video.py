"""``wdsr-fast upscale clip.mp4 -o clip_x2.mp4``: videos through PyAV, on clips made here.

Frames are upscaled in batches and encoded as a stream; the frame rate and the audio track are
kept; bad input is one line and exit status 1; an interrupted or failed run leaves the old file
or nothing under the output's name, and no temporary file.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

av = pytest.importorskip("av", reason="videos need PyAV, the video extra: pip install av")

from wdsr_fast import WDSRB  # noqa: E402
from wdsr_fast.app import tiling, video  # noqa: E402
from wdsr_fast.app.cli import main  # noqa: E402
from wdsr_fast.app.errors import CommandError  # noqa: E402
from wdsr_fast.app.training import init_as_bicubic  # noqa: E402
from wdsr_fast.app.upscaling import UpscaleJob  # noqa: E402
from wdsr_fast.interop.checkpoint import save_model  # noqa: E402

FRAMES, HEIGHT, WIDTH, RATE, SAMPLE_RATE = 12, 24, 32, 10, 8000


def frame_pixels(i: int) -> np.ndarray:
    """Frame ``i``: red grows with i (so frame order shows), a green left half."""
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pixels[..., 0] = 20 * i
    pixels[:, : WIDTH // 2, 1] = 200
    return pixels


def make_clip(path: Path, audio: bool = True, video_track: bool = True, **options: str) -> Path:
    """A short H.264 clip (with an AAC tone), written by PyAV."""
    with av.open(str(path), "w", options=options) as container:
        if video_track:
            stream = container.add_stream("libx264", rate=RATE)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if audio:
            sound = container.add_stream("aac", rate=SAMPLE_RATE)
            sound.layout = "mono"
        if video_track:
            for i in range(FRAMES):
                frame = av.VideoFrame.from_ndarray(frame_pixels(i), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        if audio:
            t = np.arange(SAMPLE_RATE * FRAMES // RATE) / SAMPLE_RATE
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "tiny_x2.safetensors"
    torch.manual_seed(0)
    model = WDSRB(scale=2, n_resblocks=1, n_feats=8)
    init_as_bicubic(model, tail_gain=0.0)  # near bicubic: outputs follow the frames
    save_model(model, path)
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def streams(path: Path) -> dict:
    with av.open(str(path)) as container:
        picture, sound = container.streams.video[0], container.streams.audio
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return {
            "size": (picture.codec_context.width, picture.codec_context.height),
            "rate": picture.average_rate,
            "frames": frames,
            "audio": [(s.codec_context.name, s.codec_context.rate) for s in sound],
            "seconds": float(container.duration or 0) / av.time_base,
        }


@pytest.mark.parametrize("extension", [".mp4", ".webm"])
def test_upscale_keeps_frames_rate_and_audio(capsys, clip, tmp_path, weights, extension):
    output = tmp_path / f"clip_x2{extension}"
    code, out, err = run(capsys, "upscale", clip, "-o", output, "--weights", weights)
    assert code == 0, err
    assert f"wrote {output} (64x48, {FRAMES} frames, 1 audio track(s) kept)" in out
    source, result = streams(clip), streams(output)
    assert result["size"] == (2 * WIDTH, 2 * HEIGHT)
    assert result["rate"] == RATE and len(result["frames"]) == FRAMES
    assert len(result["audio"]) == 1
    if extension == ".mp4":  # copied as it is; WebM cannot hold AAC and gets Opus
        assert result["audio"] == source["audio"]
    assert abs(result["seconds"] - source["seconds"]) < 0.15
    reds = [frame[..., 0].mean() for frame in result["frames"]]
    assert all(b > a for a, b in zip(reds, reds[1:], strict=False)), reds  # order kept


def test_frames_match_the_network_on_each_decoded_frame(capsys, clip, tmp_path, weights):
    from wdsr_fast.app.pretrained import load_weights

    output = tmp_path / "x2.mkv"
    assert run(capsys, "upscale", clip, "-o", output, "--weights", weights)[0] == 0
    decoded = torch.from_numpy(np.stack(streams(clip)["frames"])).permute(0, 3, 1, 2)
    expected = tiling.upscale_tiled(load_weights(weights), decoded).permute(0, 2, 3, 1)
    for got, want in zip(streams(output)["frames"], expected.numpy(), strict=True):
        # H.264 at its default quality, and the colour conversions: a few grey levels
        assert np.abs(got.astype(int) - want.astype(int)).mean() < 4


def test_frames_go_through_in_batches(capsys, clip, tmp_path, weights):
    sizes = []
    real = tiling.upscale_tiled

    def recording(model, image, *args, **kwargs):
        sizes.append(image.shape[0])
        return real(model, image, *args, **kwargs)

    with mock.patch.object(video, "upscale_tiled", recording):
        code, _, err = run(
            capsys, "upscale", clip, "-o", tmp_path / "o.mp4", "--weights", weights, "--batch", "5"
        )
    assert code == 0, err
    assert sizes == [5, 5, 2]  # never more than one batch of frames at a time


def test_a_clip_without_audio(capsys, tmp_path, weights):
    silent = make_clip(tmp_path / "silent.mov", audio=False)
    code, out, err = run(capsys, "upscale", silent, "-o", tmp_path / "o.mov", "--weights", weights)
    assert code == 0, err
    assert "audio track" not in out and streams(tmp_path / "o.mov")["audio"] == []


@pytest.mark.parametrize("kind", ["text", "truncated", "truncated-faststart", "audio-only"])
def test_bad_input_is_one_line_and_writes_nothing(capsys, clip, tmp_path, weights, kind):
    folder = tmp_path / "work"
    folder.mkdir()
    bad = folder / "bad.mp4"
    if kind == "text":
        bad.write_text("not a video")
    elif kind == "audio-only":
        make_clip(bad, video_track=False)
    else:
        options = {"movflags": "faststart"} if kind == "truncated-faststart" else {}
        whole = make_clip(tmp_path / "whole.mp4", **options).read_bytes()
        bad.write_bytes(whole[: int(len(whole) * 0.6)])
    (folder / "out.mp4").write_bytes(b"the user's file")
    before = files(folder)
    code, _, err = run(capsys, "upscale", bad, "-o", folder / "out.mp4", "--weights", weights)
    assert code == 1
    expected = {
        "text": "not a readable video",
        "truncated": "not a readable video",
        "truncated-faststart": "ends early",
        "audio-only": "no video stream",
    }[kind]
    one_error_line(err, "bad.mp4", expected)
    assert files(folder) == before


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError("device lost")])
def test_an_interrupted_run_leaves_the_old_file_and_no_temporary(
    capsys, clip, tmp_path, weights, failure
):
    (tmp_path / "out.mp4").write_bytes(b"the user's file")
    before = files(tmp_path)
    calls = []

    def failing(model, image, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise failure
        return tiling.upscale_tiled(model, image, *args, **kwargs)

    with mock.patch.object(video, "upscale_tiled", failing):
        code, _, err = run(
            capsys, "upscale", clip, "-o", tmp_path / "out.mp4", "--weights", weights,
            "--batch", "4",
        )  # fmt: skip
    assert code == (130 if failure is KeyboardInterrupt else 1), err
    assert files(tmp_path) == before  # the old file, whole; no temporary file


def test_outputs_must_be_videos_and_are_checked_first(capsys, clip, tmp_path, weights):
    code, _, err = run(capsys, "upscale", clip, "-o", tmp_path / "o.png", "--weights", weights)
    assert code == 1
    one_error_line(err, "o.png", "a video needs a video output", ".mp4")
    code, _, err = run(capsys, "upscale", clip, "-o", tmp_path / "o", "--weights", weights)
    assert code == 1
    one_error_line(err, "extension none", ".mkv")
    assert os.listdir(tmp_path) == []


def test_missing_pyav_is_one_line(capsys, clip, tmp_path, weights, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a)
    )
    code, _, err = run(capsys, "upscale", clip, "-o", tmp_path / "o.mp4", "--weights", weights)
    assert code == 1
    one_error_line(err, "needs PyAV", "pip install av")
    monkeypatch.undo()

    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    with pytest.raises(CommandError, match="pip install av"):
        video.upscale_video(None, str(clip), str(tmp_path / "o.mp4"), UpscaleJob())
