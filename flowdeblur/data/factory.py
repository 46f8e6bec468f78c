"""``build_dataset``: every dataset of the paper, the built-in one and the user's own pairs, in one call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import builtin, celeba, gopro, lai, lsun, paired
from .blur import Blur, BlurMixture, BlurSpec
from .choices import ALL, DATASET_NAMES, SPLITS
from .dataset import DeblurDataset, Loaded
from .errors import DatasetError, option
from .transforms import COLORS, check_size

LOADERS: dict[str, Callable[..., Loaded]] = {
    "builtin": builtin.load,
    "paired": paired.load,
    "gopro": gopro.load,
    "lai": lai.load,
    "celeba": celeba.load,
    "lsun": lsun.load,
}
LAYOUTS = {module.__name__.rsplit(".", 1)[-1]: module.EXPECTED for module in (celeba, gopro, lai, lsun, paired)}
SYNTHETIC = frozenset({"builtin", "celeba", "lsun"})
SECTIONS = {"builtin": "built-in", "paired": "paired-folders", "lai": "lai-et-al-2016"}
UNSPLIT = frozenset({"paired"})  # the datasets that offer split="all"
# What each loader option does, for commands that offer it as a flag (names, types and defaults: the signatures).
OPTION_HELP = {
    "patch_size": "side of the grid cells the built-in photographs are cut into",
    "photos": "a folder of your own sharp photographs, cut into cells and split as the built-in ones are, beside them",
    "resize": "square size each image is resized to (after a centre square crop), before --crop-size crops it",
    "num_samples": "images drawn (seeded) from the whole dataset before the 8:1:1 split (the paper: 100000)",
    "skip_bad": "skip unreadable or unpaired files, with a warning and a count, instead of stopping",
    "blur_folder": "GoPro's blurry frames: blur (the common protocol) or blur_gamma (gamma-corrected)",
    "subset": "Lai et al.'s synthetic blur: uniform, nonuniform or all",
    "real": "Lai et al.'s real blurred photographs (no sharp images: a test split only)",
    "full_test_frames": "score whole test frames rather than --crop-size crops",
}
OPTION_CHOICES = {"blur_folder": gopro.BLUR_FOLDERS, "subset": tuple(lai.SUBSETS)}


def default_eval_split(name: str, root: str | Path | None) -> str:
    """The split to score when none is asked for: every pair of a flat paired folder (it has no split), else test."""
    flat = name == "paired" and root is not None and Path(root).is_dir() and not paired.shipped_splits(Path(root))
    return ALL if flat else "test"


def dataset_options(name: str) -> list[str]:
    """The dataset-specific options a loader takes (its keyword-only parameters), plus ``augment``."""
    parameters = inspect.signature(LOADERS[name]).parameters.values()
    return sorted([p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name != "blur"] + ["augment"])


def option_takers(option_name: str) -> tuple[str, ...]:
    """The datasets whose loaders take ``option_name``, so that a message can name them."""
    return tuple(name for name in DATASET_NAMES if option_name in dataset_options(name))


def _check(name: str, root: str | Path | None, split: str, color: str, seed: int, blur: Blur | None) -> None:
    """Refuse arguments that no dataset takes, before touching the disk."""
    section = SECTIONS.get(name, name)
    if name not in LOADERS:
        raise DatasetError(f"unknown dataset {name!r}", expected=f"one of {DATASET_NAMES}")
    if (root is None) != (name == "builtin"):
        folders = ", ".join(other for other in DATASET_NAMES if other != "builtin")
        problem = (
            f"the built-in dataset takes no {option('root')}; for a folder of images, give its layout with "
            f"{option('name', '<' + folders.replace(', ', '|') + '>')}"
            if name == "builtin"
            else f"{name} needs {option('root', '<its folder>')}"
        )
        raise DatasetError(problem, expected=LAYOUTS.get(name), section=section)
    splits = SPLITS + ((ALL,) if name in UNSPLIT else ())
    if split not in splits:
        raise DatasetError(f"{name} has no split {split!r}", expected=f"one of {splits}")
    if color not in COLORS:
        raise DatasetError(f"unknown color {color!r}", expected=f"one of {COLORS}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    if blur is not None and not isinstance(blur, BlurSpec | BlurMixture):
        raise DatasetError(
            f"blur must be a BlurSpec, a BlurMixture or None, got {type(blur).__name__}", section="synthetic-blur"
        )
    if blur is not None and name not in SYNTHETIC:
        raise DatasetError(f"{name} ships real blur; blur= applies to {sorted(SYNTHETIC)} only", section=section)


BUILTIN_GRID = 128  # one grid for every split and crop size, so that no training crop overlaps a test cell


def build_dataset(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    color: str = "y",
    crop_size: int | None = 128,
    seed: int = 0,
    blur: Blur | None = None,
    **options: Any,
) -> DeblurDataset:
    """One split of a dataset as float tensors in [0, 1]; see docs/datasets.md for each dataset's protocol.

    ``crop_size`` crops randomly for training (with ``augment``, the default for train) and centrally for val
    and test; GoPro and Lai test frames stay whole unless ``full_test_frames=False``. ``blur`` (sharp-only sets)
    defaults to the paper's ``BlurSpec()``; a ``BlurMixture`` draws one blur per image. Every random choice
    derives from ``seed``.
    """
    _check(name, root, split, color, seed, blur)
    check_size("crop_size", crop_size, section=SECTIONS.get(name, name))
    accepted = dataset_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"{name} takes no option {', '.join(unknown)}", expected=f"options among {accepted}")
    augment = options.pop("augment", split == "train")
    if augment and split != "train":
        raise DatasetError(f"augment=True is for training only, not the {split} split")
    if name == "builtin":
        options.setdefault("patch_size", BUILTIN_GRID)
    if name in SYNTHETIC:
        blur = blur or BlurSpec()
        options["blur"] = blur
    loaded = LOADERS[name](None if root is None else Path(root), split, seed, **options)
    crop = None if split == "test" and loaded.full_test_frames else crop_size
    description = {
        "dataset": name,
        "root": None if root is None else str(root),
        "split": split,
        "num_items": len(loaded.source),
        "color": color,
        "crop": {"size": crop, "mode": "full" if crop is None else ("random" if augment else "center")},
        "augment": augment,
        "seed": seed,
        "blur": blur.describe(seed) if blur is not None else loaded.blur,
        **loaded.info,
    }
    return DeblurDataset(
        loaded.source, color=color, crop_size=crop, augment=augment, seed=seed, description=description
    )
