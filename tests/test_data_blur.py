"""flowdeblur.data.blur: the paper's Gaussian, seeded motion kernels, borders and 8-bit storage."""

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from flowdeblur.data import BlurMixture, BlurSpec, DatasetError

SCIPY_MODES = {"reflect": "mirror", "replicate": "nearest", "circular": "wrap", "constant": "constant"}


def scipy_blur(image: torch.Tensor, kernel: torch.Tensor, border: str) -> torch.Tensor:
    """Reference: scipy's per-channel true convolution with the equivalent border mode."""
    blurred = [
        ndimage.convolve(channel.double().numpy(), kernel.numpy(), mode=SCIPY_MODES[border]) for channel in image
    ]
    return torch.from_numpy(np.stack(blurred)).float()


def test_default_is_the_papers_3x3_gaussian_sigma_1():
    spec = BlurSpec()
    assert (spec.kind, spec.kernel_size, spec.sigma, spec.border, spec.quantize) == (
        "gaussian",
        3,
        1.0,
        "reflect",
        True,
    )
    grid = torch.arange(-1, 2, dtype=torch.float64)
    expected = torch.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / 2)
    torch.testing.assert_close(spec.kernel(seed=0, index=0), expected / expected.sum())


@pytest.mark.parametrize("border", sorted(SCIPY_MODES))
def test_blur_is_a_same_size_convolution_with_the_chosen_border(border):
    image = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(0))
    spec = BlurSpec(kernel_size=5, sigma=1.5, border=border, quantize=False)
    torch.testing.assert_close(spec.apply(image, 0, 0), scipy_blur(image, spec.kernel(0, 0), border), atol=1e-5, rtol=0)


def test_quantize_rounds_to_8_bit_levels():
    image = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(1))
    exact, stored = BlurSpec(quantize=False).apply(image, 0, 0), BlurSpec().apply(image, 0, 0)
    assert torch.equal(stored * 255, (stored * 255).round())
    assert (stored - exact).abs().max() <= 0.5 / 255 + 1e-6


def test_motion_kernels_are_reproducible_per_seed_and_index():
    spec = BlurSpec(kind="motion", kernel_size=15)
    kernel = spec.kernel(seed=3, index=7)
    assert torch.equal(kernel, spec.kernel(seed=3, index=7))
    assert not torch.equal(kernel, spec.kernel(seed=3, index=8))
    assert not torch.equal(kernel, spec.kernel(seed=4, index=7))
    assert kernel.shape == (15, 15) and kernel.min() >= 0
    assert float(kernel.sum()) == pytest.approx(1.0)
    assert not torch.allclose(kernel, kernel.flip(0, 1))  # a path, not a symmetric blob


def test_motion_blur_is_a_true_convolution():
    image = torch.rand(1, 20, 20, generator=torch.Generator().manual_seed(2))
    spec = BlurSpec(kind="motion", kernel_size=9, motion_length=6, quantize=False)
    expected = scipy_blur(image, spec.kernel(0, 5), "reflect")
    torch.testing.assert_close(spec.apply(image, 0, 5), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "box"}, "kind 'box'"),
        ({"kernel_size": 4}, "positive odd"),
        ({"sigma": 0.0}, "sigma"),
        ({"border": "mirror"}, "border 'mirror'"),
        ({"motion_length": 3.0}, "motion_length applies"),
        ({"kind": "motion", "kernel_size": 5, "motion_length": 9.0}, "kernel_size - 1"),
    ],
)
def test_invalid_specs_say_why(options, message):
    with pytest.raises(DatasetError, match=message):
        BlurSpec(**options)


def test_description_records_the_protocol():
    facts = BlurSpec(sigma=2.0, kernel_size=7, border="replicate").describe(seed=11)
    assert facts == {
        "kind": "gaussian",
        "kernel_size": 7,
        "sigma": 2.0,
        "border": "replicate",
        "seed": 11,
        "quantized_bits": 8,
    }
    motion = BlurSpec(kind="motion", kernel_size=15, quantize=False).describe(seed=0)
    assert motion["motion_length"] == 14.0 and motion["quantized_bits"] is None and "sigma" not in motion
    json.dumps(motion)


def test_no_blur_returns_the_image_unchanged():
    image = torch.rand(3, 9, 11, generator=torch.Generator().manual_seed(2))
    assert torch.equal(BlurSpec(kind="none", kernel_size=1, quantize=False).apply(image, 0, 5), image)
    mixture = BlurMixture(none=1.0, gaussian=0.0, defocus=0.0, motion=0.0, noise_std=(0.0, 0.0), quantize=False)
    assert torch.equal(mixture.apply(image, 3, 7), image)


def test_defocus_is_a_centred_disk_whose_edge_is_weighted_by_coverage():
    kernel = BlurSpec(kind="defocus", kernel_size=7, radius=3.0).kernel(0, 0)
    assert kernel.shape == (7, 7) and float(kernel.sum()) == pytest.approx(1.0)
    torch.testing.assert_close(kernel, kernel.flip(0))
    torch.testing.assert_close(kernel, kernel.T)
    assert kernel[3, 3] == kernel.max() and kernel[0, 0] == 0
    assert 0 < kernel[3, 0] < kernel[3, 3]  # (3, 0) is partly inside the disk


def test_noise_is_seeded_and_of_the_requested_strength():
    image = torch.full((1, 64, 64), 0.5)
    spec = BlurSpec(kind="none", kernel_size=1, noise_std=0.02, quantize=False)
    noisy = spec.apply(image, 0, 1)
    assert torch.equal(noisy, spec.apply(image, 0, 1)) and not torch.equal(noisy, spec.apply(image, 0, 2))
    assert float((noisy - image).std()) == pytest.approx(0.02, rel=0.1)


def test_a_mixture_draws_every_kind_reproducibly_from_seed_and_key():
    mixture = BlurMixture()
    draws = [mixture.draw(0, index) for index in range(400)]
    assert draws == [mixture.draw(0, index) for index in range(400)]
    assert draws != [mixture.draw(1, index) for index in range(400)]
    kinds = [draw.kind for draw in draws]
    for kind, weight in zip(("none", "gaussian", "defocus", "motion"), mixture.weights, strict=True):
        assert kinds.count(kind) / len(kinds) == pytest.approx(weight / sum(mixture.weights), abs=0.07)
    assert max(draw.kernel_size for draw in draws) <= 21
    assert all(mixture.noise_std[0] <= draw.noise_std <= mixture.noise_std[1] for draw in draws)
    motion = next(index for index, draw in enumerate(draws) if draw.kind == "motion")
    torch.testing.assert_close(mixture.kernel(0, motion), draws[motion].kernel(0, motion))


def test_a_mixture_draws_the_same_blur_in_every_dataloader_worker():
    from torch.utils.data import DataLoader

    from flowdeblur.data import build_dataset

    dataset = build_dataset("builtin", split="val", crop_size=32, blur=BlurMixture(), patch_size=32)
    single = torch.stack([dataset[i]["blurry"] for i in range(6)])
    loader = DataLoader(torch.utils.data.Subset(dataset, range(6)), batch_size=2, num_workers=2)
    assert torch.equal(torch.cat([batch["blurry"] for batch in loader]), single)
    assert dataset.description["blur"]["kind"] == "mixture"


def test_training_sets_draw_fresh_blur_each_epoch_and_the_same_for_the_same_epoch():
    from flowdeblur.data import build_dataset

    dataset = build_dataset("builtin", split="train", crop_size=32, blur=BlurMixture(), patch_size=32)
    kernels = []
    for epoch in (0, 1, 0):
        dataset.set_epoch(epoch)
        kernels.append([dataset.kernel(i) for i in range(8)])
    assert all(torch.equal(a, b) for a, b in zip(kernels[0], kernels[2], strict=True))
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(kernels[0], kernels[1], strict=True))


@pytest.mark.parametrize(
    ("options", "message"),
    [({"none": -1.0}, "weights"), ({"sigma": (3.0, 1.0)}, "sigma range"), ({"noise_std": (0.0, 2.0)}, "below 1"),
     ({"gaussian_kernel_size": 4}, "gaussian_kernel_size"), ({"gaussian_kernel_size": -3}, "gaussian_kernel_size")],
)
def test_invalid_mixtures_say_why(options, message):
    with pytest.raises(DatasetError, match=message):
        BlurMixture(**options)


def test_a_mixture_of_the_papers_blur_and_sharp_images_draws_exactly_those_two():
    """What ``gauss3`` trains on: the paper's 3x3 Gaussian (sigma 1) on most images, the sharp image on the rest."""
    mixture = BlurMixture(none=0.2, gaussian=0.8, defocus=0.0, motion=0.0, sigma=(1.0, 1.0), gaussian_kernel_size=3,
                          noise_std=(0.0, 0.0))
    drawn = [mixture.draw(0, index) for index in range(200)]
    assert {spec.kind for spec in drawn} == {"gaussian", "none"}
    assert sum(spec.kind == "none" for spec in drawn) == pytest.approx(40, abs=15)
    paper = next(spec for spec in drawn if spec.kind == "gaussian")
    assert paper == BlurSpec(sigma=1.0, kernel_size=3, noise_std=0.0)
    assert mixture.describe(0)["gaussian_kernel_size"] == 3 and "gaussian_kernel_size" not in BlurMixture().describe(0)


@pytest.mark.parametrize("mixture", [
    BlurMixture(),
    BlurMixture(none=0.2, gaussian=0.8, defocus=0.0, motion=0.0, sigma=(1.0, 1.0), gaussian_kernel_size=3,
                noise_std=(0.0, 0.0), quantize=False),
])
def test_a_recorded_mixture_is_rebuilt_from_its_description(mixture):
    recorded = json.loads(json.dumps(mixture.describe(7)))  # as a model's metadata holds it
    assert BlurMixture.from_description(recorded) == mixture
