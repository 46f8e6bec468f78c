"""Training data pipeline on 720p PNG pairs: start-up against dataset size, and 128x128 crops per second per worker.

Writes N blurry/sharp pairs of 1280x720 PNGs (the astronaut photograph, shifted per image; ``--pairs``, default 20
and 200) into a temporary folder, then for this checkout and, with ``--base REV``, the package as it was at a git
revision (``git archive``), each in a fresh Python process on an empty frame cache:

- start-up: seconds to build the train and val splits of a paired folder and read the first 2 batches of 4 random
  128x128 crops, for each N; and the ratio of the largest N's time over the smallest's;
- crops per second in one process (what one DataLoader worker delivers): ``--epochs`` passes over the training
  split of the smallest N in a seeded random order, the first pass (decoding, and filling the frame cache) apart from
  the later ones.

    python benchmarks/data_pipeline.py --base f29a546~1       # before/after, the figures in docs/benchmarks.md
    python benchmarks/data_pipeline.py --quick                 # smoke run: 4 and 20 pairs of 320x180
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from cli_speed import extract_revision, photo
from common import add_common_arguments, describe_machine, machine, markdown_table, set_threads, write_json
from PIL import Image

# Runs in a fresh process with the package under test first on sys.path: argv = root, task, crop, epochs.
PROBE = r"""
import json, sys, time
import numpy as np
import torch
from flowdeblur.data import build_dataset
root, task, crop, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
start = time.perf_counter()
train = build_dataset("paired", root, split="train", crop_size=crop, seed=0)
if task == "startup":
    build_dataset("paired", root, split="val", crop_size=crop, seed=0)
    for index in np.random.default_rng(0).permutation(len(train))[:8]:  # 2 batches of 4
        train[int(index)]
    print(json.dumps({"seconds": time.perf_counter() - start}))
else:
    rates = []
    for epoch in range(epochs):
        train.set_epoch(epoch)
        begin = time.perf_counter()
        for index in np.random.default_rng(epoch).permutation(len(train)):
            train[int(index)]
        rates.append(len(train) / (time.perf_counter() - begin))
    print(json.dumps({"first_epoch": rates[0], "later_epochs": len(rates[1:]) / sum(1 / r for r in rates[1:])}))
"""


def write_pairs(root: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` blurry/sharp PNG pairs of ``size`` (height, width) under root/blur and root/sharp."""
    base = photo(*size)
    for index in range(count):
        sharp = np.roll(base, (7 * index, 13 * index), axis=(0, 1))
        blurry = ((sharp.astype(np.uint16) + np.roll(sharp, 2, axis=1)) // 2).astype(np.uint8)
        for folder, array in (("sharp", sharp), ("blur", blurry)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / folder / f"{index:04d}.png", compress_level=3)
    return root


def probe(package: Path | None, root: Path, task: str, crop: int, epochs: int) -> dict[str, float]:
    """Run :data:`PROBE` in a fresh process on an empty frame cache, with ``package`` (None: this checkout)."""
    with tempfile.TemporaryDirectory(prefix="frames-") as cache:
        environment = {**os.environ, "FLOWDEBLUR_FRAME_CACHE": cache}
        if package is not None:
            environment["PYTHONPATH"] = str(package)
        command = [sys.executable, "-c", PROBE, str(root), task, str(crop), str(epochs)]
        process = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if process.returncode != 0:
        raise SystemExit(f"the probe failed:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.splitlines()[-1])


def measure(package: Path | None, roots: dict[int, Path], crop: int, epochs: int) -> dict[str, Any]:
    """Start-up per dataset size, its ratio, and crops per second of one process, for one package."""
    startup = {count: probe(package, root, "startup", crop, epochs)["seconds"] for count, root in roots.items()}
    sizes = sorted(startup)
    crops = probe(package, roots[sizes[0]], "crops", crop, epochs)
    return {"startup_s": startup, "startup_ratio": startup[sizes[-1]] / startup[sizes[0]], "crops_per_s": crops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, "benchmarks/results/data_pipeline.json")
    parser.add_argument("--pairs", type=int, nargs="+", default=[20, 200], help="dataset sizes (pairs) to start on")
    parser.add_argument("--base", help="also measure the package as it was at this git revision")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training split for crops/s (>= 2)")
    args = parser.parse_args()
    set_threads(args.threads)
    if args.epochs < 2:
        raise SystemExit("--epochs must be at least 2 (the first pass is reported apart)")
    size, counts, crop = ((180, 320), [4, 20], 64) if args.quick else ((720, 1280), sorted(args.pairs), 128)
    facts = machine()
    print(describe_machine(facts))
    with tempfile.TemporaryDirectory(prefix="pairs-") as folder:
        roots = {count: write_pairs(Path(folder) / str(count), count, size) for count in counts}
        packages = {"this checkout": None}
        if args.base:
            packages = {args.base: extract_revision(args.base, Path(folder) / "base"), **packages}
        results = {name: measure(package, roots, crop, args.epochs) for name, package in packages.items()}
    header = ["package", *(f"start-up {n} pairs (s)" for n in counts), "ratio", "crops/s 1st epoch", "crops/s later"]
    rows = [[name, *(f"{r['startup_s'][n]:.2f}" for n in counts), f"{r['startup_ratio']:.2f}",
             f"{r['crops_per_s']['first_epoch']:.1f}", f"{r['crops_per_s']['later_epochs']:.1f}"]
            for name, r in results.items()]
    print(f"\n{size[1]}x{size[0]} PNG pairs, {crop}x{crop} crops, one process\n")
    print(markdown_table(header, rows))
    write_json(args.output, {"machine": facts, "image_size": list(size), "crop": crop, "results": results})


if __name__ == "__main__":
    main()
