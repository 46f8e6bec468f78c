"""The non-finite step guard: a step whose loss or gradients are not finite is skipped, on every process alike.

Flows can blow up on one unlucky batch (an exponential overflowing in a coupling). Skipping that update and
counting it keeps the run alive; deciding together matters, since one process stepping while another skips
would make the replicas diverge.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from torch import Tensor


def guarded_step(accelerator: Accelerator, optimizer: AcceleratedOptimizer, losses: list[Tensor],
                 grad_norm: Tensor) -> Tensor:
    """Apply the optimiser step unless a loss of any process's accumulation window or the (synchronised) gradient
    norm that clipping measured is not finite; returns 1.0 on the device where the step was skipped, else 0.0.

    An optimiser that takes the answer on the device (PyTorch's fused Adam: the ``found_inf`` flag its loss scaler
    hands it) skips there and nothing waits for the GPU; any other (Adamax) needs the answer read back first.
    """
    finite = torch.stack([torch.isfinite(value).all() for value in [*losses, grad_norm]]).all()
    skipped = accelerator.reduce((~finite).float().to(accelerator.device), reduction="sum").clamp(max=1.0)
    inner = optimizer.optimizer
    if inner.defaults.get("fused"):
        inner.found_inf = skipped  # a loss scaler (fp16) sets its own flag, over gradients alike, and clears it
        try:
            optimizer.step()
        finally:
            vars(inner).pop("found_inf", None)
    elif not skipped.item():
        optimizer.step()
    elif accelerator.scaler is not None:
        accelerator.scaler.update()  # gradients were unscaled for clipping; let the scaler back off
    return skipped
