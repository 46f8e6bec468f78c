"""LSUN (Yu et al. 2015) scenes as distributed: one category's LMDB of encoded images, or exported image files.

Values in the LMDB are encoded images (JPEG/WebP bytes) under their keys. A seeded sample of ``num_samples``
(paper: 100,000) is drawn by position in key order, centre-cropped square, resized to ``resize``,
blurred synthetically and split 8:1:1 by a seeded permutation.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch

from .blur import Blur
from .dataset import Loaded
from .errors import DatasetError, listing, preview, require_dir
from .io import IMAGE_SUFFIXES, decode_image
from .sources import ImageFiles, Reader, SharpImages
from .splits import RATIO, assign_splits, pick, sample_indices, split_sizes
from .transforms import check_size, square_resize

if TYPE_CHECKING:
    import lmdb

SECTION = "lsun"
PAPER_SAMPLES = 100_000
EXPECTED = (
    "a category's LMDB folder as distributed (e.g. bedroom_train_lmdb/ holding data.mdb), a folder holding "
    "exactly one such *_lmdb folder, or a folder of exported images"
)


_ENVIRONMENTS: dict[str, tuple[int, lmdb.Environment]] = {}


def _lmdb(path: Path) -> ModuleType:
    """The ``lmdb`` package, an optional dependency (the ``lsun`` extra): only LSUN's LMDB folders need it."""
    try:
        return importlib.import_module("lmdb")
    except ImportError as exc:
        problem = "is an LMDB, and reading one needs the lmdb package: pip install 'flowdeblur[lsun]'"
        raise DatasetError(problem, path=path, expected=EXPECTED, section=SECTION) from exc


def _environment(path: Path) -> lmdb.Environment:
    """This process's one read-only handle on an LMDB: LMDB allows one per process, and a handle inherited
    through fork must not be used, so the child closes it (read-only and lock-free, that touches nothing shared)
    and opens its own."""
    key = str(path.resolve())
    owner, env = _ENVIRONMENTS.get(key, (os.getpid(), None))
    if env is not None and owner == os.getpid():
        return env
    if env is not None:
        env.close()
    lmdb_package = _lmdb(path)
    try:
        env = lmdb_package.open(key, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb_package.Error as exc:
        problem = f"cannot be opened as an LMDB ({exc})"
        raise DatasetError(problem, path=path, expected=EXPECTED, section=SECTION) from exc
    _ENVIRONMENTS[key] = (os.getpid(), env)
    return env


class LmdbImages:
    """A reader of encoded images stored under their keys in an LMDB."""

    def __init__(self, path: Path, keys: list[bytes], image_size: int | None) -> None:
        self.path, self.keys, self.image_size = path, keys, image_size

    def __call__(self, index: int) -> torch.Tensor:
        key = self.keys[index]
        with _environment(self.path).begin() as txn:
            data = txn.get(key)
        if data is None:
            raise DatasetError(f"key {key!r} has gone", path=self.path, expected=EXPECTED, section=SECTION)
        return square_resize(decode_image(data, f"{self.path} [key {key.decode(errors='replace')}]"), self.image_size)


def _find_database(root: Path) -> Path | None:
    """The LMDB folder: root itself, or its single ``*_lmdb`` sub-folder; None when there is none."""
    if (root / "data.mdb").is_file():
        return root
    found = sorted(p for p in root.glob("*_lmdb") if (p / "data.mdb").is_file())
    if len(found) > 1:
        names = preview([p.name for p in found])
        raise DatasetError(
            f"found several LMDBs ({names}); pass one as root", path=root, expected=EXPECTED, section=SECTION
        )
    return found[0] if found else None


def _sample_keys(path: Path, count: int | None, seed: int) -> tuple[list[bytes], list[int], int]:
    """Keys of a seeded sample by position in key order: (keys, positions, number of entries)."""
    env = _environment(path)
    total = env.stat()["entries"]
    wanted = sample_indices(total, count, seed).tolist()
    keys: list[bytes] = []
    with env.begin() as txn:
        for position, key in enumerate(txn.cursor().iternext(keys=True, values=False)):
            if len(keys) < len(wanted) and position == wanted[len(keys)]:
                keys.append(bytes(key))
    if not keys:
        raise DatasetError("the LMDB holds no entries", path=path, expected=EXPECTED, section=SECTION)
    return keys, wanted, total


def load(
    root: Path, split: str, seed: int, *, blur: Blur, resize: int | None = 128, num_samples: int | None = PAPER_SAMPLES,
) -> Loaded:
    """A seeded sample of one LSUN category, square-cropped, resized and blurred by ``blur``."""
    check_size("resize", resize, section=SECTION)
    root = require_dir(root, expected=EXPECTED, section=SECTION)
    database = _find_database(root)
    if database is not None:
        keys, positions, total = _sample_keys(database, num_samples, seed)
        names = [key.decode(errors="replace") for key in keys]
    else:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            found = listing(root)
            raise DatasetError(
                f"found neither data.mdb nor images but {found}", path=root, expected=EXPECTED, section=SECTION
            )
        positions, total = sample_indices(len(files), num_samples, seed).tolist(), len(files)
        names = [files[i].relative_to(root).as_posix() for i in positions]
    assignment = assign_splits(positions, seed)
    chosen = pick(assignment, split, path=root, section=SECTION)
    if database is not None:
        read: Reader = LmdbImages(database, [keys[i] for i in chosen], resize)
        read(0)  # fail now, not mid-training, when the values are not encoded images
    else:
        read = ImageFiles([files[positions[i]] for i in chosen], resize)
    return Loaded(
        SharpImages([names[i] for i in chosen], [positions[i] for i in chosen], read, blur, seed),
        info={
            "storage": f"LMDB {database.name}" if database is not None else "exported image folder",
            "images_found": total,
            "num_samples": len(positions),
            "split_rule": f"{RATIO}, seeded",
            "split_sizes": split_sizes(assignment),
            "resize": resize,
            "preprocess": "centre square crop of the shorter side, bicubic antialiased resize",
        },
    )
