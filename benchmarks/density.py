"""Whole-image density at equal wall-clock seconds: WaveletFlow with a LowPassPrior against a Glow-style flow.

Both flows model 32 × 32 Y crops of the built-in photographs (the train split; test bits/dim on the test split only),
uniformly dequantised on the 8-bit scale (``flowdeblur.flows.uniform_dequantize``), and are trained by Adam on their
bits/dim. The Glow-style flow is a FrEIA ``GraphINN`` of three scales (``IRevNetDownsampling``, K Glow steps, a
``Split`` of half the channels), its coupling width chosen so that its parameter count is the WaveletFlow's. Both are
called the same way, FrEIA's ``z, log_jac_det = flow(x)``, and scored by one function. The two trainings alternate in
time slices, so load from other work on the machine hits both alike; each gets ``--budget-seconds`` of training
(evaluation excluded). Sample grids (PNG, temperatures 1.0 and 0.7) go to ``--samples-dir``.

    python benchmarks/density.py                                   # 120 s each: a few minutes
    python benchmarks/density.py --budget-seconds 600 --samples-dir runs/density
    python benchmarks/density.py --quick                           # a smoke run of seconds
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch
from common import add_common_arguments, describe_machine, machine, markdown_table, set_threads, write_json
from FrEIA.framework import GraphINN, InputNode, Node, OutputNode
from FrEIA.modules import IRevNetDownsampling, Split
from learned import parameter_count
from torch import Tensor, nn

from flowdeblur.data import BlurSpec, build_dataset
from flowdeblur.data.io import write_image
from flowdeblur.flows import (
    LowPassPrior,
    WaveletFlow,
    dequantized_bits_per_dim,
    glow_step_nodes,
    subnet_factory,
    uniform_dequantize,
)

SIZE, LEVELS, SEED = 32, 3, 0
TEMPERATURES = (1.0, 0.7)


def profile(quick: bool) -> dict[str, Any]:
    """Flow steps per level (and scale), prior steps, coupling width and kernel, batch, warm-up, test crops."""
    if quick:
        return {"steps": 1, "prior_steps": 1, "hidden_channels": 8, "kernel_size": 3, "batch": 8, "lr": 1e-3,
                "warmup_steps": 2, "test_crops": 16, "samples": 4}
    return {"steps": 4, "prior_steps": 2, "hidden_channels": 64, "kernel_size": 3, "batch": 32, "lr": 1e-3,
            "warmup_steps": 200, "test_crops": None, "samples": 64}


def wavelet_flow(settings: dict[str, Any]) -> WaveletFlow:
    """WaveletFlow on Y: LEVELS levels of K Glow steps on the detail bands, a LowPassPrior on the 4 × 4 low-pass."""
    options = {"hidden_channels": settings["hidden_channels"], "kernel_size": settings["kernel_size"]}
    prior = LowPassPrior(1, steps=settings["prior_steps"], **options)
    return WaveletFlow(1, LEVELS, steps=settings["steps"], prior=prior, **options)


def glow(settings: dict[str, Any], hidden_channels: int) -> GraphINN:
    """Glow's multiscale architecture (Kingma & Dhariwal 2018) from FrEIA nodes: per scale squeeze, K steps, split."""
    subnet = subnet_factory(hidden_channels, settings["kernel_size"])
    current: Node | tuple[Node, int] = InputNode(1, SIZE, SIZE, name="input")
    nodes, outputs = [current], []
    for scale in range(LEVELS):
        nodes.append(Node(current, IRevNetDownsampling, {}, name=f"squeeze_{scale}"))
        for step in range(settings["steps"]):
            nodes += glow_step_nodes(nodes[-1], subnet, name=f"{scale}_{step}")
        current = nodes[-1]
        if scale < LEVELS - 1:
            nodes.append(Node(current, Split, {"n_sections": 2}, name=f"split_{scale}"))
            outputs.append(OutputNode(nodes[-1].out1, name=f"z_{scale}"))
            current = nodes[-1].out0
    outputs.append(OutputNode(current, name=f"z_{LEVELS - 1}"))
    return GraphINN(nodes + outputs)


def matched_glow(settings: dict[str, Any], target: int) -> GraphINN:
    """The Glow-style flow whose coupling width brings its parameter count nearest to ``target``."""
    widths = range(4, 4 * settings["hidden_channels"] + 1, 2)
    width = min(widths, key=lambda hidden: abs(parameter_count(glow(settings, hidden)) - target))
    return glow(settings, width)


def bits_per_dim(flow: nn.Module, images: Tensor, generator: torch.Generator) -> Tensor:
    """Per-image bits/dim of 8-bit ``images`` under uniform dequantisation, through FrEIA's call of either flow.

    log p(y) = Σ log N(z; 0, I) + log|det J| (``z, log_jac_det = flow(y)``); bpd = (−log p(y) + D·log 256) / (D·log 2).
    """
    z, log_jac_det = flow(uniform_dequantize(images, 8, generator))
    normal = torch.distributions.Normal(0.0, 1.0)
    log_prob = log_jac_det + sum(normal.log_prob(part).flatten(1).sum(1) for part in z)
    return dequantized_bits_per_dim(log_prob, images[0].numel(), 8)


def crops(split: str, limit: int | None = None) -> Tensor:
    """The built-in photographs' 32 × 32 Y crops of ``split`` (grid cells of 32), unblurred, as one tensor."""
    dataset = build_dataset("builtin", split=split, color="y", crop_size=SIZE, seed=SEED, augment=False,
                            blur=BlurSpec(kind="none", kernel_size=1), patch_size=SIZE)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    return torch.stack([dataset[index]["sharp"] for index in range(count)])


class Trainee:
    """One flow under training: its optimiser, its own batch and noise generator, its seconds and recent losses."""

    def __init__(self, flow: nn.Module, settings: dict[str, Any], train: Tensor, seed: int):
        self.flow, self.settings, self.train = flow, settings, train
        self.generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():  # ActNorm's data-dependent initialisation, on a large batch
            bits_per_dim(flow, train[torch.randperm(len(train), generator=self.generator)[:256]], self.generator)
        self.optimizer = torch.optim.Adam(flow.parameters(), lr=settings["lr"])
        self.steps, self.seconds, self.recent = 0, 0.0, []

    def step(self) -> None:
        """One Adam step on a random batch, the learning rate warmed up linearly."""
        warmup = min(1.0, (self.steps + 1) / self.settings["warmup_steps"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings["lr"] * warmup
        batch = self.train[torch.randint(len(self.train), (self.settings["batch"],), generator=self.generator)]
        loss = bits_per_dim(self.flow, batch, self.generator).mean()
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.flow.parameters(), 100.0)
        self.optimizer.step()
        self.steps += 1
        self.recent = [*self.recent[-49:], loss.item()]

    def train_until(self, seconds: float) -> None:
        """Train until this flow's training time totals ``seconds`` (an overshoot is taken off the next slice)."""
        while self.seconds < seconds:
            start = time.perf_counter()
            self.step()
            self.seconds += time.perf_counter() - start


def train_interleaved(trainees: dict[str, Trainee], budget: float, slice_seconds: float) -> None:
    """Alternate the trainings in slices (the order swapped every round) until each has trained ``budget`` seconds."""
    rounds = math.ceil(budget / slice_seconds)
    for round_index in range(1, rounds + 1):
        names = list(trainees) if round_index % 2 else list(reversed(trainees))
        for name in names:
            trainees[name].train_until(min(budget, round_index * slice_seconds))
        progress = "; ".join(f"{name}: {trainee.steps} steps, {trainee.seconds:.0f} s, train "
                             f"{sum(trainee.recent) / len(trainee.recent):.3f} bits/dim"
                             for name, trainee in trainees.items())
        print(f"round {round_index}/{rounds}: {progress}", flush=True)


@torch.no_grad()
def test_bits_per_dim(flow: nn.Module, test: Tensor) -> float:
    """Mean bits/dim of the test crops, one dequantisation draw from a fixed seed (the same noise for every flow)."""
    generator = torch.Generator().manual_seed(SEED)
    return torch.cat([bits_per_dim(flow, batch, generator) for batch in test.split(64)]).mean().item()


@torch.no_grad()
def save_samples(flow: nn.Module, name: str, count: int, directory: Path) -> list[str]:
    """Grids of ``count`` samples per temperature, drawn through FrEIA's reverse call; the PNG paths written."""
    shapes = flow.output_dims([(1, SIZE, SIZE)])
    side, paths = math.isqrt(count), []
    for temperature in TEMPERATURES:
        generator = torch.Generator().manual_seed(SEED)
        z = [temperature * torch.randn((count, *shape), generator=generator) for shape in shapes]
        images = flow(z, rev=True)[0].clamp(0.0, 1.0)[: side * side]
        grid = nn.functional.pad(images, (1, 1, 1, 1), value=1.0).unflatten(0, (side, side))
        grid = grid.permute(2, 0, 3, 1, 4).reshape(1, side * (SIZE + 2), side * (SIZE + 2))
        path = directory / f"{name}_T{temperature:.1f}.png"
        write_image(path, grid)
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "density.json")
    parser.add_argument("--budget-seconds", type=float, default=120.0, help="training seconds per flow")
    parser.add_argument("--slice-seconds", type=float, default=10.0, help="length of one alternating time slice")
    parser.add_argument("--samples-dir", type=Path, default=Path("density-samples"), help="where the PNG grids go")
    args = parser.parse_args()
    set_threads(args.threads)
    budget = 3.0 if args.quick else args.budget_seconds
    settings = profile(args.quick)
    facts = machine()
    print(describe_machine(facts), flush=True)
    train, test = crops("train"), crops("test", settings["test_crops"])
    torch.manual_seed(SEED)
    flows = {"WaveletFlow + prior": wavelet_flow(settings)}
    flows["Glow-style"] = matched_glow(settings, parameter_count(flows["WaveletFlow + prior"]))
    trainees = {name: Trainee(flow, settings, train, SEED + index) for index, (name, flow) in enumerate(flows.items())}
    print(f"{len(train)} train and {len(test)} test crops; parameters: "
          + ", ".join(f"{name} {parameter_count(flow):,}" for name, flow in flows.items()), flush=True)
    train_interleaved(trainees, budget, min(args.slice_seconds, budget))
    args.samples_dir.mkdir(parents=True, exist_ok=True)
    results = {name: {"parameters": parameter_count(trainee.flow), "train_seconds": round(trainee.seconds, 1),
                      "steps": trainee.steps, "test_bits_per_dim": test_bits_per_dim(trainee.flow, test),
                      "samples": save_samples(trainee.flow, name.split()[0].lower(), settings["samples"],
                                              args.samples_dir)}
               for name, trainee in trainees.items()}
    rows = [[name, f"{result['parameters']:,}", result["train_seconds"], result["steps"],
             f"{result['test_bits_per_dim']:.3f}"] for name, result in results.items()]
    table = markdown_table(["flow", "parameters", "train s", "steps", "test bits/dim"], rows)
    print(table, flush=True)
    write_json(args.output, {"machine": facts, "settings": {**settings, "budget_seconds": budget,
                                                            "slice_seconds": args.slice_seconds,
                                                            "train_crops": len(train), "test_crops": len(test)},
                             "results": results, "table": table})


if __name__ == "__main__":
    main()
