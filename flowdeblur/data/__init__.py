"""Datasets for deblurring: the paper's (LSUN, CelebA, GoPro, Lai et al.), the user's own pairs, and a built-in set.

``build_dataset(name, root, split=..., color=..., crop_size=..., seed=..., blur=..., **options)`` returns a torch
Dataset of ``{"blurry", "sharp", "name"}`` items in [0, 1]; docs/datasets.md gives each dataset's layout and
protocol. ``read_image`` / ``write_image`` are the image I/O the rest of flowdeblur uses too.

Each name is imported from its module on first use, so that reading an image does not import every loader
(and scikit-image with the built-in set).
"""

from __future__ import annotations

from ..lazy import lazy_getattr
from .choices import DATASET_NAMES, SPLITS

_MODULES = {
    "BlurMixture": "blur",
    "BlurSpec": "blur",
    "DeblurDataset": "dataset",
    "DatasetError": "errors",
    "build_dataset": "factory",
    "ImageInfo": "io",
    "decode_image": "io",
    "probe_image": "io",
    "read_image": "io",
    "read_image_with_info": "io",
    "write_image": "io",
}

__all__ = ["DATASET_NAMES", "SPLITS", *sorted(_MODULES)]

__getattr__ = lazy_getattr(__name__, _MODULES)
