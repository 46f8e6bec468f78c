"""UMLINConfig: the architecture of a UML-IN model, with the paper's settings as defaults (§3, §4.1)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

COLOR_MODES = ("y", "rgb")
TRANSFER_CONTEXTS = ("blurry", "restored")


@dataclass(frozen=True)
class UMLINConfig:
    """Architecture of :class:`flowdeblur.WaveletUNetFlow`; serialised as JSON beside the weights.

    Attributes:
        levels: wavelet levels L (paper: 3).
        steps: flow steps K per level INN (paper: 4).
        kernel_size: coupling subnet kernel (paper: 5x5).
        hidden_channels: width of the coupling subnets.
        clamp: soft clamp of the coupling log-scales (|s| <= clamp).
        color: "y" (BT.601 luma, the paper's protocol) or "rgb" (3 channels throughout).
        transfer_hidden_channels: width of the transfer nets h_Γ (Eq. 7).
        transfer_blocks: residual blocks per transfer net.
        transfer_kernel_size: kernel of the transfer nets' convolutions.
        transfer_dilation: dilation growth d: the transfer nets' residual block b dilates by d^b (paper: 1).
        transfer_context: low-pass that conditions level l's transfer net: "blurry" x̃^(l) (paper) or "restored" x̂^(l).

    A dilation of 2 doubles the receptive field with each block, for blur wider than a few pixels. The "restored"
    context is the low-pass already deblurred by the coarser levels, so each level sees what the coarser ones did.

    ``UMLINConfig()`` is the paper's architecture; :data:`PRESETS` names the others flowdeblur ships.
    """

    levels: int = 3
    steps: int = 4
    kernel_size: int = 5
    hidden_channels: int = 64
    clamp: float = 2.0
    color: str = "y"
    transfer_hidden_channels: int = 64
    transfer_blocks: int = 2
    transfer_kernel_size: int = 3
    transfer_dilation: int = 1
    transfer_context: str = "blurry"

    def __post_init__(self) -> None:
        if self.color not in COLOR_MODES:
            raise ValueError(f"UMLINConfig.color must be one of {COLOR_MODES}, got {self.color!r}")
        for name in ("levels", "steps", "kernel_size", "hidden_channels", "transfer_hidden_channels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"UMLINConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.kernel_size % 2 == 0 or self.transfer_kernel_size % 2 == 0:
            raise ValueError("UMLINConfig kernel sizes must be odd so that convolutions keep the image size")
        if self.transfer_context not in TRANSFER_CONTEXTS:
            raise ValueError(
                f"UMLINConfig.transfer_context must be one of {TRANSFER_CONTEXTS}, got {self.transfer_context!r}"
            )
        if self.transfer_dilation < 1:
            raise ValueError(f"UMLINConfig.transfer_dilation must be at least 1, got {self.transfer_dilation!r}")
        if self.transfer_blocks < 0 or self.clamp <= 0:
            raise ValueError("UMLINConfig.transfer_blocks must be >= 0 and clamp > 0")

    @property
    def channels(self) -> int:
        """Image channels the networks work on: 1 for Y, 3 for RGB."""
        return 1 if self.color == "y" else 3

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> UMLINConfig:
        """Build a config from :meth:`to_dict` output; unknown keys are an error, not silently dropped."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown UMLINConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)


PRESETS: dict[str, UMLINConfig] = {
    "paper": UMLINConfig(),
    "compact": UMLINConfig(steps=2, hidden_channels=32),
}
PRESET_NOTES: dict[str, str] = {
    "paper": "paper: the paper's architecture (§3, §4.1), 1.08 M parameters",
    "compact": "compact: 2 flow steps per level, 32-channel couplings, 0.59 M parameters (the shipped models)",
}
