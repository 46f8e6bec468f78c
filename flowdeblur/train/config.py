"""TrainConfig: everything one training run needs, from the dataset to the checkpoint policy (paper Appendix A)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import UMLINConfig
from ..data import BlurMixture, BlurSpec
from ..data.choices import DatasetName
from ..fields import field_problems
from .losses import PixelLoss
from .schedule import OptimizerName
from .stages import STAGES, ImageLoss, Objectives, SharpInit

MixedPrecision = Literal["no", "fp16", "bf16"]
Tracker = Literal["none", "tensorboard", "wandb", "comet_ml", "aim", "mlflow", "clearml", "dvclive", "swanlab",
                  "trackio"]
STAGE_COUNT = len(STAGES)


def steps_by_stage(**steps: int) -> tuple[int, ...]:
    """Steps per stage in :data:`STAGES` order, from steps by stage name (a stage not named runs none)."""
    unknown = sorted(set(steps) - {stage.name for stage in STAGES})
    if unknown:
        raise ValueError(f"unknown stages {unknown}; stages are {[stage.name for stage in STAGES]}")
    return tuple(steps.get(stage.name, 0) for stage in STAGES)


# Steps per stage of each named schedule: the paper's three stages, or end to end.
SCHEDULES: dict[str, tuple[int, ...]] = {
    "paper": steps_by_stage(mlr=50_000, transfer=20_000, ssim=10_000),
    "joint": steps_by_stage(joint=50_000),
}


def default_workers() -> int:
    """Data loading processes that fit the machine: one CPU left for the training process, at most 4."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(4, cpus - 1))


class TrainConfigError(ValueError):
    """A training setting that cannot work, named with the flag a recipe user would change."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run: data, the UML-IN architecture, the stages, and how the run is kept and resumed.

    Stage ``i`` (1: L_MLR, Eq. 13; 2: L_MSE, Eq. 11; 3: L_SSIM, Eq. 12; 4: joint, the image loss end to end) runs
    ``stage_steps[i-1]`` optimiser steps at peak learning rate ``learning_rates[i-1]``; 0 steps skips a stage.
    ``optimizer`` is Adamax (the paper's) or Adam, one per stage.
    The default is the joint schedule, which measures best (docs/training.md); ``SCHEDULES["paper"]`` is the
    paper's (stages 1-3). Stage 3 minimises
    ``stage3_pixel_weight × pixel + L_SSIM`` (the paper: weight 0); stage 4 minimises
    ``pixel + stage4_ssim_weight × L_SSIM + stage4_nll_weight × L_ML``, the pixel loss being ``pixel_loss``.
    ``batch_size`` is per process, so one
    step sees ``batch_size x gradient_accumulation_steps x processes`` images. ``checkpointing_steps`` and
    ``validation_steps`` count steps over all stages (0: never, apart from the final validation).
    ``sharp_init`` "shared" trains one INN per level on blurry and sharp images alike in stage 1 and starts the
    sharp branch as its copy in stage 2 (see docs/training.md); "separate" trains the two branches apart from the
    start.
    ``mixed_precision`` None takes Accelerate's setting (``accelerate config`` or ``accelerate launch
    --mixed_precision``), "no" without one. ``init_from`` (a shipped model's name, a model directory or a Hub id)
    starts the run from that model's weights, to fine-tune it; ``model`` must then be its architecture.

    Attributes:
        dataset: dataset to train on.
        data_dir: the dataset's folder (layouts: docs/datasets.md); not used by --dataset builtin.
        output_dir: checkpoints, logs and the final model.
        model: the UML-IN architecture.
        blur: the synthetic blur of a sharp-only dataset (None: the dataset's default).
        crop_size: side of the square crops trained on (random) and validated on (central), after any --resize; a
            multiple of 2^levels.
        data_options: the dataset loader's options (e.g. ``{"resize": 192}``).
        batch_size: images per process and step.
        num_workers: data loading processes per training process, kept alive across epochs; TrainConfig's own
            default is one less than the CPUs this process may use, at most 4.
        stage_steps: optimiser steps of each stage, in :data:`STAGES` order.
        learning_rates: peak learning rate of each stage.
        optimizer: adamax (the paper's) or adam, one per stage; at one learning rate adam takes larger steps
            (docs/training.md#optimisation).
        warmup_steps: linear warm-up steps at the start of each stage, then cosine decay.
        l1_weight: λ of the L1 term of Eq. 13.
        pixel_loss: image loss of the joint stage (and of stage 3 with --stage3-pixel-weight).
        stage3_pixel_weight: weight of --pixel-loss beside L_SSIM in stage 3 (the paper: 0).
        stage4_ssim_weight: weight of L_SSIM beside --pixel-loss in the joint stage.
        stage4_nll_weight: weight of L_ML (bits/dim of both branches) in the joint stage.
        sharp_init: how the sharp branch starts: shared: as a copy of the INNs stage 1 trained on blurry and sharp
            images alike; separate: each branch learns its own images (docs/training.md).
        max_grad_norm: gradient clipping.
        gradient_accumulation_steps: batches accumulated into one optimiser step.
        mixed_precision: autocast precision of the networks, log-dets and losses stay float32 (unset: Accelerate's
            setting, else no).
        tf32: let float32 matrix products and convolutions run in TF32 on GPUs that have it (faster, 10-bit
            mantissa); the invertible 1x1 convolutions and the Haar transform stay float32 either way.
        seed: seed of the model, data order and crops.
        checkpointing_steps: save the training state every N steps (0: never).
        checkpoints_total_limit: newest checkpoints kept (all: 0 on the command line, None in a TrainConfig).
        resume_from_checkpoint: 'latest' (in --output-dir) or a checkpoint folder to continue from.
        validation_steps: validate every N steps (0: only at the end of each stage).
        validation_images: validation images scored each time (the first of the val split).
        report_to: experiment tracker (any of Accelerate's; its package must be installed).
        logging_steps: log the losses (averaged over processes) every N steps and at each stage's end.
        allow_resume_batch_change: resume a checkpoint under another global batch (processes x --batch-size x
            --gradient-accumulation-steps), continuing from the images it had seen.
        init_from: fine-tune a model: start from the weights and architecture of a shipped model (general,
            gauss3), a model directory or a Hugging Face Hub id; --preset and the model flags are then not used.

    Example:
        >>> config = TrainConfig(stage_steps=(2, 2, 2, 0), batch_size=2, crop_size=32,
        ...                      model=UMLINConfig(levels=2, steps=1, hidden_channels=8))
        >>> config.total_steps
        6
    """

    dataset: DatasetName = "builtin"
    data_dir: Path | None = None
    output_dir: Path = Path("runs/uml-in")
    model: UMLINConfig = field(default_factory=UMLINConfig)
    blur: BlurSpec | BlurMixture | None = None
    crop_size: int = 128
    data_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    num_workers: int = default_workers()
    stage_steps: tuple[int, ...] = SCHEDULES["joint"]
    learning_rates: tuple[float, ...] = tuple(stage.learning_rate for stage in STAGES)
    optimizer: OptimizerName = "adamax"
    warmup_steps: int = 1_000
    l1_weight: float = 0.01
    pixel_loss: PixelLoss = "l1"
    stage3_pixel_weight: float = 0.0
    stage4_ssim_weight: float = 0.0
    stage4_nll_weight: float = 0.0
    sharp_init: SharpInit = "shared"
    max_grad_norm: float = 50.0
    gradient_accumulation_steps: int = 1
    mixed_precision: MixedPrecision | None = None
    tf32: bool = False
    seed: int = 0
    checkpointing_steps: int = 1_000
    checkpoints_total_limit: int | None = 3
    resume_from_checkpoint: str | None = None
    validation_steps: int = 1_000
    validation_images: int = 64
    report_to: Tracker = "none"
    logging_steps: int = 10
    allow_resume_batch_change: bool = False
    init_from: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "stage_steps", tuple(int(s) for s in self.stage_steps))
        object.__setattr__(self, "learning_rates", tuple(float(r) for r in self.learning_rates))
        mistyped = field_problems(self)
        problems = [f"--{name.replace('_', '-')} {problem}" for name, problem in mistyped.items()] or self._problems()
        if problems:
            raise TrainConfigError("invalid training settings: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        """The settings out of range or inconsistent, each naming the flag to change (fields already type-checked)."""
        problems = []
        if len(self.stage_steps) != STAGE_COUNT or min(self.stage_steps) < 0 or self.total_steps == 0:
            problems.append(f"stage steps must be {STAGE_COUNT} counts >= 0, not all 0, got {self.stage_steps}")
        if len(self.learning_rates) != STAGE_COUNT or min(self.learning_rates) <= 0:
            problems.append(f"learning rates must be {STAGE_COUNT} positive values, got {self.learning_rates}")
        if not 0.0 <= self.l1_weight < 1.0:
            problems.append(f"--l1-weight (λ of Eq. 13) must lie in [0, 1), got {self.l1_weight}")
        weights = ("stage3_pixel_weight", "stage4_ssim_weight", "stage4_nll_weight")
        problems += [f"--{n.replace('_', '-')} must be >= 0" for n in weights if not getattr(self, n) >= 0]
        if self.model.steps == 0 and self.stage_steps[0] and len(self.stage_steps) == STAGE_COUNT:
            problems.append("--stage1-steps must be 0 for a model with 0 flow steps (--steps 0): the bare pyramid has "
                            "no INN for L_MLR to train")
        if self.crop_size % (2**self.model.levels):
            problems.append(f"--crop-size must be a multiple of 2^levels = {2**self.model.levels}")
        if self.max_grad_norm <= 0:
            problems.append(f"--max-grad-norm must be positive, got {self.max_grad_norm}")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            problems.append("--checkpoints-total-limit must be at least 1 (or None to keep all)")
        positive = ("crop_size", "batch_size", "gradient_accumulation_steps", "validation_images", "logging_steps")
        non_negative = ("num_workers", "warmup_steps", "seed", "checkpointing_steps", "validation_steps")
        problems += [f"--{n.replace('_', '-')} must be at least 1" for n in positive if getattr(self, n) < 1]
        problems += [f"--{n.replace('_', '-')} must be >= 0" for n in non_negative if getattr(self, n) < 0]
        return problems

    @property
    def total_steps(self) -> int:
        """Optimiser steps over all stages."""
        return sum(self.stage_steps)

    def objectives(self) -> Objectives:
        """What the stages minimise, from these settings."""
        return Objectives(
            l1_weight=self.l1_weight,
            sharp_init=self.sharp_init,
            stage3=ImageLoss(self.pixel_loss, pixel_weight=self.stage3_pixel_weight, ssim_weight=1.0),
            joint=ImageLoss(self.pixel_loss, pixel_weight=1.0, ssim_weight=self.stage4_ssim_weight,
                            nll_weight=self.stage4_nll_weight),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (paths as strings), for the model's metadata and the trackers."""
        values = dataclasses.asdict(self)
        values["output_dir"] = str(self.output_dir)
        values["data_dir"] = None if self.data_dir is None else str(self.data_dir)
        values["stage_steps"], values["learning_rates"] = list(self.stage_steps), list(self.learning_rates)
        return values
