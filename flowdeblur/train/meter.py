"""What a stage reports: mean losses over its applied steps (all processes), throughput, data wait, skipped steps."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch import Tensor


def mean_losses(losses: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Each loss of one optimiser step, averaged over its micro-batches (this process), left on the device."""
    return {name: torch.stack([out[name] for out in losses]).mean() for name in losses[0]}


def reduced_means(accelerator: Accelerator, losses: dict[str, Tensor]) -> dict[str, float]:
    """:func:`mean_losses` averaged over every process (one collective: every process must call it)."""
    if not losses:
        return {}
    means = accelerator.reduce(torch.stack(list(losses.values())).double(), reduction="mean")
    return dict(zip(losses, means.tolist(), strict=True))


class StageMeter:
    """Sums of one stage's losses over the steps that were applied and the count of skipped ones (on the device, so
    recording a step waits for nothing), and the time and images its steps took, with the part of that time spent
    waiting for batches."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.sums: dict[str, Tensor] = {}
        self.skipped: Tensor | None = None
        self.reported_skips = 0
        self.steps = 0
        self.images = 0
        self.seconds = 0.0
        self.wait_seconds = 0.0

    def add(self, losses: dict[str, Tensor], skipped: Tensor, images: int, seconds: float,
            wait_seconds: float) -> None:
        """Record one optimiser step: its losses (:func:`mean_losses`), whether it was skipped (1.0 on the device, as
        the guard answers), images seen, and its seconds, ``wait_seconds`` of them waiting for the next batch (a share
        that shows when data loading is slow)."""
        self.names = list(losses)
        self.steps += 1
        self.images += images
        self.seconds += seconds
        self.wait_seconds += wait_seconds
        applied = skipped == 0
        for name, value in losses.items():
            kept = torch.where(applied, value.double(), 0.0)
            self.sums[name] = self.sums[name] + kept if name in self.sums else kept
        self.skipped = skipped if self.skipped is None else self.skipped + skipped

    def new_skips(self) -> int:
        """How many steps were skipped since the last call (reads one value from the device)."""
        total = 0 if self.skipped is None else round(float(self.skipped))
        new, self.reported_skips = total - self.reported_skips, total
        return new

    def summary(self, accelerator: Accelerator) -> dict[str, float]:
        """Mean of each loss over every process's applied steps, plus steps, images/s, seconds and the share of them
        this process waited for data (collective)."""
        zero = torch.zeros((), dtype=torch.float64, device=accelerator.device)
        skipped = zero if self.skipped is None else self.skipped.to(zero)
        local = [self.sums.get(name, zero).to(zero) for name in self.names] + [self.steps - skipped]
        totals = accelerator.reduce(torch.stack(local), "sum")
        applied = float(totals[-1])
        sums = zip(self.names, totals[:-1].tolist(), strict=True)
        means = {name: total / applied if applied else float("nan") for name, total in sums}
        return {
            **means,
            "steps": self.steps,
            "images_per_second": self.images / self.seconds if self.seconds else float("nan"),
            "seconds": self.seconds,
            "data_wait_share": self.wait_seconds / self.seconds if self.seconds else float("nan"),
        }


def format_losses(values: dict[str, float]) -> str:
    """``loss 1.234, bpd_blur 3.21 bits/dim, ...``: losses named ``bpd_*`` are in bits per dimension."""
    parts = []
    for name, value in values.items():
        parts.append(f"{name} {value:.4g}" + (" bits/dim" if name.startswith("bpd_") else ""))
    return ", ".join(parts)
