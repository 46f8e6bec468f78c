"""The command line every recipe shares; a recipe only changes defaults. ``--help`` lists each flag and its default."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.contrib.logging import logging_redirect_tqdm

from ..checkpoint import CheckpointError
from ..config import COLOR_MODES, UMLINConfig
from ..data import DATASET_NAMES, BlurSpec, DatasetError
from ..data.blur import KINDS
from .checkpoints import interruption_note
from .config import CODECS, MIXED_PRECISION, STAGE_COUNT, TRACKERS, TrainConfig, TrainConfigError
from .stages import STAGES
from .trainer import train

_TRAIN = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
_MODEL = UMLINConfig()
MODEL_FLAGS = ("levels", "steps", "kernel_size", "hidden_channels", "transfer_hidden_channels", "transfer_blocks")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each flag's default in its help; the recipe's description kept as written."""


def build_parser(description: str, **defaults: Any) -> argparse.ArgumentParser:
    """The shared parser, with a recipe's ``defaults`` (keyed by flag, e.g. ``batch_size=32``) in place."""
    parser = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASET_NAMES, default=_TRAIN["dataset"], help="dataset to train on")
    data.add_argument("--data-dir", default=None, help="the dataset's folder (layouts: docs/datasets.md); "
                      "not used by --dataset builtin")
    data.add_argument("--image-size", type=int, default=_TRAIN["image_size"], help="training crop size")
    data.add_argument("--color", choices=COLOR_MODES, default=_MODEL.color, help="Y channel (paper) or RGB")
    data.add_argument("--blur-kind", choices=KINDS, default=None,
                      help="synthetic blur of the sharp-only datasets builtin, celeba and lsun; "
                      "unset: the dataset's default")
    data.add_argument("--blur-kernel-size", type=int, default=3, help="kernel size of --blur-kind (odd)")
    data.add_argument("--blur-sigma", type=float, default=1.0, help="sigma of --blur-kind gaussian")
    data.add_argument("--num-workers", type=int, default=_TRAIN["num_workers"], help="data loading processes")
    data.add_argument("--validation-images", type=int, default=_TRAIN["validation_images"],
                      help="validation images scored each time (the first of the val split)")

    model = parser.add_argument_group("model (UML-IN architecture)")
    model.add_argument("--levels", type=int, default=_MODEL.levels, help="wavelet levels L")
    model.add_argument("--steps", type=int, default=_MODEL.steps, help="flow steps K per level")
    model.add_argument("--kernel-size", type=int, default=_MODEL.kernel_size, help="coupling subnet kernel size")
    model.add_argument("--hidden-channels", type=int, default=_MODEL.hidden_channels, help="coupling subnet width")
    model.add_argument("--transfer-hidden-channels", type=int, default=_MODEL.transfer_hidden_channels,
                       help="transfer net width")
    model.add_argument("--transfer-blocks", type=int, default=_MODEL.transfer_blocks,
                       help="residual blocks per transfer net")

    stages = parser.add_argument_group("stages (paper Appendix A)")
    for number, stage in enumerate(STAGES, start=1):
        stages.add_argument(f"--stage{number}-steps", type=int, default=_TRAIN["stage_steps"][number - 1],
                            help=f"optimiser steps of stage {number}: {stage.description} (0 skips it)")
        stages.add_argument(f"--stage{number}-lr", type=float, default=_TRAIN["learning_rates"][number - 1],
                            help=f"peak Adamax learning rate of stage {number}")
    stages.add_argument("--warmup-steps", type=int, default=_TRAIN["warmup_steps"],
                        help="linear warm-up steps at the start of each stage, then cosine decay")
    stages.add_argument("--l1-weight", type=float, default=_TRAIN["l1_weight"], help="λ of the L1 term of Eq. 13")
    stages.add_argument("--codec", choices=CODECS, default=_TRAIN["codec"],
                        help="shared: one INN per level learns blurry and sharp images in stage 1 and the sharp branch "
                        "starts as its copy; separate: each branch learns its own images (docs/training.md)")
    stages.add_argument("--max-grad-norm", type=float, default=_TRAIN["max_grad_norm"], help="gradient clipping")

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

    known = vars(parser.parse_args([]))
    unknown = sorted(set(defaults) - set(known))
    if unknown:
        raise TypeError(f"unknown recipe defaults {unknown}; flags are {sorted(known)}")
    parser.set_defaults(**defaults)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that parsed flags describe (checked, so bad values raise TrainConfigError)."""
    values = vars(args)
    blur = None
    if args.blur_kind is not None:
        blur = BlurSpec(kind=args.blur_kind, kernel_size=args.blur_kernel_size, sigma=args.blur_sigma)
    try:
        model = UMLINConfig(color=args.color, **{name: values[name] for name in MODEL_FLAGS})
    except ValueError as error:
        raise TrainConfigError(str(error)) from error
    return TrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        output_dir=args.output_dir,
        model=model,
        blur=blur,
        image_size=args.image_size,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        stage_steps=tuple(values[f"stage{n}_steps"] for n in range(1, STAGE_COUNT + 1)),
        learning_rates=tuple(values[f"stage{n}_lr"] for n in range(1, STAGE_COUNT + 1)),
        warmup_steps=args.warmup_steps,
        l1_weight=args.l1_weight,
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
    )


def run_recipe(description: str, argv: Sequence[str] | None = None, **defaults: Any) -> int:
    """Parse the command line over a recipe's defaults and train; a user error is one line and exit status 2, Ctrl-C
    a note on what was kept and the command that continues the run (exit status 130)."""
    args = build_parser(description, **defaults).parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.WARNING)
    logging.getLogger("flowdeblur").setLevel(logging.INFO)
    try:
        config = config_from_args(args)
        with logging_redirect_tqdm():
            train(config)
    except (DatasetError, TrainConfigError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if os.environ.get("RANK", "0") == "0":  # one note, not one per process
            note = interruption_note(Path(args.output_dir), sys.argv[1:] if argv is None else argv)
            print(f"\n{note}", file=sys.stderr)
        return 130
    return 0
