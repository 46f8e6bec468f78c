"""What a stage reports: mean losses over its applied steps (all processes), throughput, skipped steps."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch import Tensor


def mean_losses(losses: list[dict[str, Tensor]]) -> dict[str, float]:
    """Each loss of one optimiser step, averaged over its micro-batches (this process)."""
    return {name: sum(float(out[name]) for out in losses) / len(losses) for name in losses[0]}


class StageMeter:
    """Sums of one stage's losses over the steps that were applied, and the time and images its steps took."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.sums: dict[str, float] = {}
        self.applied = 0
        self.steps = 0
        self.images = 0
        self.seconds = 0.0

    def add(self, losses: dict[str, float], applied: bool, images: int, seconds: float) -> None:
        """Record one optimiser step: its losses (:func:`mean_losses`), whether it was applied, images seen."""
        self.names = list(losses)
        self.steps += 1
        self.images += images
        self.seconds += seconds
        if applied:
            self.applied += 1
            for name, value in losses.items():
                self.sums[name] = self.sums.get(name, 0.0) + value

    def summary(self, accelerator: Accelerator) -> dict[str, float]:
        """Mean of each loss over every process's applied steps, plus steps, images/s and seconds (collective)."""
        local = [self.sums.get(name, 0.0) for name in self.names] + [float(self.applied)]
        totals = accelerator.reduce(torch.tensor(local, dtype=torch.float64, device=accelerator.device), "sum")
        applied = float(totals[-1])
        sums = zip(self.names, totals[:-1].tolist(), strict=True)
        means = {name: total / applied if applied else float("nan") for name, total in sums}
        return {
            **means,
            "steps": self.steps,
            "images_per_second": self.images / self.seconds if self.seconds else float("nan"),
            "seconds": self.seconds,
        }


def format_losses(values: dict[str, float]) -> str:
    """``loss 1.234, bpd_blur 3.21 bits/dim, ...``: losses named ``bpd_*`` are in bits per dimension."""
    parts = []
    for name, value in values.items():
        parts.append(f"{name} {value:.4g}" + (" bits/dim" if name.startswith("bpd_") else ""))
    return ", ".join(parts)
