"""The ``wdsr-fast`` argument parser.

Standard library only, so ``wdsr-fast --help`` and usage errors answer before torch is imported
(see :mod:`wdsr_fast.app.checks` for what is checked next, still without torch).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["DTYPES", "build_parser", "parse_args"]

DTYPES = ("float32", "float16", "bfloat16")


def _number(kind: Callable[[str], Any], minimum: float, strict: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if strict else '>='} {minimum}, got {text}"
            )
        return value

    return parse


_positive_int = _number(int, 0, strict=True)
_non_negative_int = _number(int, 0, strict=False)
_positive_float = _number(float, 0.0, strict=True)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scale",
        type=_positive_int,
        default=None,
        help="upscaling factor (default: the weights' scale; 2 for the bundled ones)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="checkpoint file (safetensors or torch); default: the bundled weights",
    )
    p.add_argument(
        "--tile",
        type=_positive_int,
        default=512,
        help="largest LR window run at once, in pixels; bounds memory (default 512)",
    )
    p.add_argument(
        "--tile-overlap",
        type=_non_negative_int,
        default=None,
        help="LR pixels of context around each tile (default: the network's "
        "receptive radius, which makes tiling exact)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:1, ... (default: cuda when available, else cpu)",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="float16 and bfloat16 pay off on GPUs; on the CPU float32 is the fast one",
    )


def _add_upscale(commands: Any) -> None:
    p = commands.add_parser(
        "upscale",
        help="super-resolve images and videos",
        description="Super-resolve image files, folders of images, or a video. Grayscale images "
        "come back grayscale; transparency is kept (alpha resized bicubic; formats without "
        "alpha, such as JPEG, drop it and say so); EXIF orientation is applied; images of more "
        "than 8 bits per channel are refused. Videos (.mp4, .mkv, .mov, .webm, .avi; needs "
        "PyAV) keep their frame rate and audio. Every path is checked before anything is "
        "loaded or written: an output that would overwrite an input, or two inputs with one "
        "output, stop the run. Missing output folders are created. Each file is written whole "
        "or not at all. A failed file is reported and the others still run; the exit status "
        "is 1 if any failed.",
    )
    p.add_argument("inputs", nargs="+", help="image or video files, or folders of images")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file (for one input file) or folder (created when missing)",
    )
    p.add_argument(
        "--compare-reference",
        action="store_true",
        help="also time the network on the (first) input image against the authors' "
        "reference model with the same weights, and print both times",
    )
    p.add_argument(
        "--batch",
        type=_positive_int,
        default=4,
        help="video frames run through the network at once (default 4)",
    )
    _add_model_options(p)


def _add_eval(commands: Any) -> None:
    p = commands.add_parser(
        "eval",
        help="PSNR/SSIM against high-resolution images, bicubic as baseline",
        description="Downscale each high-resolution image (MATLAB-compatible bicubic), "
        "super-resolve it, and report PSNR and SSIM of the BT.601 luma, SCALE border pixels "
        "shaved, for bicubic upsampling and for the model.",
    )
    p.add_argument("inputs", nargs="+", help="high-resolution image files or folders")
    _add_model_options(p)


def _add_bench(commands: Any) -> None:
    p = commands.add_parser(
        "bench",
        help="speed and memory: reference vs wdsr_fast on this device",
        description="Inference on one image, one training step, and video frames per second "
        "of WDSR-B, the reference model as written and wdsr_fast side by side, same weights.",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--dtype", choices=DTYPES, default=None, help="default: float16 on CUDA, float32 on CPU"
    )
    p.add_argument(
        "--size",
        type=_positive_int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="LR image size (default: 540 960 on CUDA, 128 128 on CPU)",
    )
    p.add_argument(
        "--batch",
        type=_positive_int,
        default=None,
        help="training batch (default: 16 on CUDA, 4 on CPU)",
    )
    p.add_argument("--patch", type=_positive_int, default=48, help="training LR patch side")
    p.add_argument(
        "--video-size",
        type=_positive_int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="LR video frame size for frames per second (default: 540 960 on CUDA, i.e. "
        "1080p out at x2; 144 256 on CPU)",
    )
    p.add_argument(
        "--video-batch",
        type=_positive_int,
        default=None,
        help="video frames run at once (default: 4 on CUDA, 2 on CPU)",
    )
    p.add_argument("--scale", type=_positive_int, default=2)
    p.add_argument("--n-resblocks", type=_non_negative_int, default=16)
    p.add_argument("--n-feats", type=_positive_int, default=32)
    p.add_argument("--repeats", type=_positive_int, default=3)


def _add_train(commands: Any) -> None:
    p = commands.add_parser(
        "train",
        help="train WDSR-B on high-resolution images",
        description="Train WDSR-B on high-resolution images (files or folders): bicubic-"
        "downscaled random crops with flips, L1 loss, Adam; writes a checkpoint "
        "(safetensors for a .safetensors name) every --checkpoint-every steps and at the end, "
        "with the training state next to it (OUTPUT.resume.pt) for --resume. Runs as it is "
        "under torchrun --nproc-per-node N (DDP: each process takes its share of every "
        "batch; the first one alone writes files and logs).",
    )
    p.add_argument("inputs", nargs="+", help="high-resolution image files or folders")
    p.add_argument("-o", "--output", required=True, help="weights file to write")
    p.add_argument("--scale", type=_positive_int, default=2)
    p.add_argument("--n-feats", type=_positive_int, default=32)
    # The defaults are the recipe of the bundled x2 weights.
    p.add_argument("--n-resblocks", type=_non_negative_int, default=16)
    p.add_argument("--steps", type=_positive_int, default=2400)
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=16,
        help="global batch, shared out among torchrun's processes (default 16)",
    )
    p.add_argument("--patch-size", type=_positive_int, default=32, help="LR patch side")
    p.add_argument("--lr", type=_positive_float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=_non_negative_int, default=200)
    p.add_argument("--log-every", type=_positive_int, default=50)
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--no-bicubic-init",
        action="store_true",
        help="keep the default initialisation instead of starting from bicubic",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the training state saved next to OUTPUT (OUTPUT.resume.pt): "
        "weights, optimizer, step and random state; the other options must be as before",
    )
    p.add_argument(
        "--val",
        default=None,
        metavar="DIR",
        help="held-out high-resolution images: PSNR-Y is reported every --val-every steps",
    )
    p.add_argument("--val-every", type=_positive_int, default=200, help="default 200")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``wdsr-fast`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="wdsr-fast",
        description="Fast WDSR super-resolution: upscale, evaluate, benchmark, train.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_upscale(commands)
    _add_eval(commands)
    _add_bench(commands)
    commands.add_parser(
        "info",
        help="versions, devices, backends, build information",
        description="Versions, devices, backends and the extension's build.",
    )
    _add_train(commands)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` (default: ``sys.argv[1:]``); usage errors and ``--help`` exit here."""
    return build_parser().parse_args(argv)
