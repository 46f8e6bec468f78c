"""Discrete image densities from continuous flows: uniform dequantisation and bits per dimension on the 2^bits scale.

A flow gives a density p on continuous values; images are integers k in {0, ..., 2^b − 1}^D. Uniform dequantisation
(Theis et al. 2016; Dinh et al. 2017, Kingma & Dhariwal 2018 and Wavelet Flow, Yu et al. 2020 report numbers this way)
adds u ~ U[0, 1)^D to k and divides by 2^b. By Jensen's inequality, −log P(k) ≤ E_u[−log p((k + u) / 2^b)] + D·log 2^b,
so the bits per dimension below bound the discrete negative log-likelihood from above and are never negative in
expectation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def uniform_dequantize(images: Tensor, bits: int = 8, generator: torch.Generator | None = None) -> Tensor:
    """y = (round(x·(2^b − 1)) + u) / 2^b with u ~ U[0, 1): images in [0, 1] as 2^b-level integers plus uniform noise.

    An 8-bit image stored as k / 255 quantises back to k exactly; the result lies in [0, 1).
    """
    if bits < 1:
        raise ValueError(f"bits must be at least 1, got {bits}")
    levels = 2**bits
    integers = torch.round(images.clamp(0.0, 1.0) * (levels - 1))
    noise = torch.rand(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (integers + noise) / levels


def dequantized_bits_per_dim(log_prob: Tensor, dims: int, bits: int = 8) -> Tensor:
    """bpd = (−log p(y) + D·log 2^b) / (D·log 2): ``log_prob`` (nats) of dequantised y = (k + u) / 2^b, on the k scale.

    The D·log 2^b term is the log-det of the change of scale y -> 2^b·y, so the result is the negative log-likelihood
    of the integer image k + u, per dimension, in bits.
    """
    return (-log_prob + dims * bits * math.log(2.0)) / (dims * math.log(2.0))
