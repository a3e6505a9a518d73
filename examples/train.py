"""Train the authors' WDSR-B with wdsr_fast's fused residual blocks: the one-line switch.

    python examples/train.py --dir_data data/photos/train --scale 2 --n_resblocks 8 --epochs 200

The model is built the way the authors' trainer builds it: their argparse namespace and their
model class (here the package's rendition of it, :mod:`wdsr_fast.testing.reference`; use your
own model file the same way). ``wdsr_fast.replace_blocks(model)`` then swaps its residual
blocks for fused ones that share the very same Parameters, so the optimizer, the state_dict keys
and the saved checkpoints are unchanged. Delete that line and the script trains the plain
reference model.

Training is the reference trainer's recipe, the same code as ``wdsr-fast train``: random
``patch_size`` crops (HR pixels, the trainer's convention) with flips, L1 loss, Adam, the
learning rate halved at half and three quarters of the run. The checkpoint is the model's plain
``state_dict`` (as the EDSR-PyTorch trainer saves it): the authors' code and
``wdsr_fast.load_model`` both load it.
"""

from __future__ import annotations

import argparse

import torch

import wdsr_fast
from wdsr_fast.app.training import PatchSampler, TrainConfig, load_training_pairs, train
from wdsr_fast.testing.reference import ReferenceWDSRB, make_args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir_data", required=True, nargs="+", help="HR images or folders")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--n_resblocks", type=int, default=16)
    parser.add_argument("--n_feats", type=int, default=32)
    parser.add_argument("--res_scale", type=float, default=1.0)
    parser.add_argument("--patch_size", type=int, default=96, help="HR patch side")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=100, help="optimizer steps")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save", default="wdsr_b.pt", help="checkpoint file to write")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even with CUDA")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")

    model = ReferenceWDSRB(
        make_args(args.scale, args.n_resblocks, args.n_feats, res_scale=args.res_scale)
    )
    blocks = wdsr_fast.find_blocks(model)
    model = wdsr_fast.replace_blocks(model)  # the one-line switch to the fused blocks
    print(f"fused blocks: {len(blocks)} ({', '.join(blocks[:2])}, ...)")

    lr_patch = args.patch_size // args.scale
    pairs = load_training_pairs(args.dir_data, args.scale, lr_patch)
    generator = torch.Generator().manual_seed(args.seed)
    sampler = PatchSampler(pairs, args.scale, lr_patch, args.batch_size, generator)

    def log(step: int, loss: float, seconds: float) -> None:
        print(f"[{step}/{args.epochs}]  L1 {loss:.4f}  {seconds:.1f}s", flush=True)

    config = TrainConfig(steps=args.epochs, lr=args.lr, log_every=10)
    train(model, sampler, config, device, on_log=log)
    torch.save(model.state_dict(), args.save)
    print(f"saved {args.save}")


if __name__ == "__main__":
    main()
