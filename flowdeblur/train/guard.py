"""The non-finite step guard: a step whose loss or gradients are not finite is skipped, on every process alike.

Flows can blow up on one unlucky batch (an exponential overflowing in a coupling). Skipping that update and
counting it keeps the run alive; deciding together matters, since one process stepping while another skips
would make the replicas diverge.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch import Tensor


def step_is_finite(accelerator: Accelerator, losses: list[Tensor], grad_norm: Tensor) -> bool:
    """Whether this optimiser step may be applied: every process's losses and the gradient norm are finite.

    ``losses`` are this process's losses over the accumulation window; ``grad_norm`` is the (synchronised)
    gradient norm that clipping measured. The test runs on the device; its one all-reduced answer is the only value
    read back (the step cannot go on without it).
    """
    finite = torch.stack([torch.isfinite(value).all() for value in [*losses, grad_norm]]).all()
    not_finite = (~finite).float().reshape(1).to(accelerator.device)
    return accelerator.reduce(not_finite, reduction="sum").item() == 0.0
