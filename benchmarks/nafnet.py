"""A small NAFNet-style network: the strong modern learned baseline that UML-IN is compared with at equal size and time.

After Chen, Chu, Zhang & Sun, "Simple Baselines for Image Restoration" (ECCV 2022): an encoder-decoder of the
NAFBlocks in :mod:`flowdeblur.naf`. Strided 2x2 convolutions downsample, a 1x1 convolution and PixelShuffle
upsample, skips are added, and the output is ``x + correction`` with the last convolution zero-initialised, so the
network starts as the identity. Trained like the plain U-Net (``learned.train_for``: Adam, L1).
"""

from __future__ import annotations

from collections.abc import Sequence

from learned import pad_to_multiple, with_parameters
from torch import Tensor, nn

from flowdeblur.naf import naf_stage, zero_conv


class NAFNet(nn.Module):
    """``x + N(x)``: ``depth`` downsamplings, widths ``width * 2^d``, ``blocks`` NAFBlocks per scale on each side.

    The middle (the coarsest scale) has ``blocks`` blocks too; ``encoder_blocks`` gives each encoder scale its own
    count instead (the published configurations put most blocks in the coarsest encoder). Any size is padded to a
    multiple of ``2^depth`` (replicating the edge) and cropped back.

    Example:
        >>> import torch
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
        self.encoders = nn.ModuleList(naf_stage(widths[d], encoder_blocks[d]) for d in range(depth))
        self.downs = nn.ModuleList(nn.Conv2d(widths[d], widths[d + 1], 2, stride=2) for d in range(depth))
        self.middle = naf_stage(widths[depth], blocks)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[d + 1], 4 * widths[d], 1, bias=False), nn.PixelShuffle(2))
            for d in range(depth)
        )
        self.decoders = nn.ModuleList(naf_stage(widths[d], blocks) for d in range(depth))
        self.ending = zero_conv(width, channels)
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
