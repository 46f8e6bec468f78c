"""flowdeblur.flows: each block inverts exactly and reports the log-det of its brute-force Jacobian."""

import functools

import pytest
import torch
from FrEIA.framework import GraphINN, InputNode, Node, OutputNode

from flowdeblur.flows import (
    ActNorm,
    CouplingSubnet,
    HaarDownsampling,
    HaarWavelet,
    InvertibleConv1x1,
    WaveletPyramid,
    build_level_flow,
)
from tests.flow_checks import (
    ROUND_TRIP_TOLERANCE,
    brute_force_log_det,
    check_forward_inverse,
    count_host_reads,
    perturb_parameters,
)

DTYPES = [torch.float32, torch.float64]


def _module(cls, dims, dtype):
    torch.manual_seed(0)
    module = cls([dims]).to(dtype)
    perturb_parameters(module, scale=0.3)
    return module


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [InvertibleConv1x1, ActNorm])
def test_pointwise_block_round_trip_and_log_det(cls, dtype):
    module = _module(cls, (4, 5, 6), dtype)
    x = torch.randn(3, 4, 5, 6, dtype=dtype)
    log_det = check_forward_inverse(module, x)
    expected = brute_force_log_det(lambda s: module([s[None]])[0][0][0], x[0])
    torch.testing.assert_close(log_det[0], expected.to(dtype))


@pytest.mark.parametrize("cls", [InvertibleConv1x1, ActNorm])
def test_log_det_follows_the_input_size_not_the_declared_one(cls):
    module = _module(cls, (4, 1, 1), torch.float64)
    small, large = torch.randn(1, 4, 2, 3, dtype=torch.float64), torch.randn(1, 4, 4, 6, dtype=torch.float64)
    assert module([large])[1].item() == pytest.approx(4 * module([small])[1].item())


def test_conv1x1_weight_matches_its_lu_factors_and_runs_in_float32_under_autocast():
    module = _module(InvertibleConv1x1, (5, 4, 4), torch.float32)
    weight = module.weight().double()
    assert torch.linalg.slogdet(weight)[1].item() == pytest.approx(module.log_s.sum().item(), abs=1e-5)
    x = torch.randn(2, 5, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (z,), _ = module([x])
        (x_back,), _ = module([z], rev=True)
    assert z.dtype == torch.float32
    assert (x_back - x).abs().max() < 1e-5


def test_actnorm_initialises_from_the_first_forward_batch_only():
    module = ActNorm([(3, 1, 1)])
    x = torch.randn(8, 3, 5, 5) * torch.tensor([2.0, 0.5, 3.0]).view(1, 3, 1, 1) + 1.0
    (z,), _ = module([z_in := x])
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-4)
    before = module.state_dict()
    module([z_in * 10])
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    fresh = ActNorm([(3, 1, 1)])
    fresh.load_state_dict(before)
    assert fresh.initialized and torch.equal(fresh([x])[0][0], z)


def test_actnorm_reverse_pass_does_not_initialise():
    module = ActNorm([(2, 1, 1)])
    module([torch.randn(2, 2, 3, 3)], rev=True)
    assert not module.initialized


@pytest.mark.parametrize("dtype", DTYPES)
def test_haar_level_is_orthonormal_and_exactly_invertible(dtype):
    haar = HaarWavelet()
    x = torch.randn(2, 3, 6, 10, dtype=dtype)
    low, detail = haar.analysis(x)
    assert low.shape == (2, 3, 3, 5) and detail.shape == (2, 9, 3, 5)
    torch.testing.assert_close(low.square().sum() + detail.square().sum(), x.square().sum())
    error = (haar.synthesis(low, detail) - x).abs().max().item()
    assert error < {torch.float32: 1e-6, torch.float64: 1e-14}[dtype]

    def flat(sample):
        return torch.cat([t.flatten() for t in haar.analysis(sample[None])])

    assert brute_force_log_det(flat, x[0].double()).item() == pytest.approx(0.0, abs=1e-10)


def test_haar_synthesis_passes_gradients_to_the_detail_bands_alone():
    low, detail = torch.rand(1, 2, 4, 4), torch.rand(1, 6, 4, 4, requires_grad=True)
    HaarWavelet().synthesis(low, detail).square().sum().backward()
    torch.testing.assert_close(detail.grad, 2 * detail.detach())


def test_haar_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even height and width"):
        HaarWavelet().analysis(torch.rand(1, 1, 5, 4))


@pytest.mark.parametrize("size", [(67, 45), (8, 8), (1, 1), (3, 130)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_wavelet_pyramid_pads_and_crops_back_exactly(size, dtype):
    pyramid = WaveletPyramid(levels=3)
    x = torch.randn(2, 3, *size, dtype=dtype)
    lows, details, original = pyramid.analysis(x)
    assert original == size and len(lows) == len(details) == 3
    assert lows[-1].shape[-2:] == tuple((s + 7) // 8 for s in size)
    error = (pyramid.synthesis(lows[-1], details, original) - x).abs().max().item()
    assert error < ROUND_TRIP_TOLERANCE[dtype] / 10


def test_haar_downsampling_drops_into_a_freia_graph():
    inp = InputNode(2, 8, 8)
    haar = Node(inp, HaarDownsampling, {})
    graph = GraphINN([inp, haar, OutputNode(haar.out0), OutputNode(haar.out1)])
    x = torch.randn(3, 2, 8, 8)
    (low, detail), log_det = graph(x)
    assert low.shape == (3, 2, 4, 4) and detail.shape == (3, 6, 4, 4)
    assert torch.equal(log_det, torch.zeros(3))
    x_back, _ = graph([low, detail], rev=True)
    assert (x_back - x).abs().max() < 1e-6


def test_coupling_subnet_starts_at_zero():
    subnet = CouplingSubnet(3, 4, hidden_channels=8, kernel_size=5)
    assert torch.equal(subnet(torch.randn(2, 3, 7, 7)), torch.zeros(2, 4, 7, 7))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("conditional", [True, False])
def test_level_flow_round_trip_and_brute_force_log_det(dtype, conditional):
    torch.manual_seed(1)
    flow = build_level_flow(3, condition_channels=1 if conditional else 0, steps=2, hidden_channels=8).to(dtype)
    x = torch.randn(2, 3, 10, 10, dtype=dtype)  # 300 dimensions per sample
    c = [torch.rand(2, 1, 10, 10, dtype=dtype)] if conditional else []
    flow(x, c=c)  # ActNorm data initialisation
    perturb_parameters(flow, scale=0.05)

    z, log_det = flow(x, c=c)
    x_back, log_det_rev = flow(z, c=c, rev=True)
    assert (x_back - x).abs().max().item() < ROUND_TRIP_TOLERANCE[dtype]
    torch.testing.assert_close(log_det, -log_det_rev)
    assert log_det.abs().min() > 1.0, "parameters should be far enough from the identity to test anything"

    sample_c = [t[:1] for t in c]
    expected = brute_force_log_det(lambda s: flow(s[None], c=sample_c)[0][0], x[0])
    torch.testing.assert_close(log_det[0], expected, rtol=1e-4, atol=1e-3 if dtype == torch.float32 else 1e-8)


def test_level_flow_works_at_any_size():
    flow = build_level_flow(6, condition_channels=2, steps=1, hidden_channels=4)
    for size in [(4, 4), (9, 31)]:
        z, _ = flow(torch.randn(1, 6, *size), c=[torch.rand(1, 2, *size)])
        assert z.shape == (1, 6, *size)


def test_level_flow_rejects_a_single_channel():
    with pytest.raises(ValueError, match="at least 2 channels"):
        build_level_flow(1)


def _conv1x1_outputs(module, x):
    return [module([x], rev=rev)[0][0] for rev in (False, True)]


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_conv1x1_cache_gives_the_uncached_outputs_and_follows_parameter_updates(context):
    module = _module(InvertibleConv1x1, (5, 4, 4), torch.float32)
    x = torch.randn(2, 5, 4, 4)
    with torch.enable_grad():
        uncached = _conv1x1_outputs(module, x)
    with context():
        first, second = _conv1x1_outputs(module, x), _conv1x1_outputs(module, x)
    assert module._cache
    for fresh, reused, expected in zip(first, second, uncached, strict=True):
        assert torch.equal(fresh, reused)
        torch.testing.assert_close(fresh, expected, atol=1e-5, rtol=0)
    perturb_parameters(module, scale=0.3, seed=1)  # an in-place update, as an optimiser step makes
    with torch.enable_grad():
        updated = _conv1x1_outputs(module, x)
    with context():
        for cached, expected in zip(_conv1x1_outputs(module, x), updated, strict=True):
            torch.testing.assert_close(cached, expected, atol=1e-5, rtol=0)


def test_conv1x1_gradients_after_an_inference_call_are_those_of_a_fresh_module():
    module, fresh = (_module(InvertibleConv1x1, (5, 4, 4), torch.float32) for _ in range(2))
    x = torch.randn(2, 5, 4, 4)
    with torch.inference_mode():
        _conv1x1_outputs(module, x)
    for net in (module, fresh):
        for out in _conv1x1_outputs(net, x):
            out.square().sum().backward()
    for used, unused in zip(module.parameters(), fresh.parameters(), strict=True):
        assert used.grad is not None and torch.equal(used.grad, unused.grad)


def _reference_inverse_output(module, x):
    """The reverse pass computed the plain way, through torch.linalg.inv with autograd (no cache)."""
    weight = torch.linalg.inv(module.weight().to(x.dtype))
    return torch.nn.functional.conv2d(x, weight[:, :, None, None])


OPTIMIZERS = {
    "SGD": functools.partial(torch.optim.SGD, lr=0.05),
    "fused Adam": functools.partial(torch.optim.Adam, lr=0.05, fused=True),  # no version bump: a step hook tells
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_conv1x1_cached_inverse_carries_the_gradient_of_the_inverse_across_optimiser_steps(optimizer):
    module = _module(InvertibleConv1x1, (4, 3, 3), torch.float64)
    reference = _module(InvertibleConv1x1, (4, 3, 3), torch.float64)
    optimizers = [OPTIMIZERS[optimizer](net.parameters()) for net in (module, reference)]
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    for _ in range(3):  # each step changes the factors: the cached inverse must follow
        for optimizer, out in ((optimizers[0], module([x], rev=True)[0][0]),
                               (optimizers[1], _reference_inverse_output(reference, x))):
            optimizer.zero_grad()
            out.sin().sum().backward()
            optimizer.step()
        for used, expected in zip(module.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(used, expected, rtol=0, atol=1e-12)


def test_conv1x1_reverse_twice_at_one_version_backpropagates_twice():
    """A skipped optimiser step leaves the factors unchanged: the next reverse pass must not reuse a freed graph."""
    module = _module(InvertibleConv1x1, (4, 3, 3), torch.float32)
    x = torch.randn(2, 4, 3, 3)
    for _ in range(2):
        module([x], rev=True)[0][0].sum().backward()
    assert all(parameter.grad is not None for parameter in module.parameters())


def test_actnorm_reads_its_initialized_buffer_once_and_again_after_loading(monkeypatch):
    module = ActNorm([(3, 4, 4)])
    x = torch.randn(2, 3, 4, 4) * 3 + 1
    module([x])
    reads = count_host_reads(monkeypatch)
    for _ in range(3):
        module([x])
    assert reads == []
    fresh = ActNorm([(3, 4, 4)])
    module.load_state_dict(fresh.state_dict())  # an uninitialised state: the next forward initialises again
    out = module([x])[0][0]
    assert reads == ["__bool__"]
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    loaded = ActNorm([(3, 4, 4)])
    loaded.load_state_dict(module.state_dict())  # an initialised state: never initialised again
    torch.testing.assert_close(loaded([x * 5])[0][0], module([x * 5])[0][0])
