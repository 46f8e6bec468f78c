"""The built-in set: offline, deterministic, and no test pixel inside any training crop."""

import socket

import pytest
import torch

from flowdeblur.data import build_dataset
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
