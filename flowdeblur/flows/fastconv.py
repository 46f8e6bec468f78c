"""Inference-mode CPU convolutions for the subnets and transfer nets: the same results as ``nn.Conv2d``, in less time.

oneDNN convolves channels-last tensors faster than NCHW ones, fuses a following ReLU or residual addition into the
convolution, and vectorises over output channels, so a convolution with very few outputs (a coupling subnet's scale
and shift, a transfer net's latent) leaves most of each vector unused. :func:`thin_conv2d` computes such a
convolution as a stride-2 convolution with four times the outputs, one per output pixel phase, and interleaves the
phases back: the same products and sums, with full vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PHASES = 2  # output pixel phases per axis in thin_conv2d
THIN_OUTPUTS = 4  # out_channels up to which thin_conv2d pays: PHASES² x 4 fills a 16-float vector


def applies(x: Tensor) -> bool:
    """Whether the fast path may run: float32 on the CPU with oneDNN, under ``torch.inference_mode``, no autocast.

    Only inference mode, not any no-grad code: training also runs without gradients (a memory-saving chain's
    forward, the targets of a stage), and keeps its own arithmetic to the bit.
    """
    return (x.device.type == "cpu" and x.dtype == torch.float32 and torch.is_inference_mode_enabled()
            and not torch.is_autocast_enabled("cpu") and torch.backends.mkldnn.is_available())


def channels_last(x: Tensor) -> Tensor:
    """``x`` in channels-last memory format, the layout oneDNN convolves fastest."""
    return x.contiguous(memory_format=torch.channels_last)


def _pointwise(x: Tensor, conv: nn.Conv2d, other: Tensor | None, unary: str) -> Tensor:
    """``conv(x)``, plus ``other`` if given, then ``unary`` ("relu" or "none"), in one oneDNN call."""
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    if other is None:
        return torch.ops.mkldnn._convolution_pointwise(x, conv.weight, conv.bias, *geometry, unary, [], "")
    return torch.ops.mkldnn._convolution_pointwise(
        x, channels_last(other), conv.weight, conv.bias, *geometry, "add", 1.0, None, [], None)


def conv2d(x: Tensor, conv: nn.Conv2d, relu: bool = False) -> Tensor:
    """``conv(x)``, with the ReLU after it fused when ``relu``; channels-last in, channels-last out."""
    return _pointwise(x, conv, None, "relu" if relu else "none")


def conv2d_add(x: Tensor, conv: nn.Conv2d, residual: Tensor) -> Tensor:
    """``residual + conv(x)`` in one call: a residual block's second convolution and its skip connection."""
    return _pointwise(x, conv, residual, "none")


def _phase_weight(conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
    """The weight and bias of the stride-2 convolution that computes ``conv`` for the 2 x 2 output phases at once.

    Output channel (a, b, o) at position (i, j) is ``conv``'s output o at pixel (2i + a, 2j + b): ``conv``'s kernel
    shifted by (a, b) inside a kernel one pixel larger on each axis.
    """
    weight = conv.weight
    out_channels, in_channels, kernel, _ = weight.shape
    size = kernel + PHASES - 1
    phased = weight.new_zeros(PHASES, PHASES, out_channels, in_channels, size, size)
    for a in range(PHASES):
        for b in range(PHASES):
            phased[a, b, :, :, a:a + kernel, b:b + kernel] = weight
    bias = conv.bias.repeat(PHASES * PHASES) if conv.bias is not None else None
    return phased.reshape(PHASES * PHASES * out_channels, in_channels, size, size), bias


def _cached_phase_weight(conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
    """:func:`_phase_weight`, kept on ``conv`` until its weight or bias changes (storage or version counter)."""
    parameters = [p for p in (conv.weight, conv.bias) if p is not None]
    if any(p.is_inference() for p in parameters):
        return _phase_weight(conv)  # inference tensors have no version counter
    key = tuple((p.data_ptr(), p._version) for p in parameters)
    cached = getattr(conv, "_phase_cache", None)
    if cached is None or cached[0] != key:
        cached = (key, _phase_weight(conv))
        conv._phase_cache = cached
    return cached[1]


def _thin_applies(x: Tensor, conv: nn.Conv2d) -> bool:
    """Whether :func:`thin_conv2d` takes the phase route: few outputs, a 'same' odd kernel, even height and width."""
    kernel = conv.kernel_size[0]
    return (conv.out_channels <= THIN_OUTPUTS and conv.groups == 1 and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.kernel_size == (kernel, kernel) and kernel % 2 == 1
            and conv.padding == (kernel // 2, kernel // 2) and x.shape[-2] % PHASES == 0
            and x.shape[-1] % PHASES == 0)


def thin_conv2d(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(x)`` as a contiguous NCHW tensor, through the 2 x 2 output phases when ``conv`` has few outputs."""
    if not _thin_applies(x, conv):
        return conv2d(x, conv).contiguous()
    weight, bias = _cached_phase_weight(conv)
    phases = F.conv2d(x, weight, bias, stride=PHASES, padding=conv.padding)
    batch, _, height, width = phases.shape
    phases = phases.view(batch, PHASES, PHASES, conv.out_channels, height, width)
    phases = phases.permute(0, 3, 4, 1, 5, 2).reshape(batch, conv.out_channels, height * PHASES, width * PHASES)
    return phases.contiguous()
