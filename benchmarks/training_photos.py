"""The photographs the shipped ``general`` model learned from beside the built-in ones, as a folder for ``--photos``.

Debian's ``plasma-workspace-wallpapers`` (5.27, GPL-2+, "2014 KDE Visual Design Group" in its copyright file) holds
30 wallpapers; the 7 in ``PHOTOGRAPHS`` are photographs sharp where they have detail (the rest are illustrations and
renderings; of the other photographs Kite carries a drawn kite, DarkestHour is nearly flat, and BytheWater and
FallenLeaf are mostly out of focus, which would teach blur as the sharp answer). Each is read at its 1920 x 1080
size, or its one size (the file names say sizes their pixels do not always have), area-downscaled by 4 (wallpaper
JPEGs are softer than their pixel count; at a quarter, the 7 give about 160 training windows beside the built-in
371), and written as an 8-bit PNG:

    apt-get download plasma-workspace-wallpapers && dpkg -x plasma-workspace-wallpapers_*.deb plasma
    python benchmarks/training_photos.py --wallpapers plasma/usr/share/wallpapers --output photos
    python recipes/train_builtin.py --photos photos ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from PIL import Image

from flowdeblur.data.io import read_image

PHOTOGRAPHS = ("ColdRipple", "ColorfulCups", "EveningGlow", "Grey", "OneStandsOut", "Path", "summer_1am")
SIZE = "1920x1080"
DOWNSCALE = 4


def source(wallpapers: Path, name: str) -> Path:
    """The wallpaper's 1920 x 1080 file, or its only file."""
    images = wallpapers / name / "contents" / "images"
    files = sorted(images.glob("*.*")) if images.is_dir() else []
    chosen = [path for path in files if path.stem == SIZE] or (files if len(files) == 1 else [])
    if not chosen:
        raise SystemExit(f"--wallpapers {wallpapers}: {images} holds no {SIZE} image (found {len(files)} files)")
    return chosen[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wallpapers", type=Path, required=True, help="the package's usr/share/wallpapers folder")
    parser.add_argument("--output", type=Path, required=True, help="folder to write the PNGs into")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    for name in PHOTOGRAPHS:
        path = source(args.wallpapers, name)
        small = F.avg_pool2d(read_image(path)[None], DOWNSCALE)[0]
        pixels = (small.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
        target = args.output / f"{name}.png"
        partial = target.with_name(f".{target.name}.partial")
        Image.fromarray(pixels).save(partial, format="PNG")
        partial.replace(target)
        print(f"{target}: {pixels.shape[1]} x {pixels.shape[0]} from {path}")


if __name__ == "__main__":
    main()
