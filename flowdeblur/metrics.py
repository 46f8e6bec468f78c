"""PSNR, SSIM and MSE per image, the deblurring community's way (BasicSR/MATLAB): on Y or RGB, after rounding to
8 bits; checked against scikit-image in ``tests/test_metrics.py``.

Shared by validation during training, ``flowdeblur eval`` and the benchmarks, so every number the project
prints is computed one way. Scores are per image; average them afterwards ("per image then averaged").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .color import rgb_to_y

METRICS = ("psnr", "ssim", "mse")
SCORE_SPACES = ("y", "rgb")
# What an identical pair's PSNR (infinite) counts as where PSNRs are averaged or compared (tuning, benchmarks). An
# 8-bit image of N pixels that differs at all scores at most 48.1 + 10 log10(N) dB (90.3 dB at 128 x 128), so the
# cap changes nothing but exact copies for images of up to about 390 x 390 pixels.
PSNR_CAP = 100.0
SSIM_SIGMA = 1.5  # the Gaussian window's (11 pixels: torchmetrics takes 2 int(3.5 sigma + 0.5) + 1)
SSIM_MARGIN = 5  # half the 11-pixel Gaussian window: MATLAB's and BasicSR's SSIM average only where it fits whole


def quantize_8bit(image: Tensor) -> Tensor:
    """Round [0, 1] values to the 256 levels an 8-bit file stores, as images are scored after saving."""
    return torch.round(image.clamp(0.0, 1.0) * 255.0) / 255.0


def _in_space(image: Tensor, space: str) -> Tensor:
    if space == "y":
        return image if image.shape[1] == 1 else rgb_to_y(image)
    if image.shape[1] != 3:
        raise ValueError(f"RGB scores need 3-channel images, got {image.shape[1]} channels")
    return image


def ssim_valid(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image SSIM (Gaussian window 11, sigma 1.5, data range 1) averaged over the pixels where the window fits
    inside the image, as MATLAB's ``ssim_index`` and BasicSR do; torchmetrics averages its reflect-padded border
    too. Images no larger than the window on a side are averaged whole; below 6 pixels on a side, where the
    window's padding cannot be reflected, the Gaussian narrows (sigma (n - 1) / 3.5 for a side of n, at least 0.1)
    so that its window, 2 n - 1 pixels, can."""
    side = min(pred.shape[-2:])
    sigma = SSIM_SIGMA if side > SSIM_MARGIN else max((side - 1) / 3.5, 0.1)
    _, full = structural_similarity_index_measure(pred, target, data_range=1.0, sigma=sigma, return_full_image=True)
    margin = SSIM_MARGIN if min(full.shape[-2:]) > 2 * SSIM_MARGIN else 0
    height, width = full.shape[-2:]
    return full[..., margin : height - margin, margin : width - margin].flatten(1).mean(1)


def image_scores(restored: Tensor, sharp: Tensor, space: str = "y", quantize: bool = True) -> dict[str, Tensor]:
    """Per-image PSNR (dB), SSIM and MSE of ``restored`` against ``sharp``, batches (N, C, H, W) in [0, 1].

    ``space="y"`` scores the BT.601 Y channel (1-channel inputs are taken as Y already), ``"rgb"`` all three
    channels. With ``quantize`` (the BasicSR/MATLAB protocol) both images are rounded to 8 bits as they are given
    (RGB, or Y for 1-channel inputs), and Y is then computed from the rounded RGB in floating point, not rounded
    again. PSNR and MSE are computed in float64 so that near-perfect restorations do not lose digits; SSIM's
    Gaussian filtering in float32 (over 20x faster on CPU, and within about 1e-5 of float64).
    """
    if space not in SCORE_SPACES:
        raise ValueError(f"space must be one of {SCORE_SPACES}, got {space!r}")
    if restored.shape != sharp.shape:
        raise ValueError(f"restored {tuple(restored.shape)} and sharp {tuple(sharp.shape)} differ in shape")
    pred, target = (t.detach().double() for t in (restored, sharp))
    if quantize:
        pred, target = quantize_8bit(pred), quantize_8bit(target)
    pred, target = _in_space(pred, space), _in_space(target, space)
    mse = (pred - target).square().flatten(1).mean(1)
    psnr = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = ssim_valid(pred.float(), target.float())
    return {"psnr": psnr.reshape(-1), "ssim": ssim.double(), "mse": mse}


def mean_scores(per_image: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Average a sequence of per-image score dicts key by key (images weigh equally, whatever their size)."""
    rows = list(per_image)
    if not rows:
        raise ValueError("no scores to average")
    return {key: sum(float(row[key]) for row in rows) / len(rows) for key in rows[0]}
