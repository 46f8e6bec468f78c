"""CelebA (Liu et al. 2015) as published: aligned 178x218 faces in ``img_align_celeba/``, synthetically blurred.

Each image is centre-cropped to a 178x178 square and resized to ``resize``. A seeded sample of
``num_samples`` images (paper: 100,000) is split by the official ``list_eval_partition.txt`` when present,
else 8:1:1 by a seeded permutation.
"""

from __future__ import annotations

from pathlib import Path

from .blur import Blur
from .dataset import Loaded
from .errors import DatasetError, listing, report_bad, require_dir
from .sources import ImageFiles, SharpImages
from .splits import RATIO, SPLITS, assign_splits, pick, sample_indices, split_sizes
from .transforms import check_size

SECTION = "celeba"
PAPER_SAMPLES = 100_000
IMAGE_DIRS = ("img_align_celeba/img_align_celeba", "img_align_celeba", "Img/img_align_celeba")
PARTITION_FILES = ("list_eval_partition.txt", "Eval/list_eval_partition.txt", "list_eval_partition.csv")
SUFFIXES = (".jpg", ".jpeg", ".png")
EXPECTED = (
    "img_align_celeba/*.jpg under root (or root/Img/, or Kaggle's img_align_celeba/img_align_celeba/), and "
    "optionally list_eval_partition.txt (in root or root/Eval/) with lines '<file> <0|1|2>'"
)


def _first(root: Path, candidates: tuple[str, ...], is_file: bool) -> Path | None:
    """The first candidate under ``root`` that exists as a file (or folder)."""
    for candidate in candidates:
        path = root / candidate
        if path.is_file() if is_file else path.is_dir():
            return path
    return None


def read_partition(path: Path) -> dict[str, str]:
    """The official partition file as {file name: split}; 0, 1, 2 mean train, val, test (a CSV header is allowed)."""
    partition = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields or (number == 1 and fields == ["image_id", "partition"]):
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DatasetError(
                f"line {number} reads {line.strip()!r}", path=path, expected="lines '<file> <0|1|2>'", section=SECTION
            )
        partition[fields[0]] = SPLITS[int(fields[1])]
    return partition


def _partition(path: Path, files: list[Path], skip_bad: bool) -> tuple[dict[str, str], dict[str, int]]:
    """The partition file's splits, checked against the image folder: disagreements are errors or skipped."""
    partition = read_partition(path)
    names = {file.name for file in files}
    problems = {
        "images missing from the partition file": sorted(names - partition.keys()),
        "listed images missing from the folder": sorted(partition.keys() - names),
    }
    return partition, report_bad(problems, path=path, expected=EXPECTED, section=SECTION, skip_bad=skip_bad)


def load(
    root: Path, split: str, seed: int, *, blur: Blur, resize: int | None = 128,
    num_samples: int | None = PAPER_SAMPLES, skip_bad: bool = False,
) -> Loaded:
    """A seeded sample of CelebA's aligned faces, square-cropped, resized and blurred by ``blur``."""
    check_size("resize", resize, section=SECTION)
    root = require_dir(root, expected=EXPECTED, section=SECTION)
    folder = _first(root, IMAGE_DIRS, is_file=False) or root
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(
            f"found no face images; root holds {listing(root)}", path=root, expected=EXPECTED, section=SECTION
        )
    partition_file = _first(root, PARTITION_FILES, is_file=True)
    partition, skipped = (None, {}) if partition_file is None else _partition(partition_file, files, skip_bad)
    keys = [key for key, file in enumerate(files) if partition is None or file.name in partition]
    sample = [keys[i] for i in sample_indices(len(keys), num_samples, seed)]
    if partition is None:
        assignment, rule = assign_splits(sample, seed), f"{RATIO}, seeded"
    else:
        splits = [partition[files[key].name] for key in sample]
        assignment = {name: [i for i, found in enumerate(splits) if found == name] for name in SPLITS}
        rule = f"official {partition_file.name}"
    chosen = [sample[i] for i in pick(assignment, split, path=folder, section=SECTION)]
    return Loaded(
        SharpImages(
            [files[key].name for key in chosen],
            chosen,
            ImageFiles([files[key] for key in chosen], resize),
            blur,
            seed,
        ),
        info={
            "images_found": len(files),
            "num_samples": len(sample),
            "split_rule": rule,
            "split_sizes": split_sizes(assignment),
            "resize": resize,
            "preprocess": "centre square crop of the shorter side, bicubic antialiased resize",
            "skipped": skipped,
        },
    )
