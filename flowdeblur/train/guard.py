"""The non-finite step guard: a step whose loss or gradients are not finite is skipped, on every process alike.

Flows can blow up on one unlucky batch (an exponential overflowing in a coupling). Skipping that update and
counting it keeps the run alive; deciding together matters, since one process stepping while another skips
would make the replicas diverge.
"""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator
from torch import Tensor


def finite_everywhere(accelerator: Accelerator, finite_here: bool) -> bool:
    """True only if ``finite_here`` holds on every process; all processes get the same answer (one all-reduce)."""
    flag = torch.tensor([0.0 if finite_here else 1.0], device=accelerator.device)
    return accelerator.reduce(flag, reduction="sum").item() == 0.0


def step_is_finite(accelerator: Accelerator, losses: list[Tensor], grad_norm: float) -> bool:
    """Whether this optimiser step may be applied: every process's losses and the gradient norm are finite.

    ``losses`` are this process's losses over the accumulation window; ``grad_norm`` is the (synchronised)
    gradient norm that clipping measured.
    """
    finite = math.isfinite(grad_norm) and all(bool(torch.isfinite(loss).all()) for loss in losses)
    return finite_everywhere(accelerator, finite)
