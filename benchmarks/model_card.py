"""The numbers of docs/model-card.md: a model against the blurry input and the classical baselines.

On the built-in test crops (never seen in training) with the paper's 3x3 Gaussian protocol: Y-PSNR/SSIM of the
blurry input, unsharp masking, Wiener and Richardson–Lucy deconvolution given the true kernel (each tuned on the
validation crops), and the model. Baselines run on the Y channel, where the scores are taken.

    python benchmarks/model_card.py [--model DIR] [--json card.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import torch

from flowdeblur.baselines import BASELINES, tune
from flowdeblur.color import rgb_to_y
from flowdeblur.data import build_dataset
from flowdeblur.metrics import image_scores, mean_scores
from flowdeblur.pretrained import load_model

Triple = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def y_triples(split: str) -> list[Triple]:
    """(blurry Y, sharp Y, true kernel) of every built-in crop of ``split``."""
    dataset = build_dataset("builtin", split=split, color="rgb")
    return [(rgb_to_y(item["blurry"]), rgb_to_y(item["sharp"]), dataset.kernel(i)) for i, item in enumerate(dataset)]


def scores(restore: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], triples: list[Triple]) -> dict[str, float]:
    """Mean Y-PSNR, SSIM and MSE of ``restore(blurry, kernel)`` over the triples."""
    per_image = [
        {k: float(v) for k, v in image_scores(restore(b, k)[None], s[None], space="y").items()} for b, s, k in triples
    ]
    return mean_scores(per_image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args()
    model = load_model(args.model)
    validation, test = y_triples("val"), y_triples("test")
    rows = {"blurry input": scores(lambda b, k: b, test)}
    for baseline in BASELINES:
        value = tune(baseline, validation)
        rows[f"{baseline.name}, {baseline.parameter}={value}"] = scores(baseline.restorer(value), test)
    with torch.inference_mode():
        rows["UML-IN (this model)"] = scores(lambda b, k: model(b[None])[0], test)
    print(f"built-in test crops: {len(test)}, 3x3 Gaussian sigma 1, scores on Y after 8-bit rounding\n")
    print("| method | Y-PSNR (dB) | SSIM | MSE |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['psnr']:.2f} | {row['ssim']:.4f} | {row['mse']:.6f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
