"""A plain-text description of a model: where it is, its architecture, parameter counts, and its training."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import WaveletUNetFlow

SCALARS = (str, int, float, type(None))


def scalar(value: Any) -> str:
    """A number or string for people: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def brief(values: Mapping[str, Any], shown: int = 6) -> str:
    """A one-line digest of a dict: its first scalar entries as ``key value``, then the names of nested ones."""
    scalars = [f"{key} {scalar(item)}" for key, item in values.items() if isinstance(item, SCALARS)]
    nested = [str(key) for key, item in values.items() if not isinstance(item, SCALARS)]
    parts = scalars[:shown] + (["…"] if len(scalars) > shown else [])
    if nested:
        parts.append("(" + ", ".join(nested) + ")")
    return ", ".join(parts)


def parameter_table(model: WaveletUNetFlow) -> str:
    """Parameters per level: each codec's INN (one column per codec: blur and sharp, or the shared one) and the
    per-level transfer net; parts that span the levels (the pyramid transfer net, the full-resolution stage) get a
    row of their own; row and column totals."""
    counts = model.parameter_counts()
    codecs = list(model.flows)
    per_level = [f"flow.{codec}" for codec in codecs] + (["transfer"] if "transfer.level1" in counts else [])
    lines = [f"{'level':<8}" + "".join(f"{name:>14}" for name in per_level) + f"{'total':>14}"]
    for level in range(1, model.config.levels + 1):
        row = [counts[f"{name}.level{level}"] for name in per_level]
        lines.append(f"{level:<8}" + "".join(f"{value:>14,}" for value in row) + f"{sum(row):>14,}")
    for part in ("transfer", "refine"):
        if part in counts:
            lines.append(f"{part:<8}" + " " * 14 * len(per_level) + f"{counts[part]:>14,}")
    lines.append(f"{'total':<8}" + " " * 14 * len(per_level) + f"{counts['total']:>14,}")
    return "\n".join(lines)


def validation_note(metadata: Mapping[str, Any]) -> str | None:
    """Why the validation PSNR can lie below the blurry input's while the model improves it, where that is so.

    PSNR is averaged per image, and an input left sharp by the blur mixture's no-blur draws counts 100 dB, more than
    any output; MSE and SSIM, averaged the same way, are not dominated so.
    """
    validation, dataset = metadata.get("validation"), metadata.get("validation_dataset")
    if not isinstance(validation, Mapping) or not isinstance(dataset, Mapping):
        return None
    blur = dataset.get("blur")
    share = blur.get("probabilities", {}).get("none", 0.0) if isinstance(blur, Mapping) else 0.0
    psnr, blurry = validation.get("psnr"), validation.get("blurry_psnr")
    if not share or not isinstance(psnr, float) or not isinstance(blurry, float) or psnr >= blurry:
        return None
    return (f"  note: validation PSNR ({psnr:.2f} dB) is below the input's ({blurry:.2f} dB): the validation blur "
            f"leaves about {share:.0%} of the images\n  sharp, which score 100 dB as input, and PSNR is averaged per "
            "image, so those dominate\n  (MSE and SSIM: "
            f"{validation.get('blurry_mse', float('nan')):.6f} -> {validation.get('mse', float('nan')):.6f}, "
            f"{validation.get('blurry_ssim', float('nan')):.4f} -> {validation.get('ssim', float('nan')):.4f}).\n"
            "  Scores on blurred images only: flowdeblur eval (--blur mix-blurred), or the model's card.")


def describe_model(model: WaveletUNetFlow) -> str:
    """Directory, config, parameter counts per level and branch, and the training metadata it carries."""
    config = "\n".join(f"  {key:<26}{value}" for key, value in model.config.to_dict().items())
    if model.metadata:
        trained = "\n".join(
            f"  {key:<26}{brief(value) if isinstance(value, Mapping) else scalar(value)}"
            for key, value in model.metadata.items()
        )
        note = validation_note(model.metadata)
        trained += f"\n{note}" if note else ""
        trained += "\n  (everything in config.json, 'metadata')"
    else:
        trained = "  (no training metadata recorded in config.json)"
    return "\n\n".join(
        [
            f"model: {model.directory}",
            f"config:\n{config}",
            f"parameters:\n{parameter_table(model)}",
            f"trained:\n{trained}",
        ]
    )
