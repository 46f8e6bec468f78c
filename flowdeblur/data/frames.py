"""Decoded frames kept on disk: each training image is decoded once, then read as a memory-mapped array.

A random 128x128 crop of a 720p PNG costs a whole decode (about 70 ms); cut from a memory-mapped array it costs the
crop alone. An entry is keyed by the file's resolved path, size and modification time, so a changed file is decoded
anew. A file that does not decode leaves a note saying why, so that it is not decoded again, and so that DataLoader
workers and other processes learn of it. Entries are written to a temporary name and renamed. The folder is
$FLOWDEBLUR_FRAME_CACHE, else ``$XDG_CACHE_HOME/flowdeblur/frames`` (``~/.cache/flowdeblur/frames``);
``FLOWDEBLUR_FRAME_CACHE=off`` decodes every read, keeping only the outcome of each file's check in memory.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from .choices import FRAME_CACHE_VARIABLE
from .errors import DatasetError
from .io import READABLE, read_array

OFF = "off"


def cache_dir() -> Path | None:
    """The folder of decoded frames: $FLOWDEBLUR_FRAME_CACHE, else the user's cache folder; None when it is "off"."""
    value = os.environ.get(FRAME_CACHE_VARIABLE, "").strip()
    if value.lower() == OFF:
        return None
    if value:
        return Path(value).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flowdeblur" / "frames"


def _save(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as .npy to exactly ``path`` (``np.save`` given a name would append ``.npy`` to it)."""
    with path.open("wb") as file:
        np.save(file, array, allow_pickle=False)


class FrameStore:
    """Decoded samples of image files (uint8 or uint16 arrays, as :func:`~flowdeblur.data.io.read_array` gives),
    from the folder ``directory`` (None: decoded on every read), with every file's failure remembered."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._failures: dict[Path, str] = {}

    def _entry(self, path: Path) -> Path:
        """The cache name of ``path`` without suffix: a hash of its resolved path, size and modification time."""
        stat = path.stat()
        key = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
        return self.directory / hashlib.sha256(key).hexdigest()[:32]

    def _fail(self, path: Path, problem: str) -> DatasetError:
        """Remember that ``path`` does not decode, and the error that says so."""
        self._failures[path] = problem
        return DatasetError(problem, path=path, expected=READABLE)

    def read(self, path: Path) -> np.ndarray:
        """The decoded samples of ``path`` (memory-mapped when cached); a DatasetError naming it if it does not
        decode, found by one decode per file and version."""
        if path in self._failures:
            raise self._fail(path, self._failures[path])
        if self.directory is None:
            return self._decode(path, note=None)
        entry = self._entry(path)
        frame, note = entry.with_suffix(".npy"), entry.with_suffix(".bad")
        if not frame.is_file():
            if note.is_file():
                raise self._fail(path, note.read_text())
            atomic_write(frame, lambda temporary: _save(temporary, self._decode(path, note)))
        return np.load(frame, mmap_mode="c")  # copy-on-write: a writable view, so torch shares it without a copy

    def _decode(self, path: Path, note: Path | None) -> np.ndarray:
        """Decode ``path``; on failure leave a ``note`` of why (where there is a cache folder) and raise."""
        try:
            return read_array(path)
        except DatasetError as error:
            problem = error.problem
            if note is not None:
                atomic_write(note, lambda temporary: temporary.write_text(problem))
            raise self._fail(path, problem) from error

    def failed(self, path: Path) -> bool:
        """Whether ``path`` is known not to decode, in this process or (by its note) in any other."""
        if path in self._failures:
            return True
        return self.directory is not None and path.is_file() and self._entry(path).with_suffix(".bad").is_file()
