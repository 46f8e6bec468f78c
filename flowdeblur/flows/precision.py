"""Float32 that means float32: TF32 off for the invertible parts, whatever the process-wide policy says.

PyTorch lets cuDNN run float32 convolutions in TF32 on Ampere and later GPUs unless told otherwise, and a training
run may choose TF32 for speed. The learned 1x1 convolution and the Haar transform must stay true float32 (exact
inversion, backpropagation by inversion), so they run inside :func:`exact_float32`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class _Switch:
    """One TF32 switch: ``fp32_precision`` ("tf32" or "ieee") where torch has it (2.9+), else ``allow_tf32``."""

    def __init__(self, modern: object, legacy: object) -> None:
        modern_api = hasattr(modern, "fp32_precision")
        self.owner, self.name = (modern, "fp32_precision") if modern_api else (legacy, "allow_tf32")

    def get(self) -> bool:
        """Whether this switch lets float32 run in TF32."""
        value = self.value()
        return value == "tf32" if self.name == "fp32_precision" else bool(value)

    def set(self, enabled: bool) -> None:
        """Allow or forbid TF32 on this switch."""
        self.restore(("tf32" if enabled else "ieee") if self.name == "fp32_precision" else enabled)

    def value(self) -> object:
        """The switch as torch spells it, for :meth:`restore`."""
        return getattr(self.owner, self.name)

    def restore(self, value: object) -> None:
        """Set the switch to a :meth:`value` read earlier."""
        setattr(self.owner, self.name, value)


# The switches of the ops the flows use: CUDA matrix products and cuDNN convolutions.
_SWITCHES = (
    _Switch(torch.backends.cuda.matmul, torch.backends.cuda.matmul),
    _Switch(getattr(torch.backends.cudnn, "conv", None), torch.backends.cudnn),
)


def tf32_enabled() -> bool:
    """Whether float32 matrix products or cuDNN convolutions may currently run in TF32."""
    return any(switch.get() for switch in _SWITCHES)


def set_tf32(enabled: bool) -> None:
    """Allow (True) or forbid (False) TF32 for float32 matrix products and cuDNN convolutions, process-wide."""
    for switch in _SWITCHES:
        switch.set(enabled)


@contextmanager
def exact_float32() -> Iterator[None]:
    """Within: TF32 is off, and the previous policy is restored on exit (a no-op where TF32 is already off)."""
    if not tf32_enabled():
        yield
        return
    before = [switch.value() for switch in _SWITCHES]
    set_tf32(False)
    try:
        yield
    finally:
        for switch, value in zip(_SWITCHES, before, strict=True):
            switch.restore(value)
