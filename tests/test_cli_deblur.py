"""``flowdeblur deblur``: sizes, bit depths and modes kept, tiling, overwrite rules, bad inputs, usage errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageCms

import flowdeblur.model_format
from flowdeblur.cli import main
from flowdeblur.color import rgb_to_ycbcr
from flowdeblur.data import read_image, read_image_with_info, write_image
from flowdeblur.inference import available_devices
from tests.cli_helpers import run_command, save_tiny_model
from tests.data_fixtures import claimed_size_png, pattern, save


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def smooth(seed, height, width, channels, dtype=np.uint8):
    """A random image blurred a little, so that 8-bit rounding does not dominate what the model changes."""
    noise = pattern(seed, height, width, channels, dtype).astype(np.float64)
    kernel = np.ones(5) / 5
    for axis in (0, 1):
        noise = np.apply_along_axis(lambda line: np.convolve(line, kernel, mode="same"), axis, noise)
    return noise.round().astype(dtype)


def deblur(*args):
    return CliRunner().invoke(main, ["deblur", *map(str, args), "--no-progress"])


@pytest.mark.parametrize(
    ("suffix", "channels", "dtype", "mode"),
    [(".png", 1, np.uint8, "L"), (".png", 3, np.uint8, "RGB"), (".png", 1, np.uint16, "I;16"),
     (".tif", 3, np.uint16, "RGB"), (".jpg", 3, np.uint8, "RGB")],
)
def test_output_keeps_size_bit_depth_and_mode(tmp_path, model_dir, suffix, channels, dtype, mode):
    source = save(tmp_path / f"photo{suffix}", smooth(0, 37, 53, channels, dtype))
    result = deblur(source, "-o", tmp_path / "out", "--model", model_dir)
    assert result.exit_code == 0, result.output
    before, before_info = read_image_with_info(source)
    after, info = read_image_with_info(tmp_path / "out" / "photo.png")
    assert (info.width, info.height, info.channels) == (53, 37, channels)
    assert info.bit_depth == np.iinfo(dtype).bits and info.mode in (mode, "I")
    assert 0 < (after - before).abs().mean() < 0.1
    assert "deblurred 1 image(s)" in result.stdout


def test_a_16_bit_planar_tiff_comes_out_16_bit_without_stripes(tmp_path, model_dir):
    import tifffile

    array = smooth(15, 37, 53, 3, np.uint16)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(array, -1, 0), photometric="rgb", planarconfig="separate")
    tifffile.imwrite(tmp_path / "contiguous.tif", array, photometric="rgb")
    result = deblur(tmp_path / "planar.tif", tmp_path / "contiguous.tif", "-o", tmp_path / "out", "--model", model_dir)
    assert result.exit_code == 0, result.output
    planar, info = read_image_with_info(tmp_path / "out" / "planar.png")
    assert info.bit_depth == 16 and info.channels == 3
    assert torch.equal(planar, read_image(tmp_path / "out" / "contiguous.png"))


def test_in_a_folder_a_still_gif_is_deblurred_and_an_animated_one_refused_by_name(tmp_path, model_dir):
    frames = [Image.fromarray(smooth(seed, 20, 24, 3)) for seed in range(2)]
    (tmp_path / "in").mkdir()
    frames[0].save(tmp_path / "in" / "still.gif")
    frames[0].save(tmp_path / "in" / "moving.gif", save_all=True, append_images=frames[1:])
    result = deblur(tmp_path / "in", "-o", tmp_path / "out", "--model", model_dir)
    assert result.exit_code == 1
    assert (tmp_path / "out" / "still.png").is_file() and not (tmp_path / "out" / "moving.png").exists()
    assert "moving.gif: holds 2 frames" in result.stderr


def test_rgba_keeps_its_alpha(tmp_path, model_dir):
    rgb = smooth(12, 30, 34, 3)
    alpha = pattern(13, 30, 34, 1)
    source = save(tmp_path / "logo.png", np.dstack([rgb, alpha]))
    assert deblur(source, "-o", tmp_path / "out", "--model", model_dir).exit_code == 0
    with Image.open(tmp_path / "out" / "logo.png") as written:
        assert written.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(written)[..., 3], alpha)


def test_16_bit_gray_with_alpha_stays_16_bit_gray_with_its_alpha(tmp_path, model_dir):
    gray, alpha = smooth(19, 30, 34, 1, np.uint16), pattern(20, 30, 34, 1, np.uint16)
    image = torch.from_numpy(np.stack([gray, alpha]).astype(np.float64) / 65535).float()
    source = write_image(tmp_path / "scan.png", image, bit_depth=16)
    assert deblur(source, "-o", tmp_path / "out", "--model", model_dir).exit_code == 0
    written, info = read_image_with_info(tmp_path / "out" / "scan.png", keep_alpha=True)
    assert written.shape == (2, 30, 34) and info.bit_depth == 16 and info.channels == 1 and info.has_alpha
    np.testing.assert_array_equal((written[1].double() * 65535).round().numpy(), alpha)
    assert 0 < (written[0] - image[0]).abs().mean() < 0.1


def test_the_icc_profile_and_exif_are_kept_and_the_orientation_applied(tmp_path, model_dir):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to view
    exif[0x010F] = "TestCam"
    exif.get_ifd(0x8769)[0x9003] = "2026:01:02 03:04:05"
    stored = np.repeat(np.linspace(0, 255, 48)[None, :, None], 32, axis=0).repeat(3, axis=2).round().astype(np.uint8)
    Image.fromarray(stored).save(tmp_path / "photo.jpg", icc_profile=icc, exif=exif, quality=98)
    assert deblur(tmp_path / "photo.jpg", "-o", tmp_path / "out", "--model", model_dir).exit_code == 0
    with Image.open(tmp_path / "out" / "photo.png") as written:
        assert written.size == (32, 48) and written.info["icc_profile"] == icc
        kept = written.getexif()
        assert kept[0x0112] == 1 and kept[0x010F] == "TestCam" and kept.get_ifd(0x8769)[0x9003] == "2026:01:02 03:04:05"
        pixels = np.asarray(written, dtype=float)
    upright, upside_down = (np.abs(pixels - np.rot90(stored, turns)).mean() for turns in (-1, 1))
    assert upright < upside_down / 4


def test_a_y_model_keeps_the_colours_of_an_rgb_photo(tmp_path, model_dir):
    source = save(tmp_path / "photo.png", smooth(1, 40, 48, 3))
    assert deblur(source, "-o", tmp_path / "out", "--model", model_dir).exit_code == 0
    before, after = rgb_to_ycbcr(read_image(source)), rgb_to_ycbcr(read_image(tmp_path / "out" / "photo.png"))
    assert (after[0] - before[0]).abs().mean() > 1 / 255  # luma deblurred
    assert (after[1:] - before[1:]).abs().mean() < 1 / 255  # chroma kept (up to rounding and clipping)


def test_an_image_larger_than_the_tile_matches_the_untiled_result(tmp_path, model_dir):
    source = save(tmp_path / "large.png", smooth(2, 150, 210, 3))
    whole = deblur(source, "-o", tmp_path / "whole", "--model", model_dir, "--tile", "512")
    tiled = deblur(source, "-o", tmp_path / "tiled", "--model", model_dir, "--tile", "64", "--tile-overlap", "24",
                   "--batch-size", "3")
    assert whole.exit_code == tiled.exit_code == 0
    difference = (read_image(tmp_path / "tiled" / "large.png") - read_image(tmp_path / "whole" / "large.png")).abs()
    assert difference.max() <= 4 / 255 and difference.mean() < 0.5 / 255


def test_folders_are_searched_and_existing_outputs_kept_unless_overwrite(tmp_path, model_dir):
    folder = tmp_path / "shots"
    save(folder / "a.png", smooth(3, 24, 24, 3))
    save(folder / "nested" / "b.png", smooth(4, 24, 24, 1))
    (folder / "notes.txt").write_text("not an image, and not an image suffix: ignored")
    out = tmp_path / "out"
    assert deblur(folder, "-o", out, "--model", model_dir).exit_code == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "nested/b.png"]
    (out / "a.png").write_bytes(b"sentinel")
    again = deblur(folder, "-o", out, "--model", model_dir)
    assert again.exit_code == 0 and (out / "a.png").read_bytes() == b"sentinel"
    assert "skipped" in again.stderr and "--overwrite" in again.stderr
    assert deblur(folder, "-o", out, "--model", model_dir, "--overwrite").exit_code == 0
    assert read_image(out / "a.png").shape == (3, 24, 24)


def test_an_output_never_replaces_an_input_even_with_overwrite(tmp_path, model_dir):
    """``deblur photos/a.jpg photos/a.png -o photos --overwrite``: a.jpg's output would be photos/a.png, an input."""
    photos = tmp_path / "photos"
    jpeg, png = save(photos / "a.jpg", smooth(6, 20, 20, 3)), save(photos / "a.png", smooth(7, 20, 20, 3))
    before = png.read_bytes()
    result = deblur(jpeg, png, "-o", photos, "--model", model_dir, "--overwrite")
    assert result.exit_code == 1 and png.read_bytes() == before
    assert f"its output {png} would replace the input {png}" in result.stderr
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg", "a.png"]


def test_a_file_given_before_a_folder_is_still_an_input_that_no_output_replaces(tmp_path, model_dir):
    """``deblur x/a.png y/ -o x --overwrite``: x/a.png's own output is x/a.png; the folder after it must not hide it."""
    own = save(tmp_path / "x" / "a.png", smooth(8, 20, 20, 3))
    save(tmp_path / "y" / "b.png", smooth(9, 20, 20, 3))
    before = own.read_bytes()
    result = deblur(own, tmp_path / "y", "-o", tmp_path / "x", "--model", model_dir, "--overwrite")
    assert result.exit_code == 1 and own.read_bytes() == before
    assert (tmp_path / "x" / "b.png").is_file() and "would replace the input" in result.stderr


def test_bad_inputs_are_named_and_the_rest_still_processed(tmp_path, model_dir):
    good = save(tmp_path / "good.png", smooth(5, 20, 20, 3))
    text = tmp_path / "text.png"
    text.write_text("this is not a PNG")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = deblur(tmp_path / "missing.png", text, empty, good, "-o", tmp_path / "out", "--model", model_dir)
    assert result.exit_code == 1
    assert (tmp_path / "out" / "good.png").is_file()
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failures) == 3
    for name in ("missing.png", "text.png", "empty"):
        assert any(name in line for line in failures), (name, failures)
    assert "1 image(s)" in result.stdout and "3 failed" in result.stdout


def test_images_over_the_pixel_limit_are_refused_one_line_each_and_the_rest_deblurred(tmp_path, model_dir):
    claimed_size_png(tmp_path / "in" / "a_bomb.png", 60000, 60000)
    claimed_size_png(tmp_path / "in" / "b_bomb.png", 12000, 12000)
    save(tmp_path / "in" / "c_photo.png", smooth(14, 20, 30, 3))
    result = deblur(tmp_path / "in", "-o", tmp_path / "out", "--model", model_dir)
    assert result.exit_code == 1
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["c_photo.png"]
    failures = result.stderr.splitlines()
    assert len(failures) == 2 and "Traceback" not in result.output
    assert "a_bomb.png: its header claims 60000x60000" in failures[0] and "--max-pixels" in failures[0]
    assert "b_bomb.png: its header claims 12000x12000" in failures[1]
    small = deblur(tmp_path / "in" / "c_photo.png", "-o", tmp_path / "small", "--model", model_dir, "--max-pixels", 599)
    assert small.exit_code == 1 and "30x20 = 600 pixels, more than the limit of 599" in small.stderr
    assert not (tmp_path / "small" / "c_photo.png").exists()


def test_an_output_folder_inside_the_input_folder_is_not_read_as_input(tmp_path, model_dir):
    save(tmp_path / "nest" / "a.png", smooth(15, 20, 20, 3))
    out = tmp_path / "nest" / "out"
    assert deblur(tmp_path / "nest", "-o", out, "--model", model_dir).exit_code == 0
    first = (out / "a.png").read_bytes()
    again = deblur(tmp_path / "nest", "-o", out, "--model", model_dir)
    assert again.exit_code == 0 and "1 skipped" in again.stdout
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["a.png"]
    assert (out / "a.png").read_bytes() == first


@pytest.mark.parametrize("case", ["input folder", "under a file", "link loop", "inside a link loop", "image name"])
def test_an_output_folder_that_cannot_take_the_outputs_is_refused_before_any_work(tmp_path, model_dir, case):
    original = save(tmp_path / "same" / "a.png", smooth(16, 20, 20, 3)).read_bytes()
    (tmp_path / "notes.txt").write_text("a file")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    output, expected = {
        "input folder": (tmp_path / "same", "same is the input folder itself"),
        "under a file": (tmp_path / "notes.txt" / "out", "notes.txt is a file, not a folder"),
        "link loop": (tmp_path / "loop", "loop is a symbolic link that leads nowhere"),
        "inside a link loop": (tmp_path / "loop" / "out", "loop is a symbolic link that leads nowhere"),
        "image name": (tmp_path / "out.PNG", "out.PNG is named like an image file, but the outputs go into a folder"),
    }[case]
    result = deblur(tmp_path / "same", "-o", output, "--model", tmp_path / "no-model-needed")
    assert not (tmp_path / "out.PNG").exists()
    assert result.exit_code == 2 and expected in result.stderr and "'-o' / '--output'" in result.stderr
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["a.png"]
    assert (tmp_path / "same" / "a.png").read_bytes() == original
    assert (tmp_path / "notes.txt").read_text() == "a file"


def test_an_existing_folder_named_like_an_image_takes_the_outputs(tmp_path, model_dir):
    image = save(tmp_path / "a.png", smooth(6, 20, 20, 3))
    (tmp_path / "shots.png").mkdir()
    result = deblur(image, "-o", tmp_path / "shots.png", "--model", model_dir)
    assert result.exit_code == 0 and (tmp_path / "shots.png" / "a.png").is_file()


def test_two_inputs_writing_the_same_output_are_refused_with_a_way_out(tmp_path, model_dir):
    first = save(tmp_path / "a" / "x.png", smooth(6, 20, 20, 3))
    second = save(tmp_path / "b" / "x.jpg", smooth(7, 20, 20, 3))
    result = deblur(first, second, "-o", tmp_path / "out", "--model", model_dir)
    assert result.exit_code == 1 and "already writes" in result.stderr and "another -o folder" in result.stderr


def test_a_file_given_twice_is_deblurred_once_without_suggesting_overwrite(tmp_path, model_dir):
    image = save(tmp_path / "a.png", smooth(6, 20, 20, 3))
    result = deblur(image, tmp_path / ".." / tmp_path.name / "a.png", "-o", tmp_path / "out", "--model", model_dir)
    assert result.exit_code == 0, result.output
    assert "given more than once; deblurred once" in result.stderr and "--overwrite" not in result.stderr
    assert "deblurred 1 image(s)" in result.stdout and (tmp_path / "out" / "a.png").is_file()


def test_a_link_loop_at_an_output_name_or_among_the_inputs_fails_only_that_file(tmp_path, model_dir):
    save(tmp_path / "in" / "a.png", smooth(6, 20, 20, 3))
    save(tmp_path / "in" / "b.png", smooth(7, 20, 20, 3))
    (tmp_path / "in" / "c.png").symlink_to(tmp_path / "in" / "c.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").symlink_to(tmp_path / "out" / "a.png")
    result = deblur(tmp_path / "in", "-o", tmp_path / "out", "--model", model_dir)
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'in' / 'c.png'}: a symbolic link that leads nowhere" in result.stderr
    assert "a.png exists (pass --overwrite to replace it)" in result.stderr
    assert (tmp_path / "out" / "b.png").is_file() and (tmp_path / "out" / "a.png").is_symlink()
    assert "1 image(s)" in result.stdout and "1 skipped, 1 failed" in result.stdout


@pytest.mark.parametrize(
    "options",
    [["--tile", "64", "--tile-overlap", "32"], ["--batch-size", "0"], ["--tile", "8"], ["--device", "nonsense"]],
)
def test_bad_option_values_are_usage_errors(tmp_path, model_dir, options):
    source = save(tmp_path / "a.png", smooth(8, 20, 20, 3))
    result = deblur(source, "-o", tmp_path / "out", "--model", model_dir, *options)
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("device", ["mps", "cuda:7"])
def test_a_device_this_machine_lacks_is_one_line_before_any_work(tmp_path, model_dir, device):
    if device in available_devices():
        pytest.skip(f"this machine has {device}")
    source = save(tmp_path / "a.png", smooth(17, 20, 20, 3))
    result = deblur(source, "-o", tmp_path / "out", "--model", model_dir, "--device", device)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"device {device!r} is not available on this machine; it has cpu" in result.stderr
    assert not (tmp_path / "out").exists()


def test_no_model_and_no_shipped_model_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(flowdeblur.model_format, "shipped_directory", lambda name: tmp_path / "not-installed")
    source = save(tmp_path / "a.png", smooth(9, 20, 20, 3))
    result = deblur(source, "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "shipped model 'general' is not installed" in result.stderr and "--model" in result.stderr


@pytest.mark.parametrize("name", ["general", "gauss3"])
def test_model_takes_a_shipped_name_or_a_directory(tmp_path, model_dir, name, monkeypatch):
    from flowdeblur.model_format import locate_model
    from flowdeblur.pretrained import SHIPPED_MODELS, shipped_directory

    assert locate_model(name) == shipped_directory(name) and locate_model(None) == shipped_directory("general")
    assert locate_model(str(model_dir)) == model_dir
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()
    assert locate_model(name) == Path(name)  # a directory of that name wins
    assert set(SHIPPED_MODELS) == {"general", "gauss3"}
    missing = deblur(save(tmp_path / "a.png", smooth(9, 20, 20, 3)), "-o", tmp_path / "out", "--model", "nope")
    assert missing.exit_code == 1 and "nor a shipped model (general, gauss3)" in missing.stderr


def test_choosing_gauss3_by_name_says_what_it_is_for(tmp_path):
    source = save(tmp_path / "a.png", smooth(9, 24, 24, 3))
    chosen = deblur(source, "-o", tmp_path / "out", "--model", "gauss3")
    assert chosen.exit_code == 0 and "model gauss3: the paper's protocol only" in chosen.stderr
    assert "other blurs are not removed" in chosen.stderr
    assert "model general" not in deblur(source, "-o", tmp_path / "again", "--model", "general").stderr


def test_a_model_folder_that_is_not_a_model_is_reported(tmp_path):
    source = save(tmp_path / "a.png", smooth(10, 20, 20, 3))
    result = deblur(source, "-o", tmp_path / "out", "--model", tmp_path)
    assert result.exit_code == 1 and "config.json" in result.stderr


@pytest.mark.slow
def test_the_installed_command_deblurs_and_exits_non_zero_on_a_bad_input(tmp_path, model_dir):
    save(tmp_path / "in" / "photo.png", smooth(11, 30, 40, 3))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG truncated")
    process = run_command("deblur", "in", "-o", "out", "--model", str(model_dir), cwd=tmp_path)
    assert process.returncode == 1, process.stderr
    assert "broken.png" in process.stderr
    assert torch.equal(torch.tensor(read_image(tmp_path / "out" / "photo.png").shape), torch.tensor([3, 30, 40]))


@pytest.mark.parametrize(("options", "named"), [
    (["--max-memory", "inf"], "--max-memory"), (["--max-memory", "nan"], "--max-memory"),
    (["--threads", "100000"], "--threads"), (["--device", "cpu:3"], "--device"),
    (["--tile-overlap", "100000"], "--tile-overlap"), (["--tile", "10000000"], "--tile"),
])
def test_out_of_range_options_are_usage_errors_naming_the_option(tmp_path, model_dir, options, named):
    image = save(tmp_path / "in.png", smooth(8, 20, 20, 3))
    result = deblur(image, "-o", tmp_path / "out", "--model", model_dir, *options)
    assert result.exit_code == 2 and named in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_an_output_that_appears_during_the_run_is_kept_without_overwrite(tmp_path, model_dir, monkeypatch):
    """The existence check and the write are one step: a file created between them is never replaced."""
    import flowdeblur.inference as inference

    image, out = save(tmp_path / "in.png", smooth(9, 20, 20, 3)), tmp_path / "out"
    original = inference._read_and_deblur

    def deblur_while_another_writes(*args, **kwargs):
        out.mkdir(exist_ok=True)
        (out / "in.png").write_bytes(b"written by someone else")
        return original(*args, **kwargs)

    monkeypatch.setattr(inference, "_read_and_deblur", deblur_while_another_writes)
    result = deblur(image, "-o", out, "--model", model_dir)
    assert result.exit_code == 0 and "appeared while it was deblurred" in result.stderr
    assert (out / "in.png").read_bytes() == b"written by someone else"
    assert [p.name for p in out.iterdir()] == ["in.png"]  # no temporary file left


def test_temporary_files_of_a_killed_run_are_removed_by_the_next(tmp_path, model_dir):
    image, out = save(tmp_path / "in.png", smooth(10, 20, 20, 3)), tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale, live = out / f".in.png.{int(dead.stdout)}.tmp", out / ".in.png.1.tmp"  # process 1 always runs
    stale.write_bytes(b"half a PNG")
    live.write_bytes(b"another run, still writing")
    assert deblur(image, "-o", out, "--model", model_dir).exit_code == 0
    assert not stale.exists() and live.exists() and (out / "in.png").is_file()


def test_a_budget_that_fits_no_tile_beyond_the_overlap_fails_the_image_instead_of_overrunning(tmp_path, model_dir):
    image = save(tmp_path / "big.png", smooth(11, 1000, 800, 3))
    result = deblur(image, "-o", tmp_path / "out", "--model", model_dir, "--max-memory", "0.01",
                    "--tile-overlap", "1000")
    assert result.exit_code == 1 and "fits no tile" in result.stderr and "--tile-overlap" in result.stderr
    assert not (tmp_path / "out" / "big.png").exists()
