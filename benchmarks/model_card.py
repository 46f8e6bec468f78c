"""The numbers of docs/model-card.md: a model against the blurry input and the classical baselines.

On the built-in test crops (never seen in training) with the paper's 3x3 Gaussian protocol: Y-PSNR/SSIM/MSE of
the blurry input, unsharp masking, Wiener and Richardson–Lucy deconvolution given the true kernel (each tuned on
the validation crops), and the model; the same data, tuning and scores as ``benchmarks/quality.py``.

    python benchmarks/model_card.py [--model DIR] [--json card.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from quality import PROTOCOLS, TEST_CROP, classical_results, model_scores, split, triples

from flowdeblur.pretrained import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    args = parser.parse_args()
    model = load_model(args.model)
    blur = PROTOCOLS["gaussian3"][1]
    validation, test = (triples(split(blur, name, TEST_CROP)) for name in ("val", "test"))
    rows = {}
    for method, result in classical_results(validation, test).items():
        label = f"{method}, {result['parameter']}={result['value']}" if "parameter" in result else method
        rows[label] = {metric: result[metric] for metric in ("psnr", "ssim", "mse")}
    rows["UML-IN (this model)"] = model_scores(model, test, torch.device("cpu"))
    print(f"built-in test crops: {len(test)}, 3x3 Gaussian sigma 1, scores on Y after 8-bit rounding\n")
    print("| method | Y-PSNR (dB) | SSIM | MSE |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['psnr']:.2f} | {row['ssim']:.4f} | {row['mse']:.6f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
