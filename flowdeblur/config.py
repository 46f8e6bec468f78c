"""UMLINConfig: the architecture of a UML-IN model, with the paper's settings as defaults (§3, §4.1)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

from .fields import check_fields

ColorMode = Literal["y", "rgb"]
COLOR_MODES: tuple[str, ...] = get_args(ColorMode)
TransferContext = Literal["blurry", "restored"]
TRANSFER_CONTEXTS: tuple[str, ...] = get_args(TransferContext)
TransferNetKind = Literal["per-level", "pyramid"]
TRANSFER_NETS: tuple[str, ...] = get_args(TransferNetKind)
MAX_LEVELS = 16  # an image is padded to a multiple of 2^L pixels on a side: 65,536 at 16 levels
MAX_STEPS = 64
MAX_TRANSFER_BLOCKS = 64
MAX_TRANSFER_DILATION = 8
MAX_CHANNELS = 4096  # widths beyond any model this toolkit trains; larger ones overflow tensor sizes
MAX_KERNEL = 31
MAX_CLAMP = 20.0  # exp(clamp) scales a coupling; K steps of exp(20) stay far inside float32


@dataclass(frozen=True)
class UMLINConfig:
    """Architecture of :class:`flowdeblur.WaveletUNetFlow`; serialised as JSON beside the weights.

    Attributes:
        levels: wavelet levels L (paper: 3).
        steps: flow steps K per level INN (paper: 4); 0 makes each INN the identity, leaving the bare Haar pyramid.
        kernel_size: coupling subnet kernel (paper: 5x5; odd, at most 31).
        hidden_channels: width of the coupling subnets (at most 4096).
        clamp: soft clamp of the coupling log-scales (|s| <= clamp), in (0, 20].
        color: "y" (BT.601 luma, the paper's protocol) or "rgb" (3 channels throughout).
        transfer_net: "per-level" (the paper: one residual CNN h_Γ^(l) per level, Eq. 7) or "pyramid" (one NAFBlock
            encoder-decoder across every level's latents, :class:`~flowdeblur.pyramid_transfer.PyramidTransfer`).
        transfer_hidden_channels: width of the transfer nets h_Γ (Eq. 7), at most 4096; the pyramid net's at level 1.
        transfer_blocks: residual blocks per transfer net; the pyramid net's NAFBlocks per scale and side.
        transfer_kernel_size: kernel of the per-level transfer nets' convolutions.
        transfer_dilation: dilation growth d: the per-level nets' residual block b dilates by d^b (paper: 1).
        transfer_context: low-pass that conditions level l's transfer net: "blurry" x̃^(l) (paper) or "restored" x̂^(l)
            (per-level nets only).
        transfer_extra_levels: the pyramid net's halvings below the coarsest level (pyramid only).
        restore_lowpass: the pyramid net corrects the coarsest low-pass x̃^(L) too, where the paper passes it through.
        refine_channels: width of a full-resolution residual stage on the output (0: none, the paper; at most 4096).
        refine_blocks: residual blocks of the full-resolution stage.
        shared_codec: one wavelet flow encodes blurry and decodes sharp images (paper: two, one per branch).
        memory_saving: the INNs backpropagate by inversion, in memory that does not grow with ``steps``.
        inference_shifts: cycle spinning at inference: ``restore`` in eval mode averages one pass per entry, the
            image shifted down and right by that many pixels against the block grid (each below :attr:`grid`);
            ``(0,)``, one pass, is the paper. Two passes halve the speed and take out most of the grid's imprint.

    A dilation of 2 doubles the receptive field with each block, for blur wider than a few pixels. The "restored"
    context is the low-pass already deblurred by the coarser levels, so each level sees what the coarser ones did.
A shared codec halves the INNs' parameters and makes the U the identity wherever the transfer nets are. Memory
saving changes neither results nor weights, only how training memory and time trade (docs/flows.md).

    ``UMLINConfig()`` is the paper's architecture; :data:`PRESETS` names the others flowdeblur ships.
    """

    levels: int = 3
    steps: int = 4
    kernel_size: int = 5
    hidden_channels: int = 64
    clamp: float = 2.0
    color: ColorMode = "y"
    transfer_net: TransferNetKind = "per-level"
    transfer_hidden_channels: int = 64
    transfer_blocks: int = 2
    transfer_kernel_size: int = 3
    transfer_dilation: int = 1
    transfer_context: TransferContext = "blurry"
    transfer_extra_levels: int = 0
    restore_lowpass: bool = False
    refine_channels: int = 0
    refine_blocks: int = 1
    shared_codec: bool = False
    memory_saving: bool = False
    inference_shifts: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        """Check each field's type (from its annotation), then the ranges; one ValueError naming the field."""
        check_fields(self)
        ranges = {
            "levels": (1, MAX_LEVELS),
            "steps": (0, MAX_STEPS),
            "kernel_size": (1, MAX_KERNEL),
            "hidden_channels": (1, MAX_CHANNELS),
            "transfer_hidden_channels": (1, MAX_CHANNELS),
            "transfer_blocks": (0, MAX_TRANSFER_BLOCKS),
            "transfer_kernel_size": (1, MAX_KERNEL),
            "transfer_dilation": (1, MAX_TRANSFER_DILATION),
            "transfer_extra_levels": (0, MAX_LEVELS),
            "refine_channels": (0, MAX_CHANNELS),
            "refine_blocks": (0, MAX_TRANSFER_BLOCKS),
        }
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if value < low or (high is not None and value > high):
                bounds = f"at least {low}" if high is None else f"from {low} to {high}"
                raise ValueError(f"UMLINConfig.{name} must be {bounds}, got {value!r}")
        for name in ("kernel_size", "transfer_kernel_size"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"UMLINConfig.{name} must be odd so that convolutions keep the image size")
        if not 0 < self.clamp <= MAX_CLAMP:
            raise ValueError(f"UMLINConfig.clamp must lie in (0, {MAX_CLAMP:g}], got {self.clamp!r}")
        if self.levels + self.transfer_extra_levels > MAX_LEVELS:
            raise ValueError(f"UMLINConfig.levels + transfer_extra_levels must be at most {MAX_LEVELS}")
        if self.transfer_net == "pyramid" and self.transfer_context != "blurry":
            raise ValueError('UMLINConfig.transfer_context must be "blurry" with the pyramid transfer net, which '
                             "restores every level at once")
        if self.transfer_net == "per-level" and (self.transfer_extra_levels or self.restore_lowpass):
            raise ValueError('UMLINConfig.transfer_extra_levels and restore_lowpass need transfer_net="pyramid"')
        shifts = self.inference_shifts
        if not shifts or len(set(shifts)) < len(shifts) or not all(0 <= shift < self.grid for shift in shifts):
            raise ValueError(f"UMLINConfig.inference_shifts must be distinct pixel offsets from 0 to {self.grid - 1}, "
                             f"at least one, got {shifts!r}")

    @property
    def grid(self) -> int:
        """The side of the block grid the networks see: 2^L, or 2^(L + extra levels) with the pyramid net."""
        return 2 ** (self.levels + self.transfer_extra_levels)

    @property
    def channels(self) -> int:
        """Image channels the networks work on: 1 for Y, 3 for RGB."""
        return 1 if self.color == "y" else 3

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> UMLINConfig:
        """Build a config from :meth:`to_dict` output (or its JSON); unknown keys and bad values are a ValueError."""
        if not isinstance(values, dict):
            raise ValueError(f"a UMLINConfig is a JSON object of fields, got {values!r}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown UMLINConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)


PRESETS: dict[str, UMLINConfig] = {
    "paper": UMLINConfig(),
    "compact": UMLINConfig(steps=2, hidden_channels=32),
    "pyramid": UMLINConfig(
        steps=2, hidden_channels=32, transfer_net="pyramid", transfer_hidden_channels=32, transfer_blocks=1,
        transfer_extra_levels=1, restore_lowpass=True,
    ),
    "pyramid-light": UMLINConfig(
        steps=1, hidden_channels=16, kernel_size=3, transfer_net="pyramid", transfer_hidden_channels=32,
        transfer_blocks=1, transfer_extra_levels=1, restore_lowpass=True,
    ),
}
PRESET_NOTES: dict[str, str] = {
    "paper": "paper: the paper's architecture (§3, §4.1), 1.08 M parameters",
    "compact": "compact: 2 flow steps per level, 32-channel couplings, 0.59 M parameters (the gauss3 model)",
    "pyramid": "pyramid: compact codecs and one NAFBlock encoder-decoder across the latent pyramid (and one level "
               "below it) that restores the coarsest low-pass too; 1.28 M parameters",
    "pyramid-light": "pyramid-light: the pyramid preset with light codecs (1 flow step per level, 16-channel 3x3 "
                     "couplings), as good per step in half the time; 1.16 M parameters (the general model)",
}
