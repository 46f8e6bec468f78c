"""The training data pipeline: files decoded when read, checked once, cached on disk, and loaders that keep workers."""

import os

import pytest
import torch

from flowdeblur.data import DatasetError, build_dataset, frames, paired, read_image
from flowdeblur.data.choices import FRAME_CACHE_VARIABLE
from flowdeblur.train.config import TrainConfig
from flowdeblur.train.loaders import training_loader, validation_loader
from tests.data_fixtures import make_paired, pattern, save, truncate


@pytest.fixture
def decodes(monkeypatch):
    """Every file decoded, in order: by the start-up scan (check_image) and by reads (read_array)."""
    seen = []

    def counting(function):
        def wrapper(path):
            seen.append(os.path.basename(path))
            return function(path)
        return wrapper

    monkeypatch.setattr(paired, "check_image", counting(paired.check_image))
    monkeypatch.setattr(frames, "read_array", counting(frames.read_array))
    return seen


def train_file(dataset, root, index=0):
    """The sharp file of a training item (the fixture's names are the same in blur/ and sharp/)."""
    return root / "sharp" / dataset.names[index]


def test_training_splits_decode_nothing_at_start_and_each_file_once(tmp_path, decodes):
    root = make_paired(tmp_path, count=20, size=(24, 28))
    train = build_dataset("paired", root, split="train", crop_size=8)
    build_dataset("paired", root, split="val", crop_size=8)
    assert decodes == []
    train[0]
    assert sorted(decodes) == [train.names[0]] * 2
    train.set_epoch(1)
    train[0]
    assert len(decodes) == 2  # the second read comes from the cache


def test_test_splits_still_decode_every_file_at_start(tmp_path, decodes):
    root = make_paired(tmp_path, count=10)
    build_dataset("paired", root, split="all", crop_size=None)
    assert len(decodes) == 20


def test_a_file_found_truncated_when_read_gives_the_scan_error_once(tmp_path, decodes):
    root = make_paired(tmp_path, count=10, size=(20, 24))
    train = build_dataset("paired", root, split="train", crop_size=8)
    truncate(train_file(train, root))  # the header still reads: only a decode finds it
    train = build_dataset("paired", root, split="train", crop_size=8)
    name = train.names[0]
    for _ in range(2):
        with pytest.raises(DatasetError, match=rf"1 unreadable images \(sharp/{name} \(cannot be decoded") as error:
            train[0]
        assert "skip_bad=True" in str(error.value) and "docs/datasets.md#paired-folders" in str(error.value)
    again = build_dataset("paired", root, split="train", crop_size=8)  # another process: learns it from the cache
    with pytest.raises(DatasetError, match="unreadable images"):
        again[0]
    assert decodes.count(name) == 2  # the blurry file and the truncated sharp one, each decoded once


def test_under_skip_bad_a_file_found_bad_is_warned_counted_and_replaced(tmp_path):
    root = make_paired(tmp_path, count=10, size=(20, 24))
    probe = build_dataset("paired", root, split="train", crop_size=8)
    truncate(train_file(probe, root, 2))
    train = build_dataset("paired", root, split="train", crop_size=8, skip_bad=True)
    assert "skipped" not in train.description or train.description["skipped"] == {}
    with pytest.warns(UserWarning, match=rf"skipped 1 unreadable images \(sharp/{train.names[2]}"):
        item = train[2]
    assert item["name"] == train.names[3]
    assert train.description["skipped"] == {"unreadable images": 1}
    assert [train[i]["name"] for i in (0, 1, 3)] == [train.names[i] for i in (0, 1, 3)]


def test_the_cache_is_written_atomically_reused_and_renewed_when_a_file_changes(tmp_path, frame_cache, decodes):
    for index in range(10):
        for folder in ("blur", "sharp"):
            save(tmp_path / folder / f"{index}.png", pattern(index, 20, 24))
    train = build_dataset("paired", tmp_path, split="train", color="rgb", crop_size=None, augment=False)
    train[0]
    assert sorted(p.suffix for p in frame_cache.iterdir()) == [".npy", ".npy"]  # no temporary left behind
    build_dataset("paired", tmp_path, split="train", color="rgb", crop_size=None, augment=False)[0]
    assert len(decodes) == 2
    sharp = tmp_path / "sharp" / train.names[0]
    save(sharp, pattern(99, 20, 24))
    os.utime(sharp, ns=(1, 1))
    after = build_dataset("paired", tmp_path, split="train", color="rgb", crop_size=None, augment=False)[0]
    assert len(decodes) == 3 and len(list(frame_cache.iterdir())) == 3
    assert torch.equal(after["sharp"], read_image(sharp))


def test_items_are_the_same_with_and_without_the_cache(tmp_path, monkeypatch):
    root = make_paired(tmp_path, count=20, size=(20, 24))  # 8- and 16-bit, gray, RGBA, JPEG, TIFF

    def items(crop_size, color):
        dataset = build_dataset("paired", root, split="train", color=color, crop_size=crop_size, seed=5)
        dataset.set_epoch(3)
        return [dataset[i] for i in range(len(dataset))]

    for crop_size, color in ((8, "y"), (12, "rgb"), (None, "rgb")):
        cached = items(crop_size, color)
        monkeypatch.setenv(FRAME_CACHE_VARIABLE, "off")
        direct = items(crop_size, color)
        monkeypatch.undo()
        for a, b in zip(cached, direct, strict=True):
            assert a["name"] == b["name"] and a["blurry"].dtype == torch.float32
            assert torch.equal(a["blurry"], b["blurry"]) and torch.equal(a["sharp"], b["sharp"])


def test_loaders_keep_their_workers_and_pin_memory_on_request(tmp_path):
    train = build_dataset("paired", make_paired(tmp_path, count=10), split="train", crop_size=8)
    config = TrainConfig(batch_size=2, crop_size=8, num_workers=1)
    loader = training_loader(train, config, pin_memory=True)
    assert loader.persistent_workers and loader.pin_memory and loader.num_workers == 1
    plain = validation_loader(train, TrainConfig(batch_size=2, crop_size=8, num_workers=0))
    assert not plain.persistent_workers and not plain.pin_memory
    assert 0 <= TrainConfig().num_workers <= 4
