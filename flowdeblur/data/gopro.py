"""GoPro (Nah et al. 2017) as published: ``GOPRO_Large/{train,test}/<sequence>/{blur,blur_gamma,sharp}/*.png``.

Test is the shipped test set at full 1280x720 frames; val is a seeded ninth of the training *sequences* (GoPro
ships none), so no frame of a val sequence is trained on.
"""

from __future__ import annotations

from pathlib import Path

from .dataset import Loaded
from .errors import DatasetError, listing, require_dir
from .paired import PairScan, decoded_at_start
from .splits import pick, shipped_assignment, split_sizes

SECTION = "gopro"
BLUR_FOLDERS = ("blur", "blur_gamma")
EXPECTED = "GOPRO_Large/{train,test}/<sequence>/{blur,blur_gamma,sharp}/*.png (root = GOPRO_Large or its parent)"


def load(
    root: Path, split: str, seed: int, *, blur_folder: str = "blur", skip_bad: bool = False,
    full_test_frames: bool = True,
) -> Loaded:
    """GoPro pairs of one split; ``blur_folder`` "blur" (the common protocol) or "blur_gamma"."""
    if blur_folder not in BLUR_FOLDERS:
        raise DatasetError(f"blur_folder {blur_folder!r} is not one of {BLUR_FOLDERS}", section=SECTION)
    root = require_dir(root, expected=EXPECTED, section=SECTION)
    if (root / "GOPRO_Large").is_dir():
        root = root / "GOPRO_Large"
    pool = require_dir(root / ("test" if split == "test" else "train"), expected=EXPECTED, section=SECTION)
    sequences = sorted(p for p in pool.iterdir() if p.is_dir())
    if not sequences:
        raise DatasetError(f"found {listing(pool)}, no sequence folders", path=pool, expected=EXPECTED, section=SECTION)
    scan = PairScan(root, expected=EXPECTED, section=SECTION, decode=decoded_at_start(split))
    for sequence in sequences:
        group = sequence.name
        scan.add_pairs(sequence / blur_folder, sequence / "sharp", group_of=lambda _key, g=group: g, prefix=f"{group}/")
    pairs, skipped = scan.finish(skip_bad)
    assignment = shipped_assignment([pair.group for pair in pairs], split, seed, val_shipped=False)
    chosen = pick(assignment, split, path=pool, section=SECTION)
    rule = "shipped test/" if split == "test" else "shipped train/, a seeded ninth of its sequences as val"
    return Loaded(
        scan.source([pairs[i] for i in chosen]),
        info={
            "blur_folder": blur_folder,
            "sequences": sorted({pairs[i].group for i in chosen}),
            "split_rule": rule,
            "split_sizes": split_sizes(assignment),
            "skipped": skipped,
        },
        blur={"kind": "real", "source": f"{blur_folder}/ folders"},
        full_test_frames=full_test_frames,
    )
