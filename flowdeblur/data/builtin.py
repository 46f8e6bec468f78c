"""The built-in dataset: crops of natural images that ship inside scikit-image, blurred synthetically. No downloads.

Each source image is cut into a grid of ``patch_size`` cells; near-flat cells are dropped; a seeded tenth of each
image's cells (rounded) goes to test and another to val, the rest to train. Val and test items are their cells;
training items are every window at half-cell stride that lies wholly in training cells. So no test pixel is ever
in a training crop, and since each crop is blurred on its own, no test pixel influences a training input either.

A folder of the user's own photographs (``photos``) adds their cells, split by the same rule; the built-in images'
items, and the blur each one draws, stay as they are without it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from skimage import data

from .blur import Blur
from .dataset import Loaded
from .errors import DatasetError, listing, require_dir
from .io import IMAGE_SUFFIXES, array_to_tensor, read_array
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


def photo_files(folder: str) -> list[Path]:
    """The image files directly inside ``folder``, by name; a DatasetError where it is not a folder or holds none."""
    expected = f"a folder of photographs ({', '.join(sorted(IMAGE_SUFFIXES))})"
    root = require_dir(folder, expected=expected, section=SECTION)
    files = sorted(path for path in root.iterdir()
                   if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.name.startswith("."))
    if not files:
        raise DatasetError(f"found no photographs; it holds {listing(root)}", path=root, expected=expected,
                           section=SECTION)
    return files


@functools.cache
def photo_images(folder: str) -> tuple[np.ndarray, ...]:
    """The decoded photographs of ``folder`` (uint8 or uint16, (H, W) or (H, W, 3)), decoded once per process."""
    return tuple(read_array(path) for path in photo_files(folder))


def _held_out(n: int) -> dict[str, int]:
    """Per image: a tenth of its cells (rounded half up) each for test and val, the rest for training."""
    held = (n + 5) // 10
    return {"test": held, "val": held, "train": n - 2 * held}


def _cell_labels(image: np.ndarray, size: int, seed: int, salt: int) -> np.ndarray:
    """A (rows, cols) grid of split names per cell ("" for a near-flat cell, used by no split)."""
    gray = (image.mean(axis=-1) if image.ndim == 3 else image) / np.iinfo(image.dtype).max
    rows, cols = gray.shape[0] // size, gray.shape[1] // size
    blocks = gray[: rows * size, : cols * size].reshape(rows, size, cols, size)
    usable = np.flatnonzero(blocks.std(axis=(1, 3)) >= FLAT_STD)
    labels = np.full(rows * cols, "", dtype=object)
    for split, members in assign_splits(usable.tolist(), seed, _held_out, salt=salt).items():
        labels[usable[members]] = split
    return labels.reshape(rows, cols)


def _boxes(images: tuple[np.ndarray, ...], size: int, seed: int,
           first: int = 0) -> dict[str, list[tuple[int, int, int]]]:
    """(image number, top, left) of every crop per split, in a fixed order; images are numbered from ``first``."""
    boxes: dict[str, list[tuple[int, int, int]]] = {split: [] for split in SPLITS}
    half = size // 2
    for number, image in enumerate(images, start=first):
        labels = _cell_labels(image, size, seed, number)
        for split in ("val", "test"):
            boxes[split] += [(number, row * size, col * size) for row, col in np.argwhere(labels == split)]
        train = np.repeat(np.repeat(labels == "train", 2, axis=0), 2, axis=1)
        if train.shape[0] >= 2 and train.shape[1] >= 2:
            windows = sliding_window_view(train, (2, 2)).all(axis=(-2, -1))
            boxes["train"] += [(number, row * half, col * half) for row, col in np.argwhere(windows)]
    return boxes


class Crops:
    """A reader of (image number, top, left) crops of the source images, then the photographs of ``photos``."""

    def __init__(self, boxes: list[tuple[int, int, int]], size: int, photos: str | None = None) -> None:
        self.boxes, self.size, self.photos = boxes, size, photos

    def __call__(self, index: int) -> torch.Tensor:
        number, top, left = self.boxes[index]
        images = source_images() + (photo_images(self.photos) if self.photos else ())
        return array_to_tensor(images[number][top : top + self.size, left : left + self.size])


def _keyed(boxes: dict[str, list[tuple[int, int, int]]], split: str, start: int) -> list[int]:
    """Blur keys of ``split``'s crops: the splits' crops numbered in order from ``start``."""
    first = start + sum(len(boxes[name]) for name in SPLITS[: SPLITS.index(split)])
    return list(range(first, first + len(boxes[split])))


def load(root: None, split: str, seed: int, *, blur: Blur, patch_size: int = 128, photos: str | None = None) -> Loaded:
    """Crops of ``patch_size`` from scikit-image's bundled photographs, and from those in the folder ``photos``,
    blurred by ``blur``."""
    if not isinstance(patch_size, int) or patch_size < 16 or patch_size % 2:
        raise DatasetError(f"patch_size must be an even integer >= 16, got {patch_size!r}", section=SECTION)
    boxes = _boxes(source_images(), patch_size, seed)
    names = [f"{SOURCES[number]}_y{top}_x{left}" for number, top, left in boxes[split]]
    keys, crops, sources = _keyed(boxes, split, 0), list(boxes[split]), list(SOURCES)
    if photos is not None:
        photos = str(Path(photos).expanduser().resolve())
        files = [path.name for path in photo_files(photos)]
        extra = _boxes(photo_images(photos), patch_size, seed, first=len(SOURCES))
        names += [f"{files[number - len(SOURCES)]}_y{top}_x{left}" for number, top, left in extra[split]]
        keys += _keyed(extra, split, sum(map(len, boxes.values())))
        crops += extra[split]
        sources += files
        boxes = {name: boxes[name] + extra[name] for name in SPLITS}
    if not crops:
        raise DatasetError(
            f"patch_size {patch_size} leaves no {split} crops", expected="a smaller patch_size", section=SECTION
        )
    return Loaded(
        SharpImages(names, keys, Crops(crops, patch_size, photos), blur, seed),
        info={
            "source_images": sources,
            **({"photos": photos} if photos is not None else {}),
            "patch_size": patch_size,
            "split_sizes": split_sizes(boxes),
            "split_rule": "disjoint grid cells per image: a seeded tenth each for test and val; "
            "training windows at half-cell stride inside training cells",
        },
    )
