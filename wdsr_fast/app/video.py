"""Upscaling video files with PyAV: decode, upscale in batches, encode, as a stream.

Frames are decoded one by one, gathered into batches of ``batch`` frames, run through the
network (tiled, see :mod:`wdsr_fast.app.tiling`) on the job's device and dtype, and encoded at
once, so at most one batch of frames is held in memory whatever the clip's length. Each frame
keeps its timestamp, so the frame rate (constant or variable) is kept. Audio tracks are copied
as they are, or re-encoded when the output container cannot hold their codec.

The output is written to a temporary file next to it and renamed into place only once complete:
an interrupted or failed run leaves the old file or nothing under the output's name.

PyAV (``pip install av``) is imported on first use; without it, :class:`CommandError` says how
to install it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from wdsr_fast.app.checks import PYAV_MISSING
from wdsr_fast.app.errors import CommandError, ImageError
from wdsr_fast.app.paths import check_plan
from wdsr_fast.app.tiling import upscale_tiled

__all__ = ["VideoWritten", "upscale_video"]

# extension -> (container format, video codec, audio codec for tracks that cannot be copied)
_OUTPUTS = {
    ".mp4": ("mp4", "libx264", "aac"),
    ".m4v": ("mp4", "libx264", "aac"),
    ".mov": ("mov", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "aac"),
    ".webm": ("webm", "libvpx-vp9", "libopus"),
    ".avi": ("avi", "mpeg4", "libmp3lame"),
}


@dataclass(frozen=True)
class VideoWritten:
    """What :func:`upscale_video` wrote: frames, frame size, audio tracks kept."""

    frames: int
    width: int
    height: int
    audio_tracks: int


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        raise CommandError(PYAV_MISSING) from None
    return av


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words for ``exc`` (without PyAV's errno and file name), or its message."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


class _Writer:
    """The output container: one upscaled video stream, and the input's audio tracks."""

    def __init__(self, av: Any, path: str, kind: str, source: Any, video: Any, scale: int):
        container_format, video_codec, audio_codec = _OUTPUTS[kind]
        self.av = av
        self.container = av.open(path, "w", format=container_format)
        width, height = video.codec_context.width * scale, video.codec_context.height * scale
        self.rate = video.average_rate or video.guessed_rate or Fraction(25)
        self.video = self.container.add_stream(video_codec, rate=self.rate)
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        # The input's timestamps, kept (variable frame rates too); AVI counts frames instead.
        self.time_base = 1 / self.rate if container_format == "avi" else video.time_base
        self.video.time_base = self.video.codec_context.time_base = self.time_base
        self.count = 0
        self.audio: dict[Any, tuple[Any, bool]] = {}  # input stream -> (output stream, copied)
        for stream in source.streams.audio:
            if stream.codec_context.name in self.container.supported_codecs:
                self.audio[stream] = (self.container.add_stream_from_template(stream), True)
            else:
                out = self.container.add_stream(audio_codec, rate=stream.codec_context.rate)
                out.layout = stream.codec_context.layout
                self.audio[stream] = (out, False)

    def audio_packet(self, packet: Any) -> None:
        out, copied = self.audio[packet.stream]
        if copied:
            if packet.dts is not None:  # demuxers end each stream with an empty packet
                packet.stream = out
                self.container.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            self.container.mux(out.encode(frame))

    def frames(self, pixels: torch.Tensor, sources: list[Any]) -> None:
        """Encode (N, 3, H, W) uint8 ``pixels``, timed as the decoded ``sources``."""
        images = pixels.permute(0, 2, 3, 1).contiguous().numpy()
        for image, source in zip(images, sources, strict=True):
            frame = self.av.VideoFrame.from_ndarray(image, format="rgb24")
            seconds = source.pts * source.time_base if source.pts is not None else None
            if seconds is None:  # no timestamp: the frame's place at the nominal rate
                seconds = self.count / self.rate
            frame.pts, frame.time_base = round(seconds / self.time_base), self.time_base
            self.container.mux(self.video.encode(frame))
            self.count += 1

    def finish(self) -> None:
        self.container.mux(self.video.encode(None))
        for out, copied in self.audio.values():
            if not copied:
                self.container.mux(out.encode(None))
        self.container.close()


def _batches(source: Any, video: Any, writer: _Writer, batch: int) -> Iterator[list[Any]]:
    """Batches of decoded video frames, muxing the audio packets met on the way."""
    frames: list[Any] = []
    for packet in source.demux(video, *writer.audio):
        if packet.stream.type == "audio":
            writer.audio_packet(packet)
            continue
        for frame in packet.decode():
            frames.append(frame)
            if len(frames) == batch:
                yield frames
                frames = []
    if frames:
        yield frames


def _open_input(av: Any, path: str) -> tuple[Any, Any]:
    try:
        source = av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise ImageError(f"{path}: not a readable video ({_reason(exc)})") from None
    if not source.streams.video:
        source.close()
        raise ImageError(f"{path}: no video stream in this file")
    video = source.streams.video[0]
    if video.codec_context is None or not video.codec_context.width:
        source.close()
        raise ImageError(f"{path}: the video stream cannot be decoded here (unknown codec)")
    video.thread_type = "AUTO"
    return source, video


def _transcode(
    av: Any,
    source: Any,
    video: Any,
    temporary: str,
    names: tuple[str, str],
    model: nn.Module,
    job: Any,
    batch: int,
    progress: bool,
) -> VideoWritten:
    path, target = names
    kind = os.path.splitext(target)[1].lower()
    writer = _Writer(av, temporary, kind, source, video, model.scale)
    count = 0
    bar = tqdm(
        total=video.frames or None,
        desc=os.path.basename(path),
        unit="frame",
        disable=None if progress else True,
        leave=False,
    )
    try:
        for frames in _batches(source, video, writer, batch):
            pixels = torch.stack(
                [torch.from_numpy(f.to_ndarray(format="rgb24")) for f in frames]
            ).permute(0, 3, 1, 2)
            out = upscale_tiled(model, pixels, job.tile, job.overlap, job.device, job.dtype)
            writer.frames(out, frames)
            count += len(frames)
            bar.update(len(frames))
        writer.finish()
    finally:
        bar.close()
        writer.container.close()
    if count == 0:
        raise ImageError(f"{path}: no video frame could be decoded")
    if video.frames and count < video.frames:
        raise ImageError(
            f"{path}: the video ends early (decoded {count} of {video.frames} frames); the file "
            f"is probably truncated; {target} was not written"
        )
    return VideoWritten(count, writer.video.width, writer.video.height, len(writer.audio))


def upscale_video(
    model: nn.Module, source: str, target: str, job: Any, batch: int = 4, progress: bool = False
) -> VideoWritten:
    """Super-resolve the video file ``source`` into ``target`` (written whole or not at all).

    ``job`` is an :class:`~wdsr_fast.app.upscaling.UpscaleJob`; ``batch`` frames run at once.
    Bad input (not a video, no video stream, an unknown codec, a truncated file) raises an
    ImageError naming the file.
    """
    av = _import_av()
    if model.n_colors != 3:
        raise ImageError(f"{source}: videos need 3-channel (RGB) weights")
    check_plan([(source, target)])
    folder, name = os.path.split(os.path.abspath(target))
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    input_container, video = _open_input(av, source)
    try:
        try:
            written = _transcode(
                av,
                input_container,
                video,
                temporary,
                (source, target),
                model,
                job,
                batch,
                progress,
            )
        except av.error.FFmpegError as exc:
            raise ImageError(f"{source}: cannot upscale this video ({_reason(exc)})") from None
        os.replace(temporary, target)
        return written
    finally:
        input_container.close()
        if os.path.exists(temporary):
            os.remove(temporary)
