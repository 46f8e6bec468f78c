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


def _single(tensors: Sequence[Tensor]) -> Tensor:
    """The one tensor of a FrEIA-style input list."""
    if len(tensors) != 1:
        raise ValueError(f"WaveletFlow takes one image tensor, got {len(tensors)}")
    return tensors[0]


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
        >>> z, log_jac_det = flow(torch.rand(2, 1, 12, 12))  # FrEIA's call: latents and the coarsest low-pass
        >>> [tuple(t.shape) for t in z], tuple(log_jac_det.shape)
        ([(2, 3, 6, 6), (2, 3, 3, 3), (2, 1, 3, 3)], (2,))
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
        image = self._inverse(latent_at, coarsest)[0]
        return image if size is None else image[..., : size[0], : size[1]]

    def _inverse(self, latent_at: LatentAt, coarsest: Tensor) -> tuple[Tensor, Tensor]:
        """The padded image :meth:`synthesize` rebuilds, and the per-sample log|det| of that reverse map."""
        low, log_det = coarsest, coarsest.new_zeros(coarsest.shape[0])
        for level in reversed(range(self.levels)):
            detail, level_log_det = self._run(self.inns[level], latent_at(level, low), low, rev=True)
            log_det = log_det + _wide(level_log_det)
            low = self.pyramid.haar.synthesis(low, detail)
        return low, log_det

    def forward(
        self, x_or_z: Tensor | Sequence[Tensor], c: Sequence[Tensor] = (), rev: bool = False, jac: bool = True
    ) -> tuple[Tensor | tuple[Tensor, ...], Tensor | None]:
        """FrEIA's call: ``z, log_jac_det = flow(x)`` and ``x, _ = flow(z, rev=True)``, as a ``GraphINN`` is called.

        Forward, ``z`` is the tuple of the latents z^(1..L) (finest first) and the coarsest low-pass x^(L), and
        ``log_jac_det`` the per-sample log|det J| of the whole map (0 for the orthonormal Haar steps). Reverse takes
        that tuple and returns the image and the log-det of the reverse map (its negative). An image whose sides are
        not multiples of 2^L is padded (:meth:`encode`), and the reverse call returns the padded image: crop it, or
        use :meth:`encode` and :meth:`decode`, whose :class:`Encoding` keeps the size. With ``jac=False`` the log-det
        is None. ``c`` must be empty: each level is conditioned on its own low-pass, inside the flow.
        """
        if len(c):
            raise ValueError("WaveletFlow takes no external condition: each level conditions on its own low-pass")
        if not rev:
            image = x_or_z if isinstance(x_or_z, Tensor) else _single(x_or_z)
            encoding = self.encode(image)
            return (*encoding.latents, encoding.coarsest), encoding.log_det if jac else None
        if isinstance(x_or_z, Tensor) or len(x_or_z) != self.levels + 1:
            raise ValueError(f"the reverse call takes the {self.levels} latents and the coarsest low-pass, as the "
                             "forward call returns them")
        *latents, coarsest = x_or_z
        image, log_det = self._inverse(lambda level, low: latents[level], coarsest)
        return image, log_det if jac else None

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
