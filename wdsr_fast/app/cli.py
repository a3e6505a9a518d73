"""The ``wdsr-fast`` command line (also ``python -m wdsr_fast``).

Subcommands ``upscale``, ``eval``, ``bench``, ``info`` and ``train``; ``wdsr-fast CMD --help``
describes each. This module parses arguments and reports errors; the work lives in
:mod:`wdsr_fast.app.upscaling`, :mod:`wdsr_fast.app.evaluation`, :mod:`wdsr_fast.app.measure`,
:mod:`wdsr_fast.app.info` and :mod:`wdsr_fast.app.training`. Bad input ends with one line on stderr
and exit status 1 (2 for a usage error), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main"]

_DTYPES = ("float32", "float16", "bfloat16")


class CommandError(Exception):
    """A failure to report as one line, with exit status 1."""


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
    p.add_argument("--dtype", choices=_DTYPES, default="float32")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wdsr-fast", description="Fast WDSR super-resolution: upscale, evaluate, benchmark."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "upscale",
        help="super-resolve images",
        description="Super-resolve image files or folders of images. Grayscale images come "
        "back grayscale; transparency is kept (alpha resized bicubic; formats without alpha, "
        "such as JPEG, drop it and say so); EXIF orientation is applied; images of more than 8 "
        "bits per channel are refused. Every output path is checked before anything is "
        "written: an output that would overwrite an input, or two inputs with one output, "
        "stop the run. Each file is written whole or not at all. A failed file is reported "
        "and the others still run; the exit status is 1 if any failed.",
    )
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument(
        "-o", "--output", required=True, help="output file (for one input file) or existing folder"
    )
    p.add_argument(
        "--compare-reference",
        action="store_true",
        help="also time the network on the (first) input against the authors' reference "
        "model with the same weights, and print both times",
    )
    _add_model_options(p)

    p = commands.add_parser(
        "eval",
        help="PSNR/SSIM against high-resolution images, bicubic as baseline",
        description="Downscale each high-resolution image (MATLAB-compatible bicubic), "
        "super-resolve it, and report PSNR and SSIM of the BT.601 luma, SCALE border pixels "
        "shaved, for bicubic upsampling and for the model.",
    )
    p.add_argument("inputs", nargs="+", help="high-resolution image files or folders")
    _add_model_options(p)

    p = commands.add_parser(
        "bench",
        help="speed and memory: reference vs wdsr_fast on this device",
        description="Inference on one image and one training step of WDSR-B, the reference "
        "model as written and wdsr_fast side by side, same weights.",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--dtype", choices=_DTYPES, default=None, help="default: float16 on CUDA, float32 on CPU"
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
    p.add_argument("--scale", type=_positive_int, default=2)
    p.add_argument("--n-resblocks", type=_non_negative_int, default=16)
    p.add_argument("--n-feats", type=_positive_int, default=32)
    p.add_argument("--repeats", type=_positive_int, default=3)

    commands.add_parser(
        "info",
        help="versions, devices, backends, build information",
        description="Versions, devices, backends and the extension's build.",
    )

    p = commands.add_parser(
        "train",
        help="train WDSR-B on high-resolution images",
        description="Train WDSR-B on high-resolution images (files or folders): bicubic-"
        "downscaled random crops with flips, L1 loss, Adam; writes a checkpoint "
        "(safetensors for a .safetensors name) every --checkpoint-every steps and at the end.",
    )
    p.add_argument("inputs", nargs="+", help="high-resolution image files or folders")
    p.add_argument("-o", "--output", required=True, help="weights file to write")
    p.add_argument("--scale", type=_positive_int, default=2)
    p.add_argument("--n-feats", type=_positive_int, default=32)
    # The defaults are the recipe of the bundled x2 weights.
    p.add_argument("--n-resblocks", type=_non_negative_int, default=16)
    p.add_argument("--steps", type=_positive_int, default=2400)
    p.add_argument("--batch-size", type=_positive_int, default=16)
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
    return parser


def _device(name: str) -> Any:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CommandError(f"--device: unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommandError(f"--device {name}: CUDA is not available here")
    return device


def _model_and_job(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from wdsr_fast.app.pretrained import model_for_scale
    from wdsr_fast.app.tiling import receptive_radius
    from wdsr_fast.app.upscaling import UpscaleJob

    device = _device(args.device)
    dtype = getattr(torch, args.dtype)
    model = model_for_scale(args.weights, args.scale).to(device, dtype)
    if model.n_colors not in (1, 3):
        raise CommandError(
            f"the weights take {model.n_colors}-channel images; images are upscaled by "
            "3-channel (RGB) and 1-channel (grayscale) models"
        )
    overlap = args.tile_overlap if args.tile_overlap is not None else receptive_radius(model)
    if args.tile <= 2 * overlap:
        raise CommandError(
            f"--tile {args.tile} is too small for a tile overlap of {overlap}: it must be "
            f"larger than twice the overlap ({2 * overlap})"
        )
    return model, UpscaleJob(args.tile, overlap, device, dtype)


def _upscale(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from wdsr_fast.app.upscaling import plan_outputs, upscale_file, upscale_files

    pairs = plan_outputs(args.inputs, args.output)
    model, job = _model_and_job(args)

    def report(line: str) -> None:
        tqdm.write(f"wdsr-fast upscale: error: {line}", file=sys.stderr)

    def note(line: str) -> None:
        tqdm.write(f"wdsr-fast upscale: note: {line}", file=sys.stderr)

    start = time.perf_counter()
    if len(pairs) == 1:  # one file: its error is the one line
        written = upscale_file(model, *pairs[0], job, progress=True)
        if written.note is not None:
            note(written.note)
        elapsed = time.perf_counter() - start
        print(f"wrote {pairs[0][1]} ({written.width}x{written.height}) in {elapsed:.2f} s")
    else:
        failures = upscale_files(model, pairs, job, report, note)
        if failures:
            raise CommandError(f"{len(failures)} of {len(pairs)} images failed")
        print(f"wrote {len(pairs)} images in {time.perf_counter() - start:.2f} s")
    if args.compare_reference:
        _compare_reference(model, pairs[0][0], job)


def _compare_reference(model: Any, path: str, job: Any) -> None:
    """Print the network's time on the image at ``path`` against the reference model's."""
    from wdsr_fast.app.image_io import load_image
    from wdsr_fast.app.measure import compare_inference

    rgb = load_image(path).rgb
    image = rgb.to(job.device, job.dtype).unsqueeze(0)
    times = compare_inference(model, image)
    print(
        f"network time on {rgb.shape[2]}x{rgb.shape[1]} ({job.device}, {job.dtype}): "
        f"wdsr_fast {times['wdsr_fast'] * 1e3:.0f} ms, reference as written "
        f"{times['reference'] * 1e3:.0f} ms ({times['reference'] / times['wdsr_fast']:.2f}x)"
    )


def _eval(args: argparse.Namespace) -> None:
    from wdsr_fast.app.evaluation import evaluate, format_table

    model, job = _model_and_job(args)
    print(format_table(evaluate(model, args.inputs, job), f"WDSR-B x{model.scale}"))


def _bench(args: argparse.Namespace) -> None:
    import torch

    from wdsr_fast.app.measure import format_results, run_bench

    device = _device(args.device)
    on_cuda = device.type == "cuda"
    dtype = getattr(torch, args.dtype or ("float16" if on_cuda else "float32"))
    size = tuple(args.size) if args.size else ((540, 960) if on_cuda else (128, 128))
    batch = args.batch or (16 if on_cuda else 4)
    results = run_bench(
        device,
        dtype,
        size,
        batch,
        args.patch,
        args.scale,
        args.n_resblocks,
        args.n_feats,
        args.repeats,
    )
    where = (
        torch.cuda.get_device_name(device) if on_cuda else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"WDSR-B x{args.scale} C={args.n_feats} B={args.n_resblocks}, {dtype}, {where}")
    print(format_results(results))


def _info(args: argparse.Namespace) -> None:
    from wdsr_fast.app.info import environment_info, format_info

    print(format_info(environment_info()))


def _train(args: argparse.Namespace) -> None:
    from wdsr_fast.app.training import TrainConfig, train_on_images

    config = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
    )
    train_on_images(
        args.inputs,
        args.output,
        scale=args.scale,
        n_feats=args.n_feats,
        n_resblocks=args.n_resblocks,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        config=config,
        seed=args.seed,
        device=_device(args.device),
        bicubic_init=not args.no_bicubic_init,
        log=lambda line: print(line, flush=True),
    )


_COMMANDS = {"upscale": _upscale, "eval": _eval, "bench": _bench, "info": _info, "train": _train}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed, 2 usage error)."""
    args = _parser().parse_args(argv)
    try:
        _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("wdsr-fast: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, OSError, RuntimeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"wdsr-fast {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
