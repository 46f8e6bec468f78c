"""Synthetic blur for sharp-only datasets: the paper's 3x3 Gaussian (sigma 1), other kernels, or a seeded mixture.

The blurred image is what a stored dataset would hold: the sharp image convolved (stride 1, same size, border
padded by ``border``), optionally with sensor noise, and by default rounded to 8 bits. Every kernel is fixed by
(seed, image key), so a blurred image is the same in every run, worker and epoch; training sets add the epoch to
the key, so that each epoch draws fresh kernels and noise (still the same in every run).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import windows

from . import seeding
from .errors import DatasetError

KINDS = ("none", "gaussian", "defocus", "motion")
BORDERS = ("reflect", "replicate", "circular", "constant")
SECTION = "synthetic-blur"
TRAJECTORY_POINTS = 64
TURN_STD = 0.15
DISK_SUPERSAMPLING = 8
Key = int | tuple[int, ...]


def _keys(index: Key) -> tuple[int, ...]:
    return index if isinstance(index, tuple) else (index,)


@dataclass(frozen=True)
class BlurSpec:
    """One blur: kernel kind and size, Gaussian sigma, defocus radius, motion length, border, noise, 8-bit storage.

    ``BlurSpec()`` is the paper's protocol (3x3 Gaussian, sigma 1.0, reflect border, 8-bit). ``kind="none"``
    keeps the image as it is (a 1x1 identity kernel); ``"defocus"`` is a uniform disk of ``radius`` pixels
    (anti-aliased edge); camera shake: ``BlurSpec(kind="motion", kernel_size=15)``, a random smooth trajectory of
    ``motion_length`` pixels (default ``kernel_size - 1``) per image. ``noise_std`` adds Gaussian sensor noise after
    the blur, before 8-bit storage. ``border`` is a ``torch.nn.functional.pad`` mode ("constant" pads 0).
    """

    kind: str = "gaussian"
    kernel_size: int = 3
    sigma: float = 1.0
    motion_length: float | None = None
    radius: float | None = None
    noise_std: float = 0.0
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
        if not 0 <= self.noise_std < 1:
            problems.append(f"noise_std {self.noise_std!r} must lie in [0, 1)")
        if self.motion_length is not None and self.kind != "motion":
            problems.append("motion_length applies to kind='motion' only")
        if self.radius is not None and self.kind != "defocus":
            problems.append("radius applies to kind='defocus' only")
        if self.kind == "motion" and not 0 < self.length <= self.kernel_size - 1:
            problems.append(f"motion_length {self.length!r} must be in (0, kernel_size - 1]")
        if self.kind == "defocus" and not 0 < self.disk_radius <= self.kernel_size / 2:
            problems.append(f"radius {self.disk_radius!r} must be in (0, kernel_size / 2]")
        if problems:
            raise DatasetError("invalid BlurSpec: " + "; ".join(problems), section=SECTION)

    @property
    def length(self) -> float:
        """The motion trajectory's length in pixels (``motion_length``, or the most the kernel can hold)."""
        return float(self.kernel_size - 1 if self.motion_length is None else self.motion_length)

    @property
    def disk_radius(self) -> float:
        """The defocus disk's radius in pixels (``radius``, or the most the kernel can hold)."""
        return float(self.kernel_size / 2 if self.radius is None else self.radius)

    def kernel(self, seed: int, index: Key) -> torch.Tensor:
        """The square float64 kernel for image ``index`` (a key) under ``seed``: non-negative, sums to 1."""
        if self.kind == "none":
            weights = np.ones((1, 1))
        elif self.kind == "gaussian":
            profile = windows.gaussian(self.kernel_size, std=self.sigma)
            weights = np.outer(profile, profile)
        elif self.kind == "defocus":
            weights = _disk_kernel(self.kernel_size, self.disk_radius)
        else:
            weights = _trajectory_kernel(self.kernel_size, self.length, seeding.rng(seed, seeding.BLUR, *_keys(index)))
        return torch.from_numpy(weights / weights.sum())

    def apply(self, image: torch.Tensor, seed: int, index: Key) -> torch.Tensor:
        """Blur a (C, H, W) image with its kernel (a true convolution, same size), add noise, round to 8 bits."""
        blurred = convolve(image, self.kernel(seed, index), self.border)
        if self.noise_std:
            noise = seeding.rng(seed, seeding.NOISE, *_keys(index)).standard_normal(tuple(image.shape))
            blurred = blurred + self.noise_std * torch.from_numpy(noise).to(image.dtype)
        return blurred.clamp(0, 1).mul(255).round().div(255) if self.quantize else blurred

    def describe(self, seed: int) -> dict[str, Any]:
        """The protocol as JSON-ready facts, for a dataset's description and a report."""
        facts = asdict(self)
        facts["seed"] = seed
        facts["quantized_bits"] = 8 if facts.pop("quantize") else None
        for name in ("sigma", "motion_length", "radius") + (() if self.noise_std else ("noise_std",)):
            facts.pop(name)
        if self.kind == "none":
            facts.pop("kernel_size")
        elif self.kind == "gaussian":
            facts["sigma"] = self.sigma
        elif self.kind == "defocus":
            facts["radius"] = self.disk_radius
        else:
            facts["motion_length"] = self.length
            facts["kernel_per_image"] = "random trajectory drawn from (seed, image key)"
        return facts


@dataclass(frozen=True)
class BlurMixture:
    """A family of blurs, one drawn per image from (seed, image key): what a blind model trains and is tested on.

    Each image draws a kind with probability proportional to its weight (``none``, ``gaussian``, ``defocus``,
    ``motion``), then the kind's size uniformly from its range (Gaussian sigma, disk radius, shake length, in
    pixels), and a noise level uniformly from ``noise_std``. ``BlurMixture()`` is the documented default mixture
    (docs/datasets.md#synthetic-blur). Its kernels reach 21 x 21 pixels. A Gaussian's kernel is 2⌈3σ⌉ + 1 pixels
    wide unless ``gaussian_kernel_size`` fixes it: ``BlurMixture(none=0.2, gaussian=0.8, defocus=0, motion=0,
    sigma=(1, 1), gaussian_kernel_size=3, noise_std=(0, 0))`` is the paper's 3x3 protocol with a fifth of the
    images left sharp.
    """

    none: float = 0.15
    gaussian: float = 0.25
    defocus: float = 0.25
    motion: float = 0.35
    sigma: tuple[float, float] = (0.5, 3.0)
    radius: tuple[float, float] = (1.0, 6.0)
    motion_length: tuple[float, float] = (3.0, 20.0)
    noise_std: tuple[float, float] = (0.0, 0.01)
    gaussian_kernel_size: int = 0
    border: str = "reflect"
    quantize: bool = True

    def __post_init__(self) -> None:
        """Refuse weights and ranges that do not describe a mixture, with the reason."""
        for name in ("sigma", "radius", "motion_length", "noise_std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        problems = []
        if min(self.weights) < 0 or sum(self.weights) <= 0:
            problems.append(f"kind weights {self.weights} must be >= 0 and not all 0")
        for name in ("sigma", "radius", "motion_length", "noise_std"):
            low, high = getattr(self, name)
            if not (0 <= low <= high) or (name != "noise_std" and low <= 0):
                problems.append(f"{name} range {(low, high)} must be low <= high, both positive")
        if self.noise_std[1] >= 1:
            problems.append(f"noise_std range {self.noise_std} must lie below 1")
        size = self.gaussian_kernel_size
        if not isinstance(size, int) or size < 0 or (size and size % 2 == 0):
            problems.append(f"gaussian_kernel_size {size!r} must be 0 (from sigma) or a positive odd integer")
        if self.border not in BORDERS:
            problems.append(f"border {self.border!r} is not one of {BORDERS}")
        if problems:
            raise DatasetError("invalid BlurMixture: " + "; ".join(problems), section=SECTION)

    @property
    def weights(self) -> tuple[float, ...]:
        """The kinds' weights, in the order of :data:`KINDS`."""
        return tuple(float(getattr(self, kind)) for kind in KINDS)

    def draw(self, seed: int, index: Key) -> BlurSpec:
        """The blur of image ``index`` (a key) under ``seed``: the same in every run, process and worker."""
        rng = seeding.rng(seed, seeding.MIXTURE, *_keys(index))
        weights = np.asarray(self.weights)
        kind = KINDS[int(rng.choice(len(KINDS), p=weights / weights.sum()))]
        noise = float(rng.uniform(*self.noise_std))
        common = dict(border=self.border, quantize=self.quantize, noise_std=noise)
        if kind == "gaussian":
            sigma = float(rng.uniform(*self.sigma))
            size = self.gaussian_kernel_size or 2 * math.ceil(3 * sigma) + 1
            return BlurSpec(kind, kernel_size=size, sigma=sigma, **common)
        if kind == "defocus":
            radius = float(rng.uniform(*self.radius))
            return BlurSpec(kind, kernel_size=2 * math.ceil(radius) + 1, radius=radius, **common)
        if kind == "motion":
            length = float(rng.uniform(*self.motion_length))
            return BlurSpec(kind, kernel_size=2 * math.ceil(length / 2) + 1, motion_length=length, **common)
        return BlurSpec("none", kernel_size=1, **common)

    def kernel(self, seed: int, index: Key) -> torch.Tensor:
        """The kernel of image ``index`` under ``seed`` (see :meth:`draw`)."""
        return self.draw(seed, index).kernel(seed, index)

    def apply(self, image: torch.Tensor, seed: int, index: Key) -> torch.Tensor:
        """Blur a (C, H, W) image with the blur it draws (see :meth:`draw`)."""
        return self.draw(seed, index).apply(image, seed, index)

    @classmethod
    def from_description(cls, facts: Mapping[str, Any]) -> BlurMixture:
        """The mixture :meth:`describe` recorded (a model's training blur, from its metadata); KeyError, TypeError or
        DatasetError where the facts are not such a record."""
        return cls(
            **{kind: facts["probabilities"][kind] for kind in KINDS},
            sigma=tuple(facts["gaussian_sigma"]),
            radius=tuple(facts["defocus_radius"]),
            motion_length=tuple(facts["motion_length"]),
            noise_std=tuple(facts["noise_std"]),
            gaussian_kernel_size=facts.get("gaussian_kernel_size", 0),
            border=facts["border"],
            quantize=facts["quantized_bits"] is not None,
        )

    def describe(self, seed: int) -> dict[str, Any]:
        """The mixture as JSON-ready facts, for a dataset's description and a report."""
        total = sum(self.weights)
        return {
            "kind": "mixture",
            "probabilities": {kind: round(w / total, 4) for kind, w in zip(KINDS, self.weights, strict=True)},
            "gaussian_sigma": list(self.sigma),
            **({"gaussian_kernel_size": self.gaussian_kernel_size} if self.gaussian_kernel_size else {}),
            "defocus_radius": list(self.radius),
            "motion_length": list(self.motion_length),
            "noise_std": list(self.noise_std),
            "border": self.border,
            "quantized_bits": 8 if self.quantize else None,
            "seed": seed,
            "blur_per_image": "drawn from (seed, image key)",
        }


Blur = BlurSpec | BlurMixture


def convolve(image: torch.Tensor, kernel: torch.Tensor, border: str = "reflect") -> torch.Tensor:
    """A true 2-D convolution of every channel of a (C, H, W) image with ``kernel``, same size, padded by ``border``."""
    size = kernel.shape[-1]
    if size == 1:
        return image * kernel.to(image.dtype).reshape(())
    weight = kernel.to(image.dtype).flip(-2, -1).expand(image.shape[0], 1, size, size)
    radius = size // 2
    padded = F.pad(image.unsqueeze(0), (radius, radius, radius, radius), mode=border)
    return F.conv2d(padded, weight, groups=image.shape[0]).squeeze(0)


def _disk_kernel(size: int, radius: float) -> np.ndarray:
    """A uniform disk of ``radius`` pixels centred in a size x size grid, its edge pixels weighted by coverage."""
    steps = (np.arange(size * DISK_SUPERSAMPLING) + 0.5) / DISK_SUPERSAMPLING - size / 2
    inside = (steps[:, None] ** 2 + steps[None, :] ** 2) <= radius**2
    return inside.reshape(size, DISK_SUPERSAMPLING, size, DISK_SUPERSAMPLING).mean(axis=(1, 3))


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
