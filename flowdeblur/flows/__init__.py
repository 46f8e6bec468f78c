"""Reusable invertible building blocks, FrEIA-compatible and free of anything deblurring-specific.

- :class:`ActNorm` — Glow's activation normalisation, size-agnostic, condition-aware.
- :class:`InvertibleConv1x1` — Glow's LU-parameterised learned 1x1 convolution with exact log-det.
- :class:`HaarWavelet`, :class:`WaveletPyramid`, :class:`HaarDownsampling` — orthonormal Haar analysis
  and synthesis (log-det 0), multi-level with pad-and-crop, and as a FrEIA module.
- :func:`build_level_flow`, :class:`CouplingSubnet` — one level's conditional GraphINN, a chain of
  :func:`glow_step_nodes`; :class:`IdentityFlow`, the level of zero steps.
- :class:`MemorySavingChain` — a chain of blocks that backpropagates by inversion, in memory independent of depth.
- :class:`WaveletFlow`, :class:`Encoding` — the pyramid and one INN per level as one density model of images:
  encode, decode, ``log_prob`` and bits/dim, ``sample`` details for a low-pass; a FrEIA ``Node`` of its own.
- :class:`LowPassPrior` — a density of the coarsest low-pass, making WaveletFlow's a whole-image density;
  :func:`uniform_dequantize` and :func:`dequantized_bits_per_dim` for bits/dim of 8-bit images.
"""

from .actnorm import ActNorm
from .conv1x1 import InvertibleConv1x1
from .density import dequantized_bits_per_dim, uniform_dequantize
from .level import CouplingSubnet, IdentityFlow, build_level_flow, glow_step_nodes, subnet_factory
from .memory import MemorySavingChain
from .prior import LowPassPrior
from .wavelet import HaarDownsampling, HaarWavelet, WaveletPyramid
from .wavelet_flow import Encoding, WaveletFlow, gaussian_log_likelihood

__all__ = [
    "ActNorm",
    "CouplingSubnet",
    "Encoding",
    "HaarDownsampling",
    "HaarWavelet",
    "InvertibleConv1x1",
    "LowPassPrior",
    "MemorySavingChain",
    "WaveletFlow",
    "WaveletPyramid",
    "IdentityFlow",
    "build_level_flow",
    "dequantized_bits_per_dim",
    "gaussian_log_likelihood",
    "glow_step_nodes",
    "subnet_factory",
    "uniform_dequantize",
]
