"""Evaluation helpers: which images the report keeps, crops, the summary's means and table."""

import numpy as np
import torch

from flowdeblur.evaluate import Visual, centre_crop, format_summary, keep_extremes, summarize


def test_the_report_keeps_the_best_and_the_worst_images_by_gain_whatever_the_order():
    visuals = {}
    for gain in np.random.default_rng(0).permutation(20):
        visuals[f"image{gain}"] = Visual(f"image{gain}", float(gain), crops={}, latent_maps={})
        keep_extremes(visuals, 6)
    assert sorted(visual.gain for visual in visuals.values()) == [0, 1, 2, 17, 18, 19]


def test_centre_crop_is_centred_and_never_larger_than_the_image():
    image = torch.arange(10 * 12.0).reshape(1, 10, 12)
    assert torch.equal(centre_crop(image, 4), image[:, 3:7, 4:8])
    assert torch.equal(centre_crop(image, 64), image)


def test_summary_averages_per_image_and_the_table_shows_signed_gains():
    def record(psnr):
        scores = {"psnr": psnr, "ssim": 0.5, "mse": 0.01}
        latents = [{"level": 1, "mean_abs": psnr / 100, "near_zero": 0.5}]
        return {"blurry": {"y": scores}, "deblurred": {"y": scores}, "gain": {"y": {**scores, "psnr": psnr - 30}},
                "latents": {"blurry": latents, "transferred": latents, "sharp": latents}}

    summary = summarize([record(30.0), record(34.0)], seconds=4.0)
    assert summary["deblurred"]["y"]["psnr"] == 32.0 and summary["seconds_per_image"] == 2.0
    assert summary["latents"]["sharp"] == [{"level": 1, "mean_abs": 0.32, "near_zero": 0.5}]
    assert "rgb" not in summary["deblurred"]
    gain_line = next(line for line in format_summary(summary).splitlines() if line.startswith("Y   gain"))
    assert gain_line.split() == ["Y", "gain", "+2.00", "+0.5000", "+0.010000"]
