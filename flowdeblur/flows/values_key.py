"""What identifies the current values of some parameters, for caches of weights derived from them.

A parameter's storage and version counter change on every in-place write through autograd's view of it, but
PyTorch's fused optimisers (``torch.optim.Adam(fused=True)``, what the trainer runs) write parameters in place
without bumping their version counters. So the key also holds the number of optimiser steps taken in this process,
counted by a global step hook: a cache keyed here is rebuilt after any optimiser step, fused or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

_optimizer_steps = 0


def _count_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    global _optimizer_steps
    _optimizer_steps += 1


register_optimizer_step_post_hook(_count_step)


def values_key(parameters: Iterable[torch.Tensor]) -> tuple[object, ...] | None:
    """A key that changes whenever any of ``parameters`` may have changed (writes through ``.data`` go unseen), or
    None where one of them is an inference tensor (no version counter: do not cache)."""
    parameters = list(parameters)
    if any(p.is_inference() for p in parameters):
        return None
    return (_optimizer_steps, *((p.data_ptr(), p._version, p.device, p.dtype) for p in parameters))
