"""The evaluation protocol against scikit-image, the reference implementation of MATLAB's and BasicSR's numbers:
RGB rounded to 8 bits, Y computed from it in floating point, PSNR, and SSIM averaged where its window fits."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import color, data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from flowdeblur.color import rgb_to_y
from flowdeblur.metrics import image_scores, ssim_valid


def fixed_pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A crop of a scikit-image photograph (sharp) and a blurred, noisy copy of it (restored), floats in [0, 1]."""
    sharp = getattr(data, name)()[100:196, 150:278].astype(np.float64) / 255
    noise = np.random.default_rng(0).normal(0, 0.01, sharp.shape)
    return np.clip(ndimage.gaussian_filter(sharp, (1.2, 1.2, 0)) + noise, 0, 1), sharp


def as_batch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def rounded(image: np.ndarray) -> np.ndarray:
    return np.round(image * 255) / 255


def reference(restored: np.ndarray, sharp: np.ndarray, space: str) -> dict[str, float]:
    """MATLAB/BasicSR scores by scikit-image on the 0-255 scale: 8-bit RGB, then Y in floating point."""
    pair = [rounded(image) * 255 for image in (restored, sharp)]
    if space == "y":
        pair = [color.rgb2ycbcr(image / 255)[..., 0] for image in pair]
    ssim = structural_similarity(
        *pair, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        channel_axis=-1 if space == "rgb" else None,
    )
    mse = float(np.mean((pair[0] - pair[1]) ** 2)) / 255**2
    return {"psnr": peak_signal_noise_ratio(pair[1], pair[0], data_range=255), "ssim": ssim, "mse": mse}


def test_y_is_scikit_images_rgb2ycbcr():
    _, sharp = fixed_pair("astronaut")
    ours = rgb_to_y(as_batch(sharp))[0, 0].numpy() * 255
    np.testing.assert_allclose(ours, color.rgb2ycbcr(sharp)[..., 0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
@pytest.mark.parametrize("space", ["y", "rgb"])
def test_scores_match_scikit_image_on_fixed_images(name, space):
    restored, sharp = fixed_pair(name)
    scores = image_scores(as_batch(restored), as_batch(sharp), space)
    ours = {metric: float(value[0]) for metric, value in scores.items()}
    expected = reference(restored, sharp, space)
    assert ours["psnr"] == pytest.approx(expected["psnr"], abs=1e-5)
    assert ours["mse"] == pytest.approx(expected["mse"], rel=1e-9)
    assert ours["ssim"] == pytest.approx(expected["ssim"], abs=3e-5)  # filtered in float32 for speed
    pair = [torch.from_numpy(rounded(image)).permute(2, 0, 1)[None] for image in (restored, sharp)]
    if space == "y":
        pair = [rgb_to_y(image) for image in pair]
    assert float(ssim_valid(*pair)[0]) == pytest.approx(expected["ssim"], abs=1e-12)  # float64: the same algorithm


def test_rgb_is_rounded_before_y_not_y_itself():
    restored, sharp = fixed_pair("astronaut")
    ours = float(image_scores(as_batch(restored), as_batch(sharp), "y")["psnr"][0])
    y_rounded = [np.round(color.rgb2ycbcr(image)[..., 0]) for image in (restored, sharp)]
    other = peak_signal_noise_ratio(y_rounded[1], y_rounded[0], data_range=255)
    assert abs(ours - other) > 1e-3  # the two orders differ measurably, and the reference test pins ours


def test_ssim_leaves_out_the_border_where_the_window_does_not_fit():
    restored, sharp = fixed_pair("astronaut")
    pair = [torch.from_numpy(rounded(image)).permute(2, 0, 1)[None].float() for image in (restored, sharp)]
    ours = float(image_scores(*pair, "rgb")["ssim"][0])
    padded = float(structural_similarity_index_measure(*pair, data_range=1.0))  # torchmetrics: reflect-padded border
    assert abs(ours - padded) > 1e-3 and ours == pytest.approx(reference(restored, sharp, "rgb")["ssim"], abs=1e-5)


@pytest.mark.parametrize("side", [1, 2, 5])
def test_ssim_of_images_smaller_than_its_padding_is_defined(side):
    """An 11-pixel window cannot be reflect-padded onto 5 pixels; the window narrows instead of failing."""
    generator = torch.Generator().manual_seed(side)
    image = torch.rand(2, 1, side, side + 1, generator=generator)
    other = torch.rand(2, 1, side, side + 1, generator=generator)
    torch.testing.assert_close(ssim_valid(image, image), torch.ones(2))
    assert (ssim_valid(image, other) < 1).all()
