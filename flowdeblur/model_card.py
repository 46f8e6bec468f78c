"""The model card written beside every saved model as ``README.md``: the Hub's layout (YAML front matter, then
intended use, training data, procedure, metrics, usage and the weights' SHA-256), filled from the training record
in the model's metadata by the template ``templates/model_card.md``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import UMLINConfig

TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"
LICENSE = "mit"  # the project's licence; the card's data section names the training images' own terms
TAGS = ("image-deblurring", "image-restoration", "normalizing-flows", "uml-in", "flowdeblur")
CHANNELS = {"y": "luma (BT.601 Y, keeping the input's Cb/Cr)", "rgb": "three RGB channels"}
UNRECORDED = "not recorded in the model's metadata"


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(item, int | float) for item in value):
        return f"{_value(value[0])}–{_value(value[1])}"
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {_value(item)}" for key, item in value.items())
    return str(value)


def describe_blur(blur: Any) -> str:
    """One line for a recorded blur: its kind, then its settings (ranges as a–b, a mixture's shares)."""
    if not isinstance(blur, Mapping):
        return UNRECORDED
    settings = "; ".join(f"{key} {_value(value)}" for key, value in blur.items()
                         if key not in ("kind", "seed", "blur_per_image"))
    return f"{blur.get('kind', 'unnamed')} blur ({settings})"


def _data(dataset: Any) -> str:
    if not isinstance(dataset, Mapping):
        return UNRECORDED + "."
    sources = dataset.get("source_images")
    named = f" from {len(sources)} images: {', '.join(map(str, sources))}" if isinstance(sources, list) else ""
    crop = dataset.get("crop")
    cropped = f", random {crop['size']}-pixel crops" if isinstance(crop, Mapping) and "size" in crop else ""
    return (f"The `{dataset.get('dataset', '?')}` dataset, split `{dataset.get('split', '?')}`: "
            f"{dataset.get('num_items', '?')} training items{named}{cropped}, each blurred by "
            f"{describe_blur(dataset.get('blur'))}.")


def _procedure(metadata: Mapping[str, Any]) -> str:
    train, steps = metadata.get("train_config"), metadata.get("stage_steps")
    if not isinstance(train, Mapping) or not isinstance(steps, Mapping):
        return UNRECORDED + "."
    stages = ", ".join(f"{name} {count:,} steps" for name, count in steps.items() if count) or "none"
    facts = [f"stages: {stages}"]
    facts += [f"{label} {train[key]}" for label, key in (("optimiser", "optimizer"), ("batch", "batch_size"))
              if key in train]
    facts += [f"seed {metadata['seed']}"] if "seed" in metadata else []
    facts += [f"fine-tuned from {train['init_from']}"] if train.get("init_from") else []
    seconds = metadata.get("wall_time_s")
    facts += [f"{seconds / 60:.0f} minutes on {metadata.get('processes', 1)} process(es)"] if isinstance(
        seconds, int | float) else []
    return "; ".join(facts).capitalize() + ". The whole configuration is `metadata.train_config` in `config.json`."


def _metrics(metadata: Mapping[str, Any]) -> str:
    scores = metadata.get("validation")
    if not isinstance(scores, Mapping) or "psnr" not in scores:
        return "No validation scores recorded; `flowdeblur eval --model DIR` scores it."
    rows = [f"| {name} | {scores.get('blurry_' + key, float('nan')):{style}} | {scores[key]:{style}} |"
            for name, key, style in (("PSNR (dB)", "psnr", ".2f"), ("SSIM", "ssim", ".4f"), ("MSE", "mse", ".6f"))
            if isinstance(scores.get(key), float)]
    return "\n".join([
        f"On the {scores.get('images', '?')} validation images of its training run (per image, then averaged; "
        "the blurry input beside the output):",
        "",
        "| metric | blurry input | model |",
        "|---|---:|---:|",
        *rows,
    ])


def _front_matter(metadata: Mapping[str, Any]) -> str:
    from huggingface_hub import ModelCardData

    dataset = metadata.get("dataset")
    datasets = [str(dataset["dataset"])] if isinstance(dataset, Mapping) and "dataset" in dataset else None
    return ModelCardData(license=LICENSE, library_name="flowdeblur", pipeline_tag="image-to-image",
                         tags=list(TAGS), datasets=datasets).to_yaml()


def model_card(config: UMLINConfig, metadata: Mapping[str, Any], parameters: int, name: str, weights: Path) -> str:
    """The card of a model (its architecture, training record and parameter count) published as ``name`` (a Hub id
    or a directory), its weights at ``weights``."""
    dataset = metadata.get("dataset")
    return TEMPLATE.read_text(encoding="utf-8").format(
        front_matter=_front_matter(metadata),
        title=f"flowdeblur UML-IN: {Path(name).name}",
        name=name,
        parameters=parameters,
        channels=CHANNELS[config.color],
        blur=describe_blur(dataset.get("blur")) if isinstance(dataset, Mapping) else UNRECORDED,
        data=_data(dataset),
        procedure=_procedure(metadata),
        metrics=_metrics(metadata),
        weights_sha256=sha256(weights),
        license=f"{LICENSE.upper()} (flowdeblur's); the training images keep their own terms",
    )
