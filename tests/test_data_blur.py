"""flowdeblur.data.blur: the paper's Gaussian, seeded motion kernels, borders and 8-bit storage."""

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from flowdeblur.data import BlurSpec, DatasetError

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
