"""NAFBlocks (Chen, Chu, Zhang & Sun, "Simple Baselines for Image Restoration", ECCV 2022), written from the paper.

A block normalises each pixel over its channels (LayerNorm), widens with a 1x1 convolution, mixes space with a 3x3
depthwise convolution, gates by SimpleGate (one half of the channels times the other), reweighs channels by
Simplified Channel Attention (a global average pool and a 1x1 convolution, multiplied in) and narrows with a 1x1
convolution; then a feed-forward branch (LayerNorm, 1x1, SimpleGate, 1x1). Each branch is added to its input
through a learned per-channel scale (beta, gamma) that starts at zero, so every block starts as the identity.
UML-IN's pyramid transfer net and full-resolution stage are built from them, and so is the NAFNet-style baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .flows import fastconv


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of an (N, C, H, W) batch, then a per-channel scale and shift."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if fastconv.applies(x) and x.is_contiguous(memory_format=torch.channels_last):
            # each pixel's channels lie together: one fused LayerNorm kernel over them, same result to rounding
            pixels = x.permute(0, 2, 3, 1)
            return F.layer_norm(pixels, pixels.shape[-1:], self.weight.flatten(), self.bias.flatten(),
                                self.eps).permute(0, 3, 1, 2)
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
        if fastconv.applies(x):
            return self._fast_forward(x)
        h = simple_gate(self.spatial(x))
        x = x + self.beta * self.narrow(h * self.attention(h))
        return x + self.gamma * self.feed_forward_out(simple_gate(self.feed_forward_in(x)))

    def _fast_forward(self, x: Tensor) -> Tensor:
        """:meth:`forward` through :mod:`.flows.fastconv` (inference mode on the CPU): channels-last, convolutions by
        oneDNN, beta and gamma folded into the narrowing convolutions with each skip added in the same call. The
        same results to float rounding, in about three quarters of the time at 720p (docs/benchmarks.md)."""
        x = fastconv.channels_last(x)
        norm, widen, depthwise = self.spatial
        h = simple_gate(fastconv.conv2d(fastconv.conv2d(norm(x), widen), depthwise))
        x = fastconv.conv2d_add(h * self.attention(h), self.narrow, x, scale=self.beta)
        norm, widen = self.feed_forward_in
        return fastconv.conv2d_add(simple_gate(fastconv.conv2d(norm(x), widen)), self.feed_forward_out, x,
                                   scale=self.gamma)


def naf_stage(channels: int, blocks: int) -> nn.Sequential:
    """``blocks`` NAFBlocks of ``channels`` channels in a row (the identity when ``blocks`` is 0)."""
    return nn.Sequential(*(NAFBlock(channels) for _ in range(blocks)))


def zero_conv(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Conv2d:
    """A size-keeping convolution whose weights and bias start at zero, so a residual head starts as the identity."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv
