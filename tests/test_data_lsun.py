"""LSUN: a real LMDB of encoded images (or an exported folder), sampled and split by seed, safe in workers."""

import pickle
import sys

import lmdb
import pytest
import torch
from torch.utils.data import DataLoader

from flowdeblur.data import DatasetError, build_dataset, lsun
from tests.data_fixtures import encode, make_lsun_lmdb, pattern, save


@pytest.fixture
def database(tmp_path):
    return make_lsun_lmdb(tmp_path / "bedroom_train_lmdb", count=12)


def keys_of(path) -> list[str]:
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        return [key.decode() for key in txn.cursor().iternext(values=False)]


def names_of(dataset) -> set[str]:
    return set(dataset.names)


def test_lmdb_splits_cover_every_key_once(database):
    keys = keys_of(database)
    splits = {
        s: build_dataset("lsun", database, split=s, crop_size=None, resize=32) for s in ("train", "val", "test")
    }
    assert [len(splits[s]) for s in ("train", "val", "test")] == [10, 1, 1]
    names = [names_of(d) for d in splits.values()]
    assert sorted(set().union(*names)) == keys and sum(map(len, names)) == 12
    item = splits["train"][0]
    assert item["blurry"].shape == item["sharp"].shape == (1, 32, 32)
    assert splits["train"].description["storage"] == "LMDB bedroom_train_lmdb"


def test_parent_folder_with_one_lmdb_and_sampling(database):
    sample = build_dataset("lsun", database.parent, crop_size=None, num_samples=10, seed=2)
    assert sample.description["num_samples"] == 10 and sample.description["images_found"] == 12
    assert names_of(sample) == names_of(build_dataset("lsun", database.parent, crop_size=None, num_samples=10, seed=2))


def test_dataset_pickles_and_reads_in_worker_processes(database):
    dataset = build_dataset("lsun", database, crop_size=16, resize=32, augment=False)
    first = dataset[0]
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[0]["blurry"], first["blurry"])
    batch = next(iter(DataLoader(dataset, batch_size=4, num_workers=2)))
    assert batch["blurry"].shape == (4, 1, 16, 16) and torch.equal(batch["blurry"][0], first["blurry"])


def test_exported_image_folder(tmp_path):
    for index in range(10):
        save(tmp_path / "export" / f"{index % 3}" / f"{index:04x}.webp", pattern(index, 40, 60))
    dataset = build_dataset("lsun", tmp_path / "export", split="test", color="rgb", crop_size=None, resize=24)
    assert len(dataset) == 1 and dataset[0]["sharp"].shape == (3, 24, 24)
    assert dataset.description["storage"] == "exported image folder"


def test_values_that_are_not_images_fail_at_build_time(tmp_path):
    path = tmp_path / "church_outdoor_train_lmdb"
    with lmdb.open(str(path), map_size=1 << 20) as env, env.begin(write=True) as txn:
        for index in range(5):
            txn.put(f"k{index}".encode(), b"not an image")
    with pytest.raises(DatasetError, match=r"church_outdoor_train_lmdb \[key k\d\]: cannot be read as an image"):
        build_dataset("lsun", path, split="train")


def test_ambiguous_or_empty_roots_are_clear(tmp_path, database):
    make_lsun_lmdb(tmp_path / "tower_train_lmdb", count=3)
    with pytest.raises(DatasetError, match="found several LMDBs"):
        build_dataset("lsun", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="found neither data.mdb nor images but an empty folder"):
        build_dataset("lsun", tmp_path / "empty")
    assert encode(pattern(0, 4, 4), "PNG").startswith(b"\x89PNG")


def test_without_the_lmdb_package_an_lmdb_is_refused_with_the_extra_to_install(database, monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdb", None)  # as if the "lsun" extra were not installed
    monkeypatch.setattr(lsun, "_ENVIRONMENTS", {})
    with pytest.raises(DatasetError, match=r"needs the lmdb package: pip install 'flowdeblur\[lsun\]'") as error:
        build_dataset("lsun", database, crop_size=None)
    assert "bedroom_train_lmdb" in str(error.value)
    for index in range(10):  # exported image folders need no lmdb
        save(database.parent / "export" / f"{index:04x}.png", pattern(index, 24, 24))
    assert len(build_dataset("lsun", database.parent / "export", split="test", crop_size=None)) == 1
