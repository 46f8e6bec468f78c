"""build_dataset: one call per dataset, argument checks with clear errors, the model's colour conversion."""

import json

import pytest
import torch
from torch.utils.data import DataLoader

from flowdeblur.color import to_luma
from flowdeblur.data import DATASET_NAMES, BlurSpec, DatasetError, build_dataset
from tests.data_fixtures import make_celeba, make_gopro, make_lai, make_lsun_lmdb, make_paired


def test_every_dataset_is_one_call_with_a_json_description(tmp_path):
    roots = {
        "builtin": None,
        "paired": make_paired(tmp_path / "paired"),
        "gopro": make_gopro(tmp_path / "gopro"),
        "lai": make_lai(tmp_path / "lai"),
        "celeba": make_celeba(tmp_path / "celeba"),
        "lsun": make_lsun_lmdb(tmp_path / "lsun" / "bedroom_train_lmdb"),
    }
    assert set(roots) == set(DATASET_NAMES)
    for name, root in roots.items():
        dataset = build_dataset(name, root, split="val", crop_size=16)
        item = dataset[0]
        assert item["blurry"].shape == item["sharp"].shape == (1, 16, 16), name
        assert isinstance(item["name"], str)
        facts = json.loads(json.dumps(dataset.description))
        assert facts["dataset"] == name and facts["split"] == "val" and facts["num_items"] == len(dataset)
        assert facts["crop"] == {"size": 16, "mode": "center"} and facts["color"] == "y"
        assert facts["blur"]["kind"] == ("real" if name in ("paired", "gopro", "lai") else "gaussian")


def test_y_is_the_models_luma_of_the_rgb_item():
    rgb = build_dataset("builtin", split="test", color="rgb")
    luma = build_dataset("builtin", split="test", color="y")
    index = next(i for i in range(len(rgb)) if not torch.equal(rgb[i]["sharp"][0], rgb[i]["sharp"][1]))
    torch.testing.assert_close(luma[index]["sharp"], to_luma(rgb[index]["sharp"]))
    torch.testing.assert_close(luma[index]["blurry"], to_luma(rgb[index]["blurry"]))


def test_augmentation_is_for_training_only_and_follows_the_epoch():
    train = build_dataset("builtin", split="train", crop_size=96)
    assert train.description["augment"] and train.description["crop"]["mode"] == "random"
    views = set()
    for epoch in range(4):
        train.set_epoch(epoch)
        views.add(train[0]["sharp"].numpy().tobytes())
    assert len(views) > 1
    plain = build_dataset("builtin", split="train", crop_size=96, augment=False)
    first = plain[0]["sharp"]
    plain.set_epoch(1)
    assert torch.equal(plain[0]["sharp"], first) and plain.description["crop"]["mode"] == "center"
    with pytest.raises(DatasetError, match="training only"):
        build_dataset("builtin", split="test", augment=True)


def test_batches_collate():
    batch = next(iter(DataLoader(build_dataset("builtin", split="val"), batch_size=5)))
    assert batch["blurry"].shape == (5, 1, 128, 128) and len(batch["name"]) == 5


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "imagenet"}, "unknown dataset 'imagenet'"),
        ({"name": "gopro"}, "gopro needs root"),
        ({"name": "builtin", "root": "/data"}, "takes no root"),
        ({"name": "builtin", "split": "training"}, "builtin has no split 'training'"),
        ({"name": "builtin", "split": "all"}, "builtin has no split 'all'"),
        ({"name": "builtin", "color": "ycbcr"}, "unknown color 'ycbcr'"),
        ({"name": "builtin", "seed": -1}, "seed must be a non-negative integer"),
        ({"name": "builtin", "crop_size": 0}, "crop_size must be a positive integer"),
        ({"name": "builtin", "blur": "gaussian"}, "blur must be a BlurSpec"),
        ({"name": "builtin", "blur_folder": "blur"}, r"builtin takes no option blur_folder.*'augment', 'patch_size'"),
        ({"name": "lai", "root": "/data", "blur": BlurSpec()}, "lai ships real blur"),
    ],
)
def test_bad_arguments_are_refused_before_touching_the_disk(arguments, message):
    with pytest.raises(DatasetError, match=message) as error:
        build_dataset(**arguments)
    assert "docs/datasets.md" in str(error.value)


def test_missing_root_names_the_path_and_what_its_parent_holds(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(DatasetError, match=r"celeba: found no such folder \(its parent holds elsewhere/\)"):
        build_dataset("celeba", tmp_path / "celeba")
