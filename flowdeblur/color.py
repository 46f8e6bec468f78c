"""ITU-R BT.601 RGB <-> YCbCr on [0, 1] images, the ``rgb2ycbcr`` convention of deblurring/SR evaluation.

Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255, so Y lies in [16/255, 235/255]. Used by the model
(which works on Y by default), the datasets and the metrics alike, so every part agrees on what "Y" is.
:func:`image_to_channels` and :func:`channels_to_image` are the one colour layer between images (gray or RGB)
and a model's channels (Y or RGB).
"""

from __future__ import annotations

import torch

_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64) / 255.0
_RGB_TO_YCBCR = torch.tensor(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=torch.float64,
) / 255.0
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)


def _apply_matrix(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Multiply the channel axis (dim -3) of ``image`` by a 3x3 matrix."""
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"expected an image with 3 channels at dim -3, got shape {tuple(image.shape)}")
    matrix = matrix.to(device=image.device, dtype=image.dtype)
    return torch.einsum("ij,...jhw->...ihw", matrix, image)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1], shape (..., 3, H, W) -> YCbCr in [0, 1] (BT.601, studio swing)."""
    offset = _OFFSET.to(device=rgb.device, dtype=rgb.dtype).view(3, 1, 1)
    return _apply_matrix(rgb, _RGB_TO_YCBCR) + offset


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`rgb_to_ycbcr` (no clipping)."""
    offset = _OFFSET.to(device=ycbcr.device, dtype=ycbcr.dtype).view(3, 1, 1)
    return _apply_matrix(ycbcr - offset, _YCBCR_TO_RGB)


def rgb_to_y(rgb: torch.Tensor) -> torch.Tensor:
    """The Y (luma) channel of an RGB image, keeping a channel axis: (..., 3, H, W) -> (..., 1, H, W)."""
    return rgb_to_ycbcr(rgb)[..., :1, :, :]


def gray_to_y(gray: torch.Tensor) -> torch.Tensor:
    """Y of a gray image read as R = G = B: the same mapping as :func:`rgb_to_y` on a gray RGB image."""
    return 16.0 / 255.0 + gray * (219.0 / 255.0)


def to_luma(image: torch.Tensor) -> torch.Tensor:
    """Y of an image with 1 (gray) or 3 (RGB) channels at dim -3."""
    channels = image.shape[-3]
    if channels == 3:
        return rgb_to_y(image)
    if channels == 1:
        return gray_to_y(image)
    raise ValueError(f"expected 1 or 3 channels, got {channels} (shape {tuple(image.shape)})")


def replace_luma(rgb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Put a new Y channel into an RGB image, keeping its Cb/Cr: how a Y-channel result becomes RGB again."""
    ycbcr = rgb_to_ycbcr(rgb)
    return ycbcr_to_rgb(torch.cat([y, ycbcr[..., 1:, :, :]], dim=-3))


def y_to_gray(y: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`gray_to_y`: the gray image whose luma is ``y``."""
    return (y - 16.0 / 255.0) * (255.0 / 219.0)


def image_to_channels(image: torch.Tensor, color: str) -> torch.Tensor:
    """Images (..., 1 gray or 3 RGB, H, W) as a model of colour ``color`` sees them: BT.601 Y ("y") or RGB ("rgb").

    A gray image is the RGB image with R = G = B, so a Y model sees its true luma and an RGB model three equal channels.
    """
    channels = image.shape[-3]
    if channels not in (1, 3):
        raise ValueError(f"expected a gray (1 channel) or RGB (3 channels) image, got shape {tuple(image.shape)}")
    if color == "y":
        return to_luma(image)
    return image.expand(*image.shape[:-3], 3, *image.shape[-2:]) if channels == 1 else image


def channels_to_image(result: torch.Tensor, image: torch.Tensor, color: str) -> torch.Tensor:
    """Undo :func:`image_to_channels` for a model's ``result`` on ``image``: a new Y keeps the input's Cb/Cr."""
    gray = image.shape[-3] == 1
    if color == "y":
        return y_to_gray(result) if gray else replace_luma(image, result)
    return result.mean(dim=-3, keepdim=True) if gray else result
