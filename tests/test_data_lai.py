"""Lai et al. 2016: synthetic pairs matched to their ground truth, 8:1:1 over ground truths, the real set unpaired."""

import pytest
import torch

from flowdeblur.data import DatasetError, build_dataset, read_image
from tests.data_fixtures import LAI_IMAGES, make_lai


@pytest.fixture
def lai(tmp_path):
    return make_lai(tmp_path, kernels=2, real=3)


def ground_truths(dataset) -> set[str]:
    return {name.split("/")[1].rsplit("_kernel_", 1)[0] for name in dataset.names}


def test_synthetic_pairs_split_8_1_1_over_ground_truth_images(lai):
    splits = {s: build_dataset("lai", lai, split=s, crop_size=None) for s in ("train", "val", "test")}
    assert [len(splits[s]) for s in ("train", "val", "test")] == [32, 4, 4]  # 8/1/1 images x 2 kernels x 2 subsets
    owners = {s: ground_truths(d) for s, d in splits.items()}
    assert [len(owners[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    assert set().union(*owners.values()) == set(LAI_IMAGES)
    assert owners == {s: ground_truths(build_dataset("lai", lai, split=s, crop_size=None)) for s in owners}


def test_each_blurred_image_is_paired_with_its_ground_truth(lai):
    item = build_dataset("lai", lai, split="test", color="rgb", subset="uniform")[0]
    subset, file = item["name"].split("/")
    assert subset == "uniform"
    assert torch.equal(item["blurry"], read_image(lai / "synthetic_dataset" / subset / file))
    assert torch.equal(item["sharp"], read_image(lai / "synthetic_dataset" / "ground_truth" / (file[:10] + ".png")))


def test_subset_and_synthetic_root(lai):
    uniform = build_dataset("lai", lai / "synthetic_dataset", split="train", subset="uniform", crop_size=None)
    assert len(uniform) == 16 and uniform.description["subset"] == "uniform"
    with pytest.raises(DatasetError, match="subset 'blurry'"):
        build_dataset("lai", lai, subset="blurry")


def test_real_set_is_unpaired_and_test_only(lai):
    real = build_dataset("lai", lai, split="test", real=True)
    assert len(real) == 3
    item = real[1]
    assert "sharp" not in item and item["name"] == "photo1.jpg" and item["blurry"].shape == (1, 31, 40)
    with pytest.raises(DatasetError, match="no sharp images, so no train split"):
        build_dataset("lai", lai, split="train", real=True)


def test_blurred_image_without_ground_truth_is_named(lai):
    (lai / "synthetic_dataset" / "ground_truth" / "natural_03.png").unlink()
    with pytest.raises(DatasetError) as error:
        build_dataset("lai", lai)
    message = str(error.value)
    assert "4 blurry images without a sharp image" in message and "uniform/natural_03_kernel_01.png" in message
    assert "#lai-et-al-2016" in message


def test_missing_ground_truth_folder_names_the_layout(tmp_path):
    (tmp_path / "uniform").mkdir()
    with pytest.raises(DatasetError, match=r"ground_truth: found no such folder.*expected synthetic_dataset/"):
        build_dataset("lai", tmp_path)
