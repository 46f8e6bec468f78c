"""Classical deblurring baselines from scikit-image, for honest comparisons in the benchmarks.

Unsharp masking (blind), and Wiener and Richardson–Lucy deconvolution *given the true kernel* (non-blind,
so they know more than the model does). Each works per channel on (C, H, W) tensors in [0, 1]; the
deconvolutions reflect-pad the image first so their implicit borders do not add ringing the blur never had.
Parameters are chosen on a validation set by :func:`tune`, never fixed to flatter the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from skimage.filters import unsharp_mask
from skimage.restoration import richardson_lucy, wiener

from flowdeblur.metrics import PSNR_CAP, image_scores

Restorer = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def _per_channel(image: torch.Tensor, restore: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    channels = [restore(channel.double().numpy()) for channel in image.detach().cpu()]
    return torch.from_numpy(np.stack(channels)).to(image.dtype).clamp(0.0, 1.0)


def _padded(kernel: torch.Tensor, restore: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    psf = kernel.double().numpy()
    pad = 2 * max(psf.shape)

    def run(channel: np.ndarray) -> np.ndarray:
        restored = restore(np.pad(channel, pad, mode="reflect"), psf)
        return restored[pad:-pad, pad:-pad]

    return run


def unsharp_masking(image: torch.Tensor, radius: float = 1.0, amount: float = 1.0) -> torch.Tensor:
    """``x + amount (x − G_radius * x)``: sharpening without knowing the blur (scikit-image's unsharp_mask)."""
    return _per_channel(image, lambda c: unsharp_mask(c, radius=radius, amount=amount, preserve_range=True))


def wiener_deconvolution(image: torch.Tensor, kernel: torch.Tensor, balance: float = 0.01) -> torch.Tensor:
    """Wiener deconvolution with the true kernel; ``balance`` trades noise (8-bit rounding) against sharpness."""
    return _per_channel(image, _padded(kernel, lambda c, psf: wiener(c, psf, balance, clip=False)))


def richardson_lucy_deconvolution(image: torch.Tensor, kernel: torch.Tensor, num_iter: int = 10) -> torch.Tensor:
    """Richardson–Lucy deconvolution with the true kernel, ``num_iter`` iterations."""
    return _per_channel(image, _padded(kernel, lambda c, psf: richardson_lucy(c, psf, num_iter=num_iter, clip=False)))


@dataclass(frozen=True)
class Baseline:
    """A named classical method, the parameter it is tuned over and the grid it is tuned on."""

    name: str
    parameter: str
    grid: tuple[Any, ...]
    needs_kernel: bool

    def restorer(self, value: Any) -> Restorer:
        """A function (blurry, kernel) -> restored with the parameter fixed to ``value``."""
        function = {
            "unsharp masking": lambda x, k: unsharp_masking(x, radius=1.0, amount=value),
            "Wiener (true kernel)": lambda x, k: wiener_deconvolution(x, k, balance=value),
            "Richardson–Lucy (true kernel)": lambda x, k: richardson_lucy_deconvolution(x, k, num_iter=value),
        }[self.name]
        return function


BASELINES = (
    Baseline("unsharp masking", "amount", (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0), needs_kernel=False),
    Baseline("Wiener (true kernel)", "balance", (1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3), needs_kernel=True),
    Baseline("Richardson–Lucy (true kernel)", "num_iter", (2, 5, 10, 20, 40), needs_kernel=True),
)


def mean_psnr(restorer: Restorer, pairs: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> float:
    """Mean Y-PSNR of ``restorer`` over (blurry, sharp, kernel) triples, 8-bit rounded as everywhere.

    An image restored exactly counts as ``PSNR_CAP`` dB, so one exact image cannot make the mean infinite (and every
    grid value tie in :func:`tune`).
    """
    scores = [image_scores(restorer(b, k)[None], s[None], space="y")["psnr"].item() for b, s, k in pairs]
    return float(np.mean(np.minimum(scores, PSNR_CAP)))


def tune(baseline: Baseline, pairs: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> Any:
    """The grid value with the best mean Y-PSNR on ``pairs`` (a validation split, never the test split)."""
    return max(baseline.grid, key=lambda value: mean_psnr(baseline.restorer(value), pairs))
