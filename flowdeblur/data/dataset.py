"""The dataset every loader returns: items of blurry/sharp float tensors in [0, 1], with a JSON description.

Loaders only find files and choose the split; this class does what is common to all of them: crop (random for
training, centred otherwise), flips (training only), the Y / RGB conversion, and seeding by (seed, epoch, index).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch.utils.data import Dataset

from . import seeding
from .errors import DatasetError, SkippedItemError, option
from .io import to_unit
from .transforms import crop, crop_origin, random_flips, to_color


class Source(Protocol):
    """What a loader hands over: a sized collection of (blurry, sharp) images with names."""

    def __len__(self) -> int: ...

    def name(self, index: int) -> str: ...

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(blurry, sharp) (C, H, W): float in [0, 1], or uint8/uint16 samples that the dataset converts after
        cropping."""


@dataclass
class Loaded:
    """A loader's result: the split's source, dataset-specific description entries, the blur protocol facts."""

    source: Source
    info: dict[str, Any] = field(default_factory=dict)
    blur: dict[str, Any] = field(default_factory=dict)
    full_test_frames: bool = False


class DeblurDataset(Dataset):
    """Items ``{"blurry": (C, H, W), "sharp": (C, H, W), "name": str}`` ("sharp" absent for unpaired real blur).

    ``augment`` (training only) draws a random crop and random flips from (seed, epoch, index); call
    :meth:`set_epoch` at the start of each epoch for fresh crops. Without it, crops are centred.
    """

    def __init__(
        self,
        source: Source,
        *,
        color: str,
        crop_size: int | None,
        augment: bool,
        seed: int,
        description: dict[str, Any],
    ) -> None:
        self.source, self.color, self.crop_size, self.augment, self.seed = source, color, crop_size, augment, seed
        self.epoch = 0
        self._description = description

    @property
    def description(self) -> dict[str, Any]:
        """The dataset, split, sizes, blur protocol, colour and crop, as JSON-serialisable facts; ``skipped`` counts
        the bad files found so far, at start-up and when read."""
        description = copy.deepcopy(self._description)
        found_bad = getattr(self.source, "found_bad", dict)()
        if found_bad:
            skipped = description.setdefault("skipped", {})
            for kind, count in found_bad.items():
                skipped[kind] = skipped.get(kind, 0) + count
        return description

    @property
    def names(self) -> list[str]:
        """Every item's name, in order, without reading any image (for reports and checks)."""
        return [self.source.name(index) for index in range(len(self.source))]

    def kernel(self, index: int) -> torch.Tensor | None:
        """The true blur kernel of item ``index`` for synthetically blurred sets; None where the blur is real."""
        kernel = getattr(self.source, "kernel", None)
        return None if kernel is None else kernel(index % len(self))

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random crops and flips (and synthetic blur) the next items use.

        As DistributedSampler.set_epoch; a source with synthetic blur draws fresh kernels per epoch when augmenting.
        """
        self.epoch = epoch
        if self.augment and hasattr(self.source, "set_epoch"):
            self.source.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        for offset in range(len(self)):
            try:
                return self._item((index + offset) % len(self))
            except SkippedItemError:  # a file found unreadable under skip_bad (warned and counted): serve the next item
                continue
        raise DatasetError("found no usable images", expected="at least one readable pair")

    def _item(self, index: int) -> dict[str, Any]:
        """Item ``index``: cropped while its pixels are still integers (a memory-mapped frame is read only there),
        then converted to float, flipped and put in the model's colour."""
        blurry, sharp = self.source.load(index)
        name = self.source.name(index)
        images = [blurry] if sharp is None else [blurry, sharp]
        rng = seeding.rng(self.seed, seeding.AUGMENT, self.epoch, index) if self.augment else None
        if self.crop_size is not None:
            height, width = blurry.shape[-2:]
            if height < self.crop_size or width < self.crop_size:
                raise DatasetError(
                    f"image {name!r} is {width}x{height}, smaller than {option('crop_size', str(self.crop_size))}",
                    expected=f"images at least {self.crop_size} on each side (or a smaller {option('crop_size')})",
                )
            top, left = crop_origin(height, width, self.crop_size, rng)
            images = [crop(image, top, left, self.crop_size) for image in images]
        images = [to_unit(image) for image in images]
        if rng is not None:
            images = random_flips(images, rng)
        item: dict[str, Any] = {"blurry": to_color(images[0], self.color), "name": name}
        if sharp is not None:
            item["sharp"] = to_color(images[1], self.color)
        return item
