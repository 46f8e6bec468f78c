"""Blurry/sharp pairs from folders: the scanner GoPro and Lai share, and the user's own ``blur/`` + ``sharp/`` layout.

Scanning reads every file's header (an image, same size as its partner) and reports all problems at once: one
DatasetError naming the files, or with ``skip_bad`` a warning and a count. Training and val splits decode a file
only when an item is read (start-up does not grow with the dataset); a file that does not decode then gets the same
error, or under ``skip_bad`` the same warning, once, and a count. Test splits and ``split="all"``, which are scored
whole, decode every file at start-up, so that no scored image is found bad halfway.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from pathlib import Path

from .choices import ALL, SPLITS
from .dataset import Loaded
from .errors import DatasetError, listing, report_bad, require_dir
from .frames import FrameStore, cache_dir
from .io import IMAGE_SUFFIXES, check_image, probe_image
from .sources import UNREADABLE, FilePairs, LateCheck, Pair
from .splits import RATIO, assign_splits, pick, shipped_assignment, split_sizes

SECTION = "paired-folders"
EXPECTED = (
    "blur/ and sharp/ folders holding images of the same names (png, jpg, tiff), "
    "directly under root or under root/train, root/val, root/test"
)
BLUR = {"kind": "real", "source": "blur/ folder"}

KeyMap = Callable[[str], str]
PROBLEMS = (
    "files that are not images",
    "names used by two files",
    "blurry images without a sharp image",
    "sharp images without a blurry image",
    UNREADABLE,
    "pairs whose sizes differ",
)


def decoded_at_start(split: str) -> bool:
    """Whether a split's files are all decoded at start-up: the splits scored whole (test, all), not those trained
    and validated on, whose files are decoded when read."""
    return split in ("test", ALL)


class PairScan:
    """Collects pairs and problems over one or more folders, then reports every problem at once.

    With ``decode`` every file is decoded to the end; without, only headers are read and the pairs' source checks
    each file when it is first read, keeping decoded frames in the frame cache (docs/datasets.md#frame-cache).
    """

    def __init__(self, base: Path, *, expected: str, section: str, decode: bool) -> None:
        self.base, self.expected, self.section, self.decode = base, expected, section, decode
        self.problems: dict[str, list[str]] = {kind: [] for kind in PROBLEMS}
        self.pairs: list[Pair] = []
        self.skip_bad = False
        self._sizes: dict[Path, tuple[int, int] | None] = {}

    def _relative(self, path: Path) -> str:
        """A path as messages show it: relative to the dataset root, with forward slashes."""
        return path.relative_to(self.base).as_posix()

    def _images(self, folder: Path) -> dict[str, Path]:
        """Image files under ``folder`` (recursive, hidden files ignored) by relative path without suffix."""
        require_dir(folder, expected=self.expected, section=self.section)
        images: dict[str, Path] = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                self.problems["files that are not images"].append(self._relative(path))
                continue
            key = path.relative_to(folder).with_suffix("").as_posix()
            if key in images:
                shown = f"{self._relative(path)} (same name as {images[key].name})"
                self.problems["names used by two files"].append(shown)
            else:
                images[key] = path
        return images

    def _check(self, paths: Iterable[Path]) -> None:
        """Decode (or with ``decode`` False read the header of) each file not checked yet, in threads (decoding and
        reading release the GIL), and keep its (width, height), or None and a problem naming it and why it cannot
        be read. Each thread reads under the caller's context, so the pixel limit and the flags' spelling hold there
        too."""
        todo = [path for path in dict.fromkeys(paths) if path not in self._sizes]
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            futures = [pool.submit(copy_context().run, _size, path, self.decode) for path in todo]
            outcomes = [future.result() for future in futures]
        for path, outcome in zip(todo, outcomes, strict=True):
            self._sizes[path] = outcome if isinstance(outcome, tuple) else None
            if isinstance(outcome, str):
                self.problems[UNREADABLE].append(f"{self._relative(path)} ({outcome})")

    def add_pairs(
        self, blur_dir: Path, sharp_dir: Path, *, sharp_key: KeyMap = str, group_of: KeyMap = str, prefix: str = ""
    ) -> None:
        """Match the blurry files to sharp ones (``sharp_key`` maps a blurry key to its sharp key), check both.

        Pairs are named ``prefix`` + path under ``blur_dir`` and grouped by ``group_of`` of the sharp key.
        """
        blurry, sharp = self._images(blur_dir), self._images(sharp_dir)
        used = {sharp_key(key) for key in blurry} & sharp.keys()
        self.problems["blurry images without a sharp image"] += [
            self._relative(path) for key, path in blurry.items() if sharp_key(key) not in used
        ]
        self.problems["sharp images without a blurry image"] += [
            self._relative(path) for key, path in sharp.items() if key not in used
        ]
        partnered = [(path, sharp_key(key)) for key, path in blurry.items() if sharp_key(key) in used]
        self._check(file for path, target in partnered for file in (path, sharp[target]))
        for path, target in partnered:
            if None in (sizes := (self._sizes[path], self._sizes[sharp[target]])):
                continue
            if sizes[0] != sizes[1]:
                shown = " vs ".join(f"{width}x{height}" for width, height in sizes)
                self.problems["pairs whose sizes differ"].append(f"{self._relative(path)} ({shown})")
                continue
            name = prefix + path.relative_to(blur_dir).as_posix()
            self.pairs.append(Pair(name, path, sharp[target], group_of(target)))

    def add_unpaired(self, folder: Path) -> None:
        """Blurry images with no sharp partner (real blur, for deblurring only), each checked."""
        images = self._images(folder)
        self._check(images.values())
        for path in images.values():
            if self._sizes[path] is not None:
                name = path.relative_to(folder).as_posix()
                self.pairs.append(Pair(name, path, None, name))

    def finish(self, skip_bad: bool) -> tuple[list[Pair], dict[str, int]]:
        """The good pairs and the count skipped per problem; a DatasetError for problems unless ``skip_bad``."""
        skipped = report_bad(
            self.problems, path=self.base, expected=self.expected, section=self.section, skip_bad=skip_bad
        )
        if not self.pairs:
            raise DatasetError("found no usable images", path=self.base, expected=self.expected, section=self.section)
        self.skip_bad = skip_bad
        return self.pairs, skipped

    def source(self, pairs: list[Pair]) -> FilePairs:
        """The chosen pairs, read through the frame cache when they were not decoded here, with late checks worded
        as this scan words its problems."""
        late = LateCheck(self.base, self.expected, self.section, self.skip_bad)
        return FilePairs(pairs, FrameStore(None if self.decode else cache_dir()), late)


def _size(path: Path, decode: bool) -> tuple[int, int] | str:
    """(width, height) of a file that decodes to the end (``decode``) or whose header reads, else why it does not."""
    try:
        info = check_image(path) if decode else probe_image(path)
    except DatasetError as error:
        return error.problem
    return info.width, info.height


def scene_of(key: str) -> str:
    """Split group of a paired-folder image: its first sub-folder (a scene or video), or the image itself."""
    return key.split("/", 1)[0]


def shipped_splits(root: Path) -> list[str]:
    """The split folders (``train/``, ``val/``, ``test/``) that a paired root holds; none for a flat folder."""
    return [name for name in SPLITS if (root / name).is_dir()]


def load(root: Path, split: str, seed: int, *, skip_bad: bool = False) -> Loaded:
    """The user's own pairs: shipped train/val/test folders as they are, else a seeded 8:1:1 split by scene;
    ``split="all"`` takes every pair, unsplit."""
    root = require_dir(root, expected=EXPECTED, section=SECTION)
    shipped = shipped_splits(root)
    if split == ALL:
        return _unsplit(root, shipped, skip_bad)
    val_shipped = "val" in shipped
    pool = root / (split if split == "test" or val_shipped else "train") if shipped else root
    if not pool.is_dir():
        raise DatasetError(f"found {listing(root)} but no {pool.name}/", path=root, expected=EXPECTED, section=SECTION)
    scan = PairScan(root, expected=EXPECTED, section=SECTION, decode=decoded_at_start(split))
    scan.add_pairs(pool / "blur", pool / "sharp", group_of=scene_of)
    pairs, skipped = scan.finish(skip_bad)
    groups = [pair.group for pair in pairs]
    if not shipped:
        assignment = assign_splits(groups, seed)
        rule = f"{RATIO} by scene (first sub-folder, or each image), seeded"
    else:
        assignment = shipped_assignment(groups, split, seed, val_shipped=val_shipped)
        carved = split != "test" and not val_shipped
        rule = f"shipped {pool.name}/ folder" + (", a seeded ninth of its scenes as val" if carved else "")
    chosen = pick(assignment, split, path=pool, section=SECTION)
    return Loaded(
        scan.source([pairs[i] for i in chosen]),
        info={"split_rule": rule, "split_sizes": split_sizes(assignment), "skipped": skipped},
        blur=BLUR,
    )


def _unsplit(root: Path, shipped: list[str], skip_bad: bool) -> Loaded:
    """Every pair under ``root``: of the flat folder, or of each shipped split folder (names prefixed by it)."""
    scan = PairScan(root, expected=EXPECTED, section=SECTION, decode=True)
    for pool in [root / name for name in shipped] or [root]:
        scan.add_pairs(pool / "blur", pool / "sharp", group_of=scene_of, prefix=f"{pool.name}/" if shipped else "")
    pairs, skipped = scan.finish(skip_bad)
    rule = "every pair, unsplit" + (f" ({', '.join(f'{name}/' for name in shipped)})" if shipped else "")
    return Loaded(scan.source(pairs), info={"split_rule": rule, "split_sizes": {ALL: len(pairs)}, "skipped": skipped},
                  blur=BLUR)
