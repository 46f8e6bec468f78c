"""The transfer nets h_Γ^(l) (paper Eq. 7): blurry latent + low-pass -> estimate of the sharp latent."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .flows import fastconv


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        padding = dilation * (kernel_size // 2)
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=padding, dilation=dilation),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size, padding=padding, dilation=dilation),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)

    def fast_forward(self, x: Tensor) -> Tensor:
        """:meth:`forward` through :mod:`.flows.fastconv`, ReLU and skip addition fused (inference mode)."""
        first, _, second = self.body
        return fastconv.conv2d_add(fastconv.conv2d(x, first, relu=True), second, x)


class TransferNet(nn.Module):
    """Residual CNN ``ẑ = z̃ + r([z̃, x̃^(l)])``; the last layer starts at zero, so ẑ = z̃ at initialisation.

    Not invertible and need not be: it only maps between the two branches' latent spaces. Residual block b dilates
    by ``dilation ** b``, so the receptive field grows geometrically with depth. Its output is at least float32
    even under autocast. Under ``torch.inference_mode`` on the CPU it takes :mod:`.flows.fastconv`'s route: same
    results to float rounding, in less time.
    """

    def __init__(
        self, latent_channels: int, condition_channels: int, hidden_channels: int = 64, blocks: int = 2,
        kernel_size: int = 3, dilation: int = 1,
    ):
        super().__init__()
        padding = kernel_size // 2
        last = nn.Conv2d(hidden_channels, latent_channels, kernel_size, padding=padding)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(
            nn.Conv2d(latent_channels + condition_channels, hidden_channels, kernel_size, padding=padding),
            nn.ReLU(inplace=True),
            *(_ResidualBlock(hidden_channels, kernel_size, dilation**block) for block in range(blocks)),
            last,
        )

    def forward(self, z_blur: Tensor, low: Tensor) -> Tensor:
        inputs = torch.cat([z_blur, low.to(z_blur.dtype)], dim=1)
        residual = self._fast_body(inputs) if fastconv.applies(inputs) else self.body(inputs)
        return z_blur + residual.to(z_blur.dtype)

    def _fast_body(self, x: Tensor) -> Tensor:
        """``self.body(x)`` through :mod:`.flows.fastconv`: channels-last, ReLUs and skips fused, thin last layer."""
        first, _, *blocks, last = self.body
        hidden = fastconv.conv2d(fastconv.channels_last(x), first, relu=True)
        for block in blocks:
            hidden = block.fast_forward(hidden)
        return fastconv.thin_conv2d(hidden, last)
