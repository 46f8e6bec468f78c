"""The four training stages: the paper's three (Appendix A) and an end-to-end one; what each trains and minimises.

One :class:`StageObjective` wraps the model for all four, so that a single distributed wrapper sees every
forward pass (gradients only synchronise through the wrapped module's ``forward``). What a stage does not train
runs under ``torch.no_grad()`` and so receives no gradient; the networks may run under autocast, but every loss
is computed in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from ..model import BRANCHES, WaveletUNetFlow
from .losses import gaussian_nll_bits_per_dim, latent_mse, mlr_loss, pixel_loss, ssim_loss

# How the sharp branch starts: as a copy of the INNs stage 1 trains on both kinds of images, or on its own.
SharpInit = Literal["shared", "separate"]
# The parts a stage can train, which together hold every parameter of the model.
PARTS = ("blur", "sharp", "transfer", "refine")


@dataclass(frozen=True)
class Stage:
    """One stage, declared once: its number and short name (for logs, flags and metadata), what it does, the parts of
    the model it trains, the :class:`StageObjective` method that computes its losses, and its default peak learning
    rate.

    A part is a branch's codec ("blur", "sharp") or a submodule's name ("transfer", "refine": the full-resolution
    stage, which has no parameters where the model has none).
    """

    number: int
    name: str
    description: str
    trains: tuple[str, ...]
    loss: Callable[[StageObjective, Tensor, Tensor], dict[str, Tensor]]
    learning_rate: float

    @property
    def steps_flag(self) -> str:
        """The recipes' flag (as a Python name) for this stage's optimiser steps: ``stage1_steps``."""
        return f"stage{self.number}_steps"

    @property
    def lr_flag(self) -> str:
        """The recipes' flag (as a Python name) for this stage's peak learning rate: ``stage1_lr``."""
        return f"stage{self.number}_lr"

    @property
    def trains_every_part(self) -> bool:
        """Whether every parameter of the model gets a gradient in this stage; otherwise the distributed wrapper
        must search each step's graph for the parameters left out (``find_unused_parameters``)."""
        return set(self.trains) >= set(PARTS)

    def parameters(self, model: WaveletUNetFlow) -> list[nn.Parameter]:
        """The parameters of the parts this stage trains (its optimiser's parameter group), each once."""
        parts = [model.codec(part) if part in BRANCHES else model.get_submodule(part) for part in self.trains]
        unique = {id(p): p for part in parts for p in part.parameters()}
        return list(unique.values())


@dataclass(frozen=True)
class ImageLoss:
    """The loss on the output image: ``pixel_weight × pixel + ssim_weight × L_SSIM (Eq. 12)``.

    Stage 3 defaults to the paper's (SSIM alone); the joint stage to the pixel loss alone. ``nll_weight`` adds
    L_ML (Eq. 10) of both branches, so that the latents stay a density model while the image is trained.
    """

    pixel: str = "l1"
    pixel_weight: float = 0.0
    ssim_weight: float = 1.0
    nll_weight: float = 0.0

    def __call__(self, restored: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        parts = {}
        if self.pixel_weight:
            parts[self.pixel] = pixel_loss(restored, sharp, self.pixel)
        if self.ssim_weight:
            parts["ssim"] = ssim_loss(restored, sharp)
        weights = {self.pixel: self.pixel_weight, "ssim": self.ssim_weight}
        return {"loss": sum(weights[name] * value for name, value in parts.items()), **parts}


@dataclass(frozen=True)
class Objectives:
    """What the stages minimise beyond their fixed losses: λ of Eq. 13, whose INNs learn the sharp images in stage 1
    (``sharp_init`` "shared": the blur branch's), the image losses."""

    l1_weight: float = 0.01
    sharp_init: SharpInit = "shared"
    stage3: ImageLoss = field(default_factory=ImageLoss)
    joint: ImageLoss = field(default_factory=lambda: ImageLoss(pixel_weight=1.0, ssim_weight=0.0))


def _float32(device: torch.device) -> torch.autocast:
    """A region where autocast is off, so losses are reduced in float32 whatever the networks ran in."""
    return torch.autocast(device_type=device.type, enabled=False)


class StageObjective(nn.Module):
    """``forward(blurry, sharp)`` -> the current stage's losses: ``{"loss": total, <part>: value, ...}``.

    Set :attr:`stage` (one of :data:`STAGES`) to switch. Losses in bits per
    dimension keep a ``bpd_`` prefix. Inputs are batches in [0, 1] on the model's channels (what the datasets give).
    """

    def __init__(self, model: WaveletUNetFlow, objectives: Objectives):
        super().__init__()
        self.model = model
        self.objectives = objectives
        self.sharp_branch = "blur" if objectives.sharp_init == "shared" else "sharp"
        self.stage = STAGES[0]

    def forward(self, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        return self.stage.loss(self, blurry, sharp)

    def _mlr(self, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        """Stage 1: L_MLR (Eq. 13) = bits/dim of both branches + λ (|z̃|₁ + |z|₁); one INN for both if shared."""
        blur, target = self.model.encode(blurry, "blur"), self.model.encode(sharp, self.sharp_branch)
        with _float32(blurry.device):
            return mlr_loss(blur.latents, blur.log_dets, target.latents, target.log_dets, self.objectives.l1_weight)

    def _transfer(self, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        """Stage 2: L_MSE (Eq. 11) between transferred blurry latents and the (frozen) sharp branch's latents.

        With ``transfer_context="restored"`` the transfer nets see the sharp low-passes, what a perfect coarser
        level would have restored. Where the pyramid transfer net restores the coarsest low-pass too
        (``restore_lowpass``), that low-pass is one more term of the mean, against the sharp one.
        """
        with torch.no_grad():
            blur, target = self.model.encode(blurry, "blur"), self.model.encode(sharp, "sharp")
        restored_context = self.model.config.transfer_context == "restored"
        predicted, coarsest = self.model.transfer_pyramid(blur, target.lowpasses if restored_context else None)
        targets = list(target.latents)
        if self.model.config.restore_lowpass:
            predicted, targets = [*predicted, coarsest], [*targets, target.coarsest]
        with _float32(blurry.device):
            return {"loss": latent_mse(predicted, targets)}

    def _ssim(self, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        """Stage 3: L_SSIM (Eq. 12) of the full synthesis (Eq. 8, 9) against the sharp image, level 0."""
        with torch.no_grad():
            blur = self.model.encode(blurry, "blur")
        restored = self.model.synthesize(blur)
        with _float32(blurry.device):
            return self.objectives.stage3(restored, sharp)

    def _joint(self, blurry: Tensor, sharp: Tensor) -> dict[str, Tensor]:
        """Stage 4: the image loss of the whole U (both INNs and the transfer nets), plus weighted L_ML (Eq. 10)."""
        loss = self.objectives.joint
        blur = self.model.encode(blurry, "blur")
        restored = self.model.synthesize(blur)
        with _float32(blurry.device):
            losses = loss(restored, sharp)
        if loss.nll_weight:
            target = self.model.encode(sharp, "sharp")
            with _float32(blurry.device):
                likelihood = {"bpd_blur": gaussian_nll_bits_per_dim(blur.latents, blur.log_dets),
                              "bpd_sharp": gaussian_nll_bits_per_dim(target.latents, target.log_dets)}
                losses["loss"] = losses["loss"] + loss.nll_weight * (likelihood["bpd_blur"] + likelihood["bpd_sharp"])
            losses.update(likelihood)
        return losses


STAGES: tuple[Stage, ...] = (
    Stage(1, "mlr", "L_MLR (Eq. 13) on the INNs (one INN per level for both branches unless --sharp-init separate)",
          ("blur", "sharp"), StageObjective._mlr, learning_rate=1e-3),
    Stage(2, "transfer", "L_MSE (Eq. 11) on the transfer nets, INNs frozen", ("transfer",), StageObjective._transfer,
          learning_rate=1e-3),
    Stage(3, "ssim", "L_SSIM (Eq. 12) on the sharp INNs and transfer nets, through the synthesis",
          ("sharp", "transfer", "refine"), StageObjective._ssim, learning_rate=1e-4),
    Stage(4, "joint", "pixel loss (+ weighted SSIM and likelihood) of the output image, end to end on every part",
          PARTS, StageObjective._joint, learning_rate=1e-3),
)
