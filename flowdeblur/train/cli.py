"""The command line every recipe shares; a recipe only changes defaults. ``--help`` lists each flag and its default."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import inspect
import logging
import os
import re
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from tqdm.contrib.logging import logging_redirect_tqdm

from ..config import PRESET_NOTES, PRESETS, UMLINConfig
from ..data import DATASET_NAMES, BlurMixture, BlurSpec, DatasetError
from ..data.blur import BORDERS, KINDS
from ..data.blur_presets import BLUR_PRESETS, BLUR_PRESETS_HELP, blur_preset
from ..data.errors import spelled_as
from ..data.factory import LOADERS, OPTION_CHOICES, OPTION_HELP, SYNTHETIC, dataset_options
from ..model_format import CheckpointError, locate_model, read_header
from .config import SCHEDULES, TrainConfig, TrainConfigError
from .stages import STAGES
from .state import interruption_note
from .trainer import train

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
# Loader options that are not recipe flags, and why: training reads the train and val splits of paired images.
NOT_FLAGS = {
    "augment": "training crops are always augmented (random crop and flips), validation crops never",
    "real": "Lai et al.'s real photographs have no sharp images to train on",
    "full_test_frames": "training reads the train and val splits, never the test split",
}
# TrainConfig fields set by a family of flags rather than a flag of their own, and which.
COMPOSITE_FIELDS = {
    "model": "--preset and one flag per UMLINConfig field",
    "blur": "--blur NAME, or --blur-kind with one --blur-* flag per BlurSpec field and one --mix-* flag per "
    "BlurMixture field",
    "data_options": "one flag per loader option",
    "stage_steps": "--schedule and one --stageN-steps flag per stage",
    "learning_rates": "one --stageN-lr flag per stage",
}
# The help group of each TrainConfig field's flag: "data", "stages", or else "run".
FIELD_GROUPS = {
    "dataset": "data", "data_dir": "data", "crop_size": "data", "num_workers": "data", "validation_images": "data",
    "warmup_steps": "stages", "l1_weight": "stages", "pixel_loss": "stages", "stage3_pixel_weight": "stages",
    "stage4_ssim_weight": "stages", "stage4_nll_weight": "stages", "sharp_init": "stages", "max_grad_norm": "stages",
}
FIELD_METAVARS = {"init_from": "NAME|DIR|OWNER/NAME"}
# Old spellings of field flags, still accepted for one release with a deprecation line: old flag -> field.
DEPRECATED_FLAGS = {"--codec": "sharp_init"}
FIELD_FLAGS = tuple(spec.name for spec in dataclasses.fields(TrainConfig) if spec.name not in COMPOSITE_FIELDS)
FROM_SCHEDULE = "from --schedule"


def _first_process() -> bool:
    """Whether this is the first process of a launch (or the only one): the one that prints notes and errors."""
    return os.environ.get("RANK", "0") == "0"


class _Respelled(argparse.Action):
    """A flag's value under any of its spellings; one given in :data:`DEPRECATED_FLAGS` prints a deprecation line."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if option_string in DEPRECATED_FLAGS and _first_process():
            print(f"warning: {option_string} is deprecated; use {self.option_strings[0]}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _flag(name: str) -> str:
    """The command-line spelling of a Python name: ``skip_bad`` is ``--skip-bad``."""
    return "--" + name.replace("_", "-")


def _loader_options() -> dict[str, dict[str, inspect.Parameter]]:
    """Each loader option the recipes offer, with its parameter in every dataset's loader that takes it."""
    offered: dict[str, dict[str, inspect.Parameter]] = {}
    for name in DATASET_NAMES:
        parameters = inspect.signature(LOADERS[name], eval_str=True).parameters
        for option_name in dataset_options(name):
            if option_name not in NOT_FLAGS:
                offered.setdefault(option_name, {})[name] = parameters[option_name]
    return offered


LOADER_OPTIONS = _loader_options()
# Dataset errors inside run_recipe name these flags rather than Python parameters.
RECIPE_DATASET_FLAGS = {
    "name": "--dataset", "root": "--data-dir", "crop_size": "--crop-size",
    **{name: _flag(name) for name in LOADER_OPTIONS},
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each flag's default in its help (or what an unset flag takes); the recipe's description kept as written."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        """A flag as the help lists it, without its deprecated spellings."""
        current = [flag for flag in action.option_strings if flag not in DEPRECATED_FLAGS]
        if current == action.option_strings:
            return super()._format_action_invocation(action)
        shown = copy.copy(action)
        shown.option_strings = current
        return super()._format_action_invocation(shown)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "(unset: " in action.help:
            return action.help
        return super()._get_help_string(action)


def _attribute_help(cls: type) -> dict[str, str]:
    """The description of each field in a dataclass docstring's ``Attributes:`` section (indented lines continue
    the one above)."""
    lines = (cls.__doc__ or "").split("Attributes:", 1)[-1].splitlines()
    described: dict[str, str] = {}
    name, indent = "", None
    for line in lines:
        if not line.strip():
            if described:
                break
            continue
        depth = len(line) - len(line.lstrip())
        key, colon, text = line.strip().partition(": ")
        if colon and key.isidentifier() and depth == (indent if indent is not None else depth):
            name, indent, described[key] = key, depth, text
        elif name:
            described[name] += " " + line.strip()
    return {key: _plain(text).rstrip(".") for key, text in described.items()}


def _plain(text: str) -> str:
    """Docstring markup as a terminal shows it: ``:class:`~a.B``` is ``B``, ````x```` is ``x``."""
    return re.sub(r":\w+:`~?(?:[\w.]*\.)?(\w+)`", r"\1", text).replace("``", "")


def _add_flag(group: argparse._ArgumentGroup, flag: str, kind: Any, default: Any, text: str, *old: str,
              **extra: Any) -> None:
    """The one way a flag is made from a typed value: ``bool`` is ``--flag/--no-flag``, ``Literal[...]`` gives the
    choices, ``tuple[X, ...]`` takes one or more values of ``X``, any other type converts the text; ``X | None`` is
    a flag of type ``X``. ``old`` spellings (of a flag that is not a bool) are accepted with a deprecation line."""
    arguments = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(arguments) == 1:
        kind = arguments[0]
    if kind is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        return
    action = _Respelled if old else "store"
    if typing.get_origin(kind) is Literal:
        extra["choices"] = typing.get_args(kind)
    elif typing.get_origin(kind) is tuple and typing.get_args(kind)[1:] == (Ellipsis,):
        extra.update(type=typing.get_args(kind)[0], nargs="+")
    else:
        extra["type"] = kind
    group.add_argument(flag, *old, action=action, default=default, help=text, **extra)


def _add_field_flags(groups: dict[str, argparse._ArgumentGroup]) -> None:
    """One flag per :class:`TrainConfig` field (its help from the class docstring), each in its help group."""
    hints, described = typing.get_type_hints(TrainConfig), _attribute_help(TrainConfig)
    defaults = {spec.name: spec.default for spec in dataclasses.fields(TrainConfig)}
    for name in FIELD_FLAGS:
        group = groups[FIELD_GROUPS.get(name, "run")]
        extra = {"metavar": FIELD_METAVARS[name]} if name in FIELD_METAVARS else {}
        old = [flag for flag, field_name in DEPRECATED_FLAGS.items() if field_name == name]
        _add_flag(group, _flag(name), hints[name], defaults[name], described[name], *old, **extra)


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`UMLINConfig` field (so none can be missing), defaulting to the chosen --preset."""
    model = parser.add_argument_group("model (UML-IN architecture; unset flags take --preset's values)")
    model.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                       help="architecture to start from: " + "; ".join(PRESET_NOTES[n] for n in sorted(PRESETS)))
    hints, described = typing.get_type_hints(UMLINConfig), _attribute_help(UMLINConfig)
    for spec in dataclasses.fields(UMLINConfig):
        text = f"{described.get(spec.name, spec.name)} (unset: --preset's)"
        _add_flag(model, _flag(spec.name), hints[spec.name], None, text)


def _add_loader_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per loader option (from the loaders' signatures), each naming the datasets that take it."""
    group = parser.add_argument_group("dataset options (each applies to the datasets it names; unset: the loader's)")
    for name, takers in LOADER_OPTIONS.items():
        defaults = {parameter.default for parameter in takers.values()}
        default = next(iter(defaults))
        shown = default if len(defaults) == 1 else ", ".join(f"{d} {p.default}" for d, p in takers.items())
        text = f"{OPTION_HELP[name]}; --dataset {', '.join(takers)} (unset: {shown})"
        kind = next(iter(takers.values())).annotation  # evaluated: `X | None` makes a flag of type X
        _add_flag(group, _flag(name), kind, None, text, choices=OPTION_CHOICES.get(name))


def _add_blur_flags(parser: argparse.ArgumentParser) -> None:
    """--blur NAME (the named blurs eval and demo take), or --blur-kind with one --blur-* flag per :class:`BlurSpec`
    field and one --mix-* flag per other :class:`BlurMixture` field."""
    data = parser.add_argument_group("synthetic blur (sharp-only datasets builtin, celeba and lsun)")
    named = data.add_mutually_exclusive_group()
    named.add_argument("--blur", dest="blur_preset", choices=BLUR_PRESETS, default=None,
                       help=f"a named blur, as flowdeblur eval and demo name them: {BLUR_PRESETS_HELP}; the "
                       "--blur-* and --mix-* flags do not apply to it (unset: --blur-kind)")
    named.add_argument("--blur-kind", choices=(*KINDS, "mix"), default=None,
                       help="one kind of blur for every image, or 'mix': one drawn per image from the --mix-* "
                       "mixture; unset: the dataset's default")
    for name in BLUR_FIELDS:
        default = getattr(BlurSpec, name)
        kind = float if default is None else type(default)
        text = BLUR_HELP.get(name, name.replace("_", " "))
        _add_flag(data, "--blur-" + _flag(name)[2:], kind, default, text,
                  choices=BORDERS if name == "border" else None)
    for name in MIXTURE_FIELDS:
        default = getattr(_MIXTURE, name)
        pair = isinstance(default, tuple)
        kind = type(default) if isinstance(default, int) else float
        text = MIXTURE_HELP.get(name) or ("range (uniform) of the " if pair else "weight of ") + name
        data.add_argument(f"--mix-{name.replace('_', '-')}", type=kind, nargs=2 if pair else None,
                          metavar=("LOW", "HIGH") if pair else None, default=default, help=f"--blur-kind mix: {text}")


def _add_stage_flags(stages: argparse._ArgumentGroup) -> None:
    """--schedule, then each stage's --stageN-steps and --stageN-lr, from :data:`STAGES`."""
    stages.add_argument("--schedule", choices=sorted(SCHEDULES), default="joint",
                        help="which stages run, and their steps unless --stageN-steps is given: paper, stages 1-3 "
                        "(Appendix A); joint, the joint stage alone, from the --sharp-init shared start "
                        "(docs/training.md)")
    for stage in STAGES:
        stages.add_argument(_flag(stage.steps_flag), type=int, default=None,
                            help=f"optimiser steps of stage {stage.number}: {stage.description}; 0 skips it (unset: "
                            f"{FROM_SCHEDULE})")
        stages.add_argument(_flag(stage.lr_flag), type=float, default=stage.learning_rate,
                            help=f"peak learning rate of stage {stage.number}")


def build_parser(description: str, **defaults: Any) -> argparse.ArgumentParser:
    """The shared parser, with a recipe's ``defaults`` (keyed by flag, e.g. ``batch_size=32``) in place."""
    parser = argparse.ArgumentParser(description=description, formatter_class=_HelpFormatter)
    data = parser.add_argument_group("data")
    _add_loader_flags(parser)
    _add_blur_flags(parser)
    _add_model_flags(parser)
    stages = parser.add_argument_group("stages (the paper's Appendix A, and the joint stage)")
    _add_stage_flags(stages)
    _add_field_flags({"data": data, "stages": stages, "run": parser.add_argument_group("run")})

    known = vars(parser.parse_args([]))
    unknown = sorted(set(defaults) - set(known))
    if unknown:
        raise TypeError(f"unknown recipe defaults {unknown}; flags are {sorted(known)}")
    steps_flags = [stage.steps_flag for stage in STAGES]
    step_defaults = {name: defaults.pop(name) for name in list(defaults) if name in steps_flags}
    parser.set_defaults(**defaults)
    recipe_schedule = defaults.get("schedule", known["schedule"])
    recipe_steps = tuple(step_defaults.get(flag, steps) for flag, steps in
                         zip(steps_flags, SCHEDULES[recipe_schedule], strict=True))
    parser.set_defaults(schedule_steps={**SCHEDULES, recipe_schedule: recipe_steps})
    return parser


def _blur_from_flags(args: argparse.Namespace) -> BlurSpec | BlurMixture | None:
    """The synthetic blur the flags describe (None: the dataset's default); a dataset of real pairs takes none.

    A named --blur wins over a recipe's default --blur-kind (argparse refuses both on one command line)."""
    flag, value = ("--blur", args.blur_preset) if args.blur_preset is not None else ("--blur-kind", args.blur_kind)
    if value is None:
        return None
    if args.dataset not in SYNTHETIC:
        raise TrainConfigError(
            f"{flag} {value} applies to --dataset {', '.join(sorted(SYNTHETIC))} (sharp images blurred "
            f"here), not {args.dataset}, which brings its own blurry images: leave {flag} unset"
            + ("; recipes/train_paired.py trains on your own pairs" if args.dataset == "paired" else "")
        )
    if args.blur_preset is not None:
        return blur_preset(args.blur_preset)
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
    if chosen:
        flags = ", ".join(_flag(name) for name in chosen)
        raise TrainConfigError(f"--init-from {init_from} trains that model's architecture; leave out {flags}")
    return read_header(locate_model(init_from))[1]


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that parsed flags describe (checked, so bad values raise TrainConfigError)."""
    values = {name: getattr(args, name) for name in FIELD_FLAGS}
    values["checkpoints_total_limit"] = values["checkpoints_total_limit"] or None  # 0 on the command line: keep all
    schedule = args.schedule_steps[args.schedule]
    values["stage_steps"] = tuple(
        steps if getattr(args, stage.steps_flag) is None else getattr(args, stage.steps_flag)
        for stage, steps in zip(STAGES, schedule, strict=True)
    )
    values["learning_rates"] = tuple(getattr(args, stage.lr_flag) for stage in STAGES)
    try:
        values["blur"] = _blur_from_flags(args)
        chosen = {spec.name: getattr(args, spec.name) for spec in dataclasses.fields(UMLINConfig)
                  if getattr(args, spec.name) is not None}
        values["model"] = dataclasses.replace(PRESETS[args.preset], **chosen)
    except (ValueError, DatasetError) as error:
        raise TrainConfigError(str(error)) from error
    if args.init_from is not None:
        values["model"] = _fine_tuned_architecture(args.init_from, chosen)
    values["data_options"] = _loader_values(args)
    return TrainConfig(**values)


def run_recipe(description: str, argv: Sequence[str] | None = None, **defaults: Any) -> int:
    """Parse the command line over a recipe's defaults and train; a user error is one line and exit status 2, Ctrl-C
    a note on what was kept and the command that continues the run (exit status 130). Under a launcher of several
    processes each line is printed by the first process only (every process meets the same error), except a file
    found bad during training, which only the process reading it meets: that one prints it, naming itself."""
    first_process = _first_process()
    args = build_parser(description, **defaults).parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.WARNING)
    logging.getLogger("flowdeblur").setLevel(logging.INFO)
    try:
        with spelled_as(RECIPE_DATASET_FLAGS):  # dataset errors name the recipe's flags
            config = config_from_args(args)
            with logging_redirect_tqdm():
                train(config)
    except (DatasetError, TrainConfigError, CheckpointError) as error:
        found_by = getattr(error, "process_index", None)  # set where one process's data share met a bad file
        if first_process or found_by is not None:
            # on a line of its own: the first process's progress bar may be mid-line on the same terminal
            where = f"\nerror (process {found_by})" if found_by else "error"
            print(f"{where}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if first_process:
            note = interruption_note(Path(args.output_dir), sys.argv[1:] if argv is None else argv)
            print(f"\n{note}", file=sys.stderr)
        return 130
    return 0
