"""Classical baselines: each one helps on an image blurred by a known kernel, and tuning picks from its grid."""

import pytest
import torch
from skimage.data import camera

from flowdeblur.baselines import BASELINES, mean_psnr, tune, unsharp_masking
from flowdeblur.data import BlurSpec


@pytest.fixture(scope="module")
def pair():
    sharp = torch.from_numpy(camera()[200:264, 200:264]).float().div(255)[None]
    spec = BlurSpec()
    return spec.apply(sharp, seed=0, index=0), sharp, spec.kernel(seed=0, index=0)


def test_unsharp_masking_with_no_amount_is_the_identity(pair):
    blurry, _, _ = pair
    torch.testing.assert_close(unsharp_masking(blurry, amount=0.0), blurry)


@pytest.mark.parametrize("baseline", BASELINES, ids=lambda b: b.name)
def test_each_baseline_beats_the_blurry_input_at_its_tuned_setting(baseline, pair):
    value = tune(baseline, [pair])
    assert value in baseline.grid
    assert mean_psnr(baseline.restorer(value), [pair]) > mean_psnr(lambda x, k: x, [pair]) + 0.5
