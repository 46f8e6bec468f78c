"""A small NAFNet-style network: the strong modern learned baseline that UML-IN is compared with at equal size and time.

Written from the description in Chen, Chu, Zhang & Sun, "Simple Baselines for Image Restoration" (ECCV 2022):
an encoder-decoder of NAFBlocks, blocks without nonlinear activations. A block normalises each pixel over its
channels (LayerNorm), widens with a 1x1 convolution, mixes space with a 3x3 depthwise convolution, gates by
SimpleGate (one half of the channels times the other), reweighs channels by Simplified Channel Attention (a global
average pool and a 1x1 convolution, multiplied in) and narrows with a 1x1 convolution; then a feed-forward branch
(LayerNorm, 1x1, SimpleGate, 1x1). Each branch is added to its input through a learned per-channel scale (beta,
gamma) that starts at zero, so every block starts as the identity. Strided 2x2 convolutions downsample, a 1x1
convolution and PixelShuffle upsample, skips are added, and the output is ``x + correction`` with the last
convolution zero-initialised, so the network starts as the identity. Trained like the plain U-Net
(``learned.train_for``: Adam, L1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from learned import pad_to_multiple, with_parameters
from torch import Tensor, nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of an (N, C, H, W) batch, then a per-channel scale and shift."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        centred = x - x.mean(dim=1, keepdim=True)
        variance = centred.square().mean(dim=1, keepdim=True)
        return centred * torch.rsqrt(variance + self.eps) * self.weight + self.bias


def simple_gate(x: Tensor) -> Tensor:
    """SimpleGate: the first half of the channels times the second half (NAFNet's replacement for GELU)."""
    first, second = x.chunk(2, dim=1)
    return first * second


class NAFBlock(nn.Module):
    """A NAFBlock of ``channels`` channels; each branch widens ``expansion`` times before SimpleGate halves it."""

    def __init__(self, channels: int, expansion: int = 2):
        super().__init__()
        wide, gated = channels * expansion, channels * expansion // 2
        self.spatial = nn.Sequential(
            LayerNorm2d(channels),
            nn.Conv2d(channels, wide, 1),
            nn.Conv2d(wide, wide, 3, padding=1, groups=wide),
        )
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(gated, gated, 1))
        self.narrow = nn.Conv2d(gated, channels, 1)
        self.feed_forward_in = nn.Sequential(LayerNorm2d(channels), nn.Conv2d(channels, wide, 1))
        self.feed_forward_out = nn.Conv2d(gated, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        h = simple_gate(self.spatial(x))
        x = x + self.beta * self.narrow(h * self.attention(h))
        return x + self.gamma * self.feed_forward_out(simple_gate(self.feed_forward_in(x)))


def _stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(NAFBlock(channels) for _ in range(blocks)))


class NAFNet(nn.Module):
    """``x + N(x)``: ``depth`` downsamplings, widths ``width * 2^d``, ``blocks`` NAFBlocks per scale on each side.

    The middle (the coarsest scale) has ``blocks`` blocks too; ``encoder_blocks`` gives each encoder scale its own
    count instead (the published configurations put most blocks in the coarsest encoder). Any size is padded to a
    multiple of ``2^depth`` (replicating the edge) and cropped back.

    Example:
        >>> net = NAFNet(channels=1, width=8)
        >>> x = torch.rand(2, 1, 37, 50)
        >>> net(x).shape
        torch.Size([2, 1, 37, 50])
        >>> torch.equal(net(x), x)  # the identity until trained
        True
    """

    def __init__(
        self, channels: int = 1, width: int = 16, depth: int = 3, blocks: int = 1,
        encoder_blocks: Sequence[int] | None = None,
    ):
        super().__init__()
        widths = [width * 2**d for d in range(depth + 1)]
        encoder_blocks = [blocks] * depth if encoder_blocks is None else list(encoder_blocks)
        if len(encoder_blocks) != depth:
            raise ValueError(f"need one encoder block count per scale ({depth}), got {encoder_blocks}")
        self.intro = nn.Conv2d(channels, width, 3, padding=1)
        self.encoders = nn.ModuleList(_stage(widths[d], encoder_blocks[d]) for d in range(depth))
        self.downs = nn.ModuleList(nn.Conv2d(widths[d], widths[d + 1], 2, stride=2) for d in range(depth))
        self.middle = _stage(widths[depth], blocks)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[d + 1], 4 * widths[d], 1, bias=False), nn.PixelShuffle(2))
            for d in range(depth)
        )
        self.decoders = nn.ModuleList(_stage(widths[d], blocks) for d in range(depth))
        self.ending = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.ending.weight)
        nn.init.zeros_(self.ending.bias)
        self.multiple = 2**depth

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        h = self.intro(pad_to_multiple(x, self.multiple))
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            h = encoder(h)
            skips.append(h)
            h = down(h)
        h = self.middle(h)
        for up, decoder, skip in zip(reversed(self.ups), reversed(self.decoders), reversed(skips), strict=True):
            h = decoder(up(h) + skip)
        return x + self.ending(h)[..., :height, :width]


def nafnet_w32(channels: int = 3) -> NAFNet:
    """NAFNet-width32 as published for GoPro deblurring: encoder blocks 1, 1, 1, 28, one middle and decoder block."""
    return NAFNet(channels, width=32, depth=4, blocks=1, encoder_blocks=(1, 1, 1, 28))


def nafnet_with_parameters(parameters: int, channels: int = 1) -> NAFNet:
    """The NAFNet-style network whose parameter count is closest to ``parameters`` (choosing its width)."""
    return with_parameters(lambda width: NAFNet(channels, width), parameters)
