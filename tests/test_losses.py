"""flowdeblur.train.losses: each objective computes what its equation says."""

import math

import pytest
import torch

from flowdeblur.train.losses import gaussian_nll_bits_per_dim, latent_l1, latent_mse, mlr_loss, pixel_loss, ssim_loss


def test_nll_matches_torch_distributions_in_bits_per_dim():
    latents = [torch.randn(4, 3, 8, 8), torch.randn(4, 3, 4, 4)]
    log_dets = [torch.randn(4), torch.randn(4)]
    normal = torch.distributions.Normal(0.0, 1.0)
    log_prob = sum(normal.log_prob(z).flatten(1).sum(1) for z in latents) + sum(log_dets)
    dims = 3 * 64 + 3 * 16
    expected = (-log_prob / (dims * math.log(2))).mean()
    torch.testing.assert_close(gaussian_nll_bits_per_dim(latents, log_dets), expected)


def test_nll_of_standard_normal_samples_is_the_gaussian_entropy():
    z = torch.randn(64, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    entropy_bits = 0.5 * math.log2(2 * math.pi * math.e)
    assert gaussian_nll_bits_per_dim([z], [torch.zeros(64)]).item() == pytest.approx(entropy_bits, abs=0.01)


def test_mlr_adds_the_l1_term_of_both_branches():
    blur, sharp = [torch.randn(2, 3, 4, 4)], [torch.randn(2, 3, 4, 4)]
    zeros = [torch.zeros(2)]
    plain = mlr_loss(blur, zeros, sharp, zeros, l1_weight=0.0)
    sparse = mlr_loss(blur, zeros, sharp, zeros, l1_weight=0.1)
    torch.testing.assert_close(plain["loss"], plain["bpd_blur"] + plain["bpd_sharp"])
    torch.testing.assert_close(sparse["loss"] - plain["loss"], 0.1 * (latent_l1(blur) + latent_l1(sharp)))
    assert latent_l1([torch.full((2, 3), -2.0), torch.full((1, 2), 1.0)]).item() == pytest.approx(14 / 8)
    with pytest.raises(ValueError, match="λ must lie in \\[0, 1\\)"):
        mlr_loss(blur, zeros, sharp, zeros, l1_weight=1.5)


def test_latent_mse_is_halved_per_level_mean_and_does_not_train_the_target():
    target = [torch.zeros(1, 3, 2, 2, requires_grad=True), torch.zeros(1, 3, 1, 1, requires_grad=True)]
    predicted = [torch.full((1, 3, 2, 2), 2.0, requires_grad=True), torch.full((1, 3, 1, 1), 1.0, requires_grad=True)]
    loss = latent_mse(predicted, target)
    assert loss.item() == pytest.approx((4.0 + 1.0) / 4)
    loss.backward()
    assert all(t.grad is None for t in target) and all(p.grad is not None for p in predicted)


def test_ssim_loss_is_zero_for_identical_images_and_grows_with_blur():
    sharp = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    mild = torch.nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1, count_include_pad=False)
    strong = torch.nn.functional.avg_pool2d(sharp, 7, stride=1, padding=3, count_include_pad=False)
    restored = mild.clone().requires_grad_(True)
    assert ssim_loss(sharp, sharp).item() == pytest.approx(0.0, abs=1e-6)
    assert 0 < ssim_loss(mild, sharp) < ssim_loss(strong, sharp) < 1
    ssim_loss(restored, sharp).backward()
    assert restored.grad.abs().sum() > 0


def test_ssim_loss_is_computed_in_float32_under_autocast():
    sharp = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    restored = (sharp + 0.05).clamp(0, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = ssim_loss(restored, sharp)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, ssim_loss(restored, sharp))


def test_pixel_losses_measure_the_distance_and_send_gradients_to_the_output():
    sharp = torch.zeros(2, 1, 4, 4)
    restored = torch.full((2, 1, 4, 4), 0.3, requires_grad=True)
    assert pixel_loss(restored, sharp, "l1").item() == pytest.approx(0.3)
    assert pixel_loss(restored, sharp, "charbonnier", epsilon=0.4).item() == pytest.approx(0.5)
    assert pixel_loss(sharp, sharp, "charbonnier", epsilon=1e-3).item() == pytest.approx(1e-3)
    for kind in ("l1", "charbonnier"):
        restored.grad = None
        pixel_loss(restored, sharp, kind).backward()
        assert (restored.grad > 0).all()
    with pytest.raises(ValueError, match="pixel loss must be one of"):
        pixel_loss(restored, sharp, "l2")
