"""Resumable training state: Accelerate's ``save_state`` folders, written under a temporary name and then renamed.

``<output_dir>/checkpoints/checkpoint-<step>/`` holds the model, the three stages' optimisers and schedulers,
every process's RNG states, and the loop's :class:`TrainingProgress`. A folder with that name is always complete:
a crash while saving leaves only a hidden ``.checkpoint-<step>.tmp`` that nothing reads.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from .config import STAGE_COUNT, TrainConfigError

CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class TrainingProgress:
    """Where the loop is: the stage (0-2, 3 when done), steps done in it, skipped steps per stage, wall time."""

    stage: int = 0
    stage_step: int = 0
    skipped: list[int] = field(default_factory=lambda: [0] * STAGE_COUNT)
    elapsed_s: float = 0.0

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


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest (fewest steps) first."""
    root = output_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), path) for path in root.iterdir() if path.is_dir() and (m := _NAME.match(path.name))]
    return [path for _, path in sorted(found)]


def resolve_resume(output_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint to resume from: ``"latest"`` (None if there is none yet), a folder, or None to start afresh.

    Starting afresh over an output folder that already holds checkpoints is refused, so two runs never mix.
    """
    existing = list_checkpoints(output_dir)
    if resume is None:
        if existing:
            raise TrainConfigError(
                f"{output_dir} already holds checkpoints of a run (latest: {existing[-1].name}); pass "
                "--resume-from-checkpoint latest to continue it, or choose another --output-dir"
            )
        return None
    if resume == "latest":
        return existing[-1] if existing else None
    path = Path(resume).expanduser()
    if not path.is_dir():
        raise TrainConfigError(
            f"--resume-from-checkpoint {resume}: no such folder; expected 'latest' or a folder "
            f"{output_dir / CHECKPOINTS}/checkpoint-<step> written by an earlier run"
        )
    return path


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int) -> Path:
    """``save_state`` into a temporary folder, rename it to ``checkpoint-<step>``, keep the newest ``total_limit``.

    Every process must call it. Multi-node runs need ``output_dir`` on a file system that all nodes share.
    """
    root = output_dir / CHECKPOINTS
    final, temporary = root / f"checkpoint-{step}", root / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
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
