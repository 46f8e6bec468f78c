"""WaveletFlow: a Haar pyramid with one conditional INN per level, as in Wavelet Flow (Yu et al. 2020).

Analysis splits an image into low-passes and detail bands (paper Eq. 3, 5); level l's INN maps the detail bands
x^H(l) to latents z^(l), conditioned on the low-pass x^(l) (Eq. 6). The latents have a standard normal prior, so
the flow is a density model of the details given the coarsest low-pass x^(L): ``log_prob`` and bits/dim (Eq. 10),
``sample`` draws details for a given low-pass (super-resolution by 2^L), and ``decode`` inverts ``encode``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .level import build_level_flow
from .wavelet import WaveletPyramid

_LOG_2PI = math.log(2.0 * math.pi)

LevelFlowFactory = Callable[[int], nn.Module]
LatentAt = Callable[[int, Tensor], Tensor]


def _wide(t: Tensor) -> Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def gaussian_log_likelihood(latents: Sequence[Tensor], log_dets: Sequence[Tensor]) -> Tensor:
    """log p(x) per sample in nats under a standard normal prior: Σ_l (log N(z^(l); 0, I) + log|det J^(l)|).

    The change of variables behind L_ML (Eq. 10), summed over levels; reduced in at least float32.
    """
    if len(latents) != len(log_dets) or not latents:
        raise ValueError("need one log-det per latent, and at least one level")
    dims = sum(z[0].numel() for z in latents)
    half_sq = sum(_wide(z).square().flatten(1).sum(1) for z in latents) * 0.5
    return sum(_wide(ld) for ld in log_dets) - half_sq - 0.5 * dims * _LOG_2PI


def gaussian_bits_per_dim(latents: Sequence[Tensor], log_dets: Sequence[Tensor]) -> Tensor:
    """−log₂ p(x) / D per sample, D the latent dimensions of one sample: L_ML (Eq. 10) in bits per dimension."""
    dims = sum(z[0].numel() for z in latents)
    return -gaussian_log_likelihood(latents, log_dets) / (dims * math.log(2.0))


@dataclass(frozen=True)
class Encoding:
    """What :meth:`WaveletFlow.encode` produces, finest level first: z^(l), log|det J^(l)|, x^(l) for l = 1..L.

    ``size`` is the image's (H, W) before padding to a multiple of 2^L; :meth:`WaveletFlow.decode` crops back to it.
    """

    latents: tuple[Tensor, ...]
    log_dets: tuple[Tensor, ...]
    lowpasses: tuple[Tensor, ...]
    size: tuple[int, int]

    @property
    def coarsest(self) -> Tensor:
        """x^(L), the low-pass the flow conditions on (and UML-IN's skip connection carries across, Eq. 8)."""
        return self.lowpasses[-1]

    @property
    def log_det(self) -> Tensor:
        """Σ_l log|det J^(l)| per sample: the log-det of the whole map from detail bands to latents."""
        return sum(_wide(ld) for ld in self.log_dets)

    @property
    def dims(self) -> int:
        """Latent dimensions per sample: the detail coefficients of the (padded) image."""
        return sum(z[0].numel() for z in self.latents)

    def log_prob(self) -> Tensor:
        """log p(details | x^(L)) per sample, in nats (standard normal prior on every latent)."""
        return gaussian_log_likelihood(self.latents, self.log_dets)

    def bits_per_dim(self) -> Tensor:
        """−log₂ p(details | x^(L)) / dims per sample: L_ML (Eq. 10) in bits per dimension, before the batch mean."""
        return gaussian_bits_per_dim(self.latents, self.log_dets)


class WaveletFlow(nn.Module):
    """A Haar pyramid of ``levels`` levels and one INN per level on the detail bands; exactly invertible.

    Level l's INN comes from ``factory(l)`` (default: :func:`build_level_flow` with ``flow_options``, e.g.
    ``steps``, ``hidden_channels``, ``memory_saving``); it maps 3C detail channels to latents of the same shape,
    given the C-channel low-pass (``conditional=True``, called as ``inn(x, c=[low])``) or not (``inn(x)``).
    Its state-dict keys are ``<level>.<INN's keys>``.

    Example:
        >>> flow = WaveletFlow(channels=1, levels=2, steps=1, hidden_channels=8)
        >>> image = torch.rand(2, 1, 12, 10)
        >>> encoding = flow.encode(image)
        >>> torch.allclose(flow.decode(encoding), image, atol=1e-5)
        True
        >>> flow.sample(encoding.coarsest, temperature=0.5).shape
        torch.Size([2, 1, 12, 12])
    """

    def __init__(
        self,
        channels: int = 1,
        levels: int = 3,
        *,
        conditional: bool = True,
        factory: LevelFlowFactory | None = None,
        **flow_options: object,
    ):
        super().__init__()
        if factory is not None and flow_options:
            raise ValueError(f"give a factory or options for the default one, not both: {sorted(flow_options)}")
        self.channels, self.levels, self.conditional = channels, levels, conditional
        self.pyramid = WaveletPyramid(levels)
        for level in range(levels):
            if factory is None:
                inn = build_level_flow(3 * channels, channels if conditional else 0, **flow_options)
            else:
                inn = factory(level)
            self.add_module(str(level), inn)

    @property
    def inns(self) -> list[nn.Module]:
        """The per-level INNs, finest first."""
        return [self.get_submodule(str(level)) for level in range(self.levels)]

    def _run(self, inn: nn.Module, x: Tensor, low: Tensor, rev: bool = False) -> tuple[Tensor, Tensor]:
        return inn(x, c=[low], rev=rev) if self.conditional else inn(x, rev=rev)

    def encode(self, image: Tensor) -> Encoding:
        """Analysis (Eq. 3, 5) and the per-level INNs (Eq. 6): image (N, C, H, W) -> :class:`Encoding`."""
        if image.dim() != 4 or image.shape[1] != self.channels:
            raise ValueError(f"expected a batch (N, {self.channels}, H, W), got shape {tuple(image.shape)}")
        lowpasses, details, size = self.pyramid.analysis(image)
        latents, log_dets = [], []
        for inn, low, detail in zip(self.inns, lowpasses, details, strict=True):
            z, log_det = self._run(inn, detail, low)
            latents.append(z)
            log_dets.append(log_det)
        return Encoding(tuple(latents), tuple(log_dets), tuple(lowpasses), size)

    def synthesize(self, latent_at: LatentAt, coarsest: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Invert the INNs and the pyramid coarse to fine from x^(L) (Eq. 8, 9), cropped to ``size`` if given.

        ``latent_at(l, x^(l))`` gives level l's latent once its low-pass x^(l) is rebuilt, so a latent may depend on
        the coarser levels' result (UML-IN's transfer nets use this).
        """
        low = coarsest
        for level in reversed(range(self.levels)):
            detail, _ = self._run(self.inns[level], latent_at(level, low), low, rev=True)
            low = self.pyramid.haar.synthesis(low, detail)
        return low if size is None else low[..., : size[0], : size[1]]

    def decode(self, encoding: Encoding) -> Tensor:
        """The exact inverse of :meth:`encode`: the image from the latents and the coarsest low-pass."""
        if len(encoding.latents) != self.levels:
            raise ValueError(f"expected {self.levels} latents (one per level), got {len(encoding.latents)}")
        return self.synthesize(lambda level, low: encoding.latents[level], encoding.coarsest, encoding.size)

    def log_prob(self, image: Tensor) -> Tensor:
        """log p(details | x^(L)) of each image in nats (of the image padded to a multiple of 2^L)."""
        return self.encode(image).log_prob()

    def sample(
        self, coarsest: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """An image 2^L times the size of the low-pass ``coarsest``, with details drawn from the prior N(0, T²I).

        The result's coarsest low-pass is ``coarsest`` itself (the Haar transform is orthonormal); at temperature 0
        it is the decoding of all-zero latents. ``coarsest`` is a Haar low-pass: 2^L times the mean of its pixels.
        """
        if coarsest.dim() != 4 or coarsest.shape[1] != self.channels:
            raise ValueError(f"expected a low-pass (N, {self.channels}, h, w), got shape {tuple(coarsest.shape)}")
        latent_channels = 3 * self.channels

        def prior_draw(level: int, low: Tensor) -> Tensor:
            shape = (low.shape[0], latent_channels, *low.shape[-2:])
            noise = torch.randn(shape, generator=generator, device=low.device, dtype=low.dtype)
            return temperature * noise

        return self.synthesize(prior_draw, coarsest)
