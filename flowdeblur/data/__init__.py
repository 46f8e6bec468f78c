"""Datasets for deblurring: the paper's (LSUN, CelebA, GoPro, Lai et al.), the user's own pairs, and a built-in set.

``build_dataset(name, root, split=..., color=..., crop_size=..., seed=..., blur=..., **options)`` returns a torch
Dataset of ``{"blurry", "sharp", "name"}`` items in [0, 1]; docs/datasets.md gives each dataset's layout and
protocol. ``read_image`` / ``write_image`` are the image I/O the rest of flowdeblur uses too.
"""

from .blur import BlurMixture, BlurSpec
from .dataset import DeblurDataset
from .errors import DatasetError
from .factory import DATASET_NAMES, build_dataset
from .io import ImageInfo, decode_image, probe_image, read_image, read_image_with_info, write_image
from .splits import SPLITS

__all__ = [
    "DATASET_NAMES",
    "SPLITS",
    "BlurMixture",
    "BlurSpec",
    "DatasetError",
    "DeblurDataset",
    "ImageInfo",
    "build_dataset",
    "decode_image",
    "probe_image",
    "read_image",
    "read_image_with_info",
    "write_image",
]
