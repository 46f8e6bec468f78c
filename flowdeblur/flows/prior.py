"""The prior of WaveletFlow's coarsest low-pass: what makes its conditional density one of the whole image."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .actnorm import ActNorm
from .level import build_level_flow
from .wavelet import HaarWavelet


class LowPassPrior(nn.Module):
    """p(x^(L)), Wavelet Flow's base level: a learned per-channel Gaussian, then optionally a small unconditional flow.

    The map is x^(L) -> ``ActNorm`` (per-channel mean and log-std, initialised from the first batch it sees) and, with
    ``steps > 0``, a one-level Haar squeeze (4C channels at half resolution, log-det 0) followed by
    ``build_level_flow(4C, steps=steps, **flow_options)``. Its output z has a standard normal prior, so
    log p(x^(L)) = log N(z; 0, I) + log|det ∂z/∂x^(L)|. Called as a level's INN is: ``z, log_det = prior(low)``,
    ``low, reverse_log_det = prior(z, rev=True)``. With ``steps > 0`` the low-pass needs even sides.

    Example:
        >>> prior = LowPassPrior(channels=1, steps=1, hidden_channels=8)
        >>> z, log_det = prior(torch.rand(2, 1, 4, 4))
        >>> tuple(z.shape), tuple(prior.sample(3, (4, 4)).shape)
        ((2, 4, 2, 2), (3, 1, 4, 4))
    """

    def __init__(self, channels: int, steps: int = 0, **flow_options: object):
        super().__init__()
        self.channels, self.squeezes = channels, steps > 0
        self.normalize = ActNorm([(channels, 1, 1)])
        self.flow = build_level_flow(4 * channels, steps=steps, **flow_options)
        self.haar = HaarWavelet()

    def latent_shape(self, size: tuple[int, int]) -> tuple[int, int, int]:
        """The shape of z for a low-pass of ``size`` (h, w): (C, h, w), or (4C, h/2, w/2) after the squeeze."""
        if not self.squeezes:
            return (self.channels, *size)
        if size[0] % 2 or size[1] % 2:
            raise ValueError(f"LowPassPrior with flow steps squeezes the low-pass, so its sides must be even; got "
                             f"{tuple(size)} (use steps=0 or fewer levels)")
        return (4 * self.channels, size[0] // 2, size[1] // 2)

    def forward(self, x_or_z: Tensor, rev: bool = False) -> tuple[Tensor, Tensor]:
        """x^(L) -> (z, log|det ∂z/∂x^(L)|) per sample, or back with ``rev=True`` (and the reverse map's log-det)."""
        if rev:
            squeezed, flow_log_det = self.flow(x_or_z, rev=True)
            normalized = self.haar.synthesis(*squeezed.split([self.channels, 3 * self.channels], 1)) \
                if self.squeezes else squeezed
            (low,), log_det = self.normalize([normalized], rev=True)
            return low, log_det + flow_log_det
        self.latent_shape(x_or_z.shape[-2:])
        (normalized,), log_det = self.normalize([x_or_z])
        squeezed = torch.cat(self.haar.analysis(normalized), 1) if self.squeezes else normalized
        z, flow_log_det = self.flow(squeezed)
        return z, log_det + flow_log_det

    def sample(
        self, n: int, size: tuple[int, int], temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n`` low-passes of ``size`` (h, w): z ~ N(0, T²I) mapped back through the prior's flow."""
        reference = self.normalize.log_scale
        noise = torch.randn((n, *self.latent_shape(size)), generator=generator, device=reference.device,
                            dtype=reference.dtype)
        return self(temperature * noise, rev=True)[0]
