"""Float32 that means float32: TF32 off for the invertible parts, whatever the process-wide policy says.

PyTorch lets cuDNN run float32 convolutions in TF32 on Ampere and later GPUs unless told otherwise, and a training
run may choose TF32 for speed. The learned 1x1 convolution and the Haar transform must stay true float32 (exact
inversion, backpropagation by inversion), so they run inside :func:`exact_float32`.

The switches are ``allow_tf32`` of CUDA matrix products and of cuDNN. Torch 2.9 added per-operator
``fp32_precision`` settings beside them, but once those differ between cuDNN's convolutions and RNNs the
``allow_tf32`` getter raises, and ``torch.export`` (``flowdeblur export``) reads it: the one pair keeps every reader
working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

_OWNERS = (torch.backends.cuda.matmul, torch.backends.cudnn)  # CUDA matrix products, cuDNN convolutions


def tf32_enabled() -> bool:
    """Whether float32 matrix products or cuDNN convolutions may currently run in TF32."""
    return any(bool(owner.allow_tf32) for owner in _OWNERS)


def set_tf32(enabled: bool) -> None:
    """Allow (True) or forbid (False) TF32 for float32 matrix products and cuDNN convolutions, process-wide."""
    for owner in _OWNERS:
        owner.allow_tf32 = enabled


@contextmanager
def exact_float32() -> Iterator[None]:
    """Within: TF32 is off, and the previous policy is restored on exit (a no-op where TF32 is already off)."""
    if not tf32_enabled():
        yield
        return
    before = [bool(owner.allow_tf32) for owner in _OWNERS]
    set_tf32(False)
    try:
        yield
    finally:
        for owner, value in zip(_OWNERS, before, strict=True):
            owner.allow_tf32 = value
