"""What the learned baselines (the plain U-Net, the NAFNet-style network) share: sizing and training.

A baseline is sized by its width to a parameter count (UML-IN's, for a comparison at equal size) and trained with
Adam on an L1 loss for a fixed number of seconds (UML-IN's training time, for a comparison at equal time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import Tensor, nn

Network = TypeVar("Network", bound=nn.Module)


def parameter_count(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """``x`` (N, C, H, W) padded at the bottom and right (replicating its edge) to sides that ``multiple`` divides."""
    height, width = x.shape[-2:]
    return F.pad(x, (0, (-width) % multiple, 0, (-height) % multiple), mode="replicate")


def with_parameters(build: Callable[[int], Network], target: int) -> Network:
    """``build(width)`` at the width (1 or more) whose parameter count is closest to ``target``.

    ``build``'s parameter count must grow with the width; widths are sized on the meta device, without weights.
    """

    def size(width: int) -> int:
        with torch.device("meta"):
            return parameter_count(build(width))

    width = 1
    while size(width + 1) <= target:
        width += 1
    return build(min((width, width + 1), key=lambda w: abs(size(w) - target)))


def train_for(
    model: nn.Module, accelerator: Accelerator, batches: Iterator[dict[str, Any]], seconds: float, lr: float = 1e-3,
    max_steps: int | None = None,
) -> dict[str, float]:
    """Adam on the L1 loss, one batch per step, until ``seconds`` have passed (or ``max_steps`` steps are taken);
    returns steps, seconds, images/s.

    ``model`` must already be prepared by ``accelerator``; ``batches`` are its ``{"blurry", "sharp"}`` batches.
    """
    optimizer = accelerator.prepare(torch.optim.Adam(model.parameters(), lr=lr))
    model.train()
    steps = images = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds and (max_steps is None or steps < max_steps):
        batch = next(batches)
        loss = F.l1_loss(model(batch["blurry"]), batch["sharp"])
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        steps, images = steps + 1, images + len(batch["blurry"])
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    model.eval()
    return {"steps": steps, "seconds": elapsed, "images_per_second": images / elapsed}
