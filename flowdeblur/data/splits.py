"""Seeded, stable train/val/test splits and samples, shared by every dataset.

A split is drawn over *groups* (a GoPro sequence, a Lai ground-truth image, or each image on its own), so
near-duplicates never straddle train and test. Groups are sorted before a seeded permutation is cut, so the
split depends only on the seed and the set of group names, never on file-system order.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import numpy as np

from . import seeding
from .choices import SPLITS
from .errors import DatasetError

RATIO = "8:1:1"

Counts = Callable[[int], dict[str, int]]


def ratio_counts(n: int) -> dict[str, int]:
    """The paper's 8:1:1 cut of n groups: a tenth each for test and val (at least one when n >= 3)."""
    held = max(1, n // 10) if n >= 3 else 0
    return {"test": held, "val": held, "train": n - 2 * held}


def holdout_counts(n: int) -> dict[str, int]:
    """Val carved from a shipped training set: a ninth of its groups (so 8:1 beside the shipped test set)."""
    held = max(1, n // 9) if n >= 2 else 0
    return {"val": held, "train": n - held}


def assign_splits(
    groups: Sequence[Hashable], seed: int, counts: Counts = ratio_counts, salt: int = 0
) -> dict[str, list[int]]:
    """Item indices per split: the sorted distinct groups are permuted by the seed and cut by ``counts``."""
    names = sorted(set(groups))
    order = seeding.rng(seed, seeding.SPLIT, salt).permutation(len(names))
    chosen: dict[Hashable, str] = {}
    start = 0
    for split, count in counts(len(names)).items():
        chosen.update((names[i], split) for i in order[start : start + count])
        start += count
    result: dict[str, list[int]] = {split: [] for split in counts(len(names))}
    for index, group in enumerate(groups):
        result[chosen[group]].append(index)
    return result


def split_sizes(assignment: dict[str, list[int]]) -> dict[str, int]:
    """How many items each known split holds, in train/val/test order, for a dataset's description."""
    return {split: len(assignment[split]) for split in SPLITS if split in assignment}


def pick(assignment: dict[str, list[int]], split: str, *, path: Path, section: str) -> list[int]:
    """The indices of one split, or a DatasetError when the dataset is too small to give it any."""
    if assignment.get(split):
        return assignment[split]
    sizes = ", ".join(f"{name} {len(items)}" for name, items in assignment.items())
    raise DatasetError(
        f"no images fall in the {split} split (sizes: {sizes})",
        path=path,
        expected=f"enough images (or sequences) for a {split} split",
        section=section,
    )


def shipped_assignment(groups: Sequence[Hashable], split: str, seed: int, *, val_shipped: bool) -> dict[str, list[int]]:
    """Splits of the pool a dataset ships for ``split``: all of it is that split, except that without a shipped
    val set, val and train are carved from the shipped training set by :func:`holdout_counts`."""
    if split == "test" or val_shipped:
        return {split: list(range(len(groups)))}
    return assign_splits(groups, seed, holdout_counts)


def sample_indices(total: int, count: int | None, seed: int) -> np.ndarray:
    """A seeded random sample of ``count`` of ``total`` indices, sorted (all of them when count is None or >= total)."""
    if count is not None and (not isinstance(count, int) or count < 1):
        raise DatasetError(f"num_samples must be a positive integer or None, got {count!r}")
    if count is None or count >= total:
        return np.arange(total)
    return np.sort(seeding.rng(seed, seeding.SAMPLE).choice(total, size=count, replace=False))
