"""Peak training memory and time per step of level flows, with and without memory-saving backpropagation.

A training step is what the trainer does to one branch of UML-IN: the detail bands of a batch of Y images go
through each level's conditional INN (``build_level_flow``, conditioned on the level's low-pass), the Gaussian
NLL in bits per dimension is backpropagated, and Adamax takes a step. Each case (steps per level, with or without
``memory_saving``) runs in a fresh subprocess, which reports its peak resident set size (CPU) or
``torch.cuda.max_memory_allocated`` (GPU), how far training raised it above its value before the first step
(what the steps themselves need, without the interpreter, the libraries and the data), and its median seconds
per training step.

    python benchmarks/memory.py                 # batch 4 of 512 x 512, finest level, 4 / 8 / 16 steps per level
    python benchmarks/memory.py --levels 3      # a stack of three levels' INNs
    python benchmarks/memory.py --alternate 3   # time only: plain and memory-saving steps alternating, 3 each
    python benchmarks/memory.py --quick         # a smoke run of a few seconds
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from common import add_common_arguments, describe_machine, machine, markdown_table, set_threads, write_json
from speed import RESULT, in_subprocess, peak_memory_mb, synchronize

from flowdeblur.flows import WaveletPyramid, build_level_flow


def profile(quick: bool) -> dict[str, Any]:
    """Image size, batch, steps per level, coupling width and timed steps of a run."""
    if quick:
        return {"size": 32, "batch": 2, "steps": [1, 2], "hidden_channels": 8, "train_steps": 1}
    return {"size": 512, "batch": 4, "steps": [4, 8, 16], "hidden_channels": 64, "train_steps": 2}


def training_step(case: dict[str, Any]) -> Callable[[], None]:
    """A training step of ``case``'s level flows (ActNorm already initialised): forward, NLL, backward, Adamax."""
    settings = profile(case["quick"])
    device = torch.device(case["device"])
    torch.manual_seed(0)
    images = torch.rand(settings["batch"], 1, settings["size"], settings["size"], device=device)
    lows, details, _ = WaveletPyramid(case["levels"]).analysis(images)
    flows = [
        build_level_flow(3, condition_channels=1, steps=case["steps"], hidden_channels=settings["hidden_channels"],
                         memory_saving=case["memory_saving"]).to(device)
        for _ in range(case["levels"])
    ]
    parameters = [parameter for flow in flows for parameter in flow.parameters()]
    optimizer = torch.optim.Adamax(parameters, lr=1e-4)
    dimensions = sum(detail[0].numel() for detail in details)

    def step() -> None:
        nll = torch.zeros(settings["batch"], device=device)
        for flow, low, detail in zip(flows, lows, details, strict=True):
            z, log_det = flow(detail, c=[low])
            nll = nll + 0.5 * z.square().flatten(1).sum(1) - log_det
        (nll.mean() / (dimensions * math.log(2))).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with torch.no_grad():
        for flow, low, detail in zip(flows, lows, details, strict=True):
            flow(detail, c=[low])  # ActNorm's data initialisation, before training
    return step


def timed(step: Callable[[], None], device: torch.device) -> float:
    """Seconds of one call of ``step``, the device synchronised before and after."""
    synchronize(device)
    started = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - started


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Train ``case``'s level flows for a few steps in this process: median seconds per step and peak memory."""
    device = torch.device(case["device"])
    step = training_step(case)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = peak_memory_mb(device)
    seconds = [timed(step, device) for _ in range(profile(case["quick"])["train_steps"] + 1)]  # first: warm-up
    peak = peak_memory_mb(device)
    return {"seconds_per_step": statistics.median(seconds[1:]), "peak_memory_mb": peak, "training_mb": peak - before}


def alternate(case: dict[str, Any], repeats: int) -> dict[str, float]:
    """Plain and memory-saving steps of one depth in this process, alternating: median seconds and their ratio.

    Timing both in turn exposes them to the same load, which a case per subprocess, one after another, does not.
    """
    device = torch.device(case["device"])
    steps = {saving: training_step({**case, "memory_saving": saving}) for saving in (False, True)}
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(repeats + 1):  # the first round is a warm-up
        for saving, step in steps.items():
            elapsed = timed(step, device)
            if repeat:
                seconds[saving].append(elapsed)
    plain, saving = (statistics.median(seconds[mode]) for mode in (False, True))
    return {"plain_s": plain, "memory_saving_s": saving, "ratio": saving / plain}


def table(results: list[dict[str, Any]]) -> str:
    """One row per device and steps per level: memory and time per step, plain against memory-saving."""
    rows: dict[tuple[str, int], dict[bool, dict[str, Any]]] = {}
    for entry in results:
        case = entry["case"]
        rows.setdefault((case["device"], case["steps"]), {})[case["memory_saving"]] = entry
    body = []
    for (device, steps), pair in rows.items():
        plain, saving = pair[False], pair[True]
        body.append([
            device, steps, f"{plain['peak_memory_mb']:.0f}", f"{saving['peak_memory_mb']:.0f}",
            f"{100 * saving['peak_memory_mb'] / plain['peak_memory_mb']:.0f} %",
            f"{plain['training_mb']:.0f}", f"{saving['training_mb']:.0f}",
            f"{100 * saving['training_mb'] / max(plain['training_mb'], 1):.0f} %",
            f"{plain['seconds_per_step']:.2f}", f"{saving['seconds_per_step']:.2f}",
            f"{saving['seconds_per_step'] / plain['seconds_per_step']:.2f}×",
        ])
    header = ["device", "steps per level", "peak MB, plain", "peak MB, memory-saving", "ratio",
              "training MB, plain", "training MB, memory-saving", "ratio",
              "s/step, plain", "s/step, memory-saving", "time ratio"]
    return markdown_table(header, body, left=1)


def timing_only(args: argparse.Namespace, devices: list[str], settings: dict[str, Any], facts: dict[str, Any]
                ) -> None:
    """``--alternate``: the time ratio per device and depth, from alternating steps; prints a table, writes JSON."""
    rows = []
    for device in devices:
        for steps in settings["steps"]:
            case = {"device": device, "steps": steps, "levels": args.levels, "quick": args.quick}
            rows.append({"case": case, **alternate(case, args.alternate)})
            print(f"{device}, {steps} steps per level: time ratio {rows[-1]['ratio']:.2f}×", flush=True)
    body = [[row["case"]["device"], row["case"]["steps"], f"{row['plain_s']:.2f}", f"{row['memory_saving_s']:.2f}",
             f"{row['ratio']:.2f}×"] for row in rows]
    text = markdown_table(["device", "steps per level", "s/step, plain", "s/step, memory-saving", "time ratio"],
                          body, left=1)
    write_json(args.output, {"benchmark": "memory-time", "machine": facts, "repeats": args.alternate,
                             "settings": {**settings, "levels": args.levels}, "results": rows, "table": text})
    print(text, f"JSON: {args.output}", sep="\n\n")


def main() -> None:
    """Run every case in its own subprocess, print the table and write the JSON (or run one ``--case``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "memory.json")
    parser.add_argument("--levels", type=int, default=1, help="how many levels' INNs are stacked (default: 1)")
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=None,
                        help="where to run (default: the CPU, and the GPU where there is one)")
    parser.add_argument("--alternate", type=int, metavar="REPEATS",
                        help="time only: plain and memory-saving steps alternating in one process, REPEATS each")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    set_threads(args.threads)
    if args.case:
        print(RESULT + json.dumps(run_case(json.loads(args.case))), flush=True)
        return
    facts = machine()
    print(describe_machine(facts), flush=True)
    settings = profile(args.quick)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.alternate:
        timing_only(args, devices, settings, facts)
        return
    results = []
    for device in devices:
        for steps in settings["steps"]:
            for memory_saving in (False, True):
                case = {"device": device, "steps": steps, "memory_saving": memory_saving, "levels": args.levels,
                        "quick": args.quick}
                result = in_subprocess(case, args.threads, __file__, "--case")
                results.append({"case": case, **result})
                print(f"{device}, {steps} steps per level, memory_saving={memory_saving}: "
                      f"{result['seconds_per_step']:.2f} s/step, peak {result['peak_memory_mb']:.0f} MB "
                      f"(training {result['training_mb']:.0f} MB)", flush=True)
    document = {"benchmark": "memory", "machine": facts, "settings": {**settings, "levels": args.levels},
                "results": results, "table": table(results)}
    write_json(args.output, document)
    print(document["table"], f"JSON: {args.output}", sep="\n\n")


if __name__ == "__main__":
    main()
