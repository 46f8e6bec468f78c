"""WaveletFlow: a Haar pyramid with one conditional INN per level, as in Wavelet Flow (Yu et al. 2020).

Analysis splits an image into low-passes and detail bands (paper Eq. 3, 5); level l's INN maps the detail bands
x^H(l) to latents z^(l), conditioned on the low-pass x^(l) (Eq. 6). The latents have a standard normal prior, so
the flow is a density model of the details given the coarsest low-pass x^(L): ``log_prob`` and bits/dim (Eq. 10),
``sample`` draws details for a given low-pass (super-resolution by 2^L), and ``decode`` inverts ``encode``. With a
:class:`~.prior.LowPassPrior` on x^(L) it is a density of whole images: p(x) = p(x^(L)) Π_l p(x^H(l) | x^(l)) (Wavelet
Flow's Eq. 4), with bits/dim of 8-bit images under uniform dequantisation and sampling from nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from FrEIA.modules import InvertibleModule
from torch import Tensor, nn

from .density import dequantized_bits_per_dim, uniform_dequantize
from .level import build_level_flow
from .wavelet import WaveletPyramid

if TYPE_CHECKING:
    from .prior import LowPassPrior

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


class WaveletFlow(InvertibleModule):
    """A Haar pyramid of ``levels`` levels and one INN per level on the detail bands; exactly invertible.

    Level l's INN comes from ``factory(l)`` (default: :func:`build_level_flow` with ``flow_options``, e.g.
    ``steps``, ``hidden_channels``, ``memory_saving``); it maps 3C detail channels to latents of the same shape,
    given the C-channel low-pass (``conditional=True``, called as ``inn(x, c=[low])``) or not (``inn(x)``).
    Its state-dict keys are ``<level>.<INN's keys>``; a ``prior`` (:class:`~.prior.LowPassPrior`, none by default)
    adds ``prior.<its keys>`` and makes :meth:`log_prob` the density of the whole image.

    ``channels`` may also be FrEIA's ``dims_in`` (``[(C, H, W)]``), which is how a ``Node`` builds a module: built
    that way the flow returns tuples in both directions, as every FrEIA module does (``dims_c`` must be empty).

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
        channels: int | Sequence[Sequence[int]] = 1,
        levels: int = 3,
        *,
        dims_c: Sequence[Sequence[int]] | None = None,
        conditional: bool = True,
        factory: LevelFlowFactory | None = None,
        prior: LowPassPrior | None = None,
        **flow_options: object,
    ):
        built_by_node = not isinstance(channels, int)
        dims_in = [tuple(dims) for dims in channels] if built_by_node else [(channels,)]
        super().__init__(dims_in, dims_c)
        if self.dims_c:
            raise ValueError("WaveletFlow takes no external condition: each level conditions on its own low-pass")
        if factory is not None and flow_options:
            raise ValueError(f"give a factory or options for the default one, not both: {sorted(flow_options)}")
        self.channels, self.levels, self.conditional = dims_in[0][0], levels, conditional
        self.tuple_output = built_by_node
        self.pyramid = WaveletPyramid(levels)
        for level in range(levels):
            if factory is None:
                inn = build_level_flow(3 * self.channels, self.channels if conditional else 0, **flow_options)
            else:
                inn = factory(level)
            self.add_module(str(level), inn)
        self.prior = prior

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

        Forward, ``z`` is the tuple of the latents z^(1..L) (finest first) and the coarsest low-pass x^(L) (with a
        prior: its latent, so every output is standard normal), and ``log_jac_det`` the per-sample log|det J| of the
        whole map (0 for the orthonormal Haar steps). Reverse takes that tuple and returns the image (a 1-tuple when a
        FrEIA ``Node`` built the flow) and the log-det of the reverse map (its negative). An image whose sides are not
        multiples of 2^L is padded (:meth:`encode`), and the reverse call returns the padded image: crop it, or use
        :meth:`encode` and :meth:`decode`, whose :class:`Encoding` keeps the size. With ``jac=False`` the log-det is
        None. ``c`` must be empty: each level is conditioned on its own low-pass, inside the flow.
        """
        if len(c):
            raise ValueError("WaveletFlow takes no external condition: each level conditions on its own low-pass")
        if not rev:
            image = x_or_z if isinstance(x_or_z, Tensor) else _single(x_or_z)
            encoding = self.encode(image)
            last, prior_log_det = self._through_prior(encoding.coarsest)
            return (*encoding.latents, last), encoding.log_det + prior_log_det if jac else None
        if isinstance(x_or_z, Tensor) or len(x_or_z) != self.levels + 1:
            raise ValueError(f"the reverse call takes the {self.levels} latents and the coarsest low-pass, as the "
                             "forward call returns them")
        *latents, last = x_or_z
        coarsest, prior_log_det = self._through_prior(last, rev=True)
        image, log_det = self._inverse(lambda level, low: latents[level], coarsest)
        return (image,) if self.tuple_output else image, log_det + prior_log_det if jac else None

    def _through_prior(self, x_or_z: Tensor, rev: bool = False) -> tuple[Tensor, Tensor]:
        """x^(L) -> the prior's latent and its log-det (or back); without a prior x^(L) itself, log-det 0."""
        if self.prior is None:
            return x_or_z, x_or_z.new_zeros(x_or_z.shape[0])
        out, log_det = self.prior(x_or_z, rev=rev)
        return out, _wide(log_det)

    def output_dims(self, input_dims: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
        """FrEIA's shape contract: [(C, H, W)] -> the shapes of z^(1..L) and of x^(L) (or of its prior's latent)."""
        channels, height, width = _single(input_dims)
        pad_h, pad_w = self.pyramid.padding(height, width)
        sizes = [((height + pad_h) >> level, (width + pad_w) >> level) for level in range(1, self.levels + 1)]
        last = (channels, *sizes[-1]) if self.prior is None else self.prior.latent_shape(sizes[-1])
        return [(3 * channels, *size) for size in sizes] + [last]

    def decode(self, encoding: Encoding) -> Tensor:
        """The exact inverse of :meth:`encode`: the image from the latents and the coarsest low-pass."""
        if len(encoding.latents) != self.levels:
            raise ValueError(f"expected {self.levels} latents (one per level), got {len(encoding.latents)}")
        return self.synthesize(lambda level, low: encoding.latents[level], encoding.coarsest, encoding.size)

    def log_prob(self, image: Tensor) -> Tensor:
        """log p(x) per image in nats: the whole image's with a prior (Wavelet Flow's Eq. 4), else p(details | x^(L))'s.

        The density is that of the image padded to a multiple of 2^L.
        """
        encoding = self.encode(image)
        if self.prior is None:
            return encoding.log_prob()
        z, log_det = self.prior(encoding.coarsest)
        return gaussian_log_likelihood((*encoding.latents, z), (*encoding.log_dets, log_det))

    def bits_per_dim(self, image: Tensor, bits: int = 8, generator: torch.Generator | None = None) -> Tensor:
        """Bits per dimension of ``bits``-bit images under uniform dequantisation, comparable with published figures.

        bpd = (−log p(y) + D·log 2^b) / (D·log 2) with y = (round(x·(2^b − 1)) + u) / 2^b, u ~ U[0, 1)^D drawn from
        ``generator`` (:func:`~.density.uniform_dequantize`), D = C·H·W. Needs a prior (a whole-image density) and
        sides that are multiples of 2^L (no padded pixels counted).
        """
        if self.prior is None:
            raise ValueError("bits_per_dim needs a prior on the coarsest low-pass: without one WaveletFlow's density "
                             "is conditional (use encode(x).bits_per_dim() for that)")
        if any(self.pyramid.padding(*image.shape[-2:])):
            raise ValueError(f"bits_per_dim needs sides that are multiples of 2^{self.levels}, got "
                             f"{tuple(image.shape[-2:])}")
        log_prob = self.log_prob(uniform_dequantize(image, bits, generator))
        return dequantized_bits_per_dim(log_prob, image[0].numel(), bits)

    def sample(
        self,
        coarsest: Tensor | int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        size: tuple[int, int] | None = None,
    ) -> Tensor:
        """Images from the flow, details drawn from N(0, T²I): given a low-pass x^(L), 2^L times its size; given a count
        n, n whole images of ``size`` (H, W), x^(L) drawn from the prior at the same temperature.

        Given a low-pass, the result's coarsest low-pass is ``coarsest`` itself (the Haar transform is orthonormal); at
        temperature 0 it is the decoding of all-zero latents. ``coarsest`` is a Haar low-pass: 2^L times the mean of
        its pixels. Every draw comes from ``generator`` (torch's global one if None), so a seed fixes the samples.
        """
        if isinstance(coarsest, int):
            coarsest = self._prior_sample(coarsest, size, temperature, generator)
        if coarsest.dim() != 4 or coarsest.shape[1] != self.channels:
            raise ValueError(f"expected a low-pass (N, {self.channels}, h, w), got shape {tuple(coarsest.shape)}")
        latent_channels = 3 * self.channels

        def prior_draw(level: int, low: Tensor) -> Tensor:
            shape = (low.shape[0], latent_channels, *low.shape[-2:])
            noise = torch.randn(shape, generator=generator, device=low.device, dtype=low.dtype)
            return temperature * noise

        return self.synthesize(prior_draw, coarsest)

    def _prior_sample(
        self, n: int, size: tuple[int, int] | None, temperature: float, generator: torch.Generator | None
    ) -> Tensor:
        """n coarsest low-passes for images of ``size`` (H, W), drawn from the prior."""
        if self.prior is None or size is None:
            raise ValueError("sampling n whole images needs a prior on the coarsest low-pass and a size (H, W)")
        if any(self.pyramid.padding(*size)):
            raise ValueError(f"the sampled size must be a multiple of 2^{self.levels}, got {tuple(size)}")
        return self.prior.sample(n, (size[0] >> self.levels, size[1] >> self.levels), temperature, generator)
