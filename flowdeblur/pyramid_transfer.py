"""One transfer network across the whole latent pyramid (Eq. 7 for every level at once), and a full-resolution stage.

The paper's transfer nets h_Γ^(l) each see one level. :class:`PyramidTransfer` is the "U" of UML-IN made one
network: each level's blurry latents z̃^(l) and low-pass x̃^(l) enter an encoder of NAFBlocks at their own
resolution, features go down to the coarsest level and ``extra_levels`` beyond it with doubling widths, and a
decoder with skips gives each level's sharp latents ẑ^(l) at its resolution, so every level sees every other.
:class:`FullResolutionStage` refines the synthesised image at full resolution, across the Haar blocks' borders.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .naf import naf_stage, zero_conv
from .transfer import TransferNet


def _pad_even(x: Tensor) -> Tensor:
    """``x`` padded at the bottom and right (replicating its edge) to even sides, for a stride-2 downsampling."""
    return F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2), mode="replicate")


class PyramidTransfer(nn.Module):
    """(z̃^(l), x̃^(l)) for l = 1..L -> (ẑ^(l) for l = 1..L, x̂^(L)): one NAFBlock encoder-decoder over the pyramid.

    Level l (finest first) works at ``width * 2^l`` channels; ``extra_levels`` more halvings go below the coarsest
    level. Every output is the input plus a zero-initialised head, so at initialisation ẑ = z̃ and x̂^(L) = x̃^(L)
    (the paper's skip connection, Eq. 8); with ``restore_lowpass`` the coarsest low-pass is corrected too.

    Example:
        >>> import torch
        >>> net = PyramidTransfer(latent_channels=3, condition_channels=1, levels=2, width=8)
        >>> latents = [torch.rand(1, 3, 8, 8), torch.rand(1, 3, 4, 4)]
        >>> lows = [torch.rand(1, 1, 8, 8), torch.rand(1, 1, 4, 4)]
        >>> restored, coarsest = net(latents, lows)
        >>> all(torch.equal(a, b) for a, b in zip(restored, latents)) and torch.equal(coarsest, lows[-1])
        True
    """

    def __init__(
        self, latent_channels: int, condition_channels: int, levels: int, width: int = 32, blocks: int = 1,
        extra_levels: int = 1, restore_lowpass: bool = False,
    ):
        super().__init__()
        depth = levels + extra_levels
        widths = [width * 2**d for d in range(depth)]
        self.levels = levels
        self.embed = nn.ModuleList(
            nn.Conv2d(latent_channels + condition_channels, widths[level], 3, padding=1) for level in range(levels)
        )
        self.encoders = nn.ModuleList(naf_stage(widths[d], blocks) for d in range(depth - 1))
        self.downs = nn.ModuleList(nn.Conv2d(widths[d], widths[d + 1], 2, stride=2) for d in range(depth - 1))
        self.middle = naf_stage(widths[-1], blocks)
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[d + 1], 4 * widths[d], 1, bias=False), nn.PixelShuffle(2))
            for d in range(depth - 1)
        )
        self.decoders = nn.ModuleList(naf_stage(widths[d], blocks) for d in range(depth - 1))
        self.heads = nn.ModuleList(zero_conv(widths[level], latent_channels) for level in range(levels))
        self.lowpass_head = zero_conv(widths[levels - 1], condition_channels) if restore_lowpass else None

    def forward(self, latents: Sequence[Tensor], lowpasses: Sequence[Tensor]) -> tuple[list[Tensor], Tensor]:
        if len(latents) != self.levels or len(lowpasses) != self.levels:
            raise ValueError(f"expected {self.levels} latents and low-passes, got {len(latents)} and {len(lowpasses)}")
        depth = len(self.encoders) + 1
        skips: list[Tensor] = []
        h: Tensor | None = None
        for d in range(depth):
            if d < self.levels:
                embedded = self.embed[d](torch.cat([latents[d], lowpasses[d].to(latents[d].dtype)], dim=1))
                h = embedded if h is None else h + embedded
            if d < depth - 1:
                skips.append(self.encoders[d](h))
                h = self.downs[d](_pad_even(skips[-1]))
        features = [self.middle(h)]
        for d in reversed(range(depth - 1)):
            skip = skips[d]
            up = self.ups[d](features[0])[..., : skip.shape[-2], : skip.shape[-1]]
            features.insert(0, self.decoders[d](up + skip))
        restored = [z + head(f).to(z.dtype) for z, head, f in zip(latents, self.heads, features, strict=False)]
        coarsest = lowpasses[-1]
        if self.lowpass_head is not None:
            coarsest = coarsest + self.lowpass_head(features[self.levels - 1]).to(coarsest.dtype)
        return restored, coarsest


class FullResolutionStage(nn.Module):
    """``x + r(x)`` at full resolution: a residual CNN of ``blocks`` blocks of 3x3 convolutions, last layer zero.

    It sees across the Haar blocks' borders, which no level of the pyramid does. The identity at initialisation;
    the same network as a per-level transfer net, without a condition (so it shares its fast inference path).
    """

    def __init__(self, channels: int, width: int = 16, blocks: int = 1):
        super().__init__()
        self.net = TransferNet(channels, condition_channels=0, hidden_channels=width, blocks=blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x, x[:, :0])
