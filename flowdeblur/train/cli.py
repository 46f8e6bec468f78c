"""The command line every recipe shares; a recipe only changes defaults. ``--help`` lists each flag and its default."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.contrib.logging import logging_redirect_tqdm

from ..checkpoint import CheckpointError, read_config
from ..config import COLOR_MODES, PRESET_NOTES, PRESETS, TRANSFER_CONTEXTS, TRANSFER_NETS, UMLINConfig
from ..data import DATASET_NAMES, BlurMixture, BlurSpec, DatasetError
from ..data.blur import BORDERS, KINDS
from ..data.errors import spelled_as
from ..data.factory import LOADERS, OPTION_CHOICES, OPTION_HELP, SYNTHETIC, dataset_options
from ..losses import PIXEL_LOSSES
from .checkpoints import interruption_note
from .config import CODECS, MIXED_PRECISION, SCHEDULES, STAGE_COUNT, TRACKERS, TrainConfig, TrainConfigError
from .schedule import OPTIMIZERS
from .stages import STAGES
from .trainer import train

_TRAIN = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
_MIXTURE = BlurMixture()
BLUR_FIELDS = tuple(spec.name for spec in dataclasses.fields(BlurSpec) if spec.name != "kind")
MIXTURE_HELP = {"gaussian_kernel_size": "kernel size of the Gaussian blurs (odd; 0: 2 ceil(3 sigma) + 1 from sigma)"}
# A mixture's border and 8-bit storage are --blur-border and --blur-quantize; its other fields are --mix-* flags.
MIXTURE_SHARED = ("border", "quantize")
MIXTURE_FIELDS = tuple(spec.name for spec in dataclasses.fields(BlurMixture) if spec.name not in MIXTURE_SHARED)
BLUR_HELP = {
    "kernel_size": "kernel size of --blur-kind (odd)",
    "sigma": "sigma of --blur-kind gaussian",
    "radius": "disk radius of --blur-kind defocus (unset: half the kernel size)",
    "motion_length": "trajectory length of --blur-kind motion (unset: kernel size - 1)",
    "noise_std": "Gaussian sensor noise after the blur",
    "border": "border handling of the convolution",
    "quantize": "store blurred images as 8 bits, as a dataset on disk would",
}
MODEL_CHOICES = {"color": COLOR_MODES, "transfer_context": TRANSFER_CONTEXTS, "transfer_net": TRANSFER_NETS}
# Loader options that are not recipe flags, and why: training reads the train and val splits of paired images.
NOT_FLAGS = {
    "augment": "training crops are always augmented (random crop and flips), validation crops never",
    "real": "Lai et al.'s real photographs have no sharp images to train on",
    "full_test_frames": "training reads the train and val splits, never the test split",
}
FROM_SCHEDULE = "from --schedule"
_STAGE_STEP_FLAGS = tuple(f"stage{number}_steps" for number in range(1, len(STAGES) + 1))


def _flag(name: str) -> str:
    """The command-line spelling of a Python name: ``skip_bad`` is ``--skip-bad``."""
    return "--" + name.replace("_", "-")


def _loader_options() -> dict[str, dict[str, inspect.Parameter]]:
    """Each loader option the recipes offer, with its parameter in every dataset's loader that takes it."""
    offered: dict[str, dict[str, inspect.Parameter]] = {}
    for name in DATASET_NAMES:
        parameters = inspect.signature(LOADERS[name]).parameters
        for option_name in dataset_options(name):
            if option_name not in NOT_FLAGS:
                offered.setdefault(option_name, {})[name] = parameters[option_name]
    return offered


LOADER_OPTIONS = _loader_options()
# Dataset errors inside run_recipe name these flags rather than Python parameters.
DATASET_FLAGS = {
    "name": "--dataset", "root": "--data-dir", "crop_size": "--crop-size",
    **{name: _flag(name) for name in LOADER_OPTIONS},
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each flag's default in its help (or what an unset flag takes); the recipe's description kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "(unset: " in action.help:
            return action.help
        return super()._get_help_string(action)


def _attribute_help(cls: type) -> dict[str, str]:
    """The one-line description of each field in a dataclass docstring's ``Attributes:`` section."""
    lines = (cls.__doc__ or "").split("Attributes:", 1)[-1].splitlines()
    described = {}
    for line in lines:
        name, colon, text = line.strip().partition(": ")
        if colon and name.isidentifier():
            described[name] = text.rstrip(".")
    return described


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`UMLINConfig` field (so none can be missing), defaulting to the chosen --preset."""
    model = parser.add_argument_group("model (UML-IN architecture; unset flags take --preset's values)")
    model.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                       help="architecture to start from: " + "; ".join(PRESET_NOTES[n] for n in sorted(PRESETS)))
    described = _attribute_help(UMLINConfig)
    for spec in dataclasses.fields(UMLINConfig):
        flag, text = f"--{spec.name.replace('_', '-')}", f"{described.get(spec.name, spec.name)} (unset: --preset's)"
        if isinstance(spec.default, bool):
            model.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            model.add_argument(flag, type=type(spec.default), choices=MODEL_CHOICES.get(spec.name), default=None,
                               help=text)


def _add_loader_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per loader option (from the loaders' signatures), each naming the datasets that take it."""
    group = parser.add_argument_group("dataset options (each applies to the datasets it names; unset: the loader's)")
    for name, takers in LOADER_OPTIONS.items():
        defaults = {parameter.default for parameter in takers.values()}
        default = next(iter(defaults))
        shown = default if len(defaults) == 1 else ", ".join(f"{d} {p.default}" for d, p in takers.items())
        text = f"{OPTION_HELP[name]}; --dataset {', '.join(takers)} (unset: {shown})"
        if isinstance(default, bool):
            group.add_argument(_flag(name), action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(_flag(name), type=type(default), choices=OPTION_CHOICES.get(name), default=None,
                               help=text)


def _add_blur_flags(parser: argparse.ArgumentParser) -> None:
    """One --blur-* flag per :class:`BlurSpec` field and one --mix-* flag per other :class:`BlurMixture` field."""
    data = parser.add_argument_group("synthetic blur (sharp-only datasets builtin, celeba and lsun)")
    data.add_argument("--blur-kind", choices=(*KINDS, "mix"), default=None,
                      help="one kind of blur for every image, or 'mix': one drawn per image from the --mix-* "
                      "mixture; unset: the dataset's default")
    for spec in dataclasses.fields(BlurSpec):
        if spec.name == "kind":
            continue
        flag, text = f"--blur-{spec.name.replace('_', '-')}", BLUR_HELP.get(spec.name, spec.name.replace("_", " "))
        if isinstance(spec.default, bool):
            data.add_argument(flag, action=argparse.BooleanOptionalAction, default=spec.default, help=text)
        else:
            kind = float if spec.default is None else type(spec.default)
            choices = BORDERS if spec.name == "border" else None
            data.add_argument(flag, type=kind, choices=choices, default=spec.default, help=text)
    for name in MIXTURE_FIELDS:
        default = getattr(_MIXTURE, name)
        pair = isinstance(default, tuple)
        kind = type(default) if isinstance(default, int) else float
        text = MIXTURE_HELP.get(name) or ("range (uniform) of the " if pair else "weight of ") + name
        data.add_argument(f"--mix-{name.replace('_', '-')}", type=kind, nargs=2 if pair else None,
                          metavar=("LOW", "HIGH") if pair else None, default=default, help=f"--blur-kind mix: {text}")


def _add_stage_flags(parser: argparse.ArgumentParser) -> None:
    stages = parser.add_argument_group("stages (the paper's Appendix A, and the joint stage)")
    stages.add_argument("--schedule", choices=sorted(SCHEDULES), default="joint",
                        help="which stages run, and their steps unless --stageN-steps is given: paper, stages 1-3 "
                        "(Appendix A); joint, the joint stage alone, from the shared-codec start (docs/training.md)")
    for number, stage in enumerate(STAGES, start=1):
        stages.add_argument(f"--stage{number}-steps", type=int, default=None,
                            help=f"optimiser steps of stage {number}: {stage.description}; 0 skips it (unset: "
                            f"{FROM_SCHEDULE})")
        stages.add_argument(f"--stage{number}-lr", type=float, default=_TRAIN["learning_rates"][number - 1],
                            help=f"peak learning rate of stage {number}")
    stages.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=_TRAIN["optimizer"],
                        help="adamax (the paper's) or adam, one per stage; at one learning rate adam takes larger "
                        "steps (docs/training.md#optimisation)")
    stages.add_argument("--warmup-steps", type=int, default=_TRAIN["warmup_steps"],
                        help="linear warm-up steps at the start of each stage, then cosine decay")
    stages.add_argument("--l1-weight", type=float, default=_TRAIN["l1_weight"], help="λ of the L1 term of Eq. 13")
    stages.add_argument("--pixel-loss", choices=PIXEL_LOSSES, default=_TRAIN["pixel_loss"],
                        help="image loss of the joint stage (and of stage 3 with --stage3-pixel-weight)")
    stages.add_argument("--stage3-pixel-weight", type=float, default=_TRAIN["stage3_pixel_weight"],
                        help="weight of --pixel-loss beside L_SSIM in stage 3 (the paper: 0)")
    stages.add_argument("--stage4-ssim-weight", type=float, default=_TRAIN["stage4_ssim_weight"],
                        help="weight of L_SSIM beside --pixel-loss in the joint stage")
    stages.add_argument("--stage4-nll-weight", type=float, default=_TRAIN["stage4_nll_weight"],
                        help="weight of L_ML (bits/dim of both branches) in the joint stage")
    stages.add_argument("--codec", choices=CODECS, default=_TRAIN["codec"],
                        help="shared: one INN per level learns blurry and sharp images in stage 1 and the sharp branch "
                        "starts as its copy; separate: each branch learns its own images (docs/training.md)")
    stages.add_argument("--max-grad-norm", type=float, default=_TRAIN["max_grad_norm"], help="gradient clipping")


def build_parser(description: str, **defaults: Any) -> argparse.ArgumentParser:
    """The shared parser, with a recipe's ``defaults`` (keyed by flag, e.g. ``batch_size=32``) in place."""
    parser = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASET_NAMES, default=_TRAIN["dataset"], help="dataset to train on")
    data.add_argument("--data-dir", default=None, help="the dataset's folder (layouts: docs/datasets.md); "
                      "not used by --dataset builtin")
    data.add_argument("--crop-size", type=int, default=_TRAIN["crop_size"],
                      help="side of the square crops trained on (random) and validated on (central), after any "
                      "--resize; a multiple of 2^levels")
    data.add_argument("--num-workers", type=int, default=_TRAIN["num_workers"], help="data loading processes")
    data.add_argument("--validation-images", type=int, default=_TRAIN["validation_images"],
                      help="validation images scored each time (the first of the val split)")
    _add_loader_flags(parser)
    _add_blur_flags(parser)
    _add_model_flags(parser)
    _add_stage_flags(parser)

    run = parser.add_argument_group("run")
    run.add_argument("--output-dir", default=str(_TRAIN["output_dir"]), help="checkpoints, logs and the final model")
    run.add_argument("--batch-size", type=int, default=_TRAIN["batch_size"], help="images per process and step")
    run.add_argument("--gradient-accumulation-steps", type=int, default=_TRAIN["gradient_accumulation_steps"],
                     help="batches accumulated into one optimiser step")
    run.add_argument("--mixed-precision", choices=MIXED_PRECISION, default=_TRAIN["mixed_precision"],
                     help="autocast precision of the networks, log-dets and losses stay float32 "
                     "(unset: Accelerate's setting, else no)")
    run.add_argument("--seed", type=int, default=_TRAIN["seed"], help="seed of the model, data order and crops")
    run.add_argument("--checkpointing-steps", type=int, default=_TRAIN["checkpointing_steps"],
                     help="save the training state every N steps (0: never)")
    run.add_argument("--checkpoints-total-limit", type=int, default=_TRAIN["checkpoints_total_limit"],
                     help="newest checkpoints kept (0: all)")
    run.add_argument("--resume-from-checkpoint", default=None,
                     help="'latest' (in --output-dir) or a checkpoint folder to continue from")
    run.add_argument("--validation-steps", type=int, default=_TRAIN["validation_steps"],
                     help="validate every N steps (0: only at the end of each stage)")
    run.add_argument("--report-to", choices=TRACKERS, default=_TRAIN["report_to"], help="experiment tracker")
    run.add_argument("--init-from", metavar="NAME|DIR", default=None,
                     help="fine-tune a model: start from the weights and architecture of a model directory or a "
                     "shipped model (general, gauss3); --preset and the model flags are then not used")

    known = vars(parser.parse_args([]))
    unknown = sorted(set(defaults) - set(known))
    if unknown:
        raise TypeError(f"unknown recipe defaults {unknown}; flags are {sorted(known)}")
    step_defaults = {name: defaults.pop(name) for name in list(defaults) if name in _STAGE_STEP_FLAGS}
    parser.set_defaults(**defaults)
    recipe_schedule = defaults.get("schedule", known["schedule"])
    recipe_steps = tuple(step_defaults.get(flag, steps) for flag, steps in
                         zip(_STAGE_STEP_FLAGS, SCHEDULES[recipe_schedule], strict=True))
    parser.set_defaults(schedule_steps={**SCHEDULES, recipe_schedule: recipe_steps})
    return parser


def _blur(args: argparse.Namespace) -> BlurSpec | BlurMixture | None:
    """The synthetic blur the flags describe (None: the dataset's default); a dataset of real pairs takes none."""
    if args.blur_kind is None:
        return None
    if args.dataset not in SYNTHETIC:
        raise TrainConfigError(
            f"--blur-kind {args.blur_kind} applies to --dataset {', '.join(sorted(SYNTHETIC))} (sharp images blurred "
            f"here), not {args.dataset}, which brings its own blurry images: leave --blur-kind unset"
            + ("; recipes/train_paired.py trains on your own pairs" if args.dataset == "paired" else "")
        )
    common = {name: getattr(args, f"blur_{name}") for name in BLUR_FIELDS}
    if args.blur_kind == "mix":
        shared = {name: common[name] for name in MIXTURE_SHARED}
        return BlurMixture(**{name: getattr(args, f"mix_{name}") for name in MIXTURE_FIELDS}, **shared)
    return BlurSpec(kind=args.blur_kind, **common)


def _loader_values(args: argparse.Namespace) -> dict[str, object]:
    """The loader options set by flags; a flag that the chosen --dataset does not take is a TrainConfigError."""
    chosen = {name: getattr(args, name) for name in LOADER_OPTIONS if getattr(args, name) is not None}
    for name in chosen:
        if args.dataset not in LOADER_OPTIONS[name]:
            raise TrainConfigError(
                f"{_flag(name)} applies to --dataset {', '.join(LOADER_OPTIONS[name])}, not {args.dataset}"
            )
    return chosen


def _fine_tuned_architecture(init_from: str, chosen: dict[str, Any]) -> UMLINConfig:
    """The architecture of the model ``--init-from`` names; model flags beside it are a TrainConfigError."""
    from ..pretrained import resolve_model

    if chosen:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in chosen)
        raise TrainConfigError(f"--init-from {init_from} trains that model's architecture; leave out {flags}")
    return UMLINConfig.from_dict(read_config(resolve_model(init_from))["config"])


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that parsed flags describe (checked, so bad values raise TrainConfigError)."""
    values = vars(args)
    schedule = args.schedule_steps[args.schedule]
    stage_steps = tuple(
        steps if values[flag] is None else values[flag] for flag, steps in zip(_STAGE_STEP_FLAGS, schedule, strict=True)
    )
    try:
        blur = _blur(args)
        chosen = {spec.name: values[spec.name] for spec in dataclasses.fields(UMLINConfig)
                  if values[spec.name] is not None}
        model = dataclasses.replace(PRESETS[args.preset], **chosen)
    except (ValueError, DatasetError) as error:
        raise TrainConfigError(str(error)) from error
    if args.init_from is not None:
        model = _fine_tuned_architecture(args.init_from, chosen)
    return TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        output_dir=args.output_dir,
        model=model,
        blur=blur,
        crop_size=args.crop_size,
        data_options=_loader_values(args),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        stage_steps=stage_steps,
        learning_rates=tuple(values[f"stage{n}_lr"] for n in range(1, STAGE_COUNT + 1)),
        optimizer=args.optimizer,
        warmup_steps=args.warmup_steps,
        l1_weight=args.l1_weight,
        pixel_loss=args.pixel_loss,
        stage3_pixel_weight=args.stage3_pixel_weight,
        stage4_ssim_weight=args.stage4_ssim_weight,
        stage4_nll_weight=args.stage4_nll_weight,
        codec=args.codec,
        max_grad_norm=args.max_grad_norm,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
        checkpointing_steps=args.checkpointing_steps,
        checkpoints_total_limit=args.checkpoints_total_limit or None,
        resume_from_checkpoint=args.resume_from_checkpoint,
        validation_steps=args.validation_steps,
        validation_images=args.validation_images,
        report_to=args.report_to,
        init_from=args.init_from,
    )


def run_recipe(description: str, argv: Sequence[str] | None = None, **defaults: Any) -> int:
    """Parse the command line over a recipe's defaults and train; a user error is one line and exit status 2, Ctrl-C
    a note on what was kept and the command that continues the run (exit status 130). Under a launcher of several
    processes each line is printed by the first process only (every process meets the same error)."""
    first_process = os.environ.get("RANK", "0") == "0"
    args = build_parser(description, **defaults).parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.WARNING)
    logging.getLogger("flowdeblur").setLevel(logging.INFO)
    try:
        with spelled_as(DATASET_FLAGS):  # dataset errors name the recipe's flags
            config = config_from_args(args)
            with logging_redirect_tqdm():
                train(config)
    except (DatasetError, TrainConfigError, CheckpointError) as error:
        if first_process:
            print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if first_process:
            note = interruption_note(Path(args.output_dir), sys.argv[1:] if argv is None else argv)
            print(f"\n{note}", file=sys.stderr)
        return 130
    return 0
