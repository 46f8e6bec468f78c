"""Validation during training: PSNR/SSIM/MSE per image (on Y, 8-bit), gathered from every process, then averaged.

The blurry input's own scores are computed beside the model's, so a log line shows the gain, not just a number.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ..metrics import image_scores
from ..model import WaveletUNetFlow


@torch.no_grad()
def validate(accelerator: Accelerator, model: WaveletUNetFlow, loader: DataLoader) -> dict[str, float]:
    """Mean ``psnr``, ``ssim``, ``mse`` of the deblurred images and ``blurry_*`` of the inputs, over all processes.

    ``loader`` must be prepared by ``accelerator`` (so that ``gather_for_metrics`` drops the padding that evens
    out the last batch across processes). Also returns the number of ``images`` scored.
    """
    was_training = model.training
    model.eval()
    columns: dict[str, list[torch.Tensor]] = {}
    for batch in loader:
        with accelerator.autocast():
            restored = model.restore(batch["blurry"]).clamp(0.0, 1.0)
        scores = image_scores(restored.float(), batch["sharp"])
        blurry = image_scores(batch["blurry"], batch["sharp"])
        scores.update({f"blurry_{name}": value for name, value in blurry.items()})
        for name, value in accelerator.gather_for_metrics(scores).items():
            columns.setdefault(name, []).append(value.cpu())
    model.train(was_training)
    per_image = {name: torch.cat(values) for name, values in columns.items()}
    means = {name: float(values.mean()) for name, values in per_image.items()}
    means["images"] = len(next(iter(per_image.values()))) if per_image else 0
    return means


def format_scores(scores: dict[str, float]) -> str:
    """``PSNR 25.10 dB (blurry 23.40), SSIM 0.8100 (0.7500), MSE 0.00310 (0.00460) on 64 images``."""
    return (
        f"PSNR {scores['psnr']:.2f} dB (blurry {scores['blurry_psnr']:.2f}), "
        f"SSIM {scores['ssim']:.4f} ({scores['blurry_ssim']:.4f}), "
        f"MSE {scores['mse']:.5f} ({scores['blurry_mse']:.5f}) on {scores['images']} images"
    )
