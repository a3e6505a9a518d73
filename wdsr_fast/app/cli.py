"""The ``wdsr-fast`` command line (also ``python -m wdsr_fast``).

Subcommands ``upscale``, ``eval``, ``bench``, ``info`` and ``train``; ``wdsr-fast CMD --help``
describes each. This module runs the commands: the arguments are parsed by
:mod:`wdsr_fast.app.arguments` and checked, paths included, by :mod:`wdsr_fast.app.checks` before
any weights load; the work lives in :mod:`wdsr_fast.app.upscaling` (and
:mod:`wdsr_fast.app.video`), :mod:`wdsr_fast.app.evaluation`, :mod:`wdsr_fast.app.measure`,
:mod:`wdsr_fast.app.info` and :mod:`wdsr_fast.app.training`. Bad input ends with one line on
stderr and exit status 1 (2 for a usage error), never a traceback. The console script's module
``wdsr_fast_cli`` parses and checks before torch is imported, then calls :func:`main`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from wdsr_fast.app.arguments import parse_args
from wdsr_fast.app.checks import check_args
from wdsr_fast.app.errors import CommandError, error_line

__all__ = ["CommandError", "main"]


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


def _say(line: str) -> None:
    """Print ``line`` on stdout now, above any progress bar."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def _note(command: str, line: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"wdsr-fast {command}: note: {line}", file=sys.stderr)


def _model_and_job(args: argparse.Namespace) -> tuple[Any, Any]:
    import torch

    from wdsr_fast.app.pretrained import model_for_scale
    from wdsr_fast.app.tiling import receptive_radius
    from wdsr_fast.app.upscaling import UpscaleJob

    device = _device(args.device)
    dtype = getattr(torch, args.dtype)
    if device.type == "cpu" and dtype != torch.float32:
        _note(
            args.command,
            f"--dtype {args.dtype} on the CPU is slower than float32 (up to several times: "
            "CPUs have few half-precision kernels); float32 is the fast CPU dtype",
        )
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
    batch = getattr(args, "batch", 4)
    return model, UpscaleJob(args.tile, overlap, device, dtype, batch)


def _written(target: str, written: Any, seconds: float) -> str:
    """The line that says what ``upscale`` wrote."""
    size = f"{written.width}x{written.height}"
    if written.frames is None:
        return f"wrote {target} ({size}) in {seconds:.2f} s"
    audio = f", {written.audio_tracks} audio track(s) kept" if written.audio_tracks else ""
    return (
        f"wrote {target} ({size}, {written.frames} frames{audio}) in {seconds:.2f} s "
        f"({written.frames / seconds:.1f} frames/s)"
    )


def _upscale(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from wdsr_fast.app.paths import is_video, make_output_folders
    from wdsr_fast.app.upscaling import plan_outputs, upscale_file, upscale_files

    pairs = plan_outputs(args.inputs, args.output)
    model, job = _model_and_job(args)
    for folder in make_output_folders(pairs):
        _note("upscale", f"created the output folder {folder}")

    def report(line: str) -> None:
        tqdm.write(f"wdsr-fast upscale: error: {line}", file=sys.stderr)

    start = time.perf_counter()
    if len(pairs) == 1:  # one file: its error is the one line
        written = upscale_file(model, *pairs[0], job, progress=True)
        if written.note is not None:
            _note("upscale", written.note)
        print(_written(pairs[0][1], written, time.perf_counter() - start))
    else:
        kind = "files" if any(is_video(source) for source, _ in pairs) else "images"
        failures = upscale_files(model, pairs, job, report, lambda line: _note("upscale", line))
        if failures:
            raise CommandError(f"{len(failures)} of {len(pairs)} {kind} failed")
        print(f"wrote {len(pairs)} {kind} in {time.perf_counter() - start:.2f} s")
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
    video_size = (
        tuple(args.video_size) if args.video_size else ((540, 960) if on_cuda else (144, 256))
    )
    video_batch = args.video_batch or (4 if on_cuda else 2)
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
        video_size,
        video_batch,
        progress=True,
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
    import os

    from wdsr_fast.app.training import TrainConfig, train_on_images

    config = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        validate_every=args.val_every if args.val is not None else 0,
    )
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        os.makedirs(folder, exist_ok=True)
        if os.environ.get("RANK", "0") == "0":
            _note("train", f"created the output folder {folder}")
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
        log=_say,
        resume=args.resume,
        val=[args.val] if args.val is not None else None,
        progress=True,
    )


_COMMANDS = {"upscale": _upscale, "eval": _eval, "bench": _bench, "info": _info, "train": _train}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed, 2 usage error).

    Arguments and paths are checked (:mod:`wdsr_fast.app.checks`) before any command runs.
    """
    args = parse_args(argv)
    try:
        check_args(args)
        _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("wdsr-fast: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, OSError, RuntimeError) as exc:
        print(error_line(args.command, exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
