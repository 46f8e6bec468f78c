"""The built-in dataset: crops of natural images that ship inside scikit-image, blurred synthetically. No downloads.

Each source image is cut into a grid of ``patch_size`` cells; near-flat cells are dropped; a seeded tenth of each
image's cells (rounded) goes to test and another to val, the rest to train. Val and test items are their cells;
training items are every window at half-cell stride that lies wholly in training cells. So no test pixel is ever
in a training crop, and since each crop is blurred on its own, no test pixel influences a training input either.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from skimage import data

from .blur import Blur
from .dataset import Loaded
from .errors import DatasetError
from .io import array_to_tensor
from .sources import SharpImages
from .splits import SPLITS, assign_splits, split_sizes

SECTION = "built-in"
FLAT_STD = 0.02
# Photographs and natural textures bundled with scikit-image (no pooch download). Left out: clock (already
# motion-blurred), cat (the same photo as chelsea), the right stereo view (nearly the left one), retina (mostly
# smooth; it would dominate), and synthetic or binary images.
# Each name is a function of skimage.data, except "motorcycle": the left view of stereo_motorcycle.
SOURCES = ("astronaut", "camera", "chelsea", "coffee", "coins", "rocket", "motorcycle", "brick", "grass", "gravel",
           "moon", "hubble_deep_field", "immunohistochemistry", "page", "text")


def _read_source(name: str) -> np.ndarray:
    return data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()


@functools.cache
def source_images() -> tuple[np.ndarray, ...]:
    """The decoded source images (uint8, (H, W) or (H, W, 3)), decoded once per process."""
    return tuple(_read_source(name) for name in SOURCES)


def _held_out(n: int) -> dict[str, int]:
    """Per image: a tenth of its cells (rounded half up) each for test and val, the rest for training."""
    held = (n + 5) // 10
    return {"test": held, "val": held, "train": n - 2 * held}


def _cell_labels(image: np.ndarray, size: int, seed: int, salt: int) -> np.ndarray:
    """A (rows, cols) grid of split names per cell ("" for a near-flat cell, used by no split)."""
    gray = (image.mean(axis=-1) if image.ndim == 3 else image) / 255.0
    rows, cols = gray.shape[0] // size, gray.shape[1] // size
    blocks = gray[: rows * size, : cols * size].reshape(rows, size, cols, size)
    usable = np.flatnonzero(blocks.std(axis=(1, 3)) >= FLAT_STD)
    labels = np.full(rows * cols, "", dtype=object)
    for split, members in assign_splits(usable.tolist(), seed, _held_out, salt=salt).items():
        labels[usable[members]] = split
    return labels.reshape(rows, cols)


def _boxes(size: int, seed: int) -> dict[str, list[tuple[int, int, int]]]:
    """(image number, top, left) of every crop per split, in a fixed order."""
    boxes: dict[str, list[tuple[int, int, int]]] = {split: [] for split in SPLITS}
    half = size // 2
    for number, image in enumerate(source_images()):
        labels = _cell_labels(image, size, seed, number)
        for split in ("val", "test"):
            boxes[split] += [(number, row * size, col * size) for row, col in np.argwhere(labels == split)]
        train = np.repeat(np.repeat(labels == "train", 2, axis=0), 2, axis=1)
        if train.shape[0] >= 2 and train.shape[1] >= 2:
            windows = sliding_window_view(train, (2, 2)).all(axis=(-2, -1))
            boxes["train"] += [(number, row * half, col * half) for row, col in np.argwhere(windows)]
    return boxes


class Crops:
    """A reader of (image number, top, left) crops of the source images."""

    def __init__(self, boxes: list[tuple[int, int, int]], size: int) -> None:
        self.boxes, self.size = boxes, size

    def __call__(self, index: int) -> torch.Tensor:
        number, top, left = self.boxes[index]
        return array_to_tensor(source_images()[number][top : top + self.size, left : left + self.size])


def load(root: None, split: str, seed: int, *, blur: Blur, patch_size: int = 128) -> Loaded:
    """Crops of ``patch_size`` from scikit-image's bundled photographs, blurred by ``blur``."""
    if not isinstance(patch_size, int) or patch_size < 16 or patch_size % 2:
        raise DatasetError(f"patch_size must be an even integer >= 16, got {patch_size!r}", section=SECTION)
    boxes = _boxes(patch_size, seed)
    if not boxes[split]:
        raise DatasetError(
            f"patch_size {patch_size} leaves no {split} crops", expected="a smaller patch_size", section=SECTION
        )
    first = sum(len(boxes[name]) for name in SPLITS[: SPLITS.index(split)])
    names = [f"{SOURCES[number]}_y{top}_x{left}" for number, top, left in boxes[split]]
    keys = list(range(first, first + len(names)))
    return Loaded(
        SharpImages(names, keys, Crops(boxes[split], patch_size), blur, seed),
        info={
            "source_images": list(SOURCES),
            "patch_size": patch_size,
            "split_sizes": split_sizes(boxes),
            "split_rule": "disjoint grid cells per image: a seeded tenth each for test and val; "
            "training windows at half-cell stride inside training cells",
        },
    )
