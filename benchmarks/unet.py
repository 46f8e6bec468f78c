"""A plain convolutional U-Net, the ordinary learned baseline that UML-IN is compared with at equal size and time.

Residual (it predicts the correction to the blurry input, starting at zero, so it starts as the identity), three
downsamplings like UML-IN's three wavelet levels, two 3x3 convolutions per scale, skip connections by
concatenation. Trained with Adam on an L1 loss for a fixed number of seconds (``learned.train_for``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from learned import pad_to_multiple, with_parameters
from torch import Tensor, nn


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """``x + U(x)``: ``depth`` stride-2 downsamplings, widths ``width * 2^d``, transposed-convolution upsampling.

    Example:
        >>> UNet(channels=1, width=8)(torch.rand(2, 1, 37, 50)).shape
        torch.Size([2, 1, 37, 50])
    """

    def __init__(self, channels: int = 1, width: int = 32, depth: int = 3):
        super().__init__()
        widths = [width * 2**d for d in range(depth + 1)]
        self.encoders = nn.ModuleList(
            _double_conv(channels if d == 0 else widths[d - 1], widths[d]) for d in range(depth)
        )
        self.bottleneck = _double_conv(widths[depth - 1], widths[depth])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[d + 1], widths[d], 2, stride=2) for d in range(depth))
        self.decoders = nn.ModuleList(_double_conv(2 * widths[d], widths[d]) for d in range(depth))
        self.head = nn.Conv2d(width, channels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.multiple = 2**depth

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        h = pad_to_multiple(x, self.multiple)
        skips = []
        for encoder in self.encoders:
            h = encoder(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.bottleneck(h)
        for up, decoder, skip in zip(reversed(self.ups), reversed(self.decoders), reversed(skips), strict=True):
            h = decoder(torch.cat([up(h), skip], dim=1))
        return x + self.head(h)[..., :height, :width]


def unet_with_parameters(target: int, channels: int = 1, depth: int = 3) -> UNet:
    """The U-Net whose parameter count is closest to ``target`` (choosing its base width)."""
    return with_parameters(lambda width: UNet(channels, width, depth), target)
