"""Model forward and ``deblur_image`` time of this checkout against an earlier revision, side by side in one process.

The earlier revision's ``flowdeblur`` package is taken from git (``git archive``) into a temporary folder and
imported under another name; both models get the same weights (random, every layer moved off its initial value)
and deblur the same RGB image in turn, alternating, under ``torch.inference_mode``. Each forward is timed by
this thread's CPU time (``time.thread_time``), which other processes on a busy machine disturb far less than
the wall clock; the table gives medians, their ratio, and the largest difference between the two outputs.
``deblur_image`` (what ``flowdeblur deblur`` runs per image) is timed too, each revision with its default tiling.

    python benchmarks/forward_speed.py --base bea08d9          # paper and compact sizes, 256² and 720p
    python benchmarks/forward_speed.py --base bea08d9 --models compact --sizes 256² --repeats 9   # one case
    python benchmarks/forward_speed.py --base bea08d9 --quick  # a smoke run with a tiny model
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import common
import torch

from flowdeblur import WaveletUNetFlow
from flowdeblur.color import image_to_channels
from flowdeblur.inference import TileOptions, deblur_image

ROOT = Path(__file__).resolve().parent.parent
BASE_PACKAGE = "flowdeblur_base"


def import_revision(revision: str, folder: Path) -> ModuleType:
    """The ``flowdeblur`` package as it was at ``revision``, imported as ``flowdeblur_base``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "flowdeblur"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "flowdeblur").rename(folder / BASE_PACKAGE)
    sys.path.insert(0, str(folder))
    package = importlib.import_module(BASE_PACKAGE)
    importlib.import_module(f"{BASE_PACKAGE}.inference")
    return package


def model_pair(base: ModuleType, config: Any, image: torch.Tensor) -> tuple[torch.nn.Module, torch.nn.Module]:
    """This checkout's model and the base revision's, with the same perturbed, ActNorm-initialised weights."""
    torch.manual_seed(0)
    model = WaveletUNetFlow(config).eval()
    working = image_to_channels(image, config.color)
    model.initialize(working, working)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn(parameter.shape, generator=generator))
    known = {field.name for field in dataclasses.fields(base.config.UMLINConfig)}  # fields added since keep defaults
    old_config = base.config.UMLINConfig.from_dict({k: v for k, v in config.to_dict().items() if k in known})
    old = base.WaveletUNetFlow(old_config).eval()
    old.load_state_dict(model.state_dict())
    return model, old


def timings(calls: dict[str, Callable[[], torch.Tensor]], repeats: int) -> tuple[dict[str, float], float]:
    """Median CPU seconds of each call, alternating, and the largest difference between the two results."""
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        outputs = [call() for call in calls.values()]  # warm-up, and the results compared
        for _ in range(repeats):
            for name, call in calls.items():
                started = time.thread_time()
                call()
                seconds[name].append(time.thread_time() - started)
    difference = (outputs[1] - outputs[0]).abs().max().item()
    return {name: statistics.median(times) for name, times in seconds.items()}, difference


def compare(base: ModuleType, model: torch.nn.Module, old: torch.nn.Module, image: torch.Tensor, repeats: int
            ) -> dict[str, float]:
    """Forward and ``deblur_image`` seconds of both revisions, their ratios and their outputs' largest difference."""
    forward, forward_difference = timings({"base": lambda: old(image), "new": lambda: model(image)}, repeats)
    tiled, tiled_difference = timings({
        "base": lambda: base.inference.deblur_image(old, image[0], base.inference.TileOptions()),
        "new": lambda: deblur_image(model, image[0], TileOptions()),
    }, repeats)
    return {"base_s": forward["base"], "new_s": forward["new"], "speedup": forward["base"] / forward["new"],
            "max_abs_difference": forward_difference, "deblur_base_s": tiled["base"], "deblur_new_s": tiled["new"],
            "deblur_speedup": tiled["base"] / tiled["new"], "deblur_max_abs_difference": tiled_difference}


def main() -> None:
    """Time every model and size against the base revision, print a table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_arguments(parser, "forward_speed.json")
    parser.add_argument("--base", default="HEAD", help="the git revision to compare against (default: HEAD)")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per model and size (default: 5)")
    parser.add_argument("--models", nargs="+", choices=["paper", "compact"], default=["paper", "compact"],
                        help="model sizes to time (default: both)")
    parser.add_argument("--sizes", nargs="+", choices=["256²", "720p"], default=["256²", "720p"],
                        help="image sizes to time (default: both)")
    args = parser.parse_args()
    common.set_threads(args.threads)
    facts = common.machine()
    print(common.describe_machine(facts), flush=True)
    all_models = {"paper": common.PAPER_SIZE, "compact": common.COMPACT_SIZE}
    all_sizes = {"256²": (256, 256), "720p": (720, 1280)}
    models = {"tiny": common.TINY} if args.quick else {name: all_models[name] for name in args.models}
    sizes = {"64²": (64, 64)} if args.quick else {name: all_sizes[name] for name in args.sizes}
    repeats = 1 if args.quick else args.repeats
    results, rows = [], []
    with tempfile.TemporaryDirectory() as folder:
        base = import_revision(args.base, Path(folder))
        for model_name, config in models.items():
            for size_name, (height, width) in sizes.items():
                image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
                result = {"model": model_name, "size": size_name,
                          **compare(base, *model_pair(base, config, image), image, repeats)}
                results.append(result)
                rows.append([model_name, size_name, f"{result['base_s']:.3f}", f"{result['new_s']:.3f}",
                             f"{result['speedup']:.2f}", f"{result['max_abs_difference']:.1e}",
                             f"{result['deblur_base_s']:.3f}", f"{result['deblur_new_s']:.3f}",
                             f"{result['deblur_speedup']:.2f}", f"{result['deblur_max_abs_difference']:.1e}"])
                print(" ".join(rows[-1]), flush=True)
    header = ["model", "size", f"forward {args.base} s", "forward now s", "speed-up", "max |difference|",
              f"deblur_image {args.base} s", "deblur_image now s", "speed-up", "max |difference|"]
    table = common.markdown_table(header, rows, left=2)
    common.write_json(args.output, {"benchmark": "forward_speed", "machine": facts, "base": args.base,
                             "repeats": repeats, "results": results, "table": table})
    print(table, f"JSON: {args.output}", sep="\n\n")


if __name__ == "__main__":
    main()
