"""The built-in set: offline, deterministic, and no test pixel inside any training crop."""

import socket

import numpy as np
import pytest
import torch
from PIL import Image

from flowdeblur.data import DatasetError, build_dataset
from flowdeblur.data import builtin as builtin_module


def boxes_of(dataset) -> list[tuple[str, int, int]]:
    """(source image, top, left) of every item, parsed back from the item names."""
    boxes = []
    for name in dataset.names:
        image, top, left = name.rsplit("_", 2)
        boxes.append((image, int(top[1:]), int(left[1:])))
    return boxes


def test_builds_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    builtin_module.source_images.cache_clear()
    sizes = {split: len(build_dataset("builtin", split=split)) for split in ("train", "val", "test")}
    assert sizes["train"] >= 300 and 20 <= sizes["val"] <= 60 and 20 <= sizes["test"] <= 60
    item = build_dataset("builtin", split="test")[0]
    assert item["blurry"].shape == item["sharp"].shape == (1, 128, 128)


def test_test_and_val_crops_never_overlap_training_crops():
    size = 128
    train = boxes_of(build_dataset("builtin", split="train"))
    held_out = boxes_of(build_dataset("builtin", split="test")) + boxes_of(build_dataset("builtin", split="val"))
    assert len(set(held_out)) == len(held_out)
    for image, top, left in held_out:
        for other, train_top, train_left in train:
            overlaps = abs(top - train_top) < size and abs(left - train_left) < size
            assert not (other == image and overlaps), (image, top, left, train_top, train_left)


def test_deterministic_items_and_seeded_splits():
    first, again = build_dataset("builtin", split="val"), build_dataset("builtin", split="val")
    assert first.names == again.names
    assert torch.equal(first[3]["blurry"], again[3]["blurry"]) and torch.equal(first[3]["sharp"], again[3]["sharp"])
    assert build_dataset("builtin", split="val", seed=1).names != first.names


def test_crops_are_blurred_8_bit_and_come_in_rgb_too():
    item = build_dataset("builtin", split="train", color="rgb", crop_size=64)[0]
    assert item["blurry"].shape == (3, 64, 64)
    assert torch.equal(item["blurry"] * 255, (item["blurry"] * 255).round())
    assert 0 < (item["blurry"] - item["sharp"]).abs().mean() < 0.1


@pytest.mark.parametrize("patch_size", [15, 8, 4096])
def test_impossible_patch_sizes_are_refused(patch_size):
    with pytest.raises(ValueError, match="patch_size"):
        build_dataset("builtin", split="test", patch_size=patch_size)


def write_photos(folder, sizes=((200, 300), (160, 256))) -> list:
    """Seeded random RGB photographs (textured, so no cell is flat) as PNGs in ``folder``."""
    folder.mkdir(exist_ok=True)
    generator = np.random.default_rng(0)
    paths = []
    for number, (height, width) in enumerate(sizes):
        path = folder / f"photo{number}.png"
        Image.fromarray(generator.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_a_folder_of_photos_adds_its_cells_and_leaves_the_built_in_items_as_they_were(tmp_path):
    paths = write_photos(tmp_path / "photos")
    (tmp_path / "photos" / "notes.txt").write_text("not a photo")

    def cells(split: str, **options):
        return build_dataset("builtin", split=split, patch_size=32, crop_size=32, **options)

    beside = {split: cells(split, photos=str(tmp_path / "photos")) for split in ("train", "val", "test")}
    for split, dataset in beside.items():
        alone = cells(split)
        assert dataset.names[: len(alone)] == alone.names and len(dataset) > len(alone)
        for index in (0, len(alone) - 1):  # the same crop, blurred the same way
            assert torch.equal(alone[index]["blurry"], dataset[index]["blurry"])
        assert all(name.startswith(("photo0.png_", "photo1.png_")) for name in dataset.names[len(alone):])
    train = boxes_of(beside["train"])
    for image, top, left in boxes_of(beside["val"]) + boxes_of(beside["test"]):
        if image.startswith("photo"):
            assert not any(other == image and abs(top - t) < 32 and abs(left - u) < 32 for other, t, u in train)
    sharp = cells("test", photos=str(tmp_path / "photos"), blur=None, color="rgb")
    index = next(i for i, name in enumerate(sharp.names) if name.startswith("photo1.png_"))
    _, top, left = boxes_of(sharp)[index]
    expected = np.array(Image.open(paths[1]))[top : top + 32, left : left + 32]
    assert torch.equal((sharp[index]["sharp"] * 255).round().byte().permute(1, 2, 0), torch.from_numpy(expected))


def test_a_photos_option_that_leads_to_no_photographs_is_one_error_naming_the_folder(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        build_dataset("builtin", split="train", photos=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("")
    with pytest.raises(DatasetError, match=r"empty: found no photographs; it holds readme\.txt"):
        build_dataset("builtin", split="train", photos=str(tmp_path / "empty"))
