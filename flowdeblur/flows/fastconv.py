"""Inference-mode CPU convolutions for the subnets and transfer nets: the same results as ``nn.Conv2d``, in less time.

oneDNN convolves channels-last tensors faster than NCHW ones, fuses a following ReLU or residual addition into the
convolution, and vectorises over output channels, so a convolution with very few outputs (a coupling subnet's scale
and shift, a transfer net's latent) leaves most of each vector unused. :func:`thin_conv2d` computes such a
convolution as a strided convolution with an output per pixel phase (2 x 2 phases: four times the outputs at a
quarter of the positions) and interleaves the phases back: the same products and sums, with fuller vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .values_key import values_key

VECTOR = 16  # float32 lanes of one oneDNN vector register (AVX-512), the unit the cost model counts
THIN_OUTPUTS = 4  # out_channels up to which thin_conv2d splits into phases (measured up to 4)
PHASE_CHOICES = (1, 2, 4)  # output phases per axis that thin_conv2d considers


def _has_fused_convolution() -> bool:
    """Whether this PyTorch build has oneDNN's fused convolution op (a private op: older or other builds may not)."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except (AttributeError, RuntimeError):
        return False


FUSED_CONVOLUTION = _has_fused_convolution()


def applies(x: Tensor) -> bool:
    """Whether the fast path may run: float32 on the CPU with oneDNN's fused op, in inference mode, no autocast.

    Only inference mode, not any no-grad code: training also runs without gradients (a memory-saving chain's
    forward, the targets of a stage), and keeps its own arithmetic to the bit.
    """
    return (x.device.type == "cpu" and x.dtype == torch.float32 and torch.is_inference_mode_enabled()
            and not torch.is_autocast_enabled("cpu") and FUSED_CONVOLUTION)


def channels_last(x: Tensor) -> Tensor:
    """``x`` in channels-last memory format, the layout oneDNN convolves fastest."""
    return x.contiguous(memory_format=torch.channels_last)


def _pointwise(x: Tensor, conv: nn.Conv2d, other: Tensor | None, unary: str, scale: Tensor | None = None) -> Tensor:
    """``conv(x)`` (its outputs times ``scale``, per channel, if given), plus ``other`` if given, then ``unary``
    ("relu" or "none"), in one oneDNN call."""
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    weight, bias = conv.weight, conv.bias
    if scale is not None:
        weight = weight * scale.reshape(-1, 1, 1, 1)
        bias = None if bias is None else bias * scale.reshape(-1)
    if other is None:
        return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *geometry, unary, [], "")
    return torch.ops.mkldnn._convolution_pointwise(
        x, channels_last(other), weight, bias, *geometry, "add", 1.0, None, [], None)


def conv2d(x: Tensor, conv: nn.Conv2d, relu: bool = False) -> Tensor:
    """``conv(x)``, with the ReLU after it fused when ``relu``; channels-last in, channels-last out."""
    return _pointwise(x, conv, None, "relu" if relu else "none")


def conv2d_add(x: Tensor, conv: nn.Conv2d, residual: Tensor, scale: Tensor | None = None) -> Tensor:
    """``residual + conv(x)`` in one call: a residual block's last convolution and its skip connection; with
    ``scale``, ``residual + scale * conv(x)`` (a per-channel scale, folded into the weights)."""
    return _pointwise(x, conv, residual, "none", scale)


def phases(out_channels: int, kernel: int, height: int, width: int) -> tuple[int, int]:
    """Output phases (rows, columns) with the fewest vector operations per pixel; (1, 1) is the plain convolution.

    A (p, q) split has p * q * out_channels outputs on a (kernel + p - 1) x (kernel + q - 1) kernel at 1 / (p * q)
    of the positions, and needs height and width divisible by p and q.
    """
    if out_channels > THIN_OUTPUTS:
        return 1, 1
    candidates = [(rows, columns) for rows in PHASE_CHOICES for columns in PHASE_CHOICES
                  if height % rows == 0 and width % columns == 0]

    def cost(split: tuple[int, int]) -> float:
        rows, columns = split
        vectors = -(-rows * columns * out_channels // VECTOR)
        return vectors * (kernel + rows - 1) * (kernel + columns - 1) / (rows * columns)

    return min(candidates, key=cost)


def _phase_weight(conv: nn.Conv2d, split: tuple[int, int]) -> tuple[Tensor, Tensor | None]:
    """Weight and bias of the strided convolution that computes ``conv`` for all ``split`` output phases at once.

    Output channel (a, b, o) at position (i, j) is ``conv``'s output o at pixel (p i + a, q j + b) for a (p, q)
    split: ``conv``'s kernel shifted by (a, b) inside a kernel p - 1 and q - 1 pixels larger.
    """
    rows, columns = split
    weight = conv.weight
    out_channels, in_channels, kernel, _ = weight.shape
    phased = weight.new_zeros(rows, columns, out_channels, in_channels, kernel + rows - 1, kernel + columns - 1)
    for a in range(rows):
        for b in range(columns):
            phased[a, b, :, :, a:a + kernel, b:b + kernel] = weight
    bias = conv.bias.repeat(rows * columns) if conv.bias is not None else None
    return phased.flatten(0, 2), bias


def _cached_phase_weight(conv: nn.Conv2d, split: tuple[int, int]) -> tuple[Tensor, Tensor | None]:
    """:func:`_phase_weight`, kept on ``conv`` until its weight or bias may have changed (:mod:`.values_key`)."""
    values = values_key(p for p in (conv.weight, conv.bias) if p is not None)
    if values is None:
        return _phase_weight(conv, split)  # inference tensors have no version counter
    key = (split, *values)
    cache = conv.__dict__.setdefault("_phase_cache", {})
    if cache.get(split, (None,))[0] != key:
        cache[split] = (key, _phase_weight(conv, split))
    return cache[split][1]


def _same_odd_kernel(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is a plain stride-1 convolution with an odd square kernel that keeps the image size."""
    kernel = conv.kernel_size[0]
    return (conv.groups == 1 and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.kernel_size == (kernel, kernel) and kernel % 2 == 1 and conv.padding == (kernel // 2,) * 2)


def thin_conv2d(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(x)`` as a contiguous NCHW tensor, split into output phases when ``conv`` has few outputs."""
    split = phases(conv.out_channels, conv.kernel_size[0], *x.shape[-2:]) if _same_odd_kernel(conv) else (1, 1)
    if split == (1, 1):
        return conv2d(x, conv).contiguous()
    rows, columns = split
    weight, bias = _cached_phase_weight(conv, split)
    out = F.conv2d(x, weight, bias, stride=split, padding=conv.padding)
    batch, _, height, width = out.shape
    out = out.view(batch, rows, columns, conv.out_channels, height, width).permute(0, 3, 4, 1, 5, 2)
    return out.reshape(batch, conv.out_channels, height * rows, width * columns).contiguous()
