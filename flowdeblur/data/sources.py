"""Where a dataset's images come from: blurry/sharp file pairs, or sharp images blurred on demand."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .blur import Blur, Key
from .errors import DatasetError
from .io import read_image
from .transforms import square_resize

Reader = Callable[[int], torch.Tensor]


@dataclass(frozen=True)
class Pair:
    """One blurry file, its sharp file (None for unpaired real blur), its report name and its split group."""

    name: str
    blurry: Path
    sharp: Path | None
    group: str


class FilePairs:
    """Blurry/sharp file pairs read on demand, for datasets that ship their blur (GoPro, Lai, paired folders)."""

    def __init__(self, pairs: Sequence[Pair]) -> None:
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def name(self, index: int) -> str:
        """The item's name for reports."""
        return self.pairs[index].name

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(blurry, sharp) as read from disk; sharp is None for unpaired real blur."""
        pair = self.pairs[index]
        blurry = read_image(pair.blurry)
        if pair.sharp is None:
            return blurry, None
        sharp = read_image(pair.sharp)
        if blurry.shape[-2:] != sharp.shape[-2:]:
            raise DatasetError(
                f"blurry image is {tuple(blurry.shape[-2:])} but its sharp image {pair.sharp} is "
                f"{tuple(sharp.shape[-2:])} (height, width)",
                path=pair.blurry,
                expected="a blurry and a sharp image of the same size",
            )
        return blurry, sharp


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
