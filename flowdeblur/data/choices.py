"""The dataset names, splits, pixel limit, frame cache variable and memory budget the command line declares, in a
module that imports nothing but ``typing``.

Kept apart from the loaders so that ``flowdeblur --help`` can list them without importing torch.
"""

from typing import Literal, get_args

DatasetName = Literal["builtin", "paired", "gopro", "lai", "celeba", "lsun"]
DATASET_NAMES: tuple[str, ...] = get_args(DatasetName)
SPLITS = ("train", "val", "test")
ALL = "all"  # every image, unsplit: for scoring a folder of pairs that is not a training set
MAX_PIXELS_VARIABLE = "FLOWDEBLUR_MAX_PIXELS"
FRAME_CACHE_VARIABLE = "FLOWDEBLUR_FRAME_CACHE"  # a folder for decoded training frames, or "off"
DEFAULT_MAX_PIXELS = 100_000_000  # eight 12-megapixel photos; a 100 MP RGB image is 1.2 GB as float32
DEFAULT_MAX_MEMORY = 2**30  # forward-pass memory; with Python, the model and the image buffers a 12 MP run stays < 2 GB
