"""Deblurring quality at a fixed training budget: classical methods, two learned baselines, UML-IN, the ablation.

On the built-in images (train split for training, val split for tuning, the 24 test crops of 128 x 128 for the
scores), for the blur protocols of ``PROTOCOLS`` (the paper's 3x3 Gaussian, a wider Gaussian, camera shake, no
blur at all, a defocus disk and the default blur mixture): Y-PSNR and SSIM (8-bit rounded, per image then
averaged) of

- the blurry input; unsharp masking; Wiener and Richardson-Lucy deconvolution given the true kernel (each image's
  own under the mixture), each with its one parameter tuned on the val split (Y-PSNR), scored on Y;
- UML-IN trained end to end on L1 of the output (the joint stage alone, from the --sharp-init shared start), by
  ``flowdeblur.train.train`` for ``--budget-seconds`` of optimiser steps;
- a plain residual U-Net and a NAFNet-style network (``nafnet.py``), each with UML-IN's parameter count (within
  10 %), trained on the same crops and batches with Adam and an L1 loss for exactly as many seconds as UML-IN's
  training took;
- on the paper's 3x3 Gaussian protocol, the paper's Table 2 ablation (its three stages, the budget split over them
  in ``PAPER_SHARES``, L1 weight ``--l1-weight``, default 0.01) and one row per option beyond the paper (pixel loss,
  SSIM and likelihood weights, transfer-net receptive field and context), each row with the same budget.

Under ``none`` the blurry input is the sharp image itself, whose PSNR is infinite. In every mean an image restored
exactly counts as ``PSNR_CAP`` (100 dB, above any finite score of a 128 x 128 8-bit crop), so means stay finite
for the models too, and the table writes "∞" where every image came back exactly (mean MSE 0).

    python benchmarks/quality.py                         # the full run (21 models of 240 s: about 1 h 45 min)
    python benchmarks/quality.py --budget-seconds 1200   # a longer budget, e.g. on a GPU
    python benchmarks/quality.py --protocols gaussian3 --l1-weight 0.5   # the ablation with a larger L1 weight
    python benchmarks/quality.py --budget-seconds 960 --protocols gaussian3 --no-ablation   # 4x, main rows
    python benchmarks/quality.py --protocols gaussian3 --rows "joint, one shared codec"   # one ablation row
    python benchmarks/quality.py --protocols gaussian9 --no-main-rows --designs "UML-IN pyramid-light, Adam" \
        --plot curve.svg                                 # the design against the NAFNet-style family, and its plot
    python benchmarks/quality.py --protocols gaussian3 --no-main-rows --designs --nafnet-widths 16 --nafnet-lr 1e-3 \
        --budget-seconds 887                             # one family member at another rate, for as long
    python benchmarks/quality.py --quick                 # a smoke run of about a minute
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from baselines import BASELINES, tune
from common import (
    COMPACT_SIZE,
    TINY,
    add_common_arguments,
    describe_machine,
    machine,
    markdown_table,
    set_threads,
    write_json,
)
from curve import gap_table, plot
from learned import parameter_count, train_for
from nafnet import NAFNet, nafnet_with_parameters
from shift_consistency import model_restorer, shift_consistency
from torch import Tensor, nn
from torch.utils.data import Subset
from unet import unet_with_parameters

from flowdeblur import UMLINConfig, WaveletUNetFlow
from flowdeblur.config import PRESETS
from flowdeblur.data import BlurMixture, BlurSpec, DeblurDataset, build_dataset
from flowdeblur.data.blur import Blur
from flowdeblur.data.factory import BUILTIN_GRID
from flowdeblur.demo import DEMO_LEARNING_RATES
from flowdeblur.inference import resolve_device
from flowdeblur.metrics import PSNR_CAP, image_scores
from flowdeblur.train import TrainConfig, train
from flowdeblur.train.loaders import batch_stream, training_loader
from flowdeblur.train.stages import STAGES

PROTOCOLS: dict[str, tuple[str, Blur]] = {
    "gaussian3": ("3×3 Gaussian σ=1 (paper)", BlurSpec()),
    "gaussian9": ("9×9 Gaussian σ=2", BlurSpec(kernel_size=9, sigma=2.0)),
    "motion15": ("15×15 motion", BlurSpec(kind="motion", kernel_size=15)),
    "none": ("no blur", BlurSpec(kind="none", kernel_size=1)),
    "defocus": ("9×9 defocus r=4", BlurSpec(kind="defocus", kernel_size=9, radius=4.0)),
    "mixture": ("blur mixture", BlurMixture()),
}
# The learned baselines, trained alike: the name in the JSON -> (the name in the table, the network of about N
# parameters for C channels).
LEARNED_BASELINES: dict[str, tuple[str, Callable[..., nn.Module]]] = {
    "U-Net": ("plain U-Net", unet_with_parameters),
    "NAFNet-style": ("NAFNet-style", nafnet_with_parameters),
}
NAFNET_WIDTHS = (8, 16, 32)  # the NAFNet-style family: quality against forward time, trained as long as the design
FORWARD_SIZE = (720, 1280)  # the frame each learned network's forward pass is timed on (one Y channel)
ABLATION_PROTOCOL = "gaussian3"
TEST_CROP = BUILTIN_GRID  # the built-in set's grid cell: 24 test and 24 val crops, training windows in training cells
PAPER_SHARES = (0.2, 0.2, 0.6, 0.0)  # of the budget for stages 1, 2, 3 (and the joint stage)
TWO_STAGES = (0.5, 0.5, 0.0, 0.0)  # the paper's rows without stage 3
JOINT_ONLY = (0.0, 0.0, 0.0, 1.0)  # end to end from the --sharp-init shared start
JOINT = "joint, L1"  # the variant that is the UML-IN row of every protocol
LEARNING_RATES = DEMO_LEARNING_RATES  # the shipped model's, per stage
L1_WEIGHT = 0.01  # the trainer's default
SEED = 0
Triple = tuple[Tensor, Tensor, Tensor]
Restorer = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Variant:
    """One trained UML-IN: its share of the budget per stage and its training and architecture options."""

    name: str
    shares: tuple[float, float, float, float]
    options: tuple[tuple[str, Any], ...] = ()
    model: tuple[tuple[str, Any], ...] = ()

    @property
    def slug(self) -> str:
        """A folder name for this variant's training run."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


def variants(l1_weight: float) -> tuple[Variant, ...]:
    """The rows of the paper's Table 2 (the L1 rows with weight ``l1_weight``), then the options beyond it.

    The first of the options, end-to-end training on L1 alone, is the UML-IN row of every protocol.
    """
    l1 = (("l1_weight", l1_weight),)
    dilated = (("transfer_blocks", 4), ("transfer_dilation", 2))
    return (
        Variant("UML-IN (L_ML only)", TWO_STAGES, (("l1_weight", 0.0),)),
        Variant("+ SSIM", PAPER_SHARES, (("l1_weight", 0.0),)),
        Variant("+ L1", TWO_STAGES, l1),
        Variant("+ L1 + SSIM", PAPER_SHARES, l1),
        Variant(JOINT, JOINT_ONLY),
        Variant("joint, Charbonnier", JOINT_ONLY, (("pixel_loss", "charbonnier"),)),
        Variant("joint, L1 + 0.2 SSIM", JOINT_ONLY, (("stage4_ssim_weight", 0.2),)),
        Variant("joint, L1 + 0.01 L_ML", JOINT_ONLY, (("stage4_nll_weight", 0.01),)),
        Variant("joint, dilated transfer nets", JOINT_ONLY, model=dilated),
        Variant("joint, dilated + restored context", JOINT_ONLY, model=(*dilated, ("transfer_context", "restored"))),
        Variant("joint, one shared codec", JOINT_ONLY, model=(("shared_codec", True),)),
    )


def preset_fields(name: str) -> tuple[tuple[str, Any], ...]:
    """The fields in which ``PRESETS[name]`` differs from the ``compact`` preset (the UML-IN row)."""
    preset, base = PRESETS[name].to_dict(), PRESETS["compact"].to_dict()
    return tuple((field, value) for field, value in preset.items() if base[field] != value)


# The designs beyond the paper, trained on every protocol like the UML-IN row: the name in the JSON -> the variant.
ADAM = (("optimizer", "adam"), ("learning_rates", (*LEARNING_RATES[:3], 2e-3)))  # the shipped general's training
NAFNET_FAMILY_LR = 3e-3  # the best of 1e-3 and 3e-3 on val for width 8 (benchmarks.md), above the designs' 2e-3
DESIGNS: dict[str, Variant] = {
    "UML-IN pyramid": Variant("pyramid preset", JOINT_ONLY, model=preset_fields("pyramid")),
    "bare pyramid": Variant("pyramid preset without INNs", JOINT_ONLY, model=(*preset_fields("pyramid"), ("steps", 0))),
    "UML-IN pyramid-light, Adam": Variant("pyramid-light preset, Adam", JOINT_ONLY, options=ADAM,
                                          model=preset_fields("pyramid-light")),
}
FAMILY_REFERENCE = "UML-IN pyramid-light, Adam"  # the design the NAFNet-style family trains as long as
# Rows that score a design's trained weights again with cycle spinning (UMLINConfig.inference_shifts): the row's
# name -> (the design's name, the shifts). Training makes one pass either way, so the weights are the same.
SHIFTED_DESIGNS = {"UML-IN pyramid-light, Adam, 2 shifted passes": ("UML-IN pyramid-light, Adam", (0, 3))}


@dataclass(frozen=True)
class Settings:
    """What a run trains and scores: the model, the budget, crops, batch, how many val/test images."""

    model: UMLINConfig
    budget_seconds: float
    l1_weight: float
    crop_size: int
    batch_size: int
    images: int
    calibration_steps: int
    warmup_steps: int
    protocols: tuple[str, ...]
    work_dir: Path
    ablation: bool = True
    rows: tuple[str, ...] = ()
    main_rows: bool = True
    designs: tuple[str, ...] = tuple(DESIGNS)
    nafnet_widths: tuple[int, ...] = NAFNET_WIDTHS
    nafnet_lr: float = NAFNET_FAMILY_LR
    forward_size: tuple[int, int] = FORWARD_SIZE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return {
            "model": self.model.to_dict(),
            "budget_seconds": self.budget_seconds,
            "stage_shares": {"paper": PAPER_SHARES, "two stages": TWO_STAGES, "joint": JOINT_ONLY},
            "learning_rates": LEARNING_RATES,
            "l1_weight": self.l1_weight,
            "crop_size": self.crop_size,
            "batch_size": self.batch_size,
            "test_crop": TEST_CROP,
            "images": self.images,
            "calibration_steps": self.calibration_steps,
            "warmup_steps": self.warmup_steps,
            "protocols": {name: PROTOCOLS[name][1].describe(SEED) for name in self.protocols},
            "ablation_protocol": ABLATION_PROTOCOL,
            "ablation_rows": list(self.rows) or "all",
            "main_rows": self.main_rows,
            "designs": {name: {**dict(DESIGNS[name].model), **dict(DESIGNS[name].options)} for name in self.designs},
            "nafnet_widths": list(self.nafnet_widths),
            "nafnet_lr": self.nafnet_lr,
            "forward_size": list(self.forward_size),
            "psnr_cap": PSNR_CAP,
            "seed": SEED,
        }


def make_settings(args: argparse.Namespace, work_dir: Path) -> Settings:
    """The full run's settings, or tiny ones for ``--quick``."""
    common = dict(protocols=tuple(args.protocols), work_dir=work_dir, l1_weight=args.l1_weight, ablation=args.ablation,
                  rows=tuple(args.rows or ()), main_rows=args.main_rows, designs=tuple(args.designs),
                  nafnet_widths=tuple(args.nafnet_widths), nafnet_lr=args.nafnet_lr)
    if args.quick:
        return Settings(TINY, args.budget_seconds or 1.0, crop_size=32, batch_size=4, images=4, calibration_steps=1,
                        warmup_steps=1, forward_size=(64, 64), **{**common, "nafnet_widths": (4,)})
    return Settings(COMPACT_SIZE, args.budget_seconds or 240.0, crop_size=64, batch_size=16, images=24,
                    calibration_steps=5, warmup_steps=10, **common)


# -- data and scores -----------------------------------------------------------------------------------------------
def split(blur: Blur, name: str, crop_size: int) -> DeblurDataset:
    """One split of the built-in set on Y, cut on the 128-pixel grid whatever the crop size."""
    return build_dataset("builtin", split=name, color="y", crop_size=crop_size, seed=SEED, blur=blur,
                         patch_size=TEST_CROP)


def triples(dataset: DeblurDataset, count: int | None = None) -> list[Triple]:
    """(blurry, sharp, true kernel) of the first ``count`` items (all of them by default)."""
    count = len(dataset) if count is None else min(count, len(dataset))
    return [(dataset[i]["blurry"], dataset[i]["sharp"], dataset.kernel(i)) for i in range(count)]


def scores(restore: Restorer, test: list[Triple]) -> dict[str, float]:
    """Mean Y-PSNR, SSIM and MSE of ``restore`` (a batch (N, 1, H, W) -> the same) over the test triples.

    An image restored exactly (infinite PSNR) counts as ``PSNR_CAP`` dB in the mean PSNR.
    """
    blurry = torch.stack([b for b, _, _ in test])
    sharp = torch.stack([s for _, s, _ in test])
    per_image = image_scores(restore(blurry).cpu().float(), sharp, space="y")
    per_image["psnr"] = per_image["psnr"].clamp(max=PSNR_CAP)
    return {metric: float(values.mean()) for metric, values in per_image.items()}


@torch.inference_mode()
def model_scores(model: torch.nn.Module, test: list[Triple], device: torch.device) -> dict[str, float]:
    """Scores of a network that maps a blurry batch to a deblurred one (clipped to [0, 1]).

    The test batches are Y channels: UML-IN takes them through its networks' own map (``restore``), since
    calling it would read a 1-channel batch as a gray image.
    """
    model.eval().to(device)
    network = model.restore if isinstance(model, WaveletUNetFlow) else model
    return scores(lambda batch: network(batch.to(device)).clamp(0.0, 1.0), test)


def classical_results(val: list[Triple], test: list[Triple]) -> dict[str, dict[str, Any]]:
    """The blurry input and each classical method at its parameter tuned on ``val``, scored on ``test``."""
    results = {"blurry input": scores(lambda batch: batch, test)}
    for baseline in BASELINES:
        value = tune(baseline, val)
        restore, kernels = baseline.restorer(value), [k for _, _, k in test]

        def restore_batch(batch: Tensor, restore=restore, kernels=kernels) -> Tensor:
            return torch.stack([restore(image, kernel) for image, kernel in zip(batch, kernels, strict=True)])

        results[baseline.name] = {**scores(restore_batch, test), "parameter": baseline.parameter, "value": value}
    return results


# -- UML-IN through the real trainer -------------------------------------------------------------------------------
def train_config(settings: Settings, output_dir: Path, stage_steps: tuple[int, ...], variant: Variant) -> TrainConfig:
    """The training run of one variant: the built-in crops, no checkpoints, validation at stage ends only."""
    return TrainConfig(
        dataset="builtin", output_dir=output_dir, model=replace(settings.model, **dict(variant.model)),
        crop_size=settings.crop_size, batch_size=settings.batch_size, num_workers=0, stage_steps=stage_steps,
        warmup_steps=settings.warmup_steps, mixed_precision="no", seed=SEED,
        checkpointing_steps=0, validation_steps=0, validation_images=settings.images,
        **{"l1_weight": settings.l1_weight, "learning_rates": LEARNING_RATES, **dict(variant.options)},
    )


class StepTimes:
    """Seconds per optimiser step of each stage a variant runs, per architecture, from a short run of the trainer."""

    def __init__(self, settings: Settings, datasets: tuple[Any, Any], root: Path) -> None:
        self.settings, self.datasets, self.root = settings, datasets, root
        self.measured: dict[tuple[Any, ...], tuple[float, ...]] = {}

    def __call__(self, variant: Variant) -> tuple[float, ...]:
        runs = tuple(share > 0 for share in variant.shares)
        key = (variant.model, runs)
        if key not in self.measured:
            steps = tuple(self.settings.calibration_steps if run else 0 for run in runs)
            probe = Variant(f"calibration {len(self.measured)}", variant.shares, model=variant.model)
            config = train_config(self.settings, self.root / probe.slug, steps, probe)
            stages = WaveletUNetFlow.from_pretrained(train(config, self.datasets)).metadata["stages"]
            per_stage = zip(STAGES, runs, strict=True)
            self.measured[key] = tuple(stages[s.name]["seconds"] / stages[s.name]["steps"] if run else 0.0
                                       for s, run in per_stage)
        return self.measured[key]


def stage_steps(variant: Variant, budget: float, seconds_per_step: tuple[float, ...]) -> tuple[int, ...]:
    """Steps per stage that fill the variant's share of ``budget`` seconds (at least one per stage it runs)."""
    return tuple(
        max(1, round(budget * share / seconds)) if share else 0
        for share, seconds in zip(variant.shares, seconds_per_step, strict=True)
    )


def train_variant(
    settings: Settings, variant: Variant, datasets: tuple[Any, Any], step_times: StepTimes, root: Path
) -> tuple[WaveletUNetFlow, dict[str, Any]]:
    """Train one variant for the budget; the model and what its training took."""
    steps = stage_steps(variant, settings.budget_seconds, step_times(variant))
    config = train_config(settings, root / variant.slug, steps, variant)
    model = WaveletUNetFlow.from_pretrained(train(config, datasets))
    stages = model.metadata["stages"]
    return model, {
        "stage_steps": steps,
        "options": {**dict(variant.options), **dict(variant.model)},
        "l1_weight": config.l1_weight,
        "train_seconds": sum(stage["seconds"] for stage in stages.values()),
        "stages": {name: {k: stage[k] for k in ("steps", "seconds", "images_per_second")} for name, stage in
                   stages.items()},
        "parameters": model.parameter_counts()["total"],
    }


def forward_seconds(network: Callable[[Tensor], Tensor], size: tuple[int, int]) -> float:
    """CPU seconds of one forward pass on a random Y frame of ``size`` (after one warm-up pass), inference mode."""
    frame = torch.rand(1, 1, *size)
    with torch.inference_mode():
        network(frame)
        started = time.thread_time()
        network(frame)
        return time.thread_time() - started


def cost_and_consistency(model: nn.Module, test: list[Triple], size: tuple[int, int]) -> dict[str, float]:
    """A trained network's 720p forward time and its shift consistency (dB) on the test crops."""
    model.eval().cpu()
    restore = model_restorer(model)
    blurry = torch.stack([b for b, _, _ in test])
    return {"forward_s": forward_seconds(restore, size), "shift_consistency": shift_consistency(restore, blurry)}


def learned_results(
    network: nn.Module, config: TrainConfig, train_set: DeblurDataset, seconds: float, test: list[Triple],
    settings: Settings, device: torch.device, lr: float = 1e-3,
) -> dict[str, Any]:
    """``network`` trained for ``seconds`` (Adam at ``lr``) on the batches UML-IN's trainer draws; scores, cost and
    consistency."""
    torch.manual_seed(SEED)
    accelerator = Accelerator(mixed_precision="no")
    loader = training_loader(train_set, config)
    model, prepared = accelerator.prepare(network, loader)
    facts = train_for(model, accelerator, batch_stream(accelerator, prepared, loader.sampler), seconds, lr=lr)
    return {**model_scores(model, test, device), **facts, "lr": lr, "parameters": parameter_count(model),
            "train_seconds": facts["seconds"], **cost_and_consistency(model, test, settings.forward_size)}


def rows_to_train(protocol: str, settings: Settings) -> list[Variant]:
    """The UML-IN row, and on the paper's protocol the ablation rows asked for (all unless ``--rows``); none without
    the main rows."""
    ablated = protocol == ABLATION_PROTOCOL and settings.ablation
    return [row for row in variants(settings.l1_weight) if settings.main_rows
            and (row.name == JOINT or (ablated and (not settings.rows or row.name in settings.rows)))]


def trained_uml_in(
    settings: Settings, variant: Variant, datasets: tuple[Any, Any], step_times: StepTimes, root: Path,
    test: list[Triple], device: torch.device,
) -> tuple[nn.Module, dict[str, Any]]:
    """One UML-IN variant trained for the budget, and its scores, what training took, cost and consistency."""
    model, facts = train_variant(settings, variant, datasets, step_times, root)
    results = {**model_scores(model, test, device), **facts}
    results["steps_per_second"] = sum(facts["stage_steps"]) / facts["train_seconds"]
    return model, {**results, **cost_and_consistency(model, test, settings.forward_size)}


def shifted_passes(model: nn.Module, shifts: tuple[int, ...], test: list[Triple], settings: Settings,
                   device: torch.device) -> dict[str, Any]:
    """A trained UML-IN's scores, forward time and consistency with cycle spinning over ``shifts``."""
    model.config = replace(model.config, inference_shifts=shifts)
    return {**model_scores(model, test, device), **cost_and_consistency(model, test, settings.forward_size),
            "inference_shifts": list(shifts)}


def run_protocol(name: str, settings: Settings, device: torch.device) -> dict[str, Any]:
    """Every method on one blur protocol; the ablation too on the paper's protocol."""
    label, blur = PROTOCOLS[name]
    started = time.perf_counter()
    train_set = split(blur, "train", settings.crop_size)
    val_set = split(blur, "val", TEST_CROP)
    val, test = triples(val_set, settings.images), triples(split(blur, "test", TEST_CROP), settings.images)
    methods = classical_results(val, test)
    print(f"[{name}] classical methods done ({time.perf_counter() - started:.0f} s)", flush=True)
    datasets = (train_set, Subset(val_set, range(min(settings.images, len(val_set)))))
    root = settings.work_dir / name
    step_times = StepTimes(settings, datasets, root)
    ablation: dict[str, dict[str, Any]] = {}
    for variant in rows_to_train(name, settings):
        ablation[variant.name] = trained_uml_in(settings, variant, datasets, step_times, root, test, device)[1]
        facts = ablation[variant.name]
        print(f"[{name}] {variant.name}: {facts['psnr']:.2f} dB after {facts['train_seconds']:.0f} s "
              f"{facts['stage_steps']}", flush=True)
    full = ablation.get(JOINT)
    config = train_config(settings, root / "learned", full["stage_steps"] if full else (0, 0, 0, 1),
                          Variant(JOINT, JOINT_ONLY))
    channels = config.model.channels
    if full:
        for method, (_, network) in LEARNED_BASELINES.items():
            methods[method] = learned_results(network(full["parameters"], channels=channels), config, train_set,
                                              full["train_seconds"], test, settings, device)
            print(f"[{name}] {method}: {methods[method]['psnr']:.2f} dB after {methods[method]['steps']} steps",
                  flush=True)
        methods["UML-IN"] = full
    for method in settings.designs:
        model, methods[method] = trained_uml_in(settings, DESIGNS[method], datasets, step_times, root, test, device)
        print(f"[{name}] {method}: {methods[method]['psnr']:.2f} dB after {methods[method]['train_seconds']:.0f} s",
              flush=True)
        for shifted, (design, shifts) in SHIFTED_DESIGNS.items():
            if design == method:
                methods[shifted] = {**methods[method], **shifted_passes(model, shifts, test, settings, device)}
                print(f"[{name}] {shifted}: {methods[shifted]['psnr']:.2f} dB", flush=True)
    reference = methods.get(FAMILY_REFERENCE, full)
    design_seconds = reference["train_seconds"] if reference else settings.budget_seconds
    for width in settings.nafnet_widths:
        method = f"NAFNet-style w{width}"
        methods[method] = learned_results(NAFNet(channels, width), config, train_set, design_seconds, test, settings,
                                          device, lr=settings.nafnet_lr)
        print(f"[{name}] {method}: {methods[method]['psnr']:.2f} dB after {methods[method]['steps']} steps",
              flush=True)
    return {
        "label": label, "blur": blur.describe(SEED), "images": len(test),
        "seconds_per_step": {str(dict(model)): times for (model, _), times in step_times.measured.items()},
        "methods": methods, "ablation": ablation if len(ablation) > 1 else {},
        "wall_seconds": time.perf_counter() - started,
    }


# -- the table -----------------------------------------------------------------------------------------------------
def row_label(method: str, result: dict[str, Any]) -> str:
    """A method's name in the table, with what sets it apart."""
    if method == "UML-IN":
        return f"UML-IN ({JOINT}, end to end)"
    if method in SHIFTED_DESIGNS:
        design, shifts = SHIFTED_DESIGNS[method]
        return f"{row_label(design, result)}, the mean of passes shifted by {shifts} pixels (cycle spinning)"
    if method in DESIGNS:
        return {"UML-IN pyramid": "UML-IN, pyramid preset (joint, L1)",
                "bare pyramid": "pyramid preset, INNs replaced by the identity (the Haar pyramid alone)",
                "UML-IN pyramid-light, Adam": "UML-IN, pyramid-light preset, Adam at 2e-3 (joint, L1)"}[method]
    if method.startswith("NAFNet-style w"):
        return (f"{method}, {result['parameters']:,} parameters, L1, Adam at {result['lr']:g}, as long as the "
                "pyramid-light design")
    if method in LEARNED_BASELINES:
        return f"{LEARNED_BASELINES[method][0]}, {result['parameters']:,} parameters, L1"
    return {"unsharp masking": "unsharp masking (blind)"}.get(method, method)


def ablation_label(row: str, result: dict[str, Any]) -> str:
    """An ablation row's name in the table: the paper's Table 2 rows with their L1 weight, then the options."""
    if row.startswith("joint"):
        return f"option: {row}"
    weight = result["l1_weight"]
    return f"Table 2: {row}" + (f" (λ={weight:g})" if weight else "")


def psnr_cell(result: dict[str, Any]) -> str:
    """A mean Y-PSNR for the table: "∞" where every image came back exactly (the blurry input under ``none``)."""
    return "∞" if result["mse"] == 0 else f"{result['psnr']:.2f}"


def table(protocols: dict[str, dict[str, Any]]) -> str:
    """One Markdown table: every method and ablation row against every protocol run, Y-PSNR and SSIM."""
    names = list(protocols)
    header = ["method"] + [f"{protocols[n]['label']}: {m}" for n in names for m in ("Y-PSNR (dB)", "SSIM")]
    header.append("training (s)")
    keys = [("methods", m) for m in protocols[names[0]]["methods"]]
    keys += [("ablation", row) for row in next((p["ablation"] for p in protocols.values() if p["ablation"]), {})]
    rows = []
    for group, key in keys:
        results = [protocols[n][group].get(key) for n in names]
        first = next(r for r in results if r is not None)
        label = row_label(key, first) if group == "methods" else ablation_label(key, first)
        cells = [f"{psnr_cell(r)}\t{r['ssim']:.4f}" if r else "—\t—" for r in results]
        seconds = "/".join(f"{r['train_seconds']:.0f}" for r in results if r and "train_seconds" in r) or "—"
        rows.append([label, *"\t".join(cells).split("\t"), seconds])
    return markdown_table(header, rows)


def cost_table(protocols: dict[str, dict[str, Any]]) -> str:
    """Quality for cost: every learned method's parameters, training steps per second and forward time, then per
    protocol its Y-PSNR and shift consistency (dB; higher: the result moves less with the block grid)."""
    names = list(protocols)
    learned = [m for m, r in protocols[names[0]]["methods"].items() if "forward_s" in r]
    header = ["method", "parameters", "steps/s", "forward (s)"]
    header += [f"{protocols[n]['label']}: {m}" for n in names for m in ("Y-PSNR", "shift consistency")]
    rows = []
    for method in learned:
        first = protocols[names[0]]["methods"][method]
        steps_per_second = first.get("steps_per_second", first["steps"] / first["train_seconds"] if "steps" in first
                                     else float("nan"))
        cells = [method, f"{first['parameters']:,}", f"{steps_per_second:.2f}", f"{first['forward_s']:.2f}"]
        for n in names:
            result = protocols[n]["methods"][method]
            cells += [psnr_cell(result), f"{result['shift_consistency']:.2f}"]
        rows.append(cells)
    return markdown_table(header, rows)


def tuned_values(protocols: dict[str, dict[str, Any]]) -> str:
    """The classical methods' tuned parameters per protocol, one line."""
    parts = []
    for name, protocol in protocols.items():
        values = [f"{m} {r['parameter']}={r['value']}" for m, r in protocol["methods"].items() if "parameter" in r]
        parts.append(f"{name}: " + ", ".join(values))
    return "tuned on val (Y-PSNR): " + "; ".join(parts)


def main() -> None:
    """Parse arguments, run every protocol, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "quality.json")
    parser.add_argument("--budget-seconds", type=float, help="training seconds per model (default 240; quick 1)")
    parser.add_argument("--protocols", nargs="+", choices=list(PROTOCOLS), default=list(PROTOCOLS))
    parser.add_argument("--l1-weight", type=float, default=L1_WEIGHT,
                        help=f"λ of the L1 term in UML-IN and the '+ L1' rows, in [0, 1) (default {L1_WEIGHT})")
    parser.add_argument("--work-dir", type=Path, help="keep the trained models here (default: a temporary folder)")
    parser.add_argument("--no-ablation", dest="ablation", action="store_false",
                        help="skip the ablation rows of the paper's protocol (its main rows only)")
    parser.add_argument("--no-main-rows", dest="main_rows", action="store_false",
                        help="skip the UML-IN row of the configured model, its ablation and the same-size U-Net and "
                        "NAFNet-style rows (the classical methods, the designs and the family still run)")
    parser.add_argument("--designs", nargs="*", choices=list(DESIGNS), default=list(DESIGNS), metavar="DESIGN",
                        help="the design rows to train on every protocol (default all: "
                        f"{', '.join(map(repr, DESIGNS))}; none: skip)")
    parser.add_argument("--nafnet-widths", type=int, nargs="*", default=list(NAFNET_WIDTHS),
                        help=f"widths of the NAFNet-style family, each trained as long as the pyramid-light design "
                        f"(default {' '.join(map(str, NAFNET_WIDTHS))}; none: skip)")
    parser.add_argument("--nafnet-lr", type=float, default=NAFNET_FAMILY_LR,
                        help=f"the family's constant Adam learning rate (default {NAFNET_FAMILY_LR:g})")
    parser.add_argument("--plot", type=Path, help="also plot Y-PSNR against forward time here (curve.py; matplotlib)")
    parser.add_argument("--rows", nargs="+", choices=[variant.name for variant in variants(L1_WEIGHT)],
                        metavar="ROW", help="only these ablation rows (beside the UML-IN row), e.g. 'joint, one "
                        "shared codec'")
    args = parser.parse_args()
    if not 0.0 <= args.l1_weight < 1.0:
        parser.error(f"--l1-weight must lie in [0, 1) (the λ of Eq. 13), got {args.l1_weight}")
    set_threads(args.threads)
    facts = machine()
    print(describe_machine(facts), flush=True)
    device = resolve_device("auto")
    with tempfile.TemporaryDirectory() as temporary:
        settings = make_settings(args, args.work_dir or Path(temporary))
        document: dict[str, Any] = {"benchmark": "quality", "machine": facts, "settings": settings.to_dict(),
                                    "protocols": {}}
        for name in settings.protocols:
            document["protocols"][name] = run_protocol(name, settings, device)
            write_json(args.output, document)
    document["table"] = table(document["protocols"])
    document["cost_table"] = cost_table(document["protocols"])
    write_json(args.output, document)
    print(document["table"])
    print(document["cost_table"])
    print(tuned_values(document["protocols"]))
    print(gap_table(document["protocols"]))
    if args.plot:
        plot(document["protocols"], args.plot)
        print(f"plot: {args.plot}")
    print(f"JSON: {args.output}")


if __name__ == "__main__":
    main()
