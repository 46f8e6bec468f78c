"""Seeded random streams: every random choice of the data pipeline comes from ``rng(seed, purpose, *keys)``.

Each purpose (sampling, splitting, augmentation, blur kernels) has its own stream, and each item its own key,
so a choice depends only on (seed, purpose, item): the same in every run, process and DataLoader worker, and
unchanged when other choices are added or reordered.
"""

from __future__ import annotations

import numpy as np

SAMPLE = 0
SPLIT = 1
AUGMENT = 2
BLUR = 3
NOISE = 4
MIXTURE = 5


def rng(seed: int, purpose: int, *keys: int) -> np.random.Generator:
    """A numpy Generator fixed by (seed, purpose, keys): independent of every other stream."""
    return np.random.default_rng([purpose, seed, *keys])
