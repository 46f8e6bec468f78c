"""Reading and writing images: the one place that turns files into float tensors in [0, 1] and back.

Pillow decodes everything but 16-bit colour, which it cannot hold: 16-bit colour PNGs are read and written
with ``pypng`` and 16-bit colour TIFFs with ``tifffile`` (a dependency of scikit-image). Alpha is kept on request,
palettes and CMYK become RGB, EXIF orientation is applied, and the ICC profile and EXIF tags are kept for writing
(:mod:`.metadata`). A file whose header claims more pixels than :func:`max_pixels` is refused before anything is
decoded. A file of several frames (a multi-page TIFF, an animated GIF, WebP or PNG) is refused: which frame to
deblur is the user's choice, so no frame is picked silently. Writes go to a temporary name and are renamed into place.
"""

from __future__ import annotations

import errno
import glob
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import png
import tifffile
import torch
from PIL import Image, UnidentifiedImageError

from .choices import DEFAULT_MAX_PIXELS, MAX_PIXELS_VARIABLE
from .errors import DatasetError
from .metadata import ImageMetadata, add_png_chunks, pillow_options, read_metadata, upright

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"})
READABLE = "a single-frame PNG, JPEG, TIFF, BMP, WebP or GIF image (8 or 16 bits; gray, RGB or RGBA)"

_GRAY_16 = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_GRAY_8 = frozenset({"1", "L", "LA", "La"})
_COLOUR_8 = frozenset({"P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
_ALPHA = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
# zlib level of written PNGs: at 720p level 3 encodes in a third of the time of Pillow's default 6 (79 against
# 251 ms) for files 8 % larger; lossless either way.
PNG_COMPRESSION = 3
_WRITE_OPTIONS = {"JPEG": {"quality": 95}, "PNG": {"compress_level": PNG_COMPRESSION}}
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}

_LIMIT: ContextVar[int | None] = ContextVar("flowdeblur_pixel_limit", default=None)
_pillow_limit = threading.Lock()


@dataclass(frozen=True)
class ImageInfo:
    """What a file holds: size, channels after dropping alpha (1 or 3), bits per sample, Pillow mode, alpha, and
    (once decoded: size upright, as EXIF orientation says) its ICC profile and EXIF tags."""

    width: int
    height: int
    channels: int
    bit_depth: int
    mode: str
    has_alpha: bool
    metadata: ImageMetadata = field(default_factory=ImageMetadata)


def max_pixels() -> int:
    """The most pixels (width x height) an image may claim: set by :func:`pixel_limit`, else $FLOWDEBLUR_MAX_PIXELS,
    else 100 million."""
    limit = _LIMIT.get()
    if limit is not None:
        return limit
    value = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    if not value.isdigit() or int(value) < 1:
        raise DatasetError(f"{MAX_PIXELS_VARIABLE}={value!r} is not a positive whole number of pixels")
    return int(value)


@contextmanager
def pixel_limit(limit: int) -> Iterator[None]:
    """Within the block, refuse images that claim more than ``limit`` pixels (the ``--max-pixels`` option)."""
    if limit < 1:
        raise ValueError(f"the pixel limit must be positive, got {limit}")
    token = _LIMIT.set(limit)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def _open_header(source: Path | bytes) -> Image.Image:
    """Pillow's ``Image.open`` (the header only) without its own decompression-bomb limit, which we replace."""
    with _pillow_limit:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open(source: Path | bytes, name: str) -> Image.Image:
    """Open a file or encoded bytes with Pillow and check its claimed size; failures are a DatasetError naming it."""
    try:
        image = _open_header(source)
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot be read as an image ({exc})", path=name, expected=READABLE) from exc
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        image.close()
        raise DatasetError(f"holds {frames} frames (pages or animation); flowdeblur reads one image per file, so save "
                           "the frame to deblur as a file of its own", path=name, expected=READABLE)
    limit = max_pixels()
    if image.width * image.height > limit:
        image.close()
        raise DatasetError(
            f"its header claims {image.width}x{image.height} = {image.width * image.height:,} pixels, more than the "
            f"limit of {limit:,} (raise it with --max-pixels or {MAX_PIXELS_VARIABLE} if the image is genuine)",
            path=name,
        )
    return image


def _rawmode(image: Image.Image) -> str:
    """The raw sample layout of the file (e.g. 'RGB;16B'), which tells 16-bit colour apart from 8-bit."""
    if not image.tile:
        return ""
    args = image.tile[0][3]
    return args if isinstance(args, str) else str(args[0])


def _tiff_bits(image: Image.Image) -> int:
    """Bits per sample of a TIFF from its header (BitsPerSample, tag 258); 8 for other formats. Pillow reports a
    16-bit planar RGB TIFF as 8-bit RGB, so its mode alone cannot tell."""
    if image.format != "TIFF":
        return 8
    bits = image.tag_v2.get(258, (8,))
    return max(bits) if isinstance(bits, tuple) else int(bits)


def _info(image: Image.Image) -> ImageInfo:
    """ImageInfo from a Pillow header, without decoding pixels."""
    mode, rawmode = image.mode, _rawmode(image)
    wide = (mode in _GRAY_16 or (mode == "I" and image.format == "PNG") or ";16" in rawmode
            or _tiff_bits(image) == 16)
    has_alpha = mode in _ALPHA or (mode == "P" and "transparency" in image.info) or rawmode.startswith("LA")
    gray = mode in _GRAY_8 or mode in _GRAY_16 or mode == "I" or rawmode.startswith("LA")
    return ImageInfo(image.width, image.height, 1 if gray else 3, 16 if wide else 8, mode, has_alpha)


def _supported(image: Image.Image, name: str) -> None:
    """Refuse modes that have no well-defined [0, 1] range (float or 32-bit integer images)."""
    if image.mode in _GRAY_8 | _GRAY_16 | _COLOUR_8 or (image.mode == "I" and image.format == "PNG"):
        return
    raise DatasetError(f"unsupported pixel mode {image.mode!r} ({image.format})", path=name, expected=READABLE)


def _wide(source: Path | bytes, image: Image.Image, name: str) -> np.ndarray:
    """All 16 bits of a 16-bit colour or gray+alpha PNG or TIFF (Pillow holds 8 of them), as (H, W, C) uint16 with
    alpha still attached."""
    if image.format == "TIFF":
        with tifffile.TiffFile(io.BytesIO(source) if isinstance(source, bytes) else source) as tiff:
            page = tiff.pages[0]
            array = page.asarray()
            planar = page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and array.ndim == 3
            return np.moveaxis(array, 0, -1) if planar else array
    if image.format != "PNG":
        raise DatasetError(f"16-bit {image.mode} {image.format} is not supported", path=name, expected=READABLE)
    try:
        reader = png.Reader(bytes=source) if isinstance(source, bytes) else png.Reader(filename=str(source))
        width, height, rows, meta = reader.asDirect()
        return np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, meta["planes"])
    except png.Error as exc:
        raise DatasetError(f"cannot be decoded as a 16-bit PNG ({exc})", path=name, expected=READABLE) from exc


def _pixels(source: Path | bytes, image: Image.Image, info: ImageInfo, name: str, keep_alpha: bool) -> np.ndarray:
    """Decoded samples: (H, W) or (H, W, 3), plus an alpha plane if asked for and present; uint8 or uint16."""
    alpha = keep_alpha and info.has_alpha
    if info.bit_depth == 16 and (info.channels == 3 or info.has_alpha):
        return _wide(source, image, name)[..., : info.channels + alpha]
    if info.bit_depth == 16:
        return np.asarray(image).astype(np.uint16)
    return np.asarray(image.convert(("L" if info.channels == 1 else "RGB") + ("A" if alpha else "")))


_SCALES = {torch.uint8: 255.0, torch.uint16: 65535.0}


def array_view(array: np.ndarray) -> torch.Tensor:
    """uint8 or uint16 (H, W) or (H, W, C) array -> (C, H, W) integer tensor sharing its memory (no copy), so that
    a crop of a memory-mapped frame reads only the crop."""
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"expected a uint8 or uint16 image array, got {array.dtype}")
    if not array.flags.writeable or min(array.strides) < 0:  # torch takes neither (Pillow's arrays, flipped views)
        array = array.copy()
    pixels = torch.from_numpy(array)
    return pixels.unsqueeze(0) if pixels.dim() == 2 else pixels.permute(2, 0, 1)


def to_unit(image: torch.Tensor) -> torch.Tensor:
    """A uint8 or uint16 (C, H, W) tensor as float32 in [0, 1]; a float tensor is returned as it is."""
    scale = _SCALES.get(image.dtype)
    return image if scale is None else image.to(torch.float32).div_(scale).contiguous()


def array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 or uint16 (H, W) or (H, W, C) array -> float32 (C, H, W) tensor in [0, 1]."""
    return to_unit(array_view(array))


def _decode_array(source: Path | bytes, name: str, keep_alpha: bool = False) -> tuple[np.ndarray, ImageInfo]:
    """Decode every sample of a file or bytes (uint8 or uint16 array, upright) and its ImageInfo with the metadata;
    failures name ``name``."""
    with _open(source, name) as image:
        _supported(image, name)
        info = _info(image)
        try:
            array = _pixels(source, image, info, name, keep_alpha)
            orientation, metadata = read_metadata(image)
            array = upright(array, orientation)
            return array, replace(info, width=array.shape[1], height=array.shape[0], metadata=metadata)
        except DatasetError:
            raise
        except (OSError, SyntaxError, ValueError) as exc:
            raise DatasetError(f"cannot be decoded ({exc})", path=name, expected=READABLE) from exc


def _decode(source: Path | bytes, name: str, keep_alpha: bool = False) -> tuple[torch.Tensor, ImageInfo]:
    """Decode a file or bytes into a (C, H, W) tensor in [0, 1] and its ImageInfo."""
    array, info = _decode_array(source, name, keep_alpha)
    return array_to_tensor(array), info


def probe_image(path: str | Path) -> ImageInfo:
    """Size, channels and bit depth of an image file from its header alone: cheap, but blind to a truncated file."""
    with _open(Path(path), str(path)) as image:
        _supported(image, str(path))
        return _info(image)


def read_array(path: str | Path) -> np.ndarray:
    """The decoded samples of an image file as :func:`read_image` reads them, before conversion to float: a uint8 or
    uint16 (H, W) or (H, W, C) array, upright, alpha dropped."""
    return _decode_array(Path(path), str(path))[0]


def check_image(path: str | Path) -> ImageInfo:
    """Decode every pixel of an image file without keeping them, so a truncated or corrupt file is found now
    (a DatasetError), not halfway through training; returns what the file holds."""
    return _decode_array(Path(path), str(path))[1]


def read_image_with_info(path: str | Path, keep_alpha: bool = False) -> tuple[torch.Tensor, ImageInfo]:
    """An image file as a float32 (C, H, W) tensor in [0, 1] (C = 1 or 3), with what the file held.

    With ``keep_alpha`` an alpha channel, where the file has one, comes last (C = 2 or 4).
    """
    return _decode(Path(path), str(path), keep_alpha)


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as a float32 (C, H, W) tensor in [0, 1]: gray gives C = 1, colour C = 3, alpha is dropped."""
    return read_image_with_info(path)[0]


def decode_image(data: bytes, name: str) -> torch.Tensor:
    """Encoded image bytes (as stored in an LMDB) as a float32 (C, H, W) tensor in [0, 1]."""
    return _decode(data, name)[0]


def _encode(target: Path, array: np.ndarray, image_format: str, metadata: ImageMetadata) -> None:
    """Write an (H, W) or (H, W, 2..4) uint8/uint16 array (gray, gray+alpha, RGB, RGBA) in ``image_format``, with
    the ICC profile and EXIF of ``metadata`` (16-bit colour TIFF: the ICC profile only)."""
    if array.dtype == np.uint16 and array.ndim == 3:
        height, width, planes = array.shape
        if image_format == "TIFF":
            photometric = "minisblack" if planes == 2 else "rgb"
            tifffile.imwrite(target, array, photometric=photometric, extrasamples=("unassalpha",) * (planes % 2 == 0),
                             iccprofile=metadata.icc_profile)
        else:
            writer = png.Writer(width, height, bitdepth=16, greyscale=planes < 3, alpha=planes % 2 == 0,
                                compression=PNG_COMPRESSION)
            encoded = io.BytesIO()
            writer.write(encoded, array.reshape(height, -1))
            target.write_bytes(add_png_chunks(encoded.getvalue(), metadata))
        return
    options = _WRITE_OPTIONS.get(image_format, {})
    Image.fromarray(array).save(target, format=image_format, **options, **pillow_options(metadata))


def write_image(
    path: str | Path,
    image: torch.Tensor,
    bit_depth: int = 8,
    mode: str | None = None,
    metadata: ImageMetadata | None = None,
    exclusive: bool = False,
) -> Path:
    """Save a (C, H, W) tensor in [0, 1] as PNG/JPEG/TIFF/BMP, atomically (temporary name, then rename).

    ``bit_depth`` is 8 or 16 (16 for PNG and TIFF only); ``mode`` is "L", "LA", "RGB" or "RGBA" (default: from
    the channel count, 1 to 4; "RGB" repeats a gray image). Values are clipped to [0, 1] and rounded. ``metadata``
    (an ICC profile and EXIF tags, e.g. a read image's ``ImageInfo.metadata``) is written where the format holds it.
    With ``exclusive``, a file that exists at ``path`` by the time the image is complete is kept and
    FileExistsError raised. Temporary files of this naming left by a process that no longer runs are removed.
    """
    path = Path(path)
    image_format = _FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: cannot tell the image format from the suffix; use one of {sorted(_FORMATS)}")
    if bit_depth not in (8, 16) or (bit_depth == 16 and image_format not in ("PNG", "TIFF")):
        raise ValueError(f"{path}: bit_depth {bit_depth} is not possible for {image_format} (8, or 16 for PNG/TIFF)")
    modes = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
    if image.dim() != 3 or image.shape[0] not in modes:
        raise ValueError(f"expected a (C, H, W) image with 1 to 4 channels, got shape {tuple(image.shape)}")
    mode = mode or modes[image.shape[0]]
    if (mode, image.shape[0]) not in {("L", 1), ("LA", 2), ("RGB", 1), ("RGB", 3), ("RGBA", 4)}:
        raise ValueError(f"mode {mode!r} does not fit a {image.shape[0]}-channel image")
    if "A" in mode and image_format not in ("PNG", "TIFF"):
        raise ValueError(f"{path}: {image_format} cannot hold an alpha channel; use .png or .tif")
    if (mode, bit_depth, image_format) == ("LA", 16, "TIFF"):
        raise ValueError(f"{path}: a 16-bit gray+alpha TIFF could not be read back (Pillow cannot open it); use .png")
    if mode == "RGB":
        image = image.expand(3, -1, -1)
    scale = 255 if bit_depth == 8 else 65535
    levels = image.detach().to("cpu", torch.float64, copy=True).clamp_(0, 1).mul_(scale).round_()  # one float64 copy
    array = np.ascontiguousarray(levels.permute(1, 2, 0).numpy(), dtype=np.uint8 if bit_depth == 8 else np.uint16)
    _remove_stale_temporaries(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _encode(temporary, array[..., 0] if mode == "L" else array, image_format, metadata or ImageMetadata())
        if exclusive:
            _link_exclusively(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _link_exclusively(source: Path, target: Path) -> None:
    """Give ``source`` the name ``target`` only if nothing has that name: creating a hard link succeeds or fails
    (FileExistsError) in one step. Where the file system has no hard links, checking and renaming are two steps."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system (some network and FAT ones)
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from None
        os.replace(source, target)


def _remove_stale_temporaries(path: Path) -> None:
    """Remove ``.<name>.<pid>.tmp`` files beside ``path`` whose writing process no longer runs (a kill mid-write)."""
    for temporary in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = temporary.name[len(path.name) + 2 : -len(".tmp")]
        if pid.isdigit() and not _process_runs(int(pid)):
            temporary.unlink(missing_ok=True)


def _process_runs(pid: int) -> bool:
    """Whether a process of this id exists (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # running but not ours to signal, or an id that cannot be checked: keep its file
        pass
    return True
