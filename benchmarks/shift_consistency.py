"""Shift consistency: does the answer depend on where the model's block grid falls on the image?

Each blurry test crop is deblurred whole, and again after cutting off its first s rows and columns (s = 1..8).
Where the two results overlap, away from every border by ``--margin`` pixels, they should agree: a shift-invariant
filter (a convolution) gives the same pixels exactly. The score is the mean PSNR (dB, 8-bit rounded, Y) between the
two over crops and shifts, capped at ``PSNR_CAP``; higher is more consistent. UML-IN's Haar pyramid works on
2^L-pixel blocks, so without care its result moves with the grid, which shows as staircases along curved edges.

Beside it, the Y-PSNR of the whole crop's result against the sharp crop. ``--passes`` scores a UML-IN model again
with other ``inference_shifts`` (cycle spinning: the mean of passes shifted against the grid), ``--split val``
on the validation crops, where such a choice is made.

    python benchmarks/shift_consistency.py                        # the shipped models, 9x9 Gaussian and shake crops
    python benchmarks/shift_consistency.py --models general DIR   # any model names or directories
    python benchmarks/shift_consistency.py --models general --split val --passes 0 0,3 0,2,4,6
    python benchmarks/shift_consistency.py --quick                # a smoke run on a tiny untrained model
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from common import TINY, add_common_arguments, describe_machine, machine, markdown_table, set_threads, write_json
from torch import Tensor

from flowdeblur.metrics import PSNR_CAP, image_scores

SHIFTS = tuple(range(1, 9))
MARGIN = 16  # beyond every receptive-field border effect of a 9x9 blur; the crops are 128 x 128
PROTOCOLS = ("gaussian9", "motion15")
Restorer = Callable[[Tensor], Tensor]


def shift_consistency(restore: Restorer, blurry: Tensor, shifts: Sequence[int] = SHIFTS, margin: int = MARGIN) -> float:
    """Mean PSNR (dB) between ``restore(blurry)`` and ``restore`` of the crop cut by s rows and columns, s in shifts.

    ``blurry`` is a batch (N, C, H, W) in [0, 1]; ``restore`` maps such a batch to the same shape. Both results are
    compared on the pixels at least ``margin`` from every border of the cut crop, 8-bit rounded; an exact match
    counts as ``PSNR_CAP``.
    """
    whole = restore(blurry).clamp(0.0, 1.0)
    scores = []
    for s in shifts:
        cut = restore(blurry[..., s:, s:]).clamp(0.0, 1.0)
        inner = (..., slice(margin, -margin), slice(margin, -margin))
        reference = whole[..., s:, s:][inner]
        scores.append(image_scores(cut[inner], reference, space="y")["psnr"].clamp(max=PSNR_CAP))
    return float(torch.cat(scores).mean())


def model_restorer(model: torch.nn.Module) -> Restorer:
    """A batch of Y crops -> the model's result: UML-IN through its own channels' map, others called directly."""
    network = getattr(model, "restore", model)

    def restore(batch: Tensor) -> Tensor:
        with torch.inference_mode():
            return network(batch)

    return restore


def crops(protocol: str, count: int, split_name: str = "test") -> tuple[Tensor, Tensor]:
    """The first ``count`` blurry and sharp Y crops of a split of a protocol of ``quality.py``."""
    from quality import PROTOCOLS as QUALITY_PROTOCOLS
    from quality import TEST_CROP, split

    dataset = split(QUALITY_PROTOCOLS[protocol][1], split_name, TEST_CROP)
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    return torch.stack([item["blurry"] for item in items]), torch.stack([item["sharp"] for item in items])


def scored(restore: Restorer, blurry: Tensor, sharp: Tensor) -> dict[str, float]:
    """Shift consistency and the Y-PSNR of the result against the sharp crops (8-bit rounded, capped)."""
    restored = restore(blurry).clamp(0.0, 1.0)
    psnr = float(image_scores(restored, sharp, space="y")["psnr"].clamp(max=PSNR_CAP).mean())
    return {"shift_consistency": shift_consistency(restore, blurry), "psnr": psnr}


def with_passes(model: torch.nn.Module, passes: str) -> torch.nn.Module:
    """``model`` with ``inference_shifts`` from a comma-separated list ("0,3"); "model" keeps the model's own."""
    if passes == "model":
        return model
    model.config = dataclasses.replace(model.config, inference_shifts=tuple(int(s) for s in passes.split(",")))
    return model


def load(name: str) -> torch.nn.Module:
    """A shipped model by name or a model directory; ``tiny`` is an untrained tiny UML-IN (for ``--quick``)."""
    from flowdeblur import WaveletUNetFlow

    return WaveletUNetFlow(TINY).eval() if name == "tiny" else WaveletUNetFlow.from_pretrained(name)


def main() -> None:
    """Measure each model on each protocol's test crops; print a table and write the JSON."""
    from quality import PROTOCOLS as QUALITY_PROTOCOLS  # quality.py imports this module: imported when run

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "shift_consistency.json")
    parser.add_argument("--models", nargs="+", default=["general", "gauss3"], help="shipped names or directories")
    parser.add_argument("--images", type=int, default=24, help="crops per protocol (default 24)")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="which crops (default test)")
    parser.add_argument("--passes", nargs="+", default=["model"],
                        help="inference_shifts to score each model with, e.g. 0 0,3 (default: the model's own)")
    parser.add_argument("--protocols", nargs="+", choices=sorted(QUALITY_PROTOCOLS), default=list(PROTOCOLS))
    args = parser.parse_args()
    set_threads(args.threads)
    facts = machine()
    print(describe_machine(facts), flush=True)
    models = ["tiny"] if args.quick else args.models
    images = 2 if args.quick else args.images
    data = {protocol: crops(protocol, images, args.split) for protocol in args.protocols}
    results: dict[str, dict[str, Any]] = {}
    for name in models:
        for passes in args.passes:
            restore = model_restorer(with_passes(load(name), passes))
            label = str(name) if passes == "model" else f"{name} passes {passes}"
            results[label] = {p: scored(restore, *pair) for p, pair in data.items()}
            print(label, {p: {k: round(v, 3) for k, v in r.items()} for p, r in results[label].items()}, flush=True)
    header = ["model", *(f"{p}: {m}" for p in args.protocols for m in ("shift consistency (dB)", "Y-PSNR (dB)"))]
    rows = [[Path(label).name if " passes " not in label else label,
             *(f"{scores[p][m]:.2f}" for p in args.protocols for m in ("shift_consistency", "psnr"))]
            for label, scores in results.items()]
    document = {"benchmark": "shift consistency", "machine": facts, "shifts": SHIFTS, "margin": MARGIN,
                "split": args.split, "images": images, "results": results, "table": markdown_table(header, rows)}
    write_json(args.output, document)
    print(document["table"])


if __name__ == "__main__":
    main()
