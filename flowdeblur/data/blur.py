"""Synthetic blur for sharp-only datasets: the paper's 3x3 Gaussian (sigma 1) by default, or seeded camera shake.

The blurred image is what a stored dataset would hold: the sharp image convolved (stride 1, same size, border
padded by ``border``) and, by default, rounded to 8 bits. Every kernel is fixed by (seed, image index), so a
blurred image is the same in every run, worker and epoch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import windows

from . import seeding
from .errors import DatasetError

KINDS = ("gaussian", "motion")
BORDERS = ("reflect", "replicate", "circular", "constant")
SECTION = "synthetic-blur"
TRAJECTORY_POINTS = 64
TURN_STD = 0.15


@dataclass(frozen=True)
class BlurSpec:
    """How sharp images are blurred: kernel kind and size, Gaussian sigma, motion length, border, 8-bit storage.

    ``BlurSpec()`` is the paper's protocol (3x3 Gaussian, sigma 1.0, reflect border, 8-bit). Camera shake:
    ``BlurSpec(kind="motion", kernel_size=15)``, a random smooth trajectory of ``motion_length`` pixels
    (default ``kernel_size - 1``) per image. ``border`` is a ``torch.nn.functional.pad`` mode ("constant" pads 0).
    """

    kind: str = "gaussian"
    kernel_size: int = 3
    sigma: float = 1.0
    motion_length: float | None = None
    border: str = "reflect"
    quantize: bool = True

    def __post_init__(self) -> None:
        """Refuse settings that do not describe a kernel, with the reason."""
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {KINDS}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            problems.append(f"kernel_size {self.kernel_size!r} is not a positive odd integer")
        if not self.sigma > 0:
            problems.append(f"sigma {self.sigma!r} is not positive")
        if self.border not in BORDERS:
            problems.append(f"border {self.border!r} is not one of {BORDERS}")
        if self.motion_length is not None and self.kind != "motion":
            problems.append("motion_length applies to kind='motion' only")
        if self.kind == "motion" and not 0 < self.length <= self.kernel_size - 1:
            problems.append(f"motion_length {self.length!r} must be in (0, kernel_size - 1]")
        if problems:
            raise DatasetError("invalid BlurSpec: " + "; ".join(problems), section=SECTION)

    @property
    def length(self) -> float:
        """The motion trajectory's length in pixels (``motion_length``, or the most the kernel can hold)."""
        return float(self.kernel_size - 1 if self.motion_length is None else self.motion_length)

    def kernel(self, seed: int, index: int) -> torch.Tensor:
        """The (kernel_size, kernel_size) float64 kernel for image ``index`` under ``seed``: non-negative, sums to 1."""
        if self.kind == "gaussian":
            profile = windows.gaussian(self.kernel_size, std=self.sigma)
            weights = np.outer(profile, profile)
        else:
            weights = _trajectory_kernel(self.kernel_size, self.length, seeding.rng(seed, seeding.BLUR, index))
        return torch.from_numpy(weights / weights.sum())

    def apply(self, image: torch.Tensor, seed: int, index: int) -> torch.Tensor:
        """Blur a (C, H, W) image with its kernel (a true convolution, same size), then round to 8 bits if asked."""
        kernel = self.kernel(seed, index).to(image.dtype).flip(-2, -1)
        channels, radius = image.shape[0], self.kernel_size // 2
        padded = F.pad(image.unsqueeze(0), (radius, radius, radius, radius), mode=self.border)
        weight = kernel.expand(channels, 1, self.kernel_size, self.kernel_size)
        blurred = F.conv2d(padded, weight, groups=channels).squeeze(0)
        return blurred.clamp(0, 1).mul(255).round().div(255) if self.quantize else blurred

    def describe(self, seed: int) -> dict[str, Any]:
        """The protocol as JSON-ready facts, for a dataset's description and a report."""
        facts = asdict(self)
        facts["seed"] = seed
        facts["quantized_bits"] = 8 if facts.pop("quantize") else None
        if self.kind == "gaussian":
            facts.pop("motion_length")
        else:
            facts.pop("sigma")
            facts["motion_length"] = self.length
            facts["kernel_per_image"] = "random trajectory drawn from (seed, image index)"
        return facts


def _trajectory_kernel(size: int, length: float, rng: np.random.Generator) -> np.ndarray:
    """Rasterise a random smooth camera path of ``length`` pixels, centred in a size x size grid (bilinear)."""
    turns = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, TURN_STD, TRAJECTORY_POINTS - 2))])
    heading = rng.uniform(0.0, 2 * math.pi) + turns
    step = length / (TRAJECTORY_POINTS - 1)
    moves = np.stack([np.sin(heading), np.cos(heading)], axis=1) * step
    path = np.concatenate([np.zeros((1, 2)), np.cumsum(moves, axis=0)])
    path += (size - 1) / 2 - (path.max(axis=0) + path.min(axis=0)) / 2
    corner = np.clip(np.floor(path).astype(int), 0, size - 2)
    frac = path - corner
    weights = np.zeros((size, size))
    for dy in (0, 1):
        for dx in (0, 1):
            share = np.abs(1 - dy - frac[:, 0]) * np.abs(1 - dx - frac[:, 1])
            np.add.at(weights, (corner[:, 0] + dy, corner[:, 1] + dx), share)
    return weights
