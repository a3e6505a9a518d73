"""The errors the command line reports as one line (exit status 1), never as a traceback.

Standard library only: the command line's argument checks raise them before torch is imported.
"""

from __future__ import annotations

__all__ = ["CommandError", "ImageError", "error_line"]


class CommandError(Exception):
    """A failure to report as one line, with exit status 1."""


class ImageError(ValueError):
    """An image or video file that cannot be read, written or used; the message names the file."""


def error_line(command: str, exc: BaseException) -> str:
    """The one line ``wdsr-fast COMMAND`` prints for ``exc``: the first line of its message."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"wdsr-fast {command}: error: {message}"
