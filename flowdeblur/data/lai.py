"""Lai et al. 2016 ("A Comparative Study for Single Image Blind Deblurring") as published.

``synthetic_dataset/ground_truth/<image>.png`` with ``uniform/`` and ``nonuniform/<image>_kernel_<k>.png``
blurred versions; the paper's 8:1:1 split is drawn over ground-truth images, so the blurred versions of one
image never straddle train and test. ``real=True`` reads ``real_dataset/`` (real blur, no sharp image): test only.
"""

from __future__ import annotations

import re
from pathlib import Path

from .dataset import Loaded
from .errors import DatasetError, require_dir
from .paired import PairScan, decoded_at_start
from .splits import RATIO, assign_splits, pick, split_sizes

SECTION = "lai-et-al-2016"
SUBSETS = {"uniform": ("uniform",), "nonuniform": ("nonuniform",), "all": ("uniform", "nonuniform")}
EXPECTED = (
    "synthetic_dataset/ground_truth/<image>.png with synthetic_dataset/{uniform,nonuniform}/<image>_kernel_<k>.png "
    "(root = synthetic_dataset or its parent), or real_dataset/*.jpg with real=True"
)
KERNEL_SUFFIX = re.compile(r"_kernel_\d+$")


def ground_truth_of(key: str) -> str:
    """The ground-truth name of a blurred image: 'manmade_01_kernel_03' -> 'manmade_01'."""
    return KERNEL_SUFFIX.sub("", key)


def _under(root: Path, name: str) -> Path:
    """``root/name`` when the user gave the parent folder, else ``root`` itself."""
    return root / name if (root / name).is_dir() else root


def load(
    root: Path, split: str, seed: int, *, subset: str = "all", real: bool = False, skip_bad: bool = False,
    full_test_frames: bool = True,
) -> Loaded:
    """Lai et al.'s synthetic pairs (``subset`` "uniform", "nonuniform" or "all") or, with ``real``, its real set."""
    root = require_dir(root, expected=EXPECTED, section=SECTION)
    if real:
        return _real(_under(root, "real_dataset"), split, skip_bad, full_test_frames)
    if subset not in SUBSETS:
        raise DatasetError(f"subset {subset!r} is not one of {tuple(SUBSETS)}", section=SECTION)
    base = _under(root, "synthetic_dataset")
    scan = PairScan(base, expected=EXPECTED, section=SECTION, decode=decoded_at_start(split))
    for folder in SUBSETS[subset]:
        scan.add_pairs(base / folder, base / "ground_truth", sharp_key=ground_truth_of, prefix=f"{folder}/")
    pairs, skipped = scan.finish(skip_bad)
    assignment = assign_splits([pair.group for pair in pairs], seed)
    chosen = pick(assignment, split, path=base, section=SECTION)
    return Loaded(
        scan.source([pairs[i] for i in chosen]),
        info={
            "subset": subset,
            "split_rule": f"{RATIO} over ground-truth images, seeded",
            "split_sizes": split_sizes(assignment),
            "ground_truth_images": len({pair.group for pair in pairs}),
            "skipped": skipped,
        },
        blur={"kind": "real", "source": f"synthetic_dataset/{subset} (as shipped)"},
        full_test_frames=full_test_frames,
    )


def _real(folder: Path, split: str, skip_bad: bool, full_test_frames: bool) -> Loaded:
    """The real blurred photographs: no sharp images, so only a test split for deblurring and viewing."""
    if split != "test":
        raise DatasetError(
            f"the real set has no sharp images, so no {split} split",
            path=folder,
            expected="split='test'",
            section=SECTION,
        )
    scan = PairScan(folder, expected=EXPECTED, section=SECTION, decode=True)
    scan.add_unpaired(folder)
    pairs, skipped = scan.finish(skip_bad)
    return Loaded(
        scan.source(pairs),
        info={"subset": "real", "split_rule": "all images (deblur only, unpaired)", "skipped": skipped},
        blur={"kind": "real", "source": "real_dataset (no sharp images)"},
        full_test_frames=full_test_frames,
    )
