"""Per-stage optimisation: Adamax (as in Wavelet Flow, Yu et al. 2020) or Adam, a linear warm-up, then cosine decay."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Literal, get_args

from torch import nn
from torch.optim import Adam, Adamax, Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor of step ``s``: ``(s + 1) / warmup`` while warming up, then a cosine from 1 towards 0.

    A stage no longer than the warm-up only warms up. After a warm-up, the last step's factor is small but not 0.

    Example:
        >>> [round(warmup_cosine(2, 6)(s), 3) for s in range(6)]
        [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    warmup = min(warmup_steps, total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


OptimizerName = Literal["adamax", "adam"]
OPTIMIZERS: dict[str, type[Optimizer]] = dict(zip(get_args(OptimizerName), (Adamax, Adam), strict=True))
FUSED_ADAM_DEVICES = ("cpu", "cuda", "mps", "xpu")  # where PyTorch has a fused Adam kernel


def stage_optimizer(
    parameters: Iterable[nn.Parameter], learning_rate: float, kind: OptimizerName = "adamax"
) -> Optimizer:
    """The optimiser ``kind`` names ("adamax", the paper's; or "adam") over one stage's parameter group (which may be
    empty: the bare pyramid's codec stage trains nothing).

    Adamax divides by the largest recent gradient, Adam by its root mean square, so at one learning rate Adam takes
    the larger steps; at equal seconds it trains UML-IN's pyramid design better (docs/training.md#optimisation).
    Adam runs PyTorch's fused kernel where there is one: one kernel per step, which takes the non-finite guard's
    answer on the device (:func:`~flowdeblur.train.guard.guarded_step`).
    """
    parameters = list(parameters)
    options = {}
    if kind == "adam" and all(parameter.device.type in FUSED_ADAM_DEVICES for parameter in parameters):
        options["fused"] = True
    return OPTIMIZERS[kind]([{"params": parameters}], lr=learning_rate, **options)


def stage_scheduler(optimizer: Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """The stage's schedule, stepped once per optimiser step of that stage (see :func:`warmup_cosine`)."""
    return LambdaLR(optimizer, warmup_cosine(warmup_steps, total_steps))
