"""Where a dataset's images come from: blurry/sharp file pairs, or sharp images blurred on demand."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .blur import Blur, Key
from .errors import DatasetError, SkippedItemError, report_bad
from .frames import FrameStore
from .io import array_view, read_image
from .transforms import square_resize

Reader = Callable[[int], torch.Tensor]


UNREADABLE = "unreadable images"


@dataclass(frozen=True)
class Pair:
    """One blurry file, its sharp file (None for unpaired real blur), its report name and its split group."""

    name: str
    blurry: Path
    sharp: Path | None
    group: str


@dataclass(frozen=True)
class LateCheck:
    """How a file found unreadable only when read is reported: worded as the start-up scan words it (the dataset
    root, its layout and docs section), an error, or under ``skip_bad`` a warning and a skipped item."""

    base: Path
    expected: str
    section: str
    skip_bad: bool

    def unreadable(self, path: Path, problem: str) -> SkippedItemError:
        """Raise the DatasetError naming ``path`` and ``problem``, or (``skip_bad``) warn and return the skip."""
        shown = f"{path.relative_to(self.base).as_posix()} ({problem})"
        report_bad({UNREADABLE: [shown]}, path=self.base, expected=self.expected, section=self.section,
                   skip_bad=self.skip_bad)
        return SkippedItemError(shown)


class FilePairs:
    """Blurry/sharp file pairs read on demand, for datasets that ship their blur (GoPro, Lai, paired folders).

    Images come as integer (C, H, W) tensors, memory-mapped from ``store`` where it has a folder, so that a crop
    reads only its pixels; ``late`` reports a file that turns out unreadable (without it, the plain DatasetError).
    """

    def __init__(self, pairs: Sequence[Pair], store: FrameStore | None = None, late: LateCheck | None = None) -> None:
        self.pairs, self.store, self.late = list(pairs), store or FrameStore(None), late

    def __len__(self) -> int:
        return len(self.pairs)

    def name(self, index: int) -> str:
        """The item's name for reports."""
        return self.pairs[index].name

    def _read(self, path: Path) -> torch.Tensor:
        """One file's samples as an integer (C, H, W) tensor, or its error worded by ``late``."""
        try:
            return array_view(self.store.read(path))
        except DatasetError as error:
            if self.late is None:
                raise
            raise self.late.unreadable(path, error.problem) from error

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(blurry, sharp) as integer tensors, uint8 or uint16 as stored; sharp is None for unpaired real blur."""
        pair = self.pairs[index]
        blurry = self._read(pair.blurry)
        if pair.sharp is None:
            return blurry, None
        sharp = self._read(pair.sharp)
        if blurry.shape[-2:] != sharp.shape[-2:]:
            raise DatasetError(
                f"blurry image is {tuple(blurry.shape[-2:])} but its sharp image {pair.sharp} is "
                f"{tuple(sharp.shape[-2:])} (height, width)",
                path=pair.blurry,
                expected="a blurry and a sharp image of the same size",
            )
        return blurry, sharp

    def found_bad(self) -> dict[str, int]:
        """Files of these pairs found unreadable when read (by any process sharing the store), by problem."""
        files = {file for pair in self.pairs for file in (pair.blurry, pair.sharp) if file is not None}
        count = sum(self.store.failed(file) for file in files)
        return {UNREADABLE: count} if count else {}


class SharpImages:
    """Sharp-only images (CelebA, LSUN, built-in), each blurred by ``blur`` with the kernel of its global index.

    After :meth:`set_epoch` (training sets), the key is (global index, epoch): fresh kernels and noise each epoch.
    """

    def __init__(self, names: Sequence[str], keys: Sequence[int], read: Reader, blur: Blur, seed: int) -> None:
        self.names, self.keys, self.read, self.blur, self.seed = list(names), list(keys), read, blur, seed
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Draw the blur of every image anew for ``epoch`` (reproducible from seed, index and epoch)."""
        self.epoch = epoch

    def _key(self, index: int) -> Key:
        return self.keys[index] if self.epoch is None else (self.keys[index], self.epoch)

    def __len__(self) -> int:
        return len(self.names)

    def name(self, index: int) -> str:
        """The item's name for reports."""
        return self.names[index]

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(blurry, sharp): the sharp image and its synthetic blur, reproducible from (seed, global index)."""
        sharp = self.read(index)
        return self.blur.apply(sharp, self.seed, self._key(index)), sharp

    def kernel(self, index: int) -> torch.Tensor:
        """The true blur kernel of item ``index`` (what non-blind baselines such as Wiener are given)."""
        return self.blur.kernel(self.seed, self._key(index))


class ImageFiles:
    """A reader of image files, centre-cropped to a square and resized to ``image_size`` (None: no resize)."""

    def __init__(self, paths: Sequence[Path], image_size: int | None) -> None:
        self.paths, self.image_size = list(paths), image_size

    def __call__(self, index: int) -> torch.Tensor:
        return square_resize(read_image(self.paths[index]), self.image_size)
