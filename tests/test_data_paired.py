"""Paired folders: every format pairs by name, splits are disjoint, and every bad file is named or counted."""

import json

import numpy as np
import pytest
import torch

from flowdeblur.data import DatasetError, build_dataset
from flowdeblur.data.io import pixel_limit
from tests.data_fixtures import corrupt, make_paired, pattern, save, truncate


def names_of(dataset) -> set[str]:
    return set(dataset.names)


def test_pairs_match_by_name_in_every_format(tmp_path):
    root = make_paired(tmp_path, count=10)
    found = {}
    for split in ("train", "val", "test"):
        dataset = build_dataset("paired", root, split=split, color="rgb", crop_size=None)
        for i in range(len(dataset)):
            item = dataset[i]
            assert item["blurry"].shape == item["sharp"].shape == (3, 20, 24)
            assert item["blurry"].dtype == torch.float32 and 0 <= item["blurry"].min() <= item["blurry"].max() <= 1
            assert torch.equal(item["blurry"], item["sharp"])  # the fixture stores the same image under one name
            found[item["name"]] = split
    assert sorted(found) == sorted(p.name for p in (root / "blur").iterdir())
    assert sorted(found.values()).count("train") == 8


def test_16_bit_and_rgba_files_keep_their_precision(tmp_path):
    root = make_paired(tmp_path, count=10)
    dataset = build_dataset("paired", root, split="train", color="rgb", crop_size=None, augment=False)
    items = {dataset[i]["name"]: dataset[i] for i in range(len(dataset))}
    gray16 = next(item for name, item in items.items() if name.endswith(".png") and item["sharp"].std(0).max() == 0)
    levels = gray16["sharp"][0].double() * 65535
    assert torch.allclose(levels, levels.round(), atol=1e-2) and not torch.allclose(
        levels / 257, (levels / 257).round()
    )


def test_splits_are_disjoint_and_stable_across_builds(tmp_path):
    root = make_paired(tmp_path, count=30)
    splits = {s: names_of(build_dataset("paired", root, split=s, crop_size=None)) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [24, 3, 3]
    assert not (splits["train"] & splits["val"] or splits["train"] & splits["test"] or splits["val"] & splits["test"])
    assert names_of(build_dataset("paired", root, split="test", crop_size=None)) == splits["test"]


def test_unmatched_files_give_one_error_naming_them_all(tmp_path):
    root = make_paired(tmp_path, count=5)
    (root / "sharp" / "img_001.png").unlink()
    save(root / "sharp" / "orphan.png", pattern(0, 20, 24))
    with pytest.raises(DatasetError) as error:
        build_dataset("paired", root)
    message = str(error.value)
    assert "blur/img_001.png" in message and "sharp/orphan.png" in message
    assert "skip_bad=True" in message and "docs/datasets.md#paired-folders" in message


def test_unreadable_mismatched_and_foreign_files_are_named(tmp_path):
    root = make_paired(tmp_path, count=5)
    corrupt(root / "blur" / "img_000.png")
    save(root / "sharp" / "img_003.jpg", pattern(3, 10, 10))
    (root / "blur" / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError) as error:
        build_dataset("paired", root)
    message = str(error.value)
    assert "1 unreadable images (blur/img_000.png (cannot be read as an image" in message
    assert "1 pairs whose sizes differ (blur/img_003.jpg (24x20 vs 10x10))" in message
    assert "1 files that are not images (blur/notes.txt)" in message


def test_skip_bad_skips_counts_and_warns(tmp_path):
    root = make_paired(tmp_path, count=12)
    corrupt(root / "sharp" / "img_002.png")
    (root / "blur" / "img_008.jpg").unlink()
    with pytest.warns(UserWarning, match="skipped"):
        datasets = [build_dataset("paired", root, split=s, skip_bad=True) for s in ("train", "val", "test")]
    assert sum(len(d) for d in datasets) == 10
    skipped = datasets[0].description["skipped"]
    assert skipped == {"sharp images without a blurry image": 1, "unreadable images": 1}
    json.dumps(datasets[0].description)


def test_a_truncated_file_is_found_by_the_scan_not_halfway_through_training(tmp_path):
    root = make_paired(tmp_path, count=10)
    truncate(save(root / "sharp" / "img_005.png", pattern(5, 20, 24)))  # the header still reads fine
    with pytest.raises(DatasetError, match=r"1 unreadable images \(sharp/img_005\.png \(cannot be decoded"):
        build_dataset("paired", root, split="all")
    with pytest.warns(UserWarning, match="skipped 1 unreadable images"):
        dataset = build_dataset("paired", root, split="all", skip_bad=True, crop_size=None)
    assert len(dataset) == 9 and dataset.description["skipped"] == {"unreadable images": 1}
    assert all(dataset[index]["sharp"].shape[-2:] == (20, 24) for index in range(len(dataset)))


def test_the_all_split_takes_every_pair_of_a_flat_or_split_folder(tmp_path):
    flat = make_paired(tmp_path / "flat", count=7)
    everything = build_dataset("paired", flat, split="all", crop_size=None)
    assert sorted(everything.names) == sorted(p.name for p in (flat / "blur").iterdir())
    assert everything.description["split_sizes"] == {"all": 7} and not everything.description["augment"]
    make_paired(tmp_path / "split" / "train", count=5)
    make_paired(tmp_path / "split" / "test", count=2)
    names = build_dataset("paired", tmp_path / "split", split="all", crop_size=None).names
    assert len(names) == 7 and sum(name.startswith("test/") for name in names) == 2


def test_shipped_split_folders_are_used_and_val_is_carved_from_train(tmp_path):
    make_paired(tmp_path / "train", count=18)
    make_paired(tmp_path / "test", count=4)
    train, val, test = (build_dataset("paired", tmp_path, split=s, crop_size=None) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (16, 2, 4)
    assert not names_of(train) & names_of(val)
    assert "a seeded ninth" in val.description["split_rule"]


def test_scenes_in_sub_folders_stay_in_one_split(tmp_path):
    for scene in range(10):
        for frame in range(3):
            array = pattern(10 * scene + frame, 8, 8)
            for folder in ("blur", "sharp"):
                save(tmp_path / folder / f"scene{scene}" / f"{frame}.png", array)
    scenes = {}
    for split in ("train", "val", "test"):
        for name in names_of(build_dataset("paired", tmp_path, split=split, crop_size=None)):
            scenes.setdefault(name.split("/")[0], set()).add(split)
    assert len(scenes) == 10 and all(len(splits) == 1 for splits in scenes.values())


def test_missing_sharp_folder_says_what_is_there(tmp_path):
    save(tmp_path / "blur" / "a.png", pattern(0, 8, 8))
    with pytest.raises(DatasetError, match=r"sharp: found no such folder \(its parent holds blur/\)"):
        build_dataset("paired", tmp_path)


def test_random_crops_follow_seed_and_epoch(tmp_path):
    root = make_paired(tmp_path, count=10)
    first = build_dataset("paired", root, crop_size=8, seed=3)
    again = build_dataset("paired", root, crop_size=8, seed=3)
    assert torch.equal(first[0]["blurry"], again[0]["blurry"])
    crops = set()
    for epoch in range(6):
        first.set_epoch(epoch)
        crops.add(first[0]["blurry"].numpy().tobytes())
    assert len(crops) > 1
    assert np.array_equal(first[0]["blurry"].shape, (1, 8, 8))


def test_the_pixel_limit_holds_in_the_threads_that_check_the_files(tmp_path):
    root = make_paired(tmp_path, count=4, size=(20, 24))
    with pixel_limit(100), pytest.raises(DatasetError, match="more than the limit of 100"):
        build_dataset("paired", root, split="train", color="rgb", crop_size=None)
    assert len(build_dataset("paired", root, split="train", color="rgb", crop_size=None)) > 0
