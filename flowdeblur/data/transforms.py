"""Pixel operations shared by every dataset: crops, flips, square resize, and the Y / RGB output conversion.

Crops and flips act on a blurry/sharp pair together, so the pair stays aligned. The colour conversion is
``flowdeblur.color``'s, the same one the model and the metrics use.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..color import to_luma
from .errors import DatasetError, option

COLORS = ("y", "rgb")


def crop_origin(height: int, width: int, size: int, rng: np.random.Generator | None) -> tuple[int, int]:
    """Top-left corner of a size x size crop: uniformly random with ``rng``, centred without."""
    if rng is None:
        return (height - size) // 2, (width - size) // 2
    return int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))


def crop(image: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """The size x size window of a (C, H, W) image at (top, left)."""
    return image[:, top : top + size, left : left + size]


def random_flips(images: list[torch.Tensor], rng: np.random.Generator) -> list[torch.Tensor]:
    """Flip every image of a pair the same way: left-right and up-down, each with probability 1/2."""
    dims = [dim for dim, flip in zip((-1, -2), rng.random(2) < 0.5, strict=True) if flip]
    return [image.flip(dims) for image in images] if dims else images


def square_resize(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """Centre-crop a (C, H, W) image to a square of its shorter side, then resize it to size x size (antialiased)."""
    side = min(image.shape[-2:])
    top, left = crop_origin(image.shape[-2], image.shape[-1], side, None)
    square = crop(image, top, left, side)
    if size is None or size == side:
        return square
    resized = F.interpolate(square.unsqueeze(0), size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return resized.squeeze(0).clamp(0, 1)


def check_size(name: str, value: int | None, *, section: str) -> None:
    """Refuse a size option that is neither None nor a positive integer."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise DatasetError(f"{option(name)} must be a positive integer or None, got {value!r}", section=section)


def to_color(image: torch.Tensor, color: str) -> torch.Tensor:
    """A 1- or 3-channel image as the model's input: BT.601 Y ("y", 1 channel) or RGB ("rgb", gray repeated)."""
    if color == "y":
        return to_luma(image).contiguous()
    return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image.contiguous()
