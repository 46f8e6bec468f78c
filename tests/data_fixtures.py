"""Tiny dataset trees in the published layouts, written into a test's tmp_path."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import lmdb
import numpy as np
import tifffile
from PIL import Image

GOPRO_TRAIN = ("GOPR0372_07_00", "GOPR0374_11_00")
GOPRO_TEST = ("GOPR0384_11_00", "GOPR0385_11_01")
LAI_IMAGES = tuple(f"{kind}_{number:02d}" for kind in ("manmade", "natural") for number in range(1, 6))


def pattern(seed: int, height: int, width: int, channels: int = 3, dtype: type = np.uint8) -> np.ndarray:
    """A random image, (H, W) for one channel, different for every seed."""
    top = np.iinfo(dtype).max
    array = np.random.default_rng(seed).integers(0, top + 1, (height, width, channels), dtype=np.int64)
    return array.astype(dtype)[..., 0] if channels == 1 else array.astype(dtype)


def save(path: Path, array: np.ndarray) -> Path:
    """Write an array as an image file (format from the suffix), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".tif" and array.ndim == 3:
        tifffile.imwrite(path, array, photometric="rgb")
    else:
        Image.fromarray(array).save(path)
    return path


def make_paired(root: Path, count: int = 10, size: tuple[int, int] = (20, 24)) -> Path:
    """blur/ + sharp/ with the same image under the same name, in formats that cycle through every kind we read.

    Kinds: 8-bit RGB PNG, 16-bit gray PNG, RGBA PNG, JPEG, 16-bit RGB TIFF.
    """
    height, width = size
    kinds = [
        (".png", 3, np.uint8),
        (".png", 1, np.uint16),
        (".png", 4, np.uint8),
        (".jpg", 3, np.uint8),
        (".tif", 3, np.uint16),
    ]
    for index in range(count):
        suffix, channels, dtype = kinds[index % len(kinds)]
        array = pattern(index, height, width, channels, dtype)
        for folder in ("blur", "sharp"):
            save(root / folder / f"img_{index:03d}{suffix}", array)
    return root


def make_gopro(root: Path, frames: int = 3, size: tuple[int, int] = (36, 48)) -> Path:
    """GOPRO_Large/{train,test}/<sequence>/{blur,blur_gamma,sharp}/*.png; blur_gamma differs from blur."""
    height, width = size
    for pool, sequences in (("train", GOPRO_TRAIN), ("test", GOPRO_TEST)):
        for number, sequence in enumerate(sequences):
            for frame in range(frames):
                seed = 1000 * number + frame + (0 if pool == "train" else 500)
                folder = root / "GOPRO_Large" / pool / sequence
                save(folder / "sharp" / f"{frame:06d}.png", pattern(seed, height, width))
                save(folder / "blur" / f"{frame:06d}.png", pattern(seed + 10_000, height, width))
                save(folder / "blur_gamma" / f"{frame:06d}.png", pattern(seed + 20_000, height, width))
    return root / "GOPRO_Large"


def make_lai(root: Path, kernels: int = 2, real: int = 3, size: tuple[int, int] = (30, 40)) -> Path:
    """synthetic_dataset/{ground_truth,uniform,nonuniform,kernel} and real_dataset/ under ``root``."""
    height, width = size
    synthetic = root / "synthetic_dataset"
    for number, image in enumerate(LAI_IMAGES):
        save(synthetic / "ground_truth" / f"{image}.png", pattern(number, height, width))
        for kernel in range(1, kernels + 1):
            for subset in ("uniform", "nonuniform"):
                blurred = pattern(100 * number + kernel + (50 if subset == "nonuniform" else 0), height, width)
                save(synthetic / subset / f"{image}_kernel_{kernel:02d}.png", blurred)
    for kernel in range(1, kernels + 1):
        save(synthetic / "kernel" / f"kernel_{kernel:02d}.png", pattern(kernel, 9, 9, 1))
    for number in range(real):
        save(root / "real_dataset" / f"photo{number}.jpg", pattern(900 + number, height + number, width))
    return root


def make_celeba(root: Path, count: int = 12, partition: bool = True) -> Path:
    """img_align_celeba/*.jpg (178x218) and list_eval_partition.txt: the first 8 train, then val, then test."""
    names = [f"{index:06d}.jpg" for index in range(1, count + 1)]
    for index, name in enumerate(names):
        save(root / "img_align_celeba" / name, pattern(index, 218, 178))
    if partition:
        labels = [0 if i < count - 4 else 1 if i < count - 2 else 2 for i in range(count)]
        lines = [f"{name} {label}" for name, label in zip(names, labels, strict=True)]
        (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


def encode(array: np.ndarray, image_format: str) -> bytes:
    """An array as encoded image bytes (what LSUN's LMDB values are)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format)
    return buffer.getvalue()


def make_lsun_lmdb(folder: Path, count: int = 12, size: tuple[int, int] = (40, 52)) -> Path:
    """A real LMDB of encoded images under hex keys, like bedroom_train_lmdb/ (JPEG, with a WebP and a PNG)."""
    folder.mkdir(parents=True)
    formats = ["JPEG"] * (count - 2) + ["WEBP", "PNG"]
    with lmdb.open(str(folder), map_size=1 << 24) as env, env.begin(write=True) as txn:
        for index, image_format in enumerate(formats):
            key = f"{index * 7919:040x}".encode()
            txn.put(key, encode(pattern(index, *size), image_format))
    return folder


def corrupt(path: Path) -> Path:
    """Overwrite a file with bytes no image reader accepts."""
    path.write_bytes(b"this is not an image")
    return path


def truncate(path: Path) -> Path:
    """Cut a file to half its length: the header still reads, the pixels do not."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def claimed_size_png(path: Path, width: int, height: int) -> Path:
    """A tiny RGB PNG whose header claims ``width`` x ``height`` but that holds one row of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * (1 + 3 * width), 9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path
