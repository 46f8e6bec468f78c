"""WaveletFlow as a whole-image density: the prior, bits/dim under uniform dequantisation, sampling from nothing, and
the flow as a node of a FrEIA graph."""

import doctest
import math

import pytest
import torch
from FrEIA.framework import GraphINN, InputNode, Node, OutputNode

import flowdeblur.flows.prior
import flowdeblur.flows.wavelet_flow
from flowdeblur.data import BlurSpec, build_dataset
from flowdeblur.flows import (
    ActNorm,
    LowPassPrior,
    WaveletFlow,
    dequantized_bits_per_dim,
    gaussian_log_likelihood,
    uniform_dequantize,
)
from tests.flow_checks import ROUND_TRIP_TOLERANCE, brute_force_log_det, perturb_parameters


def density(levels=2, prior_steps=1, dtype=torch.float64, size=16) -> WaveletFlow:
    """A small WaveletFlow with a prior, ActNorm initialised on standard normal images, parameters moved off zero."""
    torch.manual_seed(0)
    prior = LowPassPrior(1, steps=prior_steps, hidden_channels=4, kernel_size=3)
    flow = WaveletFlow(1, levels, steps=1, hidden_channels=4, kernel_size=3, prior=prior).to(dtype)
    with torch.no_grad():
        flow.log_prob(torch.randn(64, 1, size, size, dtype=dtype))
    perturb_parameters(flow, scale=0.05)
    return flow


def flat_outputs(flow, image):
    return torch.cat([part.flatten() for part in flow(image[None])[0]])


@pytest.mark.parametrize("prior_steps", [0, 2])
def test_the_freia_call_with_a_prior_round_trips_and_its_log_det_is_the_brute_force_jacobian_s(prior_steps):
    flow = density(prior_steps=prior_steps, dtype=torch.float32)
    image = torch.rand(3, 1, 16, 16)
    z, log_jac_det = flow(image)
    assert z[-1].shape == ((3, 1, 4, 4) if prior_steps == 0 else (3, 4, 2, 2))
    restored, reverse = flow(z, rev=True)
    assert (restored - image).abs().max().item() < ROUND_TRIP_TOLERANCE[torch.float32]
    torch.testing.assert_close(reverse, -log_jac_det)
    flow = flow.double()
    one = image[0].double()
    torch.testing.assert_close(flow(one[None])[1][0], brute_force_log_det(lambda x: flat_outputs(flow, x), one))


def test_log_prob_is_the_change_of_variables_of_the_whole_map_and_the_default_keeps_its_state_dict_keys():
    flow = density()
    images = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    z, log_jac_det = flow(images)
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = sum(normal.log_prob(part).flatten(1).sum(1) for part in z) + log_jac_det
    torch.testing.assert_close(flow.log_prob(images), expected)
    encoding = flow.encode(images)
    prior_z, prior_log_det = flow.prior(encoding.coarsest)
    prior_part = gaussian_log_likelihood([prior_z], [prior_log_det])
    torch.testing.assert_close(flow.log_prob(images), encoding.log_prob() + prior_part)  # Wavelet Flow's Eq. 4
    plain = WaveletFlow(1, 2, steps=1, hidden_channels=4)
    assert all(key.split(".")[0] in {"0", "1"} for key in plain.state_dict()) and plain.prior is None
    assert {key for key in flow.state_dict() if not key.startswith("prior.")} == set(plain.state_dict())


def test_the_whole_image_density_of_a_2x2_image_integrates_to_one():
    """One level on a 1-channel 2 × 2 image: a 4-D density; its Riemann sum over [−6, 6]^4 is 1."""
    flow = density(levels=1, prior_steps=0, size=2)
    image = torch.randn(1, 1, 2, 2, dtype=torch.float64)
    normal = torch.distributions.Normal(0.0, 1.0)
    by_hand = normal.log_prob(flat_outputs(flow, image[0])).sum() + brute_force_log_det(
        lambda x: flat_outputs(flow, x), image[0])
    torch.testing.assert_close(flow.log_prob(image)[0], by_hand)
    axis = torch.linspace(-6.0, 6.0, 29, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis, axis, axis).reshape(-1, 1, 2, 2)
    with torch.no_grad():
        mass = sum(flow.log_prob(chunk).exp().sum() for chunk in grid.split(100_000)) * (axis[1] - axis[0]) ** 4
    assert mass.item() == pytest.approx(1.0, abs=2e-3)


def test_uniform_dequantization_keeps_the_8_bit_level_and_adds_noise_below_one_step():
    levels = torch.arange(256, dtype=torch.float32)
    dequantized = uniform_dequantize((levels / 255).reshape(1, 1, 16, 16), 8, torch.Generator().manual_seed(0))
    assert torch.equal(torch.floor(dequantized.flatten() * 256), levels)
    assert dequantized.min() >= 0.0 and dequantized.max() < 1.0
    with pytest.raises(ValueError, match="bits must be at least 1"):
        uniform_dequantize(levels, 0)


def test_bits_per_dim_is_the_hand_computed_formula_on_a_tiny_flow():
    """Identity levels and an identity prior make log p(y) = log N(y; 0, I) (Haar is orthonormal): by hand,
    bpd = (½‖y‖² + (D/2)·log 2π + D·8·log 2) / (D·log 2), y = (k + u) / 256."""
    flow = WaveletFlow(1, 1, steps=0, prior=LowPassPrior(1)).double()
    flow.prior.normalize.initialized.fill_(True)  # keep the prior's ActNorm the identity: x^(1) ~ N(0, 1)
    image = torch.tensor([[[[0, 17], [128, 255]]]], dtype=torch.float64) / 255
    noise = torch.rand(4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = (torch.tensor([0.0, 17, 128, 255], dtype=torch.float64) + noise) / 256
    by_hand = (0.5 * y.square().sum() + 2 * math.log(2 * math.pi) + 4 * 8 * math.log(2)) / (4 * math.log(2))
    computed = flow.bits_per_dim(image, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(computed, by_hand.reshape(1))
    torch.testing.assert_close(dequantized_bits_per_dim(torch.zeros(1), 4, 8), torch.full((1,), 8.0))


def test_bits_per_dim_of_photographs_is_positive_and_needs_a_prior_and_whole_levels():
    photos = build_dataset("builtin", split="test", color="y", crop_size=32, augment=False,
                           blur=BlurSpec(kind="none", kernel_size=1), patch_size=32)
    images = torch.stack([photos[index]["sharp"] for index in range(8)])
    flow = WaveletFlow(1, 3, steps=1, hidden_channels=8, prior=LowPassPrior(1, steps=1, hidden_channels=8))
    with torch.no_grad():
        bits = flow.bits_per_dim(images, generator=torch.Generator().manual_seed(0))
    assert bits.shape == (8,) and (bits >= 0).all()
    with pytest.raises(ValueError, match="multiples of 2\\^3"):
        flow.bits_per_dim(images[..., :30, :30])
    with pytest.raises(ValueError, match="needs a prior"):
        WaveletFlow(1, 3, steps=1, hidden_channels=8).bits_per_dim(images)


def test_sampling_whole_images_has_the_asked_shape_and_follows_the_seed():
    flow = density(prior_steps=1).float()
    draws = [flow.sample(3, size=(16, 24), generator=torch.Generator().manual_seed(seed)) for seed in (1, 1, 2)]
    assert draws[0].shape == (3, 1, 16, 24) and torch.isfinite(draws[0]).all()
    assert torch.equal(draws[0], draws[1]) and not torch.allclose(draws[0], draws[2])
    globally = []
    for _ in range(2):
        torch.manual_seed(5)
        globally.append(flow.sample(2, temperature=0.7, size=(8, 8)))
    assert torch.equal(*globally)
    with pytest.raises(ValueError, match="multiple of 2\\^2"):
        flow.sample(2, size=(10, 8))
    with pytest.raises(ValueError, match="needs a prior"):
        WaveletFlow(1, 2, steps=1, hidden_channels=4).sample(2, size=(8, 8))
    with pytest.raises(ValueError, match="sides must be even"):
        flow.sample(2, size=(12, 12))  # a 3 × 3 low-pass cannot be squeezed by the prior's flow


def test_a_wavelet_flow_is_a_node_of_a_freia_graph_round_trip_and_log_det():
    """ActNorm -> WaveletFlow (a Node builds it from dims_in) -> ActNorm on the prior's latent, in one GraphINN."""
    torch.manual_seed(0)
    prior = LowPassPrior(1, steps=1, hidden_channels=4)
    inp = InputNode(1, 16, 16, name="image")
    first = Node(inp, ActNorm, {}, name="actnorm")
    wavelet = Node(first, WaveletFlow, {"levels": 2, "steps": 1, "hidden_channels": 4, "prior": prior}, name="wf")
    last = Node(wavelet.out2, ActNorm, {}, name="actnorm_prior")
    outputs = [OutputNode(wavelet.out0), OutputNode(wavelet.out1), OutputNode(last)]
    graph = GraphINN([inp, first, wavelet, last, *outputs]).double()
    assert wavelet.output_dims == [(3, 8, 8), (3, 4, 4), (4, 2, 2)]
    image = torch.rand(3, 1, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        graph(image)  # ActNorms' initialisation
    perturb_parameters(graph)
    z, log_jac_det = graph(image)
    assert [tuple(part.shape) for part in z] == [(3, 3, 8, 8), (3, 3, 4, 4), (3, 4, 2, 2)]
    restored, reverse = graph(z, rev=True)
    assert (restored - image).abs().max().item() < ROUND_TRIP_TOLERANCE[torch.float64]
    torch.testing.assert_close(reverse, -log_jac_det)

    def flat(x):
        return torch.cat([part.flatten() for part in graph(x[None])[0]])

    torch.testing.assert_close(log_jac_det[0], brute_force_log_det(flat, image[0]))
    with pytest.raises(ValueError, match="no external condition"):
        WaveletFlow([(1, 16, 16)], 2, dims_c=[(1, 16, 16)])


def test_examples_run():
    assert doctest.testmod(flowdeblur.flows.prior).failed == 0
    assert doctest.testmod(flowdeblur.flows.wavelet_flow).failed == 0
