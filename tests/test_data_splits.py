"""flowdeblur.data.splits: 8:1:1, disjoint, grouped, seeded and stable across runs."""

import random

import numpy as np
import pytest

from flowdeblur.data.splits import assign_splits, holdout_counts, ratio_counts, sample_indices


@pytest.mark.parametrize(
    ("n", "expected"),
    [(100_000, (80_000, 10_000, 10_000)), (25, (21, 2, 2)), (10, (8, 1, 1)), (3, (1, 1, 1)), (2, (2, 0, 0))],
)
def test_ratio_counts_are_8_1_1(n, expected):
    counts = ratio_counts(n)
    assert (counts["train"], counts["val"], counts["test"]) == expected


def test_holdout_takes_a_ninth_for_val():
    assert holdout_counts(22) == {"val": 2, "train": 20}
    assert holdout_counts(1) == {"val": 0, "train": 1}


def test_splits_are_disjoint_and_cover_everything():
    assignment = assign_splits(list(range(50)), seed=0)
    members = [set(assignment[split]) for split in ("train", "val", "test")]
    assert sum(map(len, members)) == 50 and set().union(*members) == set(range(50))
    assert [len(m) for m in members] == [40, 5, 5]


def test_groups_never_straddle_splits():
    groups = [f"scene{i // 4}" for i in range(40)]
    assignment = assign_splits(groups, seed=1)
    for split, indices in assignment.items():
        for other, other_indices in assignment.items():
            if split != other:
                assert not {groups[i] for i in indices} & {groups[i] for i in other_indices}


def test_split_is_pinned_for_a_seed_and_independent_of_listing_order():
    names = [f"{i:06d}.jpg" for i in range(10)]
    pinned = {split: [names[i] for i in indices] for split, indices in assign_splits(names, seed=0).items()}
    held = ("000008.jpg", "000004.jpg")
    assert pinned == {"test": [held[0]], "val": [held[1]], "train": [n for n in names if n not in held]}
    shuffled = names[:]
    random.Random(5).shuffle(shuffled)
    again = {split: sorted(shuffled[i] for i in indices) for split, indices in assign_splits(shuffled, 0).items()}
    assert again == pinned
    assert assign_splits(names, seed=1) != assign_splits(names, seed=0)


def test_sample_is_seeded_sorted_and_unique():
    first = sample_indices(1000, 100, seed=4)
    assert len(first) == 100 == len(set(first.tolist())) and np.all(np.diff(first) > 0)
    assert np.array_equal(first, sample_indices(1000, 100, seed=4))
    assert not np.array_equal(first, sample_indices(1000, 100, seed=5))
    assert np.array_equal(sample_indices(7, None, 0), np.arange(7))
    assert np.array_equal(sample_indices(7, 100_000, 0), np.arange(7))
