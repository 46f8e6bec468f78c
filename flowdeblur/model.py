"""WaveletUNetFlow: the U-shaped multi-level invertible network UML-IN (paper §3, Fig. 2).

Analysis (Eq. 3, 5) splits an image into low-passes and detail bands; per level and branch an INN maps
the detail bands to latents conditioned on the low-pass (Eq. 6); transfer nets map blurry latents to
sharp ones (Eq. 7); synthesis runs the sharp branch backwards from the coarsest blurry low-pass (Eq. 8, 9).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import CheckpointError, read_model_dir, save_model_dir
from .color import replace_luma, rgb_to_y
from .config import UMLINConfig
from .flows import WaveletPyramid, build_level_flow
from .transfer import TransferNet

BRANCHES = ("blur", "sharp")

FlowFactory = Callable[[UMLINConfig, int], nn.Module]
TransferFactory = Callable[[UMLINConfig, int], nn.Module]


def default_flow_factory(config: UMLINConfig, level: int) -> nn.Module:
    """The paper's per-level INN: K steps on 3C detail channels, conditioned on the C-channel low-pass."""
    return build_level_flow(
        channels=3 * config.channels,
        condition_channels=config.channels,
        steps=config.steps,
        kernel_size=config.kernel_size,
        hidden_channels=config.hidden_channels,
        clamp=config.clamp,
    )


def default_transfer_factory(config: UMLINConfig, level: int) -> nn.Module:
    """The transfer net h_Γ^(l) of Eq. 7 for one level."""
    return TransferNet(
        latent_channels=3 * config.channels,
        condition_channels=config.channels,
        hidden_channels=config.transfer_hidden_channels,
        blocks=config.transfer_blocks,
        kernel_size=config.transfer_kernel_size,
        dilation=config.transfer_dilation,
    )


@dataclass
class Encoding:
    """What one branch's analysis produces, finest level first: z^(l), log|det J^(l)|, x^(l) for l = 1..L."""

    latents: list[Tensor]
    log_dets: list[Tensor]
    lowpasses: list[Tensor]
    size: tuple[int, int]

    @property
    def coarsest(self) -> Tensor:
        """x^(L), the low-pass that the U's skip connection carries across (Eq. 8)."""
        return self.lowpasses[-1]


class WaveletUNetFlow(nn.Module):
    """UML-IN: L levels x two branches (blur, sharp) of per-level INNs, plus one transfer net per level.

    ``model(blurry)`` deblurs a batch (N, C, H, W) in [0, 1] of any size H, W >= 1. A Y model takes
    1-channel input as the Y channel itself, and 3-channel input as RGB: it deblurs the Y channel and
    keeps the input's Cb/Cr. Per-level INNs and transfer nets come from the factories it is handed
    (``factory(config, level) -> nn.Module``), the paper's by default.

    Example:
        >>> model = WaveletUNetFlow(UMLINConfig(steps=1, hidden_channels=8))
        >>> model(torch.rand(2, 3, 45, 67)).shape
        torch.Size([2, 3, 45, 67])
    """

    def __init__(
        self,
        config: UMLINConfig | None = None,
        flow_factory: FlowFactory = default_flow_factory,
        transfer_factory: TransferFactory = default_transfer_factory,
    ):
        super().__init__()
        self.config = config or UMLINConfig()
        self.metadata: dict[str, Any] = {}
        levels = range(self.config.levels)
        self.wavelet = WaveletPyramid(self.config.levels)
        self.flows = nn.ModuleDict(
            {branch: nn.ModuleList(flow_factory(self.config, level) for level in levels) for branch in BRANCHES}
        )
        self.transfer = nn.ModuleList(transfer_factory(self.config, level) for level in levels)

    # -- colour ---------------------------------------------------------------------------------------
    def to_working(self, image: Tensor) -> Tensor:
        """The channels the networks see: Y of an RGB input for a Y model, the input itself otherwise."""
        channels = image.shape[1]
        if channels == self.config.channels:
            return image
        if self.config.color == "y" and channels == 3:
            return rgb_to_y(image)
        expected = "1 (Y) or 3 (RGB)" if self.config.color == "y" else "3 (RGB)"
        raise ValueError(
            f"a {self.config.color.upper()} model expects {expected} channels, got {channels} "
            f"(input shape {tuple(image.shape)})"
        )

    def from_working(self, result: Tensor, original: Tensor) -> Tensor:
        """Undo :meth:`to_working`: put a deblurred Y back into the input's colour (its Cb/Cr)."""
        if result.shape[1] == original.shape[1]:
            return result
        return replace_luma(original, result)

    # -- the two directions of one branch --------------------------------------------------------------
    def _check_branch(self, branch: str) -> nn.ModuleList:
        if branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {branch!r}")
        return self.flows[branch]

    def encode(self, image: Tensor, branch: str) -> Encoding:
        """Analysis (Eq. 3, 5) + the branch's INNs (Eq. 6): image -> per-level latents, log-dets, low-passes."""
        flows = self._check_branch(branch)
        working = self.to_working(image)
        lowpasses, details, size = self.wavelet.analysis(working)
        latents, log_dets = [], []
        for flow, low, detail in zip(flows, lowpasses, details, strict=True):
            z, log_det = flow(detail, c=[low])
            latents.append(z)
            log_dets.append(log_det)
        return Encoding(latents, log_dets, lowpasses, size)

    def decode(self, latents: Sequence[Tensor], coarsest: Tensor, size: tuple[int, int], branch: str) -> Tensor:
        """Synthesis (Eq. 8, 9): from x^(L) and z^(L..1), invert the branch's INNs level by level.

        Each level's INN is conditioned on the low-pass just rebuilt, so it runs coarse to fine. The exact
        inverse of :meth:`encode` for the same branch: ``decode(e.latents, e.coarsest, e.size, b)``.
        """
        flows = self._check_branch(branch)
        if len(latents) != self.config.levels:
            raise ValueError(f"expected {self.config.levels} latents (one per level), got {len(latents)}")
        return self._synthesis(flows, lambda level, low: latents[level], coarsest, size)

    def _synthesis(
        self, flows: nn.ModuleList, latent_at: Callable[[int, Tensor], Tensor], coarsest: Tensor, size: tuple[int, int]
    ) -> Tensor:
        """Invert ``flows`` coarse to fine from x^(L); ``latent_at(l, x̂^(l))`` gives level l's latent (Eq. 8, 9)."""
        low = coarsest
        for level in reversed(range(self.config.levels)):
            detail, _ = flows[level](latent_at(level, low), c=[low], rev=True)
            low = self.wavelet.haar.synthesis(low, detail)
        return low[..., : size[0], : size[1]]

    def transfer_latents(self, blurry: Encoding, lowpasses: Sequence[Tensor] | None = None) -> list[Tensor]:
        """ẑ^(l) = h_Γ^(l)(z̃^(l), x^(l)) for every level (Eq. 7), conditioned on ``lowpasses`` (default x̃^(l))."""
        lows = blurry.lowpasses if lowpasses is None else lowpasses
        return [net(z, low) for net, z, low in zip(self.transfer, blurry.latents, lows, strict=True)]

    def synthesize(self, blurry: Encoding) -> Tensor:
        """Transfer (Eq. 7) and synthesis (Eq. 8, 9) from the blurry encoding, coarse to fine, unclipped.

        Level l's transfer net sees x̃^(l) (``transfer_context="blurry"``, the paper), or x̂^(l) just rebuilt from
        the coarser levels (``"restored"``); either way the sharp branch's INN inverts ẑ^(l) given x̂^(l).
        """
        restored_context = self.config.transfer_context == "restored"

        def transferred(level: int, low: Tensor) -> Tensor:
            context = low if restored_context else blurry.lowpasses[level]
            return self.transfer[level](blurry.latents[level], context)

        return self._synthesis(self.flows["sharp"], transferred, blurry.coarsest, blurry.size)

    @torch.no_grad()
    def initialize(self, blurry: Tensor, sharp: Tensor) -> None:
        """Data-dependent ActNorm initialisation of both branches from one batch (a no-op once done).

        Call it once before training (and before wrapping the model for distributed training, so that every
        process starts from the same weights).
        """
        self.encode(blurry, "blur")
        self.encode(sharp, "sharp")

    def deblur_working(self, working: Tensor) -> Tensor:
        """The whole U on the networks' channels, unclipped: encode blurry, transfer, decode sharp."""
        return self.synthesize(self.encode(working, "blur"))

    def forward(self, blurry: Tensor) -> Tensor:
        """Deblur a batch (N, C, H, W) in [0, 1]; the result has the input's shape and is clipped to [0, 1]."""
        if blurry.dim() != 4:
            raise ValueError(f"expected a batch (N, C, H, W), got shape {tuple(blurry.shape)}")
        restored = self.deblur_working(self.to_working(blurry))
        return self.from_working(restored, blurry).clamp(0.0, 1.0)

    # -- inspection and persistence -------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part: ``flow.<branch>.level<l>``, ``transfer.level<l>`` and ``total``."""
        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        counts = {}
        for branch in BRANCHES:
            for level, flow in enumerate(self.flows[branch], start=1):
                counts[f"flow.{branch}.level{level}"] = count(flow)
        for level, net in enumerate(self.transfer, start=1):
            counts[f"transfer.level{level}"] = count(net)
        counts["total"] = count(self)
        return counts

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` (architecture + metadata) and ``model.safetensors``, each atomically."""
        header = {"config": self.config.to_dict(), "metadata": self.metadata}
        return save_model_dir(directory, header, self.state_dict())

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu", **factories: Any
    ) -> WaveletUNetFlow:
        """Load a directory written by :meth:`save_pretrained`; raises :class:`CheckpointError` if unusable.

        With the default factories the directory is checked first (its size and whether the weights fit the config,
        :func:`flowdeblur.preflight.check_model_dir`), so a damaged config never allocates a huge model.
        """
        from .preflight import check_model_dir, mismatch  # imported here: preflight builds models of this class

        if not factories:
            check_model_dir(directory)
        header, state = read_model_dir(directory, device)
        try:
            config = UMLINConfig.from_dict(header["config"])
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{Path(directory) / 'config.json'} has an invalid config: {error}") from error
        model = cls(config, **factories)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
            lines = mismatch(expected, {name: tuple(tensor.shape) for name, tensor in state.items()})
            raise CheckpointError(
                f"weights in {directory} do not match the architecture in its config.json:\n  " + "\n  ".join(lines)
            ) from error
        model.metadata = dict(header.get("metadata") or {})
        return model.to(device).eval()
