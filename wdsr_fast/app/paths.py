"""Input and output paths of the command line: what each input becomes, checked before any work.

Standard library only (Pillow's table of formats is imported when an image output name is
checked), so the command line checks every path before torch is imported and before any
weights load.

Planning never touches the file system; :func:`make_output_folders` then creates the folders the
plan needs, just before the first output is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from wdsr_fast.app.errors import ImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "check_creatable_folder",
    "check_plan",
    "file_identities",
    "is_video",
    "list_images",
    "make_output_folders",
    "output_format",
    "plan_outputs",
    "resume_path",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi")

_IMAGE_NAMES = ", ".join(IMAGE_EXTENSIONS)
_VIDEO_NAMES = ", ".join(VIDEO_EXTENSIONS)


def _extension(path: str | os.PathLike) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video file (by its extension, case-insensitive)."""
    return _extension(path) in VIDEO_EXTENSIONS


def output_format(path: str | os.PathLike) -> str:
    """Pillow's format name (``"PNG"``, ``"JPEG"``, ...) for the extension of ``path``;
    ImageError naming the file and the extension when Pillow writes no format of that name."""
    from PIL import Image  # Pillow's format table; a fast import

    path = os.fspath(path)
    extension = _extension(path)
    if not extension:
        raise ImageError(
            f"{path}: no file extension, so no image format; give one of {_IMAGE_NAMES} "
            f"(videos: {_VIDEO_NAMES}), or an existing folder"
        )
    if extension in VIDEO_EXTENSIONS:
        raise ImageError(f"{path}: a video extension for an image; give one of {_IMAGE_NAMES}")
    image_format = Image.registered_extensions().get(extension)
    if image_format is None or image_format not in Image.SAVE:
        raise ImageError(
            f"{path}: no image format for the extension {extension!r}; supported: "
            f"{_IMAGE_NAMES} and the other formats Pillow writes (videos: {_VIDEO_NAMES})"
        )
    return image_format


def _check_video_output(path: str) -> None:
    if _extension(path) not in VIDEO_EXTENSIONS:
        shown = repr(_extension(path)) if _extension(path) else "none"
        raise ImageError(
            f"{path}: a video needs a video output; extension {shown} is not one of {_VIDEO_NAMES}"
        )


def resume_path(weights: str | os.PathLike) -> str:
    """The training-state file ``train`` keeps next to its weights file, for ``--resume``."""
    return os.fspath(weights) + ".resume.pt"


def file_identities(path: str | os.PathLike) -> set[object]:
    """Keys under which ``path`` and every other name of the same file compare equal: its
    resolved path and, for an existing file, its (device, inode)."""
    path = os.fspath(path)
    keys: set[object] = {os.path.normcase(os.path.realpath(path))}
    if os.path.exists(path):
        stat = os.stat(path)
        keys.add((stat.st_dev, stat.st_ino))
    return keys


def list_images(folder: str | os.PathLike) -> list[str]:
    """The image files (by extension, case-insensitive) directly inside ``folder``, sorted."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ImageError(f"{folder}: no such folder")
    return sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, name))
    )


def check_creatable_folder(folder: str | os.PathLike, output: str | os.PathLike) -> None:
    """ImageError naming ``output`` unless ``folder`` exists or can be created."""
    folder = os.path.abspath(os.fspath(folder))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ImageError(
            f"{os.fspath(output)}: cannot create the output folder {folder}: {existing} is a "
            "file, not a folder"
        )
    if existing != folder and not os.access(existing, os.W_OK | os.X_OK):
        raise ImageError(
            f"{os.fspath(output)}: cannot create the output folder {folder}: no permission to "
            f"write in {existing}"
        )


def check_plan(pairs: Sequence[tuple[str, str]]) -> None:
    """ImageError (one line) unless every output of the (input, output) ``pairs`` has a format
    of its input's kind (image or video), is no input of the plan, and is the output of one
    input only."""
    inputs: dict[object, str] = {}
    for source, _ in pairs:
        inputs.update(dict.fromkeys(file_identities(source), source))
    outputs: dict[object, str] = {}
    for source, target in pairs:
        if is_video(source):
            _check_video_output(target)
        else:
            output_format(target)
        keys = file_identities(target)
        overwritten = next((inputs[k] for k in keys if k in inputs), None)
        if overwritten is not None:
            raise ImageError(
                f"{target}: the output for {source} would overwrite the input {overwritten}; "
                "nothing was written (choose another output folder or name)"
            )
        other = next((outputs[k] for k in keys if k in outputs), None)
        if other is not None:
            raise ImageError(
                f"{target}: the outputs for {other} and {source} would both be written there; "
                "nothing was written (give inputs of different names, or upscale them apart)"
            )
        outputs.update(dict.fromkeys(keys, source))


def _names_a_folder(inputs: Sequence[str], output: str) -> bool:
    """Whether OUTPUT is a folder: several inputs, a folder input, an existing folder, or a
    name ending in a path separator."""
    return (
        len(inputs) > 1
        or os.path.isdir(inputs[0])
        or os.path.isdir(output)
        or output.endswith(("/", os.sep))
    )


def plan_outputs(
    inputs: Sequence[str | os.PathLike], output: str | os.PathLike
) -> list[tuple[str, str]]:
    """(input file, output file) pairs for ``upscale INPUT... -o OUTPUT``, checked, without
    touching the file system.

    One input file and an OUTPUT that is no folder: OUTPUT is the file to write, of the input's
    kind (an image or a video extension). Otherwise (several inputs, a folder among them, an
    existing folder, or a name ending in ``/``) OUTPUT is a folder and each result keeps its
    input's file name; a folder input contributes the image files directly inside it. Missing
    output folders are allowed when they can be created (:func:`make_output_folders`).
    Every input must exist. The plan is checked by :func:`check_plan` before it is returned.
    """
    inputs = [os.fspath(path) for path in inputs]
    output = os.fspath(output)
    if not inputs:
        raise ImageError("no input given")
    for path in inputs:
        if not os.path.exists(path):
            raise ImageError(f"{path}: no such file or folder")
    if not _names_a_folder(inputs, output):
        pairs = [(inputs[0], output)]
        check_plan(pairs)
        check_creatable_folder(os.path.dirname(os.path.abspath(output)), output)
        return pairs
    if os.path.exists(output) and not os.path.isdir(output):
        raise ImageError(
            f"{output}: is a file; several inputs or a folder of inputs need an output folder"
        )
    if not os.path.exists(output) and _extension(output) in (*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS):
        raise ImageError(
            f"{output}: several inputs or a folder of inputs need an output folder, and this "
            "names a file; give a folder (it is created when missing)"
        )
    check_creatable_folder(output, output)
    files: list[str] = []
    for path in inputs:
        if os.path.isdir(path):
            found = list_images(path)
            if not found:
                raise ImageError(f"{path}: no image files in this folder")
            files += found
        else:
            files.append(path)
    pairs = [(path, os.path.join(output, os.path.basename(path))) for path in files]
    check_plan(pairs)
    return pairs


def make_output_folders(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Create the missing folders of the plan's outputs; returns the folders created."""
    created = []
    for folder in dict.fromkeys(os.path.dirname(os.path.abspath(t)) for _, t in pairs):
        if not os.path.isdir(folder):
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise ImageError(f"{folder}: cannot create the output folder ({exc})") from None
            created.append(folder)
    return created
