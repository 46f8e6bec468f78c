"""Resumable training state: Accelerate's ``save_state`` folders, written under a temporary name and then renamed.

``<output_dir>/checkpoints/checkpoint-<step>/`` holds the model, the four stages' optimisers and schedulers,
every process's RNG states, and the loop's :class:`TrainingProgress`. A folder with that name is always complete:
an interruption while saving removes the hidden ``.checkpoint-<step>.tmp`` it was writing (a crash may leave it;
nothing reads it). A checkpoint damaged later (a truncated copy) is skipped by ``latest`` for the next older one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.logging import get_logger

from .config import STAGE_COUNT, TrainConfig, TrainConfigError

logger = get_logger(__name__)

CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class TrainingProgress:
    """Where the loop is: the stage (its index in ``STAGES``, 0-3; 4 when done), steps done in it, skipped steps
    per stage, wall time, and the steps per stage of the schedule and the optimiser it belongs to (which a resumed
    run must ask for again); the processes, per-process batch and accumulation steps that make its global batch, and
    the training images read so far (None in checkpoints written before they were recorded)."""

    stage: int = 0
    stage_step: int = 0
    skipped: list[int] = field(default_factory=lambda: [0] * STAGE_COUNT)
    elapsed_s: float = 0.0
    stage_steps: list[int] | None = None
    optimizer: str | None = None
    processes: int | None = None
    batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    images_seen: int | None = None

    def global_batch(self) -> int | None:
        """Images per optimiser step of the run this progress belongs to (None if not recorded)."""
        factors = (self.processes, self.batch_size, self.gradient_accumulation_steps)
        return None if None in factors else math.prod(factors)

    def global_step(self, stage_steps: tuple[int, ...]) -> int:
        """Optimiser steps done over all stages."""
        return sum(stage_steps[: self.stage]) + self.stage_step

    def state_dict(self) -> dict[str, Any]:
        """For ``Accelerator.register_for_checkpointing``."""
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for name, value in state.items():
            setattr(self, name, value)


def check_global_batch(checkpoint: Path, saved: TrainingProgress, config: TrainConfig, processes: int) -> int:
    """The global batch of the run ``checkpoint`` was saved in; refuse to resume it under another one unless
    ``allow_resume_batch_change`` (its data position and learning rates were counted in its own batches). A
    checkpoint that recorded none is taken to have the current one."""
    current = processes * config.batch_size * config.gradient_accumulation_steps
    recorded = saved.global_batch()
    if recorded is None or recorded == current or config.allow_resume_batch_change:
        return current if recorded is None else recorded
    raise TrainConfigError(
        f"{checkpoint} was saved by a run of {saved.processes} process(es) x --batch-size {saved.batch_size} x "
        f"--gradient-accumulation-steps {saved.gradient_accumulation_steps} = {recorded} images per step, not "
        f"{processes} x {config.batch_size} x {config.gradient_accumulation_steps} = {current}: resume with the "
        "same, or pass --allow-resume-batch-change to continue from the images it had seen"
    )


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest (fewest steps) first."""
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), path) for path in root.iterdir() if path.is_dir() and (m := _NAME.match(path.name))]
    return [path for _, path in sorted(found)]


def resolve_resume(output_dir: Path, resume: str | None) -> list[Path]:
    """The checkpoints to resume from, in the order to try them: for ``"latest"`` every complete one, newest first
    (an older one is the fallback for a damaged newer one; none yet: start afresh), a given folder alone, or none
    for a fresh run.

    Starting afresh over an output folder that already holds checkpoints is refused, so two runs never mix.
    """
    existing = list_checkpoints(output_dir)
    if resume is None:
        if existing:
            raise TrainConfigError(
                f"{output_dir} already holds checkpoints of a run (latest: {existing[-1].name}); pass "
                "--resume-from-checkpoint latest to continue it, or choose another --output-dir"
            )
        return []
    if resume == "latest":
        return existing[::-1]
    path = Path(resume).expanduser()
    if not path.is_dir():
        raise TrainConfigError(
            f"--resume-from-checkpoint {resume}: no such folder; expected 'latest' or a folder "
            f"{output_dir / CHECKPOINTS}/checkpoint-<step> written by an earlier run"
        )
    return [path]


def load_checkpoint(accelerator: Accelerator, candidates: Sequence[Path]) -> Path:
    """Load the first of ``candidates`` that loads whole into the prepared objects and return it, logging each one
    skipped and why; a TrainConfigError naming every failure when none loads."""
    failures = []
    for path in candidates:
        try:
            accelerator.load_state(str(path))
        except Exception as error:  # a damaged file fails in its reader's own way (safetensors, pickle, zip)
            reason = type(error).__name__ + "".join(f": {line}" for line in str(error).strip().splitlines()[:1])
            failures.append(f"{path.name} ({reason})")
            logger.warning(f"skipped checkpoint {path}: it cannot be loaded ({reason})")
            continue
        return path
    raise TrainConfigError(f"--resume-from-checkpoint: no checkpoint could be loaded: {'; '.join(failures)}")


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int) -> Path:
    """``save_state`` into a temporary folder, rename it to ``checkpoint-<step>``, keep the newest ``total_limit``.

    Every process must call it. Multi-node runs need ``output_dir`` on a file system that all nodes share.
    """
    root = output_dir / CHECKPOINTS
    final, temporary = root / f"checkpoint-{step}", root / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(temporary))
    except BaseException:  # interrupted (Ctrl-C) or failed: leave nothing half-written behind
        if accelerator.is_main_process:
            shutil.rmtree(temporary, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        limit = accelerator.project_configuration.total_limit
        for old in list_checkpoints(output_dir)[:-limit] if limit else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def resume_command(argv: Sequence[str]) -> str:
    """The command that continues a run started with ``argv``: the same, with ``--resume-from-checkpoint latest``."""
    kept, skip = [], False
    for argument in argv:
        if not skip and not argument.startswith("--resume-from-checkpoint"):
            kept.append(argument)
        skip = argument == "--resume-from-checkpoint"
    launcher = ["accelerate", "launch"] if any(name.startswith("ACCELERATE_") for name in os.environ) else ["python"]
    return shlex.join([*launcher, sys.argv[0], *kept, "--resume-from-checkpoint", "latest"])


def interruption_note(output_dir: Path, argv: Sequence[str]) -> str:
    """What to tell a user who stopped training (Ctrl-C): what was kept, and the command that continues the run."""
    saved = list_checkpoints(output_dir)
    kept = f"the newest checkpoint is {saved[-1]}" if saved else "no checkpoint was saved yet: the run starts afresh"
    return f"interrupted; nothing is half-written ({kept}). To continue:\n  {resume_command(argv)}"
