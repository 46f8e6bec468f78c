"""CelebA: the official partition when present, else 8:1:1; square crop and resize; seeded sample and blur."""

import json

import pytest
import torch

from flowdeblur.data import BlurSpec, DatasetError, build_dataset
from tests.data_fixtures import make_celeba


def test_official_partition_is_followed(tmp_path):
    root = make_celeba(tmp_path, count=12)
    splits = {s: build_dataset("celeba", root, split=s, crop_size=None).names for s in ("train", "val", "test")}
    assert splits == {
        "train": [f"{i:06d}.jpg" for i in range(1, 9)],
        "val": ["000009.jpg", "000010.jpg"],
        "test": ["000011.jpg", "000012.jpg"],
    }
    assert build_dataset("celeba", root, split="val").description["split_rule"] == "official list_eval_partition.txt"


def test_without_partition_file_8_1_1_is_disjoint_and_stable(tmp_path):
    root = make_celeba(tmp_path, count=20, partition=False)
    splits = {s: set(build_dataset("celeba", root, split=s, crop_size=None).names) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert len(set().union(*splits.values())) == 20
    assert set(build_dataset("celeba", root, split="test", crop_size=None).names) == splits["test"]


def test_faces_are_square_cropped_resized_and_blurred_reproducibly(tmp_path):
    root = make_celeba(tmp_path, count=12)
    dataset = build_dataset("celeba", root, split="train", color="rgb", crop_size=None, resize=32, augment=False)
    item = dataset[0]
    assert item["sharp"].shape == item["blurry"].shape == (3, 32, 32)
    assert not torch.equal(item["blurry"], item["sharp"])
    assert torch.equal(item["blurry"] * 255, (item["blurry"] * 255).round())  # stored as 8 bits
    again = build_dataset("celeba", root, split="train", color="rgb", crop_size=None, resize=32, augment=False)
    assert torch.equal(again[0]["blurry"], item["blurry"])
    wider = build_dataset(
        "celeba", root, color="rgb", crop_size=None, resize=32, augment=False, blur=BlurSpec(sigma=2)
    )
    assert not torch.equal(wider[0]["blurry"], item["blurry"])
    blur = wider.description["blur"]
    assert (blur["sigma"], blur["border"], blur["seed"], blur["quantized_bits"]) == (2, "reflect", 0, 8)
    json.dumps(wider.description)


def test_sample_of_n_images_is_seeded(tmp_path):
    root = make_celeba(tmp_path, count=12, partition=False)
    first = build_dataset("celeba", root, crop_size=None, num_samples=10)
    assert first.description["num_samples"] == 10 and first.description["images_found"] == 12
    assert first.names == build_dataset("celeba", root, crop_size=None, num_samples=10).names
    others = [build_dataset("celeba", root, crop_size=None, num_samples=10, seed=s).names for s in range(1, 4)]
    assert any(names != first.names for names in others)


def test_malformed_partition_file_names_the_line(tmp_path):
    root = make_celeba(tmp_path, count=12)
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg train\n")
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt: line 2 reads '000002\.jpg train'"):
        build_dataset("celeba", root)


def test_partition_and_folder_that_disagree_are_named_or_skipped(tmp_path):
    root = make_celeba(tmp_path, count=12)
    (root / "img_align_celeba" / "000003.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 listed images missing from the folder \(000003\.jpg\)"):
        build_dataset("celeba", root)
    with pytest.warns(UserWarning, match="skipped"):
        train = build_dataset("celeba", root, crop_size=None, skip_bad=True)
    assert len(train) == 7 and train.description["skipped"] == {"listed images missing from the folder": 1}


def test_empty_folder_says_where_faces_were_expected(tmp_path):
    (tmp_path / "img_align_celeba").mkdir()
    with pytest.raises(DatasetError, match=r"found no face images.*expected img_align_celeba/\*\.jpg"):
        build_dataset("celeba", tmp_path)


def test_kaggle_layout_with_csv_partition(tmp_path):
    make_celeba(tmp_path / "img_align_celeba", count=12, partition=False)
    rows = [f"{i:06d}.jpg,{0 if i <= 10 else 2}" for i in range(1, 13)]
    (tmp_path / "list_eval_partition.csv").write_text("image_id,partition\n" + "\n".join(rows) + "\n")
    assert build_dataset("celeba", tmp_path, split="test", crop_size=None).names == ["000011.jpg", "000012.jpg"]
    with pytest.raises(DatasetError, match="no images fall in the val split"):
        build_dataset("celeba", tmp_path, split="val")
