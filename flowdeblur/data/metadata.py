"""What an image file says about its pixels besides their values: the EXIF orientation, applied on reading, and
the ICC colour profile and EXIF tags, carried to a written file (orientation reset to 1, the pixels being upright).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import png
from PIL import Image

ORIENTATION = 0x0112
# How a TIFF lays out its own pixels (sizes, strips, tiles, sample format) and its ICC profile (carried apart):
# Pillow lists them among a TIFF's EXIF tags, but they do not describe the pixels of another file.
_LAYOUT_TAGS = (254, 255, 256, 257, 258, 259, 262, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338, 339,
                34675)
_EXIF_PREFIX = b"Exif\x00\x00"
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {  # EXIF orientation -> the turn that undoes it
    2: np.fliplr,
    3: lambda array: np.rot90(array, 2),
    4: np.flipud,
    5: lambda array: array.swapaxes(0, 1),
    6: lambda array: np.rot90(array, -1),
    7: lambda array: np.rot90(array, 2).swapaxes(0, 1),
    8: lambda array: np.rot90(array, 1),
}


@dataclass(frozen=True)
class ImageMetadata:
    """An ICC profile and EXIF tags (as Pillow's ``Exif.tobytes``, orientation 1) to write with an image."""

    icc_profile: bytes | None = None
    exif: bytes | None = None


def read_metadata(image: Image.Image) -> tuple[int, ImageMetadata]:
    """The EXIF orientation of an open image (1 when absent or invalid) and its metadata, orientation set to 1."""
    exif = image.getexif()
    orientation = exif.get(ORIENTATION, 1)
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    for tag in _LAYOUT_TAGS:
        exif.pop(tag, None)
    icc_profile = image.info.get("icc_profile") or None
    return orientation if orientation in _UPRIGHT else 1, ImageMetadata(icc_profile, exif.tobytes() if exif else None)


def upright(array: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W[, C]) samples turned as EXIF ``orientation`` says they are meant to be seen."""
    turn = _UPRIGHT.get(orientation)
    return array if turn is None else np.ascontiguousarray(turn(array))


def pillow_options(metadata: ImageMetadata) -> dict[str, bytes]:
    """The keyword arguments of Pillow's ``Image.save`` that write ``metadata`` (PNG, JPEG, TIFF and WebP)."""
    options = {"icc_profile": metadata.icc_profile, "exif": metadata.exif}
    return {name: value for name, value in options.items() if value}


def add_png_chunks(encoded: bytes, metadata: ImageMetadata) -> bytes:
    """A PNG file with ``metadata`` added as iCCP and eXIf chunks after its header (for PNGs Pillow cannot write)."""
    extra = []
    if metadata.icc_profile:
        extra.append((b"iCCP", b"ICC profile\x00\x00" + zlib.compress(metadata.icc_profile)))
    if metadata.exif:
        extra.append((b"eXIf", metadata.exif.removeprefix(_EXIF_PREFIX)))
    if not extra:
        return encoded
    chunks = list(png.Reader(bytes=encoded).chunks())
    output = io.BytesIO()
    png.write_chunks(output, [chunks[0], *extra, *chunks[1:]])
    return output.getvalue()
