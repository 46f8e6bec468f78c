"""GoPro: the published tree, blur or blur_gamma, sequence-level val, full test frames, clear layout errors."""

import shutil

import numpy as np
import pytest
import torch

from flowdeblur.data import BlurSpec, DatasetError, build_dataset, read_image
from tests.data_fixtures import GOPRO_TEST, GOPRO_TRAIN, make_gopro


@pytest.fixture
def gopro(tmp_path):
    return make_gopro(tmp_path, frames=3)


def test_counts_names_and_sequence_level_val(gopro):
    train, val, test = (build_dataset("gopro", gopro, split=s, crop_size=None) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (3, 3, 6)
    assert len(train.description["sequences"]) == len(val.description["sequences"]) == 1
    assert set(train.description["sequences"] + val.description["sequences"]) == set(GOPRO_TRAIN)
    assert test.description["sequences"] == list(GOPRO_TEST)
    assert test[0]["name"] == f"{GOPRO_TEST[0]}/000000.png"


@pytest.mark.parametrize("folder", ["blur", "blur_gamma"])
def test_blur_folder_chooses_the_blurry_frames(gopro, folder):
    test = build_dataset("gopro", gopro, split="test", color="rgb", blur_folder=folder)
    item = test[0]
    sequence, frame = item["name"].split("/")
    assert torch.equal(item["blurry"], read_image(gopro / "test" / sequence / folder / frame))
    assert torch.equal(item["sharp"], read_image(gopro / "test" / sequence / "sharp" / frame))
    assert test.description["blur_folder"] == folder


def test_test_frames_stay_whole_and_training_crops_are_random(gopro):
    test = build_dataset("gopro", gopro, split="test", crop_size=16)
    assert test[0]["blurry"].shape == (1, 36, 48) and test.description["crop"] == {"size": None, "mode": "full"}
    cropped = build_dataset("gopro", gopro, split="test", crop_size=16, full_test_frames=False)
    assert cropped[0]["blurry"].shape == (1, 16, 16)
    train = build_dataset("gopro", gopro, split="train", crop_size=16, seed=1)
    assert train[0]["blurry"].shape == (1, 16, 16) and train.description["crop"]["mode"] == "random"
    assert torch.equal(train[0]["sharp"], build_dataset("gopro", gopro, crop_size=16, seed=1)[0]["sharp"])


def test_parent_folder_works_as_root(gopro):
    assert len(build_dataset("gopro", gopro.parent, split="test")) == 6


def test_missing_pool_missing_folder_and_bad_options_are_clear(gopro):
    with pytest.raises(DatasetError, match="blur_folder 'blurry'"):
        build_dataset("gopro", gopro, blur_folder="blurry")
    with pytest.raises(DatasetError, match="ships real blur"):
        build_dataset("gopro", gopro, blur=BlurSpec())
    shutil.rmtree(gopro / "test" / GOPRO_TEST[1] / "sharp")
    with pytest.raises(DatasetError, match=rf"{GOPRO_TEST[1]}/sharp: found no such folder.*blur/, blur_gamma/"):
        build_dataset("gopro", gopro, split="test")
    shutil.rmtree(gopro / "test")
    with pytest.raises(
        DatasetError, match=r"GOPRO_Large/test: found no such folder.*expected GOPRO_Large/\{train,test\}"
    ):
        build_dataset("gopro", gopro, split="test")


def test_unreadable_frames_across_sequences_are_reported_together(gopro):
    for sequence in GOPRO_TRAIN:
        (gopro / "train" / sequence / "blur" / "000001.png").write_bytes(b"truncated")
    with pytest.raises(DatasetError, match="2 unreadable images") as error:
        build_dataset("gopro", gopro)
    assert all(f"train/{sequence}/blur/000001.png" in str(error.value) for sequence in GOPRO_TRAIN)
    with pytest.warns(UserWarning):
        kept = build_dataset("gopro", gopro, split="val", crop_size=None, skip_bad=True)
    assert len(kept) == 2 and np.isfinite(kept[0]["blurry"].numpy()).all()
