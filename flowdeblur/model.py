"""WaveletUNetFlow: the U-shaped multi-level invertible network UML-IN (paper §3, Fig. 2).

Analysis (Eq. 3, 5) splits an image into low-passes and detail bands; per level and branch an INN maps
the detail bands to latents conditioned on the low-pass (Eq. 6); transfer nets map blurry latents to
sharp ones (Eq. 7); synthesis runs the sharp branch backwards from the coarsest blurry low-pass (Eq. 8, 9).
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .color import channels_to_image, image_to_channels
from .config import UMLINConfig
from .flows import Encoding, WaveletFlow, build_level_flow
from .model_format import check_fits, locate_model, read_header, read_weights, write_model_dir
from .pyramid_transfer import FullResolutionStage, PyramidTransfer
from .transfer import TransferNet

BRANCHES = ("blur", "sharp")
SHARED = "shared"

FlowFactory = Callable[[UMLINConfig, int], nn.Module]
TransferFactory = Callable[[UMLINConfig, int], nn.Module]

__all__ = ["BRANCHES", "Encoding", "WaveletUNetFlow", "default_flow_factory", "default_transfer_factory"]


def default_flow_factory(config: UMLINConfig, level: int) -> nn.Module:
    """The paper's per-level INN: K steps on 3C detail channels, conditioned on the C-channel low-pass."""
    return build_level_flow(3 * config.channels, config.channels, steps=config.steps, kernel_size=config.kernel_size,
                            hidden_channels=config.hidden_channels, clamp=config.clamp,
                            memory_saving=config.memory_saving)


def default_transfer_factory(config: UMLINConfig, level: int) -> nn.Module:
    """The transfer net h_Γ^(l) of Eq. 7 for one level."""
    return TransferNet(3 * config.channels, config.channels, hidden_channels=config.transfer_hidden_channels,
                       blocks=config.transfer_blocks, kernel_size=config.transfer_kernel_size,
                       dilation=config.transfer_dilation)


def build_transfer(config: UMLINConfig, transfer_factory: TransferFactory) -> nn.Module:
    """The transfer part (Eq. 7): one net per level from ``transfer_factory``, or one pyramid net for all levels."""
    if config.transfer_net == "pyramid":
        return PyramidTransfer(3 * config.channels, config.channels, levels=config.levels,
                               width=config.transfer_hidden_channels, blocks=config.transfer_blocks,
                               extra_levels=config.transfer_extra_levels, restore_lowpass=config.restore_lowpass)
    return nn.ModuleList(transfer_factory(config, level) for level in range(config.levels))


def build_refine(config: UMLINConfig) -> nn.Module:
    """The full-resolution stage on the synthesised image, or the identity (the paper) when it has no channels."""
    if not config.refine_channels:
        return nn.Identity()
    return FullResolutionStage(config.channels, config.refine_channels, config.refine_blocks)


class WaveletUNetFlow(nn.Module):
    """UML-IN: two wavelet flows (:class:`~flowdeblur.flows.WaveletFlow`; one if shared) and the transfer nets between.

    The networks map tensors of the model's channels (1 for a Y model: BT.601 luma; 3 for RGB) to the same:
    :meth:`encode`, :meth:`synthesize` and :meth:`restore`. ``model(images)`` deblurs images as ``flowdeblur
    deblur`` does, through the colour layer (:func:`~flowdeblur.color.image_to_channels`): gray or RGB in [0, 1],
    any size H, W >= 1, a Y model keeping the input's Cb/Cr. Per-level INNs and transfer nets come from the
    factories it is handed (``factory(config, level) -> nn.Module``), the paper's by default; ``transfer_net="pyramid"``
    builds one transfer net across the levels instead (:mod:`~flowdeblur.pyramid_transfer`).

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
        self.config = config = config or UMLINConfig()
        self.metadata: dict[str, Any] = {}
        self.directory: Path | None = None  # where from_pretrained read it from
        names = (SHARED,) if config.shared_codec else BRANCHES
        self.flows = nn.ModuleDict({
            name: WaveletFlow(config.channels, config.levels, factory=lambda level: flow_factory(config, level))
            for name in names
        })
        self.transfer = build_transfer(config, transfer_factory)
        self.refine = build_refine(config)

    def codec(self, branch: str) -> WaveletFlow:
        """The branch's wavelet flow: f̃ for "blur", f for "sharp" (Eq. 6); one flow for both with ``shared_codec``."""
        if branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {branch!r}")
        return self.flows[SHARED if self.config.shared_codec else branch]

    def start_sharp_from_blur(self) -> None:
        """Give the sharp codec the blur codec's weights (a no-op with ``shared_codec``), so the U is an identity map
        while the transfer nets are: the training start ``sharp_init="shared"`` (flowdeblur.train.config)."""
        if not self.config.shared_codec:
            self.flows["sharp"].load_state_dict(self.flows["blur"].state_dict())

    # -- the networks, on the model's channels ---------------------------------------------------------
    def encode(self, working: Tensor, branch: str) -> Encoding:
        """Analysis (Eq. 3, 5) + the branch's INNs (Eq. 6): (N, C, H, W) -> per-level latents, log-dets, low-passes."""
        return self.codec(branch).encode(working)

    def decode(self, encoding: Encoding, branch: str) -> Tensor:
        """Synthesis (Eq. 8, 9): the exact inverse of :meth:`encode` for the same branch."""
        return self.codec(branch).decode(encoding)

    def transfer_latents(self, blurry: Encoding, lowpasses: Sequence[Tensor] | None = None) -> list[Tensor]:
        """ẑ^(l) = h_Γ^(l)(z̃^(l), x^(l)) for every level (Eq. 7), conditioned on ``lowpasses`` (default x̃^(l))."""
        return self.transfer_pyramid(blurry, lowpasses)[0]

    def transfer_pyramid(
        self, blurry: Encoding, lowpasses: Sequence[Tensor] | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """:meth:`transfer_latents` and the coarsest low-pass synthesis starts from: x̃^(L) (Eq. 8), or x̂^(L) where
        the pyramid transfer net restores it (``restore_lowpass``)."""
        lows = blurry.lowpasses if lowpasses is None else lowpasses
        if isinstance(self.transfer, PyramidTransfer):
            return self.transfer(blurry.latents, lows)
        return [net(z, low) for net, z, low in zip(self.transfer, blurry.latents, lows, strict=True)], lows[-1]

    def synthesize(self, blurry: Encoding) -> Tensor:
        """Transfer (Eq. 7) and synthesis (Eq. 8, 9) from the blurry encoding, coarse to fine, unclipped.

        Level l's transfer net sees x̃^(l) (``transfer_context="blurry"``, the paper), or x̂^(l) just rebuilt from
        the coarser levels (``"restored"``); either way the sharp branch's INN inverts ẑ^(l) given x̂^(l). The pyramid
        transfer net restores every level (and, with ``restore_lowpass``, x̂^(L)) at once; the full-resolution stage,
        where there is one, refines the result.
        """
        return self.synthesize_with_latents(blurry)[0]

    def synthesize_with_latents(self, blurry: Encoding) -> tuple[Tensor, list[Tensor]]:
        """:meth:`synthesize`, and the transferred latents ẑ^(l) it inverted (finest first), for inspection."""
        if isinstance(self.transfer, PyramidTransfer):
            restored, coarsest = self.transfer_pyramid(blurry)
            image = self.codec("sharp").synthesize(lambda level, low: restored[level], coarsest, blurry.size)
            return self.refine(image), restored
        restored_context = self.config.transfer_context == "restored"
        latents: dict[int, Tensor] = {}

        def transferred(level: int, low: Tensor) -> Tensor:
            context = low if restored_context else blurry.lowpasses[level]
            latents[level] = self.transfer[level](blurry.latents[level], context)
            return latents[level]

        image = self.codec("sharp").synthesize(transferred, blurry.coarsest, blurry.size)
        return self.refine(image), [latents[level] for level in range(self.config.levels)]

    @torch.no_grad()
    def initialize(self, blurry: Tensor, sharp: Tensor) -> None:
        """Data-dependent ActNorm initialisation of both codecs from one batch on the model's channels (once).

        Call it once before training (and before wrapping the model for distributed training, so that every
        process starts from the same weights).
        """
        self.encode(blurry, "blur")
        self.encode(sharp, "sharp")

    def restore(self, working: Tensor) -> Tensor:
        """The whole U on the model's channels, unclipped: encode blurry, transfer, decode sharp. In eval mode, the
        mean over the passes ``config.inference_shifts`` names, each on the image shifted against the block grid
        (cycle spinning), so the result depends less on where the grid falls; training makes one pass."""
        shifts = (0,) if self.training else self.config.inference_shifts
        passes = [self._restore_shifted(working, shift) for shift in shifts]
        return passes[0] if len(passes) == 1 else sum(passes[1:], passes[0]) / len(passes)

    def _restore_shifted(self, working: Tensor, shift: int) -> Tensor:
        """One pass of the U on ``working`` moved down and right by ``shift`` pixels (its top and left edges
        reflected; replicated where the image is too small to reflect), cropped back."""
        if not shift:
            return self.synthesize(self.encode(working, "blur"))
        mode = "reflect" if min(working.shape[-2:]) > shift else "replicate"
        padded = nn.functional.pad(working, (shift, 0, shift, 0), mode=mode)
        return self.synthesize(self.encode(padded, "blur"))[..., shift:, shift:]

    def forward(self, images: Tensor) -> Tensor:
        """Deblur images (N, 1 gray or 3 RGB, H, W) in [0, 1] as ``flowdeblur deblur`` does; same shape, clipped."""
        if images.dim() != 4:
            raise ValueError(f"expected a batch (N, C, H, W), got shape {tuple(images.shape)}")
        restored = self.restore(image_to_channels(images, self.config.color))
        return channels_to_image(restored, images, self.config.color).clamp(0.0, 1.0)

    # -- inspection and persistence -------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part: ``flow.<codec>.level<l>``, ``transfer.level<l>`` (or ``transfer`` for the
        pyramid net), ``refine`` where there is a full-resolution stage, and ``total``."""
        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        counts = {}
        for name, codec in self.flows.items():
            for level, flow in enumerate(codec.inns, start=1):
                counts[f"flow.{name}.level{level}"] = count(flow)
        if isinstance(self.transfer, PyramidTransfer):
            counts["transfer"] = count(self.transfer)
        else:
            for level, net in enumerate(self.transfer, start=1):
                counts[f"transfer.level{level}"] = count(net)
        if self.config.refine_channels:
            counts["refine"] = count(self.refine)
        counts["total"] = count(self)
        return counts

    def save_pretrained(self, directory: str | Path, name: str | None = None) -> Path:
        """Write ``model.safetensors``, ``config.json`` (architecture + metadata) and a ``README.md`` model card,
        each atomically: the Hub's layout, so the directory can be uploaded as it is. ``name`` titles the card."""
        from .model_card import model_card

        directory = Path(directory)
        header = {"config": self.config.to_dict(), "metadata": self.metadata}
        card = functools.partial(model_card, self.config, self.metadata, self.parameter_counts()["total"],
                                 name or str(directory))
        return write_model_dir(directory, header, self.state_dict(), card)

    def push_to_hub(
        self, repo_id: str, *, private: bool | None = None, token: str | None = None, branch: str | None = None,
        commit_message: str = "Upload a flowdeblur model", create_pr: bool = False,
    ) -> str:
        """Upload the directory :meth:`save_pretrained` writes (its card as the repository's README) to the Hub
        repository ``repo_id``, created if missing; returns the commit's URL."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder, name=repo_id)
            return api.upload_folder(repo_id=repo_id, folder_path=folder, revision=branch,
                                     commit_message=commit_message, create_pr=create_pr)

    @classmethod
    def from_pretrained(
        cls, model: str | Path, *, device: str | torch.device = "cpu", **options: Any
    ) -> WaveletUNetFlow:
        """Load a shipped model by name, a directory written by :meth:`save_pretrained`, or a Hub id (``owner/name``,
        from the Hub cache or downloaded; ``HF_HUB_OFFLINE=1`` reads the cache alone).

        Raises :class:`~flowdeblur.model_format.CheckpointError`, one short message, for anything unusable.

        ``options`` are factories (``flow_factory``, ``transfer_factory``) or go to ``hf_hub_download``
        (``revision``, ``cache_dir``, ``token``, ``force_download``, ``local_files_only``). ``config.json`` is read
        once; the model it describes is sized and matched against the weights on the meta device before anything is
        allocated.
        """
        factories = {key: options.pop(key) for key in ("flow_factory", "transfer_factory") if key in options}
        directory = locate_model(model, **options)
        header, config = read_header(directory)
        check_fits(directory, config, functools.partial(cls, **factories))
        state = read_weights(directory, device)
        loaded = cls(config, **factories)
        loaded.load_state_dict(state, strict=True)
        loaded.metadata = dict(header.get("metadata") or {})
        loaded.directory = directory
        return loaded.to(device).eval()
