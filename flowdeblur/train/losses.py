"""The paper's training objectives (§3.2-3.3), each usable on its own.

All reductions happen in float32 (or wider) whatever precision the networks ran in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from ..flows.wavelet_flow import gaussian_bits_per_dim


def _wide(t: Tensor) -> Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def gaussian_nll_bits_per_dim(latents: Sequence[Tensor], log_dets: Sequence[Tensor]) -> Tensor:
    """L_ML (Eq. 10) in bits per dimension: ``(½‖z‖² + ½D log 2π − log|det J|) / (D ln 2)``, batch mean.

    Sums over levels (a branch's latents and the log-dets of its INNs); D is the total number of latent
    dimensions, so values are comparable across image sizes. Continuous densities can give negative bits.
    The same quantity as :meth:`flowdeblur.flows.Encoding.bits_per_dim`, averaged over the batch.
    """
    return gaussian_bits_per_dim(latents, log_dets).mean()


def latent_l1(latents: Sequence[Tensor]) -> Tensor:
    """Mean absolute latent value over all levels and elements: the sparsity term of Eq. 13, per element."""
    total = sum(_wide(z).abs().sum() for z in latents)
    return total / sum(z.numel() for z in latents)


def mlr_loss(
    blur_latents: Sequence[Tensor],
    blur_log_dets: Sequence[Tensor],
    sharp_latents: Sequence[Tensor],
    sharp_log_dets: Sequence[Tensor],
    l1_weight: float,
) -> dict[str, Tensor]:
    """L_MLR (Eq. 13) = L_ML of both branches + λ (|z̃|₁ + |z|₁), λ = ``l1_weight`` in [0, 1).

    Returns the total under ``"loss"`` and its parts (bits/dim per branch, the L1 terms) for logging.
    """
    if not 0.0 <= l1_weight < 1.0:
        raise ValueError(f"the L1 weight λ must lie in [0, 1), got {l1_weight}")
    nll_blur = gaussian_nll_bits_per_dim(blur_latents, blur_log_dets)
    nll_sharp = gaussian_nll_bits_per_dim(sharp_latents, sharp_log_dets)
    l1_blur, l1_sharp = latent_l1(blur_latents), latent_l1(sharp_latents)
    loss = nll_blur + nll_sharp + l1_weight * (l1_blur + l1_sharp)
    return {"loss": loss, "bpd_blur": nll_blur, "bpd_sharp": nll_sharp, "l1_blur": l1_blur, "l1_sharp": l1_sharp}


def latent_mse(predicted: Sequence[Tensor], target: Sequence[Tensor]) -> Tensor:
    """L_MSE (Eq. 11) = 1/(2L) Σ_l mean‖ẑ^(l) − z^(l)‖²; the sharp latents z are detached (they are targets)."""
    if len(predicted) != len(target) or not predicted:
        raise ValueError("need as many predicted latents as target latents, and at least one level")
    per_level = [(_wide(p) - _wide(t).detach()).square().mean() for p, t in zip(predicted, target, strict=True)]
    return sum(per_level) / (2 * len(per_level))


def ssim_loss(restored: Tensor, sharp: Tensor, sharpness: float = 4.0) -> Tensor:
    """Sigmoid-smoothed structural dissimilarity on level 0 (the paper's h_σ(Q_SSIM), Eq. 12).

    ``2 σ(k (1 − SSIM)) − 1`` with k = ``sharpness``: 0 for identical images, monotone in 1 − SSIM, and
    saturating for very dissimilar ones so a few bad images cannot dominate a batch. SSIM is torchmetrics'
    Gaussian-window SSIM on [0, 1] data, computed per image and averaged.
    """
    with torch.autocast(device_type=restored.device.type, enabled=False):
        ssim = structural_similarity_index_measure(_wide(restored), _wide(sharp), data_range=1.0, reduction="none")
        return (2.0 * torch.sigmoid(sharpness * (1.0 - ssim)) - 1.0).mean()


PixelLoss = Literal["l1", "charbonnier"]
PIXEL_LOSSES: tuple[str, ...] = get_args(PixelLoss)


def pixel_loss(restored: Tensor, sharp: Tensor, kind: str = "l1", epsilon: float = 1e-3) -> Tensor:
    """Mean per-pixel distance of the output image to the sharp one: ``|x̂ − x|`` (L1) or ``√((x̂ − x)² + ε²)``.

    Charbonnier is a smooth L1 (differentiable at 0, ``epsilon`` sets where it turns quadratic); both are the image
    losses of the end-to-end stage, computed in float32 whatever the networks ran in.
    """
    if kind not in PIXEL_LOSSES:
        raise ValueError(f"pixel loss must be one of {PIXEL_LOSSES}, got {kind!r}")
    difference = _wide(restored) - _wide(sharp)
    if kind == "l1":
        return difference.abs().mean()
    return (difference.square() + epsilon**2).sqrt().mean()
