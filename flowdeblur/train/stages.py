"""The paper's three training stages (Appendix A): what each one trains and the loss it minimises.

One :class:`StageObjective` wraps the model for all three, so that a single distributed wrapper sees every
forward pass (gradients only synchronise through the wrapped module's ``forward``). What a stage does not train
runs under ``torch.no_grad()`` and so receives no gradient; the networks may run under autocast, but every loss
is computed in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..losses import latent_mse, mlr_loss, ssim_loss
from ..model import WaveletUNetFlow


@dataclass(frozen=True)
class Stage:
    """One stage: a short name (for logs and metadata), what it does, and the parts of the model it trains."""

    name: str
    description: str
    trains: tuple[str, ...]

    def parameters(self, model: WaveletUNetFlow) -> list[nn.Parameter]:
        """The parameters of the submodules this stage trains (its optimiser's parameter group)."""
        return [p for part in self.trains for p in model.get_submodule(part).parameters()]


STAGES: tuple[Stage, ...] = (
    Stage("mlr", "L_MLR (Eq. 13) on the INNs (one codec for both branches unless --codec separate)",
          ("flows.blur", "flows.sharp")),
    Stage("transfer", "L_MSE (Eq. 11) on the transfer nets, INNs frozen", ("transfer",)),
    Stage("ssim", "L_SSIM (Eq. 12) on the sharp INNs and transfer nets, through the synthesis",
          ("flows.sharp", "transfer")),
)


def _float32(device: torch.device) -> torch.autocast:
    """A region where autocast is off, so losses are reduced in float32 whatever the networks ran in."""
    return torch.autocast(device_type=device.type, enabled=False)


class StageObjective(nn.Module):
    """``forward(blurry, sharp)`` -> the current stage's losses: ``{"loss": total, <part>: value, ...}``.

    Set :attr:`stage` (0, 1, 2 for the paper's stages 1-3) to switch. Losses in bits per dimension keep a
    ``bpd_`` prefix. Inputs are batches in [0, 1] in any colour the model accepts.
    """

    def __init__(self, model: WaveletUNetFlow, l1_weight: float, shared_codec: bool):
        super().__init__()
        self.model = model
        self.l1_weight = l1_weight
        self.sharp_branch = "blur" if shared_codec else "sharp"
        self.stage = 0

    def forward(self, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        losses = (self._mlr, self._transfer, self._ssim)[self.stage]
        return losses(blurry, sharp)

    def _mlr(self, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        """Stage 1: L_MLR (Eq. 13) = bits/dim of both branches + λ (|z̃|₁ + |z|₁); one INN for both if shared."""
        blur, target = self.model.encode(blurry, "blur"), self.model.encode(sharp, self.sharp_branch)
        with _float32(blurry.device):
            return mlr_loss(blur.latents, blur.log_dets, target.latents, target.log_dets, self.l1_weight)

    def _transfer(self, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        """Stage 2: L_MSE (Eq. 11) between transferred blurry latents and the (frozen) sharp branch's latents."""
        with torch.no_grad():
            blur, target = self.model.encode(blurry, "blur"), self.model.encode(sharp, "sharp")
        predicted = self.model.transfer_latents(blur)
        with _float32(blurry.device):
            return {"loss": latent_mse(predicted, target.latents)}

    def _ssim(self, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        """Stage 3: L_SSIM (Eq. 12) of the full synthesis (Eq. 8, 9) against the sharp image, level 0."""
        with torch.no_grad():
            blur = self.model.encode(blurry, "blur")
        restored = self.model.decode(self.model.transfer_latents(blur), blur.coarsest, blur.size, "sharp")
        with _float32(blurry.device):
            return {"loss": ssim_loss(restored, self.model.to_working(sharp))}
