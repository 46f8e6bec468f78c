"""Training and validation data: the datasets, a seeded epoch order, and an endless batch stream that can resume.

The order of epoch ``e`` is a permutation drawn from ``(seed, e)`` alone, the same on every process (each
process then takes its own share of the batches), so a resumed run sees exactly the batches an uninterrupted
one would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from ..data import DatasetError, build_dataset
from .config import TrainConfig


def load_datasets(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """The training split and the first ``validation_images`` of the val split, or one DatasetError."""
    if config.dataset != "builtin" and config.data_dir is None:
        raise DatasetError(
            f"--dataset {config.dataset} needs --data-dir, the folder holding it in its published layout"
        )
    common = dict(root=config.data_dir, color=config.model.color, crop_size=config.crop_size, seed=config.seed,
                  **config.data_options)
    if config.blur is not None:
        common["blur"] = config.blur
    train = build_dataset(config.dataset, split="train", **common)
    val = build_dataset(config.dataset, split="val", **common)
    return train, Subset(val, range(min(config.validation_images, len(val))))


def describe(dataset: Dataset) -> dict[str, Any]:
    """A dataset's JSON description (``.description`` of flowdeblur datasets), for the model's metadata."""
    inner = dataset.dataset if isinstance(dataset, Subset) else dataset
    description = dict(getattr(inner, "description", {"dataset": type(inner).__name__}))
    description["num_items"] = len(dataset)
    return description


class EpochSampler(Sampler[int]):
    """Indices of a dataset in the order of epoch ``e``: a permutation seeded by ``(seed, e)``.

    :meth:`set_epoch` also passes the epoch to the dataset when it takes one (fresh random crops per epoch).
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch that the next iteration yields."""
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng((self.seed, self.epoch)).permutation(len(self.dataset)).tolist())


def _worker_options(config: TrainConfig, pin_memory: bool) -> dict[str, Any]:
    """DataLoader settings for the workers: ``num_workers``, kept alive across epochs (no restart and re-import
    each epoch), and pinned batches for fast copies to a GPU."""
    workers = config.num_workers
    return {"num_workers": workers, "persistent_workers": workers > 0, "pin_memory": pin_memory}


def training_loader(dataset: Dataset, config: TrainConfig, pin_memory: bool = False) -> DataLoader:
    """Full batches of ``batch_size`` in :class:`EpochSampler` order (Accelerate shards them across processes);
    ``pin_memory`` when training on CUDA."""
    if len(dataset) < config.batch_size:
        raise DatasetError(
            f"the training split has {len(dataset)} images, fewer than one batch of {config.batch_size}",
            expected="a larger dataset or a smaller --batch-size",
        )
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=EpochSampler(dataset, config.seed),
        drop_last=True,
        generator=torch.Generator().manual_seed(config.seed),
        **_worker_options(config, pin_memory),
    )


def validation_loader(dataset: Dataset, config: TrainConfig, pin_memory: bool = False) -> DataLoader:
    """The validation images in a fixed order."""
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=False, **_worker_options(config, pin_memory))


def first_batch(dataset: Dataset, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurry, sharp) of the first batch of epoch 0, read directly: identical on every process."""
    indices = list(EpochSampler(dataset, config.seed))[: config.batch_size]
    items = [dataset[i] for i in indices]
    return torch.stack([item["blurry"] for item in items]), torch.stack([item["sharp"] for item in items])


def batch_stream(
    accelerator: Accelerator, loader: DataLoader, sampler: EpochSampler, start: int = 0
) -> Iterator[dict[str, Any]]:
    """This process's batches from the prepared ``loader``, epoch after epoch, from its ``start``-th batch on.

    ``sampler`` is the loader's :class:`EpochSampler` (Accelerate's sharded loaders do not always reach it).
    """
    per_epoch = len(loader)
    if per_epoch == 0:
        raise DatasetError("the training split gives no full batch per process", expected="a larger dataset")
    epoch, skip = divmod(start, per_epoch)
    while True:
        loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        yield from accelerator.skip_first_batches(loader, skip) if skip else loader
        epoch, skip = epoch + 1, 0
