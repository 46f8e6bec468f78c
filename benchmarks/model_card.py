"""The numbers of the model cards (docs/models/): shipped or trained models against the classical baselines.

On the built-in test crops (never seen in training, never used for a choice), for each blur protocol of
``benchmarks/quality.py``: Y-PSNR and SSIM of the blurry input, unsharp masking, Wiener and Richardson–Lucy
deconvolution given the true kernel of each image (each tuned on the validation crops), and each model; the same
data, tuning and scores as ``quality.py``. Models are blind: they never see the kernel.

    python benchmarks/model_card.py                                   # general and gauss3, every protocol
    python benchmarks/model_card.py --models runs/mine/model --protocols gaussian3 --json card.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from common import markdown_table, set_threads, write_json
from quality import PROTOCOLS, TEST_CROP, classical_results, model_scores, psnr_cell, split, triples

from flowdeblur import WaveletUNetFlow
from flowdeblur.pretrained import SHIPPED_MODELS


def protocol_rows(protocol: str, models: list[str]) -> dict[str, dict[str, Any]]:
    """Every classical method (tuned on val) and every model, scored on the protocol's test crops."""
    blur = PROTOCOLS[protocol][1]
    validation, test = (triples(split(blur, name, TEST_CROP)) for name in ("val", "test"))
    rows = {}
    for method, result in classical_results(validation, test).items():
        label = f"{method}, {result['parameter']}={result['value']}" if "parameter" in result else method
        rows[method] = {"label": label, **{metric: result[metric] for metric in ("psnr", "ssim", "mse")}}
    for name in models:
        scores = model_scores(WaveletUNetFlow.from_pretrained(name), test, torch.device("cpu"))
        rows[f"UML-IN {name}"] = {"label": f"UML-IN `{name}`", **scores}
    return rows


def main() -> None:
    """Score the models on every protocol; print one Markdown table (and the tuned values) and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(SHIPPED_MODELS), help="shipped names or directories")
    parser.add_argument("--protocols", nargs="+", choices=list(PROTOCOLS), default=list(PROTOCOLS))
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (default: 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write every number as JSON here")
    args = parser.parse_args()
    set_threads(args.threads)
    results = {protocol: protocol_rows(protocol, args.models) for protocol in args.protocols}
    header = ["method"] + [f"{PROTOCOLS[p][0]}: {m}" for p in args.protocols for m in ("Y-PSNR (dB)", "SSIM")]
    methods = list(results[args.protocols[0]])
    rows = [[results[args.protocols[0]][method]["label"].split(",")[0]]
            + [cell for p in args.protocols for cell in (psnr_cell(results[p][method]),
                                                         f"{results[p][method]['ssim']:.4f}")]
            for method in methods]
    print("built-in test crops (24 of 128 x 128), Y channel, 8-bit rounded, per image then averaged\n")
    print(markdown_table(header, rows))
    print("\ntuned on val: " + "; ".join(
        f"{p}: " + ", ".join(r["label"] for r in results[p].values() if "=" in r["label"]) for p in args.protocols))
    if args.json:
        write_json(args.json, {"models": args.models, "protocols": results})


if __name__ == "__main__":
    main()
