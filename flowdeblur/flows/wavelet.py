"""Orthonormal 2-D Haar analysis/synthesis (paper Eq. 3, 5) on top of pytorch-wavelets.

One level splits an image of C channels into its low-pass (C channels) and its detail bands
(horizontal, vertical, diagonal: 3C channels), both at half resolution. The transform is orthonormal,
so its log-det is 0 and it is exactly invertible. Filters are kept in float64 and cast to the input's
dtype on use, so float64 round trips are exact to ~1e-16 and float32 ones to ~1e-7.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import pywt
import torch
import torch.nn.functional as F
from FrEIA.modules import InvertibleModule
from torch import Tensor, nn

from .precision import exact_float32

with warnings.catch_warnings():  # pytorch-wavelets 1.3 imports pkg_resources, which warns; not ours to fix
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    from pytorch_wavelets.dwt import lowlevel


def _haar_filters() -> dict[str, Tensor]:
    """The four 2 x 2 Haar filters (LL, LH, HL, HH) of pytorch-wavelets' non-separable transform, in float64.

    One grouped 2 x 2 convolution of stride 2 gives all four bands: three to five times faster than the
    separable row/column transform (AFB2D/SFB2D) at the sizes of a level, with the same bands in the same order.
    """
    wavelet = pywt.Wavelet("haar")
    return {
        "analysis": lowlevel.prep_filt_afb2d_nonsep(wavelet.dec_lo, wavelet.dec_hi).to(torch.float64),
        "synthesis": lowlevel.prep_filt_sfb2d_nonsep(wavelet.rec_lo, wavelet.rec_hi).to(torch.float64),
    }


class HaarWavelet(nn.Module):
    """One level of the orthonormal Haar DWT: ``analysis(x) -> (low, detail)`` and its exact inverse.

    Inputs must have even height and width; :class:`WaveletPyramid` pads arbitrary sizes. Runs outside
    autocast, in the input's dtype (at least float32), with TF32 off (:func:`~.precision.exact_float32`).

    Example:
        >>> haar = HaarWavelet()
        >>> low, detail = haar.analysis(torch.rand(1, 3, 8, 6))
        >>> low.shape, detail.shape
        (torch.Size([1, 3, 4, 3]), torch.Size([1, 9, 4, 3]))
    """

    def __init__(self) -> None:
        super().__init__()
        self._filters64 = _haar_filters()
        self._cache: dict[tuple[torch.device, torch.dtype], dict[str, Tensor]] = {}

    def _filters(self, like: Tensor) -> dict[str, Tensor]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = {k: v.to(device=like.device, dtype=like.dtype) for k, v in self._filters64.items()}
        return self._cache[key]

    def _grouped(self, convolution: Callable[..., Tensor], x: Tensor, kind: str, channels: int) -> Tensor:
        """``convolution`` (conv2d or its transpose) of stride 2 by the 2 x 2 ``kind`` filters, one group per channel.

        What pytorch-wavelets' ``afb2d_nonsep`` / ``sfb2d_nonsep`` compute for the Haar filters on even sizes, without
        their padding arithmetic (pywt's integer functions), so that a trace (an ONNX export) keeps the size symbolic.
        """
        return convolution(x, self._filters(x)[kind].repeat(channels, 1, 1, 1), stride=2, groups=channels)

    def analysis(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Image (N, C, H, W), H and W even -> low-pass (N, C, H/2, W/2), detail bands (N, 3C, H/2, W/2)."""
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"HaarWavelet.analysis needs even height and width, got {tuple(x.shape[-2:])}")
        with torch.autocast(device_type=x.device.type, enabled=False), exact_float32():
            x = x.to(torch.promote_types(x.dtype, torch.float32))
            bands = self._grouped(F.conv2d, x, "analysis", x.shape[1]).unflatten(1, (x.shape[1], 4))
        return bands[:, :, 0].contiguous(), bands[:, :, 1:].flatten(1, 2)

    def synthesis(self, low: Tensor, detail: Tensor) -> Tensor:
        """Exact inverse of :meth:`analysis`."""
        with torch.autocast(device_type=low.device.type, enabled=False), exact_float32():
            dtype = torch.promote_types(torch.promote_types(low.dtype, detail.dtype), torch.float32)
            bands = torch.cat([low.to(dtype).unsqueeze(2), detail.to(dtype).unflatten(1, (low.shape[1], 3))], dim=2)
            return self._grouped(F.conv_transpose2d, bands.flatten(1, 2), "synthesis", low.shape[1])


class WaveletPyramid(nn.Module):
    """L levels of Haar analysis with reflect pad-and-crop, so any H x W >= 1 works (paper Eq. 3, 5).

    ``analysis`` returns the low-passes x^(1..L) and detail bands x^H(1..L), finest first, plus the
    original size; ``synthesis`` inverts it and crops back, exactly.
    """

    def __init__(self, levels: int) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.levels = levels
        self.haar = HaarWavelet()

    def padding(self, height: int, width: int) -> tuple[int, int]:
        """Rows and columns to add at the bottom/right so both sides are multiples of 2^L."""
        multiple = 2**self.levels

        def missing(side: int) -> int:
            # the padded side minus the side, not (-side) % multiple: a trace (an ONNX export) then sees that the
            # padded side is a multiple of 2^L, whatever the side
            return (side + multiple - 1) // multiple * multiple - side

        return missing(height), missing(width)

    def pad(self, x: Tensor) -> Tensor:
        """Reflect-pad ``x`` at the bottom/right to a multiple of 2^L (replicate where reflect can't reach)."""
        height, width = x.shape[-2:]
        pad_h, pad_w = self.padding(height, width)
        # one graph for every size (ONNX export): no shortcut when nothing is added, and sides of 2^L or more decide
        # "reflect" before the padding is compared with them
        reaches = min(height, width) >= 2**self.levels or (pad_h < height and pad_w < width)
        return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if reaches else "replicate")

    def analysis(self, x: Tensor) -> tuple[list[Tensor], list[Tensor], tuple[int, int]]:
        """x^(0) -> ([x^(1), ..., x^(L)], [x^H(1), ..., x^H(L)], (H, W))."""
        size = (x.shape[-2], x.shape[-1])
        lows, details = [], []
        low = self.pad(x)
        for _ in range(self.levels):
            low, detail = self.haar.analysis(low)
            lows.append(low)
            details.append(detail)
        return lows, details, size

    def synthesis(self, coarsest: Tensor, details: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        """Inverse of :meth:`analysis` from x^(L) and the detail bands, cropped to ``size``."""
        low = coarsest
        for detail in reversed(details):
            low = self.haar.synthesis(low, detail)
        return low[..., : size[0], : size[1]]


class HaarDownsampling(InvertibleModule):
    """The Haar level as a FrEIA module with two outputs, (low-pass, detail bands); log-det 0.

    Lets a FrEIA graph split off detail bands the way Wavelet Flow does, e.g.
    ``Node(inp, HaarDownsampling, {})`` then route ``node.out0`` and ``node.out1`` separately.
    """

    def __init__(self, dims_in: Sequence[tuple[int, ...]], dims_c: Sequence[tuple[int, ...]] | None = None):
        super().__init__(dims_in, dims_c)
        self.haar = HaarWavelet()

    def forward(
        self, x: Sequence[Tensor], c: Sequence[Tensor] = (), rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        if rev:
            low, detail = x
            out: tuple[Tensor, ...] = (self.haar.synthesis(low, detail),)
        else:
            out = self.haar.analysis(x[0])
        return out, x[0].new_zeros(x[0].shape[0])

    def output_dims(self, input_dims: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        channels, height, width = input_dims[0]
        return [(channels, height // 2, width // 2), (3 * channels, height // 2, width // 2)]
