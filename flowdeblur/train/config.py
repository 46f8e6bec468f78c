"""TrainConfig: everything one training run needs, from the dataset to the checkpoint policy (paper Appendix A)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import UMLINConfig
from ..data import DATASET_NAMES, BlurMixture, BlurSpec
from ..losses import PIXEL_LOSSES
from .schedule import OPTIMIZERS
from .stages import STAGES, ImageLoss, Objectives

MIXED_PRECISION = ("no", "fp16", "bf16")
CODECS = ("shared", "separate")
TRACKERS = ("none", "tensorboard")
STAGE_COUNT = len(STAGES)
# Steps per stage (mlr, transfer, ssim, joint) of each named schedule: the paper's three stages, or end to end.
SCHEDULES: dict[str, tuple[int, int, int, int]] = {
    "paper": (50_000, 20_000, 10_000, 0),
    "joint": (0, 0, 0, 50_000),
}


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
    ``codec`` "shared" trains one INN per level on blurry and sharp images alike in stage 1 and starts the sharp
    branch as its copy in stage 2 (see docs/training.md); "separate" trains the two branches apart from the start.
    ``mixed_precision`` None takes Accelerate's setting (``accelerate config`` or ``accelerate launch
    --mixed_precision``), "no" without one. ``init_from`` (a model directory or a shipped model's name) starts the
    run from that model's weights, to fine-tune it; ``model`` must then be its architecture.

    Example:
        >>> config = TrainConfig(stage_steps=(2, 2, 2, 0), batch_size=2, crop_size=32,
        ...                      model=UMLINConfig(levels=2, steps=1, hidden_channels=8))
        >>> config.total_steps
        6
    """

    dataset: str = "builtin"
    data_dir: Path | None = None
    output_dir: Path = Path("runs/uml-in")
    model: UMLINConfig = field(default_factory=UMLINConfig)
    blur: BlurSpec | BlurMixture | None = None
    crop_size: int = 128
    data_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    num_workers: int = 2
    stage_steps: tuple[int, int, int, int] = SCHEDULES["joint"]
    learning_rates: tuple[float, float, float, float] = (1e-3, 1e-3, 1e-4, 1e-3)
    optimizer: str = "adamax"
    warmup_steps: int = 1_000
    l1_weight: float = 0.01
    pixel_loss: str = "l1"
    stage3_pixel_weight: float = 0.0
    stage4_ssim_weight: float = 0.0
    stage4_nll_weight: float = 0.0
    codec: str = "shared"
    max_grad_norm: float = 50.0
    gradient_accumulation_steps: int = 1
    mixed_precision: str | None = None
    seed: int = 0
    checkpointing_steps: int = 1_000
    checkpoints_total_limit: int | None = 3
    resume_from_checkpoint: str | None = None
    validation_steps: int = 1_000
    validation_images: int = 64
    report_to: str = "none"
    init_from: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "stage_steps", tuple(int(s) for s in self.stage_steps))
        object.__setattr__(self, "learning_rates", tuple(float(r) for r in self.learning_rates))
        problems = self._problems()
        if problems:
            raise TrainConfigError("invalid training settings: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if self.dataset not in DATASET_NAMES:
            problems.append(f"--dataset must be one of {DATASET_NAMES}, got {self.dataset!r}")
        if len(self.stage_steps) != STAGE_COUNT or min(self.stage_steps) < 0 or self.total_steps == 0:
            problems.append(f"stage steps must be {STAGE_COUNT} counts >= 0, not all 0, got {self.stage_steps}")
        if len(self.learning_rates) != STAGE_COUNT or min(self.learning_rates) <= 0:
            problems.append(f"learning rates must be {STAGE_COUNT} positive values, got {self.learning_rates}")
        if not 0.0 <= self.l1_weight < 1.0:
            problems.append(f"--l1-weight (λ of Eq. 13) must lie in [0, 1), got {self.l1_weight}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"--optimizer must be one of {tuple(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.pixel_loss not in PIXEL_LOSSES:
            problems.append(f"--pixel-loss must be one of {PIXEL_LOSSES}, got {self.pixel_loss!r}")
        weights = ("stage3_pixel_weight", "stage4_ssim_weight", "stage4_nll_weight")
        problems += [f"--{n.replace('_', '-')} must be >= 0" for n in weights if not getattr(self, n) >= 0]
        if self.codec not in CODECS:
            problems.append(f"--codec must be one of {CODECS}, got {self.codec!r}")
        if self.mixed_precision is not None and self.mixed_precision not in MIXED_PRECISION:
            problems.append(f"--mixed-precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        if self.report_to not in TRACKERS:
            problems.append(f"--report-to must be one of {TRACKERS}, got {self.report_to!r}")
        if self.model.steps == 0 and self.stage_steps[0] and len(self.stage_steps) == STAGE_COUNT:
            problems.append("--stage1-steps must be 0 for a model with 0 flow steps (--steps 0): the bare pyramid has "
                            "no INN for L_MLR to train")
        if self.crop_size % (2**self.model.levels):
            problems.append(f"--crop-size must be a multiple of 2^levels = {2**self.model.levels}")
        if self.max_grad_norm <= 0:
            problems.append(f"--max-grad-norm must be positive, got {self.max_grad_norm}")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            problems.append("--checkpoints-total-limit must be at least 1 (or None to keep all)")
        positive = ("crop_size", "batch_size", "gradient_accumulation_steps", "validation_images")
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
            shared_codec=self.codec == "shared",
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
