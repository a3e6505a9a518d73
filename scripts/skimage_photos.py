"""Copy the photographs bundled inside scikit-image's wheel into train/ and val/ folders.

    python scripts/skimage_photos.py data/photos

Only files shipped in the installed package are used (no download). The held-out photos
(val/) are never used for training; they give the evaluation table of the README's bundled weights.
"""

from __future__ import annotations

import argparse
import os
import shutil
from importlib import resources

TRAIN = (
    "astronaut.png",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "ihc.png",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
)
VAL = ("chelsea.png", "coffee.png", "rocket.jpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to create train/ and val/ in")
    args = parser.parse_args()
    source = resources.files("skimage") / "data"
    for subset, names in (("train", TRAIN), ("val", VAL)):
        folder = os.path.join(args.out, subset)
        os.makedirs(folder, exist_ok=True)
        for name in names:
            with resources.as_file(source / name) as path:
                shutil.copyfile(path, os.path.join(folder, name))
        print(f"{folder}: {len(names)} images")


if __name__ == "__main__":
    main()
