"""Run an image-to-image function over overlapping tiles and blend them without seams, in bounded memory.

Tiles start on a grid aligned to ``align`` pixels (2^L for an L-level wavelet model, so each tile's wavelet
coefficients are exactly those of the whole image) and overlap by at least ``overlap`` pixels. Each tile's
result is weighted by a window that is 1 inside and falls smoothly (raised cosine) to near 0 across the
overlap it shares with a neighbour; the weighted sum is divided by the summed weights, so the weights form a
partition of unity and the blend has no seams. Only the output accumulators and one batch of tiles are
held at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

ImageFunction = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of an image of ``height`` x ``width`` lie: their row and column spans."""

    rows: tuple[tuple[int, int], ...]
    cols: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def __iter__(self) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        return ((row, col) for row in self.rows for col in self.cols)


NORMALISE_ROWS = 256  # rows per band when dividing the blended result by its weights


def tile_spans(length: int, tile: int, overlap: int, align: int = 1) -> tuple[tuple[int, int], ...]:
    """(start, stop) spans covering ``range(length)``: starts on multiples of ``align``, overlapping >= ``overlap``.

    Every span is ``tile`` long except the last, which runs to the end (between ``tile`` and
    ``tile + align - 1`` long, so that it too starts on the grid). One span covers a length <= ``tile``.
    """
    if tile < 1 or overlap < 0 or align < 1:
        raise ValueError(f"need tile >= 1, overlap >= 0, align >= 1, got {tile}, {overlap}, {align}")
    if length <= tile:
        return ((0, length),)
    stride = (tile - overlap) // align * align
    if stride < 1:
        raise ValueError(f"tile {tile} minus overlap {overlap} leaves no stride on a grid of {align} pixels")
    starts = list(range(0, length - tile, stride))
    last = (length - tile) // align * align
    if last > starts[-1]:
        starts.append(last)
    return tuple((start, start + tile) for start in starts[:-1]) + ((starts[-1], length),)


def tile_grid(height: int, width: int, tile: int, overlap: int, align: int = 1) -> TileGrid:
    """The tiles of a ``height`` x ``width`` image (see :func:`tile_spans`)."""
    return TileGrid(tile_spans(height, tile, overlap, align), tile_spans(width, tile, overlap, align))


def largest_tile(
    height: int, width: int, bytes_per_pixel: float, budget: int, batch_size: int = 1, overlap: int = 0, align: int = 1
) -> int:
    """The largest tile side whose forward passes fit ``budget`` bytes, at ``bytes_per_pixel`` of a tile.

    A pass holds up to ``batch_size`` tiles (fewer when the image has fewer), each as large as its spans make
    it; an image that fits whole comes back as one tile (its longer side). Sides go down in steps of ``align``
    and never below ``2 * overlap + align``, the smallest tile that still advances.
    """
    smallest = 2 * overlap + align
    side = max(height, width, smallest)
    while side > smallest:
        if _fits(tile_grid(height, width, side, overlap, align), bytes_per_pixel, budget, batch_size):
            return side
        side = (side - 1) // align * align
    return smallest


def _fits(grid: TileGrid, bytes_per_pixel: float, budget: int, batch_size: int) -> bool:
    """Whether a pass of up to ``batch_size`` of the grid's largest tiles fits ``budget`` bytes."""
    tile_pixels = max(b - a for a, b in grid.rows) * max(b - a for a, b in grid.cols)
    return min(batch_size, len(grid)) * tile_pixels * bytes_per_pixel <= budget


def _computed_pixels(grid: TileGrid) -> int:
    """Pixels the tiles of ``grid`` hold together, overlaps counted as often as they are computed."""
    return sum(b - a for a, b in grid.rows) * sum(b - a for a, b in grid.cols)


class TileBudgetError(ValueError):
    """No tile that still advances past the overlap fits the memory budget."""


def cheapest_tile(
    height: int, width: int, bytes_per_pixel: float, budget: int, batch_size: int = 1, overlap: int = 0, align: int = 1
) -> int:
    """The tile side that fits ``budget`` (as :func:`largest_tile`) and computes the fewest pixels in all.

    The largest tile that fits can leave a last, nearly empty row or column of tiles: 816-pixel tiles compute 1.33
    times a 4000 x 3000 photo's pixels, 528-pixel ones 1.12 times. Ties go to the larger side (fewer tiles); an
    image that fits whole stays one tile. When not even the smallest tile that advances (``2 * overlap + align``)
    fits, :class:`TileBudgetError` says so, rather than running over the budget.
    """
    largest = largest_tile(height, width, bytes_per_pixel, budget, batch_size, overlap, align)
    if not _fits(tile_grid(height, width, largest, overlap, align), bytes_per_pixel, budget, batch_size):
        raise TileBudgetError(
            f"the memory budget ({budget / 2**30:.3g} GiB) fits no tile of this {width} x {height} image larger than "
            f"twice the tile overlap ({overlap} pixels); raise --max-memory or lower --tile-overlap"
        )
    best, best_pixels = largest, _computed_pixels(tile_grid(height, width, largest, overlap, align))
    for side in range(largest - align, 2 * overlap + align - 1, -align):
        grid = tile_grid(height, width, side, overlap, align)
        pixels = _computed_pixels(grid)
        if pixels < best_pixels and _fits(grid, bytes_per_pixel, budget, batch_size):
            best, best_pixels = side, pixels
    return best


def blend_window(span: tuple[int, int], length: int, overlap: int) -> Tensor:
    """1-D weights of one tile: 1 inside, a raised-cosine ramp over ``overlap`` pixels on each side shared
    with a neighbour (none at the image border). Values stay > 0, so every pixel has weight."""
    start, stop = span
    window = torch.ones(stop - start)
    ramp_length = min(overlap, (stop - start) // 2)
    if ramp_length == 0:
        return window
    steps = torch.arange(1, ramp_length + 1, dtype=torch.float64)
    ramp = (0.5 - 0.5 * torch.cos(math.pi * steps / (ramp_length + 1))).float()
    if start > 0:
        window[:ramp_length] = ramp
    if stop < length:
        window[-ramp_length:] = ramp.flip(0)
    return window


def process_tiled(
    function: ImageFunction,
    image: Tensor,
    tile: int,
    overlap: int,
    batch_size: int = 1,
    align: int = 1,
    device: str | torch.device = "cpu",
    on_tile: Callable[[int], None] | None = None,
) -> Tensor:
    """Apply ``function`` (a batch (N, C, h, w) -> (N, C', h, w)) to an image (C, H, W) tile by tile.

    Tiles go to ``device`` in batches of up to ``batch_size`` (tiles of one shape per batch) and results come
    back to the CPU, where they are blended into a float32 (C', H, W) result. ``on_tile(n)`` is called after
    every batch with the number of tiles it held. An image no larger than ``tile`` is one tile: the result is
    then exactly ``function(image[None])[0]``.
    """
    if image.dim() != 3:
        raise ValueError(f"expected one image (C, H, W), got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    grid = tile_grid(height, width, tile, overlap, align)
    output: Tensor | None = None
    batch: list[tuple[tuple[int, int], tuple[int, int]]] = []

    def flush() -> None:
        nonlocal output
        tiles = torch.stack([image[:, r0:r1, c0:c1] for (r0, r1), (c0, c1) in batch]).to(device, torch.float32)
        results = function(tiles).float().cpu()
        if output is None:
            output = torch.zeros(results.shape[1], height, width)
        for result, (rows, cols) in zip(results, batch, strict=True):
            weight = blend_window(rows, height, overlap)[:, None] * blend_window(cols, width, overlap)[None, :]
            output[:, rows[0] : rows[1], cols[0] : cols[1]].addcmul_(result, weight)
        if on_tile is not None:
            on_tile(len(batch))
        batch.clear()

    for rows, cols in grid:
        if batch and (len(batch) == batch_size or _span_shape(batch[0]) != _span_shape((rows, cols))):
            flush()
        batch.append((rows, cols))
    flush()
    assert output is not None
    return _normalise(output, grid, overlap)


def _normalise(output: Tensor, grid: TileGrid, overlap: int) -> Tensor:
    """Divide the blended sum by its total weight, in place, a band of rows at a time.

    Every (row span, column span) pair is one tile, so the total weight at (y, x) is the row windows' sum at y
    times the column windows' sum at x: no image-sized weight buffer is needed.
    """
    height, width = output.shape[-2:]
    row_sum, col_sum = torch.zeros(height), torch.zeros(width)
    for span in grid.rows:
        row_sum[span[0] : span[1]] += blend_window(span, height, overlap)
    for span in grid.cols:
        col_sum[span[0] : span[1]] += blend_window(span, width, overlap)
    for start in range(0, height, NORMALISE_ROWS):
        rows = slice(start, start + NORMALISE_ROWS)
        output[:, rows].div_(row_sum[rows, None] * col_sum[None, :])
    return output


def _span_shape(spans: tuple[tuple[int, int], tuple[int, int]]) -> tuple[int, int]:
    (r0, r1), (c0, c1) = spans
    return r1 - r0, c1 - c0
