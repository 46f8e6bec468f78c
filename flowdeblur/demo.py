"""What ``flowdeblur demo --train`` trains: a small UML-IN on the built-in images, in a few minutes on a CPU.

A short end-to-end run (the joint stage) of the compact architecture on the paper's 3x3 Gaussian blur, which a few
hundred steps already learn to undo; `gauss3` (docs/models/) is this architecture trained far longer.
"""

from __future__ import annotations

from pathlib import Path

from .config import PRESETS
from .train import TrainConfig

DEMO_MODEL = PRESETS["compact"]
DEMO_STAGE_STEPS = (0, 0, 0, 400)
DEMO_LEARNING_RATES = (1e-3, 1e-3, 3e-4, 1e-3)


def demo_training_config(output_dir: Path, seed: int = 0) -> TrainConfig:
    """The demo's training run: the shipped models' recipe (docs/models/), shortened, with no checkpoints."""
    return TrainConfig(
        dataset="builtin",
        output_dir=output_dir,
        model=DEMO_MODEL,
        crop_size=64,
        batch_size=16,
        num_workers=0,
        stage_steps=DEMO_STAGE_STEPS,
        learning_rates=DEMO_LEARNING_RATES,
        warmup_steps=20,
        seed=seed,
        checkpointing_steps=0,
        validation_steps=0,
        validation_images=8,
    )
