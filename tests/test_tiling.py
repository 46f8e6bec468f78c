"""Tiling: spans cover the image on the wavelet grid, windows blend to a partition of unity, no seams."""

import pytest
import torch

from flowdeblur.inference import TileOptions, deblur_image, forward_bytes_per_pixel, tile_count, tile_side
from flowdeblur.tiling import blend_window, cheapest_tile, largest_tile, process_tiled, tile_grid, tile_spans
from tests.cli_helpers import tiny_model


@pytest.mark.parametrize("length", [1, 63, 64, 65, 100, 150, 257, 1000])
@pytest.mark.parametrize(("tile", "overlap", "align"), [(64, 16, 4), (64, 0, 1), (96, 32, 8), (512, 32, 8)])
def test_spans_cover_the_image_on_the_grid_with_enough_overlap(length, tile, overlap, align):
    spans = tile_spans(length, tile, overlap, align)
    assert spans[0][0] == 0 and spans[-1][1] == length
    for (start, stop), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert stop - start == tile
        assert stop - next_start >= overlap and next_start > start
    assert all(start % align == 0 for start, _ in spans)
    assert length <= tile or tile <= spans[-1][1] - spans[-1][0] < tile + align


def test_an_image_no_larger_than_the_tile_is_one_call_of_the_function():
    image = torch.rand(3, 40, 50)
    calls = []

    def function(batch):
        calls.append(batch.shape)
        return batch * 2

    torch.testing.assert_close(process_tiled(function, image, tile=64, overlap=16), image * 2)
    assert calls == [(1, 3, 40, 50)]


def test_windows_sum_to_one_where_tiles_overlap_exactly():
    spans = tile_spans(160, 64, 16, 16)
    total = torch.zeros(160)
    for start, stop in spans:
        total[start:stop] += blend_window((start, stop), 160, 16)
    exact = [(start, stop) for start, stop in spans[:-1]]
    assert total.min() > 0
    torch.testing.assert_close(total[: exact[-1][1] - 16], torch.ones(exact[-1][1] - 16))


def test_a_pixelwise_function_is_reproduced_exactly_in_batches_of_tiles():
    image = torch.rand(2, 150, 190)
    tiles_seen = []
    result = process_tiled(torch.sigmoid, image, tile=48, overlap=12, batch_size=3, align=4, on_tile=tiles_seen.append)
    torch.testing.assert_close(result, torch.sigmoid(image))
    assert sum(tiles_seen) == len(tile_grid(150, 190, 48, 12, 4)) and max(tiles_seen) <= 3


def test_tiled_deblurring_matches_untiled_so_there_are_no_seams():
    model = tiny_model()
    torch.manual_seed(1)
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 150, 200), 5, 1, 2)[0]
    with torch.inference_mode():
        whole = model(image[None])[0]
    tiled = deblur_image(model, image, TileOptions(tile=64, overlap=24, batch_size=2))
    assert len(tile_grid(150, 200, 64, 24, 4)) > 1
    difference = (tiled - whole).abs()
    assert difference.max() < 4 / 255 and difference.mean() < 0.5 / 255


def test_alpha_is_passed_through_and_gray_stays_gray():
    model = tiny_model()
    rgba = torch.rand(4, 40, 44)
    restored = deblur_image(model, rgba, TileOptions())
    assert restored.shape == rgba.shape
    torch.testing.assert_close(restored[3], rgba[3])
    gray_alpha = deblur_image(model, rgba[:2], TileOptions())
    assert gray_alpha.shape == (2, 40, 44)
    torch.testing.assert_close(gray_alpha[1], rgba[1])


@pytest.mark.parametrize(
    ("height", "width", "batch_size"), [(150, 200, 1), (150, 200, 4), (1000, 37, 2), (720, 1280, 4)]
)
def test_the_largest_tile_fits_the_budget_and_one_step_larger_does_not(height, width, batch_size):
    per_pixel, budget, overlap, align = 400.0, 20_000 * 400, 16, 8
    side = largest_tile(height, width, per_pixel, budget, batch_size, overlap, align)
    grid = tile_grid(height, width, side, overlap, align)
    pixels = max(b - a for a, b in grid.rows) * max(b - a for a, b in grid.cols)
    assert min(batch_size, len(grid)) * pixels * per_pixel <= budget and side % align == 0
    bigger = tile_grid(height, width, side + align, overlap, align)
    bigger_pixels = max(b - a for a, b in bigger.rows) * max(b - a for a, b in bigger.cols)
    assert min(batch_size, len(bigger)) * bigger_pixels * per_pixel > budget


def computed_pixels(height, width, side, overlap, align):
    grid = tile_grid(height, width, side, overlap, align)
    return sum(b - a for a, b in grid.rows) * sum(b - a for a, b in grid.cols)


@pytest.mark.parametrize(
    ("height", "width", "batch_size"), [(150, 200, 1), (150, 200, 4), (1000, 37, 2), (720, 1280, 4), (3000, 4000, 4)]
)
def test_the_cheapest_tile_fits_and_computes_no_more_than_the_largest(height, width, batch_size):
    per_pixel, overlap, align = 400.0, 32, 8
    budget = int(per_pixel * max(0.4 * height * width, batch_size * 96**2))  # whole images do not fit
    largest = largest_tile(height, width, per_pixel, budget, batch_size, overlap, align)
    side = cheapest_tile(height, width, per_pixel, budget, batch_size, overlap, align)
    grid = tile_grid(height, width, side, overlap, align)
    pixels = max(b - a for a, b in grid.rows) * max(b - a for a, b in grid.cols)
    assert min(batch_size, len(grid)) * pixels * per_pixel <= budget and side % align == 0 and side <= largest
    cheapest_pixels = computed_pixels(height, width, side, overlap, align)
    assert cheapest_pixels <= computed_pixels(height, width, largest, overlap, align)


def test_the_cheapest_tile_of_a_12_megapixel_photo_wastes_less():
    side = cheapest_tile(3000, 4000, 400.0, 2**30, batch_size=4, overlap=32, align=8)
    assert computed_pixels(3000, 4000, side, 32, 8) < 1.12 * 3000 * 4000 < computed_pixels(3000, 4000, 816, 32, 8)
    assert cheapest_tile(150, 200, 400.0, 150 * 200 * 400, batch_size=4, overlap=32, align=8) == 200  # whole


def test_budget_tiling_is_whole_image_when_it_fits_and_tiles_otherwise():
    model = tiny_model()
    per_pixel = forward_bytes_per_pixel(model.config)
    fits = TileOptions(max_memory=int(150 * 200 * per_pixel))
    assert tile_side(model, 150, 200, fits) == 200 and tile_count(model, 150, 200, fits) == 1
    tight = TileOptions(max_memory=int(72 * 72 * per_pixel), overlap=24, batch_size=1)
    assert tile_count(model, 150, 200, tight) > 1 and tile_side(model, 150, 200, tight) <= 72
    assert tile_side(model, 150, 200, TileOptions(tile=48, max_memory=fits.max_memory)) == 48  # explicit override
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 150, 200), 5, 1, 2)[0]
    with torch.inference_mode():
        whole = model(image[None])[0]
    torch.testing.assert_close(deblur_image(model, image, fits), whole, atol=1e-5, rtol=0)
    difference = (deblur_image(model, image, tight) - whole).abs()
    assert difference.max() < 4 / 255 and difference.mean() < 0.5 / 255


def test_inference_mode_gives_the_outputs_of_no_grad_and_of_autograd():
    model = tiny_model()
    image = torch.rand(2, 3, 45, 67)
    with torch.inference_mode():
        fast = model(image)
    with torch.no_grad():
        torch.testing.assert_close(fast, model(image), atol=1e-5, rtol=0)
    torch.testing.assert_close(fast, model(image).detach(), atol=1e-5, rtol=0)
