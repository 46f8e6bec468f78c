"""Deblurring photographs no model has seen: a folder of sharp photos, blurred synthetically, against the models.

The built-in test crops come from the same 15 photographs as the training crops; this asks what happens on other
photographs. Each image file of ``--photos`` is read, downscaled by ``--downscale`` (camera JPEGs are softer than
their pixel count, and smaller images keep the run short), its centre ``--crop`` square cut, taken to Y, and blurred
by each protocol of ``quality.py`` (seeded per photo). The table gives the blurry input's mean Y-PSNR and each
model's gain over it, per protocol (8-bit rounded, per image then averaged, as everywhere).

    python benchmarks/held_out.py --photos DIR                       # general and gauss3
    python benchmarks/held_out.py --photos DIR --models general runs/mine/model --protocols gaussian9 motion15
    python benchmarks/held_out.py --quick                            # a smoke run on two generated images
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from common import add_common_arguments, describe_machine, machine, markdown_table, set_threads, write_json
from quality import PROTOCOLS, SEED, model_scores, scores
from shift_consistency import load

from flowdeblur.color import rgb_to_y
from flowdeblur.data.io import read_image

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
DEFAULT_PROTOCOLS = ("gaussian3", "gaussian9", "motion15", "defocus", "none")


def sharp_crops(folder: Path, downscale: int, crop: int) -> tuple[list[str], torch.Tensor]:
    """The photos' names and their centre crops (N, 1, crop, crop) in Y, after an area downscale."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not paths:
        raise SystemExit(f"--photos {folder}: no photographs ({', '.join(PHOTO_SUFFIXES)}) in this folder")
    crops = []
    for path in paths:
        image = read_image(path)[None].float()
        image = image if image.shape[1] == 3 else image[:, :1].expand(-1, 3, -1, -1)
        small = F.avg_pool2d(image, downscale) if downscale > 1 else image
        height, width = small.shape[-2:]
        if min(height, width) < crop:
            raise SystemExit(f"{path}: {width} x {height} after downscaling by {downscale}, smaller than --crop {crop}")
        top, left = (height - crop) // 2, (width - crop) // 2
        crops.append(rgb_to_y(small[..., top : top + crop, left : left + crop]))
    return [p.name for p in paths], torch.cat(crops)


def blurred(protocol: str, sharp: torch.Tensor) -> torch.Tensor:
    """Each crop blurred by the protocol, drawn from (seed, photo index) as the built-in set draws its blur."""
    blur = PROTOCOLS[protocol][1]
    return torch.stack([blur.apply(image, SEED, index) for index, image in enumerate(sharp)])


def generated_photos(folder: Path) -> Path:
    """Two smooth random RGB images, for ``--quick``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(2):
        coarse = torch.from_numpy(rng.random((1, 3, 12, 12))).float()
        image = F.interpolate(coarse, size=(96, 96), mode="bicubic", align_corners=False).clamp(0, 1)[0]
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / f"{index}.png")
    return folder


def main() -> None:
    """Score every model on every protocol's blurred photos; print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "held_out.json")
    parser.add_argument("--photos", type=Path, help="a folder of sharp photographs (required unless --quick)")
    parser.add_argument("--models", nargs="+", default=["general", "gauss3"], help="shipped names or directories")
    parser.add_argument("--protocols", nargs="+", choices=list(PROTOCOLS), default=list(DEFAULT_PROTOCOLS))
    parser.add_argument("--downscale", type=int, default=2, help="area downscale factor before cropping (default 2)")
    parser.add_argument("--crop", type=int, default=384, help="side of the centre crop (default 384)")
    args = parser.parse_args()
    set_threads(args.threads)
    facts = machine()
    print(describe_machine(facts), flush=True)
    with tempfile.TemporaryDirectory() as temporary:
        photos = generated_photos(Path(temporary)) if args.quick else args.photos
        if photos is None or not photos.is_dir():
            parser.error(f"--photos must be a folder of photographs, got {photos}")
        crop, downscale = (64, 1) if args.quick else (args.crop, args.downscale)
        names, sharp = sharp_crops(photos, downscale, crop)
    models = {name: load(name) for name in (["tiny"] if args.quick else args.models)}
    results: dict[str, dict[str, Any]] = {}
    for protocol in args.protocols:
        blurry = blurred(protocol, sharp)
        test = [(b, s, None) for b, s in zip(blurry, sharp, strict=True)]
        results[protocol] = {"blurry input": scores(lambda batch: batch, test)}
        for name, model in models.items():
            results[protocol][name] = model_scores(model, test, torch.device("cpu"))
        print(f"[{protocol}] done", flush=True)
    header = ["method", *(PROTOCOLS[p][0] for p in args.protocols)]
    rows = [["blurry input (Y-PSNR, dB)", *(f"{results[p]['blurry input']['psnr']:.2f}" for p in args.protocols)]]
    for name in models:
        gains = [results[p][name]["psnr"] - results[p]["blurry input"]["psnr"] for p in args.protocols]
        rows.append([f"{Path(name).name} (Y-PSNR, dB)", *(f"{results[p][name]['psnr']:.2f}" for p in args.protocols)])
        rows.append([f"{Path(name).name}: gain (dB)", *(f"{gain:+.2f}" for gain in gains)])
    document = {"benchmark": "held-out photographs", "machine": facts, "photos": names, "crop": crop,
                "downscale": downscale, "results": results, "table": markdown_table(header, rows)}
    write_json(args.output, document)
    print(document["table"])


if __name__ == "__main__":
    main()
