"""Classical baselines: each one helps on an image blurred by a known kernel, and tuning picks from its grid."""

import math

import pytest
import torch
from skimage.data import camera

from flowdeblur.data import BlurMixture, BlurSpec
from flowdeblur.metrics import PSNR_CAP
from tests.test_benchmarks import BENCHMARKS

with pytest.MonkeyPatch.context() as patch:  # a module of benchmarks/, imported by plain name as the scripts do
    patch.syspath_prepend(str(BENCHMARKS))
    from baselines import BASELINES, mean_psnr, tune, unsharp_masking

NO_BLUR = BlurSpec(kind="none", kernel_size=1)


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


def unblurred(sharp):
    return NO_BLUR.apply(sharp, seed=0, index=0), sharp, NO_BLUR.kernel(seed=0, index=0)


@pytest.mark.parametrize("baseline", BASELINES, ids=lambda b: b.name)
def test_each_baseline_takes_a_1x1_kernel_and_a_different_kernel_size_per_image(baseline, pair):
    _, sharp, _ = pair
    mixture = BlurMixture()
    triples = [unblurred(sharp)] + [(mixture.apply(sharp, 0, i), sharp, mixture.kernel(0, i)) for i in range(6)]
    assert len({kernel.shape for _, _, kernel in triples}) == len(triples)  # 1x1 up to 21x21
    restore = baseline.restorer(tune(baseline, triples))
    for blurry, _, kernel in triples:
        restored = restore(blurry, kernel)
        assert restored.shape == blurry.shape and torch.isfinite(restored).all()
    assert math.isfinite(mean_psnr(restore, triples))


def test_an_image_restored_exactly_counts_as_the_cap_and_does_not_decide_the_tuning(pair):
    _, sharp, _ = pair
    richardson_lucy = next(b for b in BASELINES if b.name.startswith("Richardson"))
    assert mean_psnr(richardson_lucy.restorer(2), [unblurred(sharp)]) == PSNR_CAP  # exact: infinite PSNR
    assert tune(richardson_lucy, [unblurred(sharp), pair]) == tune(richardson_lucy, [pair]) != richardson_lucy.grid[0]
