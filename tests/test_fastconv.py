"""The inference fast path (flowdeblur.flows.fastconv) gives the training path's results, and only at inference."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flowdeblur import WaveletUNetFlow
from flowdeblur.color import image_to_channels
from flowdeblur.config import PRESETS, UMLINConfig
from flowdeblur.flows import CouplingSubnet, fastconv
from flowdeblur.naf import LayerNorm2d, NAFBlock
from flowdeblur.transfer import TransferNet
from tests.flow_checks import perturb_parameters

TOLERANCE = 1e-5


def channels_last_input(channels: int, height: int, width: int) -> torch.Tensor:
    """A seeded input in the layout the fast path convolves."""
    x = torch.randn(1, channels, height, width, generator=torch.Generator().manual_seed(3))
    return fastconv.channels_last(x)


@pytest.mark.parametrize(("out_channels", "kernel"), [(1, 5), (2, 5), (3, 3), (4, 5), (4, 1), (6, 5)])
@pytest.mark.parametrize(("height", "width"), [(16, 24), (15, 24), (16, 9), (6, 10), (2, 2)])
def test_thin_conv2d_equals_conv2d(out_channels, kernel, height, width):
    conv = nn.Conv2d(16, out_channels, kernel, padding=kernel // 2)
    x = channels_last_input(16, height, width)
    with torch.no_grad():
        out = fastconv.thin_conv2d(x, conv)
        assert out.is_contiguous()
        torch.testing.assert_close(out, conv(x.contiguous()), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize(("out_channels", "kernel", "height", "width", "expected"), [
    (4, 5, 128, 128, (2, 2)), (2, 5, 128, 128, (2, 4)), (2, 5, 90, 160, (2, 4)), (3, 3, 90, 160, (2, 2)),
    (1, 5, 64, 64, (4, 4)), (2, 5, 45, 80, (1, 4)), (2, 5, 45, 45, (1, 1)), (9, 5, 64, 64, (1, 1)),
])
def test_phases_fill_the_vectors_where_the_size_allows(out_channels, kernel, height, width, expected):
    assert fastconv.phases(out_channels, kernel, height, width) == expected


def test_thin_conv2d_follows_weight_changes():
    conv = nn.Conv2d(8, 2, 5, padding=2)
    x = channels_last_input(8, 12, 12)
    with torch.no_grad():
        fastconv.thin_conv2d(x, conv)
        conv.weight.mul_(-2.0)
        conv.bias.add_(1.0)
        torch.testing.assert_close(fastconv.thin_conv2d(x, conv), conv(x.contiguous()), atol=TOLERANCE, rtol=0)
    assert set(conv.state_dict()) == {"weight", "bias"}


def test_thin_conv2d_follows_a_fused_optimiser_step():
    """Fused Adam writes the weights in place without bumping their version counters."""
    conv = nn.Conv2d(8, 2, 5, padding=2)
    x = channels_last_input(8, 12, 12)
    optimizer = torch.optim.Adam(conv.parameters(), lr=0.1, fused=True)
    with torch.no_grad():
        fastconv.thin_conv2d(x, conv)
    conv(x.contiguous()).square().sum().backward()
    versions = [p._version for p in conv.parameters()]
    optimizer.step()
    assert [p._version for p in conv.parameters()] == versions  # what the cache could not see by versions alone
    with torch.no_grad():
        torch.testing.assert_close(fastconv.thin_conv2d(x, conv), conv(x.contiguous()), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("dilation", [1, 2])
def test_fused_convolutions_equal_the_layers(dilation):
    conv = nn.Conv2d(8, 8, 3, padding=dilation, dilation=dilation)
    x = channels_last_input(8, 10, 14)
    residual = torch.randn(1, 8, 10, 14)
    with torch.no_grad():
        torch.testing.assert_close(fastconv.conv2d(x, conv, relu=True), F.relu(conv(x)), atol=TOLERANCE, rtol=0)
        torch.testing.assert_close(fastconv.conv2d_add(x, conv, residual), residual + conv(x), atol=TOLERANCE, rtol=0)


def test_the_fast_path_is_for_cpu_float32_inference_mode_only():
    x = torch.zeros(1, 2, 4, 4)
    assert not fastconv.applies(x)
    with torch.no_grad():
        assert not fastconv.applies(x)  # training's no-grad parts keep their arithmetic
    with torch.inference_mode():
        assert fastconv.applies(x)
        assert not fastconv.applies(x.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not fastconv.applies(x)


def test_a_build_without_the_fused_op_takes_the_ordinary_path(monkeypatch):
    monkeypatch.setattr(fastconv, "FUSED_CONVOLUTION", False)
    with torch.inference_mode():
        assert not fastconv.applies(torch.zeros(1, 2, 4, 4))


@pytest.mark.parametrize(("in_channels", "out_channels", "hidden"), [(2, 4, 16), (3, 2, 8), (5, 10, 8)])
def test_subnet_inference_equals_training_path(in_channels, out_channels, hidden):
    subnet = CouplingSubnet(in_channels, out_channels, hidden_channels=hidden)
    perturb_parameters(subnet)
    x = torch.randn(2, in_channels, 12, 18, generator=torch.Generator().manual_seed(1))
    training = subnet(x)
    training.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in subnet.parameters())
    with torch.inference_mode():
        torch.testing.assert_close(subnet(x), training.detach(), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("dilation", [1, 2])
def test_transfer_net_inference_equals_training_path(dilation):
    net = TransferNet(3, 1, hidden_channels=16, blocks=2, dilation=dilation)
    perturb_parameters(net)
    z, low = torch.randn(1, 3, 20, 14), torch.rand(1, 1, 20, 14)
    training = net(z, low)
    training.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    with torch.inference_mode():
        torch.testing.assert_close(net(z, low), training.detach(), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_nafblock_and_its_layernorm_inference_equal_the_training_path(layout):
    """Channels-last or not, in inference mode a NAFBlock (beta and gamma folded into its convolutions) and its
    LayerNorm (one fused kernel over each pixel's channels) give the plain layers' results."""
    block, norm = NAFBlock(8), LayerNorm2d(8)
    perturb_parameters(block, scale=0.3)
    perturb_parameters(norm, scale=0.3)
    x = torch.randn(2, 8, 13, 10, generator=torch.Generator().manual_seed(4)).contiguous(memory_format=layout)
    training = block(x)
    training.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
    with torch.inference_mode():
        torch.testing.assert_close(block(x), training.detach(), atol=TOLERANCE, rtol=0)
        torch.testing.assert_close(norm(x), norm(x.contiguous()), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("color", ["y", "rgb"])
@pytest.mark.parametrize(("height", "width"), [(64, 96), (45, 67)])
@pytest.mark.parametrize("base", [UMLINConfig(steps=2, hidden_channels=16, transfer_hidden_channels=16),
                                  PRESETS["pyramid-light"]], ids=["resnet-transfer", "pyramid-light"])
def test_model_inference_equals_training_path(color, height, width, base):
    torch.manual_seed(0)
    model = WaveletUNetFlow(replace(base, color=color))
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(2))
    working = image_to_channels(image, color)
    model.initialize(working, working)
    perturb_parameters(model, scale=0.02)
    keys = set(model.state_dict())
    training = model(image)
    with torch.inference_mode():
        torch.testing.assert_close(model(image), training.detach(), atol=TOLERANCE, rtol=0)
    assert set(model.state_dict()) == keys
