"""Evaluate a model on a paired dataset: per-image scores of the blurry input and the deblurred output, averaged.

Scores follow :mod:`flowdeblur.metrics` (PSNR, SSIM, MSE after rounding to 8 bits) on Y (the paper's protocol)
and on RGB. The gain is deblurred minus blurry for every metric (for MSE a negative gain is an improvement).
Per image, the centre crop shown in the report is also encoded, to measure each level's latent sparsity:
z̃ of the blurry crop (blur branch), ẑ = h_Γ(z̃) (transfer), z of the sharp crop (sharp branch).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import __version__
from .atomic import atomic_write
from .color import image_to_channels
from .data import DatasetError, write_image
from .inference import TileOptions, deblur_image
from .metrics import METRICS, PSNR_CAP, SCORE_SPACES, image_scores, mean_scores
from .model import WaveletUNetFlow
from .model_format import CheckpointError

KINDS = ("blurry", "deblurred")
LATENT_KINDS = ("blurry", "transferred", "sharp")
CROP_KINDS = ("blurry", "deblurred", "sharp")
NEAR_ZERO = 0.1
PROTOCOL = {
    "metrics": "PSNR (dB, data range 1), SSIM (Gaussian window 11, sigma 1.5, averaged over the pixels where the "
    "window fits, as MATLAB and BasicSR), MSE on [0, 1] values",
    "averaging": "per image, then averaged over images",
    "quantization": "both images rounded to 8-bit RGB before scoring; Y then computed from them in floating point",
    "exact": f"an image identical to the sharp one (infinite PSNR) counts as {PSNR_CAP:g} dB",
    "y": "ITU-R BT.601 luma, Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255 (scikit-image's rgb2ycbcr)",
    "gain": "deblurred minus blurry, per metric (negative MSE gain = improvement)",
    "latents": f"on the centre crop: mean |z| and the fraction of |z| < {NEAR_ZERO} per level",
}


@dataclass
class Visual:
    """What the report shows for one image: centre crops as uint8 arrays and per-level |z| maps (uint8)."""

    name: str
    gain: float
    crops: dict[str, np.ndarray]
    latent_maps: dict[str, list[np.ndarray]]


@dataclass
class Evaluation:
    """Per-image records (JSON-ready), their summary, and the visuals kept for the report (best and worst)."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    visuals: dict[str, Visual] = field(default_factory=dict)


def to_uint8(image: Tensor) -> np.ndarray:
    """A (C, H, W) image in [0, 1] as an (H, W) or (H, W, 3) uint8 array."""
    levels = image.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8)
    return levels[0].numpy() if levels.shape[0] == 1 else levels.permute(1, 2, 0).numpy()


def centre_crop(image: Tensor, size: int) -> Tensor:
    """The centred window of at most size x size pixels of a (C, H, W) image."""
    height, width = image.shape[-2:]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return image[:, top : top + size, left : left + size]


def score_record(restored: Tensor, blurry: Tensor, sharp: Tensor) -> dict[str, Any]:
    """Scores of one image, blurry and deblurred against sharp, on Y and (for RGB images) RGB, and the gain."""
    spaces = ("y", "rgb") if sharp.shape[0] == 3 else ("y",)
    record: dict[str, Any] = {kind: {} for kind in (*KINDS, "gain")}
    for space in spaces:
        for kind, image in zip(KINDS, (blurry, restored), strict=True):
            scores = image_scores(image[None], sharp[None], space=space)
            scores["psnr"] = scores["psnr"].clamp(max=PSNR_CAP)
            record[kind][space] = {metric: float(value[0]) for metric, value in scores.items()}
        record["gain"][space] = {m: record["deblurred"][space][m] - record["blurry"][space][m] for m in METRICS}
    return record


def level_stats(level: int, z: Tensor) -> dict[str, float]:
    """Sparsity of one level's latent: mean |z| and the fraction of entries with |z| < NEAR_ZERO."""
    magnitude = z.abs()
    near_zero = (magnitude < NEAR_ZERO).float().mean()
    return {"level": level, "mean_abs": float(magnitude.mean()), "near_zero": float(near_zero)}


@torch.inference_mode()
def latent_sparsity(
    model: WaveletUNetFlow, blurry: Tensor, sharp: Tensor, device: torch.device
) -> tuple[dict[str, list[dict[str, float]]], dict[str, list[Tensor]]]:
    """Per-level statistics of z̃, ẑ and z for one (blurry, sharp) pair, and each level's mean-|z| map."""
    color = model.config.color
    encoded = model.encode(image_to_channels(blurry[None].to(device), color), "blur")
    latents = {
        "blurry": encoded.latents,
        "transferred": model.synthesize_with_latents(encoded)[1],
        "sharp": model.encode(image_to_channels(sharp[None].to(device), color), "sharp").latents,
    }
    stats = {kind: [level_stats(level, z) for level, z in enumerate(zs, start=1)] for kind, zs in latents.items()}
    maps = {kind: [z.abs().mean(dim=1)[0].float().cpu() for z in zs] for kind, zs in latents.items()}
    return stats, maps


def render_latent_maps(maps: Mapping[str, list[Tensor]]) -> dict[str, list[np.ndarray]]:
    """Mean-|z| maps as uint8 images; one scale per level (the 99th percentile over the kinds), so they compare."""
    levels = len(next(iter(maps.values())))
    rendered: dict[str, list[np.ndarray]] = {kind: [] for kind in maps}
    for level in range(levels):
        together = torch.cat([maps[kind][level].flatten() for kind in maps])
        scale = max(float(torch.quantile(together, 0.99)), 1e-6)
        for kind in maps:
            rendered[kind].append(to_uint8((maps[kind][level] / scale)[None]))
    return rendered


def keep_extremes(visuals: dict[str, Visual], limit: int) -> None:
    """Drop the median-gain visual while more than ``limit`` are kept: what stays is the best and worst by gain."""
    while len(visuals) > limit:
        ranked = sorted(visuals.values(), key=lambda visual: visual.gain)
        del visuals[ranked[len(ranked) // 2].name]


def summarize(records: Iterable[Mapping[str, Any]], seconds: float) -> dict[str, Any]:
    """Means over images of every score and latent statistic, with the image count and time per image."""
    records = list(records)
    summary: dict[str, Any] = {"images": len(records), "seconds_per_image": seconds / len(records)}
    for kind in (*KINDS, "gain"):
        spaces = [space for space in SCORE_SPACES if all(space in record[kind] for record in records)]
        summary[kind] = {space: mean_scores(record[kind][space] for record in records) for space in spaces}
    summary["latents"] = {
        kind: [
            {**mean_scores(rows), "level": rows[0]["level"]}
            for rows in zip(*(record["latents"][kind] for record in records), strict=True)
        ]
        for kind in LATENT_KINDS
    }
    return summary


def evaluate_pair(
    model: WaveletUNetFlow, name: str, blurry: Tensor, sharp: Tensor, options: TileOptions, crop_size: int
) -> tuple[dict[str, Any], Visual, Tensor]:
    """One image: its record (size, scores, latent statistics), its visual for the report, and the deblurred image."""
    try:
        restored = deblur_image(model, blurry, options)
    except CheckpointError as error:
        raise CheckpointError(f"{name}: {error}") from error
    record = {"name": name, "height": blurry.shape[-2], "width": blurry.shape[-1]}
    record.update(score_record(restored, blurry, sharp))
    images = zip(CROP_KINDS, (blurry, restored, sharp), strict=True)
    crops = {kind: centre_crop(image, crop_size) for kind, image in images}
    record["latents"], maps = latent_sparsity(model, crops["blurry"], crops["sharp"], options.device)
    visual = Visual(
        name,
        gain=record["gain"]["y"]["psnr"],
        crops={kind: to_uint8(crop) for kind, crop in crops.items()},
        latent_maps=render_latent_maps(maps),
    )
    return record, visual, restored


def evaluate(
    model: WaveletUNetFlow,
    dataset: Any,
    options: TileOptions,
    *,
    crop_size: int = 256,
    max_visuals: int = 24,
    save_dir: Path | None = None,
    progress: bool = True,
) -> Evaluation:
    """Deblur every item of a paired dataset, score it, and keep crops and latent maps of the best and worst.

    ``dataset`` yields ``{"blurry", "sharp", "name"}`` items (C, H, W) in [0, 1]. With ``save_dir``, each
    deblurred image is also written there as ``<name>.png`` (8 bits).
    """
    if len(dataset) == 0:
        raise DatasetError("the dataset is empty: nothing to evaluate")
    records: list[dict[str, Any]] = []
    visuals: dict[str, Visual] = {}
    start = time.perf_counter()
    for index in tqdm(range(len(dataset)), desc="evaluating", unit="image", disable=not progress):
        item = dataset[index]
        if "sharp" not in item:
            raise DatasetError(f"item {item['name']!r} has no sharp image", expected="a paired dataset to evaluate on")
        record, visual, restored = evaluate_pair(model, item["name"], item["blurry"], item["sharp"], options, crop_size)
        records.append(record)
        if save_dir is not None:
            target = save_dir / f"{item['name']}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, restored)
        if max_visuals > 0:
            visuals[visual.name] = visual
            keep_extremes(visuals, max_visuals)
    summary = summarize(records, time.perf_counter() - start)
    summary["split"] = getattr(dataset, "description", {}).get("split")
    return Evaluation(records, summary, visuals)


def format_summary(summary: Mapping[str, Any]) -> str:
    """The summary as a plain-text table: blurry, deblurred and gain rows per colour space."""
    header = f"{'':<16}{'PSNR (dB)':>11}{'SSIM':>10}{'MSE':>12}"
    split = f", split {summary['split']}" if summary.get("split") else ""
    lines = [f"{summary['images']} images{split}, scores averaged per image, 8-bit rounded", header]
    for space in summary["deblurred"]:
        for kind in (*KINDS, "gain"):
            scores = summary[kind][space]
            sign = "+" if kind == "gain" else ""
            label = f"{space.upper():<4}{kind}"
            lines.append(
                f"{label:<16}{scores['psnr']:>{sign}11.2f}{scores['ssim']:>{sign}10.4f}{scores['mse']:>{sign}12.6f}"
            )
    return "\n".join(lines)


def evaluation_context(
    model: WaveletUNetFlow, dataset_description: Mapping[str, Any], options: TileOptions
) -> dict[str, Any]:
    """The facts an evaluation's JSON and report carry beside the numbers: model, dataset, protocol, tiling."""
    return {
        "model": str(model.directory),
        "model_config": model.config.to_dict(),
        "model_metadata": model.metadata,
        "parameters": model.parameter_counts()["total"],
        "dataset": dict(dataset_description),
        "protocol": PROTOCOL,
        "tiling": {"tile": options.tile, "max_memory": options.max_memory, "overlap": options.overlap,
                   "device": str(options.device)},
        "flowdeblur_version": __version__,
    }


def write_scores(path: Path, evaluation: Evaluation, context: Mapping[str, Any]) -> Path:
    """Write the context, the summary and every per-image record as JSON, atomically."""
    document = {**context, "summary": evaluation.summary, "images": evaluation.records}
    text = json.dumps(document, indent=2) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path
