"""WaveletFlow: exact round trips and log-dets, log_prob as the losses count it, sampling from a low-pass, and
flowdeblur.flows standing on torch, FrEIA and pytorch-wavelets alone."""

import json
import math
import subprocess
import sys

import pytest
import torch

from flowdeblur.flows import Encoding, WaveletFlow, build_level_flow
from flowdeblur.train.losses import gaussian_nll_bits_per_dim
from tests.flow_checks import ROUND_TRIP_TOLERANCE, brute_force_log_det, perturb_parameters


def small_flow(conditional=True, channels=1, levels=2, dtype=torch.float64, **options) -> WaveletFlow:
    torch.manual_seed(0)
    flow = WaveletFlow(channels, levels, conditional=conditional, steps=2, hidden_channels=8, **options).to(dtype)
    flow.encode(torch.rand(2, channels, 16, 16, dtype=dtype))  # ActNorm's data-dependent initialisation
    perturb_parameters(flow, scale=0.05)
    return flow


@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 1, 21, 34), (1, 3, 16, 8)])
def test_decode_inverts_encode(conditional, dtype, shape):
    flow = small_flow(conditional, channels=shape[1], dtype=dtype)
    image = torch.rand(shape, dtype=dtype)
    encoding = flow.encode(image)
    assert isinstance(encoding, Encoding) and encoding.size == shape[-2:]
    assert [z.shape for z in encoding.latents] == [(shape[0], 3 * shape[1], *low.shape[-2:]) for low in
                                                   encoding.lowpasses]
    assert (flow.decode(encoding) - image).abs().max().item() < ROUND_TRIP_TOLERANCE[dtype]


@pytest.mark.parametrize("conditional", [True, False])
def test_the_total_log_det_is_the_brute_force_jacobian_of_image_to_latents_and_low_pass(conditional):
    flow = small_flow(conditional)
    image = torch.rand(1, 1, 16, 16, dtype=torch.float64)

    def encode(sample):
        encoding = flow.encode(sample[None])
        return torch.cat([z.flatten() for z in encoding.latents] + [encoding.coarsest.flatten()])

    log_det = flow.encode(image).log_det
    assert abs(log_det.item()) > 1.0
    torch.testing.assert_close(log_det[0], brute_force_log_det(encode, image[0]), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("conditional", [True, False])
def test_the_freia_call_round_trips_and_its_log_dets_are_the_brute_force_jacobian_s(conditional):
    """``z, log_jac_det = flow(x)``; ``x, reverse = flow(z, rev=True)`` with reverse = −log_jac_det, as in FrEIA."""
    flow = small_flow(conditional)
    image = torch.rand(2, 1, 16, 24, dtype=torch.float64)
    z, log_jac_det = flow(image)
    assert len(z) == flow.levels + 1 and torch.equal(z[-1], flow.encode(image).coarsest)
    restored, reverse = flow(z, rev=True)
    assert (restored - image).abs().max().item() < 1e-10
    torch.testing.assert_close(reverse, -log_jac_det)
    one = image[:1, :, :8, :8]

    def decode(flat):
        parts = flow(one)[0]
        sizes = [part.numel() for part in parts]
        pieces = [chunk.reshape(part.shape) for chunk, part in zip(flat.split(sizes), parts, strict=True)]
        return flow(pieces, rev=True)[0].flatten()

    latents = torch.cat([part.flatten() for part in flow(one)[0]])
    torch.testing.assert_close(flow(flow(one)[0], rev=True)[1][0], brute_force_log_det(decode, latents))
    assert flow(image, jac=False)[1] is None and flow([image])[0][0].shape == z[0].shape


def test_the_freia_call_refuses_an_external_condition_and_a_wrong_reverse_input():
    flow = small_flow()
    with pytest.raises(ValueError, match="no external condition"):
        flow(torch.rand(1, 1, 8, 8, dtype=torch.float64), c=[torch.rand(1, 1, 8, 8)])
    with pytest.raises(ValueError, match="2 latents and the coarsest low-pass"):
        flow([torch.rand(1, 3, 4, 4)], rev=True)


def test_log_prob_is_the_standard_normal_change_of_variables_and_matches_the_loss():
    flow = small_flow()
    images = torch.rand(3, 1, 16, 16, dtype=torch.float64)
    encoding = flow.encode(images)
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = sum(normal.log_prob(z).flatten(1).sum(1) for z in encoding.latents) + encoding.log_det
    torch.testing.assert_close(flow.log_prob(images), expected)
    assert encoding.dims == 3 * 16 * 16 // 4 + 3 * 16 * 16 // 16
    torch.testing.assert_close(encoding.bits_per_dim(), -expected / (encoding.dims * math.log(2.0)))
    torch.testing.assert_close(encoding.bits_per_dim().mean(), gaussian_nll_bits_per_dim(encoding.latents,
                                                                                         encoding.log_dets))


@pytest.mark.parametrize("conditional", [True, False])
def test_sampling_at_temperature_zero_decodes_zero_latents_and_keeps_the_low_pass(conditional):
    flow = small_flow(conditional, levels=2)
    coarsest = torch.rand(2, 1, 5, 7, dtype=torch.float64) * 4
    sample = flow.sample(coarsest, temperature=0.0)
    assert sample.shape == (2, 1, 20, 28)
    zeros = Encoding(
        latents=tuple(torch.zeros(2, 3, 5 * 2**k, 7 * 2**k, dtype=torch.float64) for k in (1, 0)),
        log_dets=(), lowpasses=(coarsest,), size=(20, 28),
    )
    torch.testing.assert_close(sample, flow.decode(zeros))
    drawn = flow.sample(coarsest, temperature=0.7, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(drawn, sample)
    torch.testing.assert_close(flow.encode(drawn).coarsest, coarsest, rtol=0, atol=1e-12)


def test_a_custom_factory_builds_each_level_and_options_go_to_the_default_one():
    built = []

    def factory(level):
        built.append(level)
        return build_level_flow(3, condition_channels=1, steps=1, hidden_channels=4)

    flow = WaveletFlow(1, 3, factory=factory)
    assert built == [0, 1, 2] and len(flow.inns) == 3
    assert sorted(flow.state_dict())[0].startswith("0.")
    with pytest.raises(ValueError, match="a factory or options"):
        WaveletFlow(1, 3, factory=factory, steps=2)
    with pytest.raises(ValueError, match=r"expected a batch \(N, 1, H, W\)"):
        flow.encode(torch.rand(1, 3, 8, 8))


def test_memory_saving_gives_the_same_outputs_gradients_and_keys():
    plain, saving = small_flow(), small_flow(memory_saving=True)
    assert plain.state_dict().keys() == saving.state_dict().keys()
    saving.load_state_dict(plain.state_dict())
    image = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    losses = [-flow.log_prob(image).mean() for flow in (plain, saving)]
    torch.testing.assert_close(losses[0], losses[1])
    for loss in losses:
        loss.backward()
    for (name, a), b in zip(plain.named_parameters(), saving.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-12, msg=name)


def test_importing_the_flows_loads_neither_the_model_nor_safetensors_nor_accelerate_nor_a_warnings_filter():
    probe = (
        "import json, sys, warnings\n"
        "import torch, FrEIA.framework, FrEIA.modules, pywt  # their own filters are theirs\n"
        "before = list(warnings.filters)\n"
        "import flowdeblur.flows\n"
        "heavy = ('accelerate', 'safetensors', 'flowdeblur.model', 'flowdeblur.train', 'torchmetrics', 'skimage')\n"
        "print(json.dumps({'loaded': [m for m in heavy if m in sys.modules],"
        " 'filters_changed': list(warnings.filters) != before}))"
    )
    process = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(process.stdout.splitlines()[-1]) == {"loaded": [], "filters_changed": False}
