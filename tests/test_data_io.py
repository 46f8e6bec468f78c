"""flowdeblur.data.io: every bit depth and mode reads exactly into [0, 1]; writes are exact and atomic."""


import warnings

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image, ImageCms, ImageOps

from flowdeblur.data import DatasetError, decode_image, probe_image, read_image, read_image_with_info, write_image
from flowdeblur.data import io as image_io
from flowdeblur.data.metadata import ImageMetadata
from tests.data_fixtures import claimed_size_png, corrupt, pattern, save


def as_array(image: torch.Tensor, scale: int) -> np.ndarray:
    """A (C, H, W) tensor in [0, 1] back to integer levels, (H, W, C)."""
    return (image.permute(1, 2, 0).double() * scale).round().long().numpy()


@pytest.mark.parametrize(
    ("suffix", "channels", "dtype"),
    [
        (".png", 1, np.uint8),
        (".png", 3, np.uint8),
        (".png", 1, np.uint16),
        (".tif", 1, np.uint16),
        (".bmp", 3, np.uint8),
    ],
)
def test_lossless_files_read_exactly(tmp_path, suffix, channels, dtype):
    array = pattern(3, 7, 9, channels, dtype)
    image, info = read_image_with_info(save(tmp_path / f"x{suffix}", array))
    assert image.dtype == torch.float32 and image.shape == (channels, 7, 9)
    assert info.bit_depth == (16 if dtype == np.uint16 else 8) and info.channels == channels
    expected = array if channels == 3 else array[..., None]
    np.testing.assert_array_equal(as_array(image, np.iinfo(dtype).max), expected)


def test_rgba_drops_alpha_and_says_so(tmp_path):
    array = pattern(1, 5, 6, 4)
    image, info = read_image_with_info(save(tmp_path / "rgba.png", array))
    assert info.has_alpha and info.channels == 3 and info.mode == "RGBA"
    np.testing.assert_array_equal(as_array(image, 255), array[..., :3])


def test_palette_and_jpeg_become_rgb(tmp_path):
    palette = Image.fromarray(pattern(2, 8, 8)).convert("P")
    palette.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (3, 8, 8)
    jpeg = read_image(save(tmp_path / "x.jpg", pattern(2, 16, 16)))
    assert jpeg.shape == (3, 16, 16) and jpeg.min() >= 0 and jpeg.max() <= 1


def test_16_bit_rgb_png_keeps_all_16_bits(tmp_path):
    array = pattern(5, 6, 7, 3, np.uint16)
    path = tmp_path / "rgb16.png"
    with path.open("wb") as file:
        png.Writer(7, 6, bitdepth=16, greyscale=False).write(file, array.reshape(6, -1))
    image, info = read_image_with_info(path)
    assert info.bit_depth == 16 and info.channels == 3
    np.testing.assert_array_equal(as_array(image, 65535), array)


def test_16_bit_rgb_tiff_keeps_all_16_bits(tmp_path):
    array = pattern(6, 6, 7, 3, np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", array, photometric="rgb", compression="zlib")
    np.testing.assert_array_equal(as_array(read_image(tmp_path / "rgb16.tif"), 65535), array)


def test_16_bit_planar_rgb_tiff_keeps_its_16_bits_and_its_layout(tmp_path):
    """Pillow reports a planar ("separate") 16-bit RGB TIFF as 8-bit RGB; read as such it came out in stripes."""
    array = pattern(7, 6, 7, 3, np.uint16)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(array, -1, 0), photometric="rgb", planarconfig="separate")
    image, info = read_image_with_info(tmp_path / "planar.tif")
    assert info.bit_depth == 16 and info.channels == 3
    np.testing.assert_array_equal(as_array(image, 65535), array)


@pytest.mark.parametrize("kind", ["tiff pages", "gif animation"])
def test_a_file_of_several_frames_is_refused_by_name(tmp_path, kind):
    frames = [Image.fromarray(pattern(seed, 8, 9)) for seed in range(3)]
    path = tmp_path / ("pages.tif" if kind == "tiff pages" else "moving.gif")
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(DatasetError, match=rf"{path.name}: holds 3 frames .*file of its own"):
        read_image(path)


def test_a_single_frame_gif_is_read(tmp_path):
    array = pattern(8, 6, 7)
    Image.fromarray(array).convert("P").save(tmp_path / "still.gif")
    assert read_image(tmp_path / "still.gif").shape == (3, 6, 7)


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(pattern(0, 10, 20)).save(tmp_path / "turned.jpg", exif=exif)
    assert read_image(tmp_path / "turned.jpg").shape == (3, 20, 10)


def test_probe_reads_the_header(tmp_path):
    info = probe_image(save(tmp_path / "x.png", pattern(0, 11, 13, 1, np.uint16)))
    assert (info.width, info.height, info.channels, info.bit_depth) == (13, 11, 1, 16)


def test_unreadable_file_and_bytes_name_the_culprit(tmp_path):
    path = corrupt(tmp_path / "broken.png")
    with pytest.raises(DatasetError, match=r"broken\.png.*cannot be read as an image.*docs/datasets\.md"):
        read_image(path)
    with pytest.raises(DatasetError, match="key-42"):
        decode_image(b"\x00\x01", "key-42")


@pytest.mark.parametrize(
    ("suffix", "bits", "channels"), [(".png", 8, 3), (".png", 16, 3), (".png", 16, 1), (".tif", 16, 3)]
)
def test_write_then_read_is_exact(tmp_path, suffix, bits, channels):
    scale = 2**bits - 1
    levels = torch.from_numpy(pattern(9, 5, 8, channels, np.uint16 if bits == 16 else np.uint8).astype(np.int64))
    image = (levels if channels == 1 else levels.permute(2, 0, 1)).reshape(channels, 5, 8).double() / scale
    path = write_image(tmp_path / f"out{suffix}", image, bit_depth=bits)
    back, info = read_image_with_info(path)
    assert info.bit_depth == bits
    torch.testing.assert_close(back.double(), image, atol=0.1 / scale, rtol=0)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_rgb_write_of_a_channels_first_tensor(tmp_path, suffix):
    image = torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(0))
    back = read_image(write_image(tmp_path / f"out{suffix}", image, bit_depth=16))
    torch.testing.assert_close(back, image, atol=0.6 / 65535, rtol=0)


def test_write_gray_as_rgb_and_refuse_impossible_requests(tmp_path):
    gray = torch.rand(1, 4, 4)
    back = read_image(write_image(tmp_path / "g.png", gray, mode="RGB"))
    assert back.shape == (3, 4, 4) and torch.equal(back[0], back[2])
    with pytest.raises(ValueError, match="bit_depth 16"):
        write_image(tmp_path / "x.jpg", gray, bit_depth=16)
    with pytest.raises(ValueError, match="suffix"):
        write_image(tmp_path / "x.xyz", gray)
    with pytest.raises(ValueError, match="mode 'L'"):
        write_image(tmp_path / "x.png", torch.rand(3, 4, 4), mode="L")
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = write_image(tmp_path / "keep.png", torch.zeros(1, 4, 4))
    before = target.read_bytes()

    def half_written(path, array, image_format, metadata):
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(image_io, "_encode", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, torch.ones(1, 4, 4))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


@pytest.mark.parametrize(
    ("suffix", "bits", "channels"),
    [(".png", 8, 2), (".png", 8, 4), (".png", 16, 2), (".png", 16, 4), (".tif", 16, 4)],
)
def test_alpha_round_trips_when_asked_for(tmp_path, suffix, bits, channels):
    scale = 255 if bits == 8 else 65535
    levels = torch.from_numpy(pattern(3, 6, 9, channels, np.uint16 if bits == 16 else np.uint8).astype(np.int64))
    image = levels.permute(2, 0, 1).double().div(scale).float()
    path = write_image(tmp_path / f"alpha{suffix}", image, bit_depth=bits)
    back, info = read_image_with_info(path, keep_alpha=True)
    assert info.has_alpha and info.bit_depth == bits
    torch.testing.assert_close(back.double().mul(scale).round(), levels.permute(2, 0, 1).double())
    assert read_image(path).shape[0] == channels - 1


def test_alpha_is_refused_for_formats_without_it(tmp_path):
    with pytest.raises(ValueError, match="JPEG cannot hold an alpha channel"):
        write_image(tmp_path / "x.jpg", torch.rand(4, 4, 4))
    with pytest.raises(ValueError, match="16-bit gray\\+alpha TIFF could not be read back"):
        write_image(tmp_path / "x.tif", torch.rand(2, 4, 4), bit_depth=16)


def test_an_image_claiming_too_many_pixels_is_refused_from_its_header(tmp_path, monkeypatch):
    bomb = claimed_size_png(tmp_path / "bomb.png", 60000, 60000)
    assert bomb.stat().st_size < 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither Pillow's DecompressionBombWarning nor its error
        for read in (probe_image, read_image, lambda path: decode_image(path.read_bytes(), str(path))):
            with pytest.raises(DatasetError, match=r"bomb\.png: its header claims 60000x60000 = 3,600,000,000 pixels"):
                read(bomb)
    photo = save(tmp_path / "photo.png", pattern(0, 20, 30))
    monkeypatch.setenv(image_io.MAX_PIXELS_VARIABLE, "599")
    with pytest.raises(DatasetError, match="30x20 = 600 pixels, more than the limit of 599"):
        read_image(photo)
    with image_io.pixel_limit(600):
        assert read_image(photo).shape == (3, 20, 30)
    monkeypatch.setenv(image_io.MAX_PIXELS_VARIABLE, "lots")
    with pytest.raises(DatasetError, match="FLOWDEBLUR_MAX_PIXELS='lots' is not a positive whole number"):
        read_image(photo)


def exif_with(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    return exif


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_on_reading_and_reset_in_what_is_kept(tmp_path, orientation):
    array = pattern(orientation, 5, 7)
    Image.fromarray(array).save(tmp_path / "x.png", exif=exif_with(orientation))
    image, info = read_image_with_info(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened))
    np.testing.assert_array_equal(as_array(image, 255), expected)
    assert (info.height, info.width) == expected.shape[:2]
    kept = Image.Exif()
    kept.load(info.metadata.exif)
    assert kept[0x0112] == 1 and kept[0x010F] == "TestCam"


@pytest.mark.parametrize(("suffix", "bit_depth"), [(".png", 8), (".png", 16), (".tif", 16), (".jpg", 8)])
def test_icc_profile_and_exif_are_written_and_read_back(tmp_path, suffix, bit_depth):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    metadata = ImageMetadata(icc, exif_with(1).tobytes())
    path = write_image(tmp_path / f"x{suffix}", torch.rand(3, 6, 8), bit_depth=bit_depth, metadata=metadata)
    image, info = read_image_with_info(path)
    assert image.shape == (3, 6, 8) and info.bit_depth == bit_depth and info.metadata.icc_profile == icc
    if suffix != ".tif":  # 16-bit colour TIFF keeps the ICC profile only
        kept = Image.Exif()
        kept.load(info.metadata.exif)
        assert kept[0x010F] == "TestCam"
