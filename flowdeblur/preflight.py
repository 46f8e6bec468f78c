"""Checks on a model directory before its model is built: the size its config describes, and whether the
weights' names and shapes fit that architecture. Each problem is a short :class:`CheckpointError` instead of an
out-of-memory crash or PyTorch's list of every mismatched key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, read_config
from .config import UMLINConfig
from .data.errors import preview

MAX_PARAMETERS = 1_000_000_000  # 4 GB of float32 weights; the paper's model has about 1.1 million
SHOWN = 3

Shapes = dict[str, tuple[int, ...]]


ModelBuilder = Callable[[UMLINConfig], nn.Module]


def meta_model(build: ModelBuilder, config: UMLINConfig) -> nn.Module:
    """The model ``build(config)`` makes, built on the meta device: shapes and counts without allocating anything.

    The model class is handed in (``WaveletUNetFlow`` passes itself), so this module never imports the model's.
    """
    with torch.device("meta"):
        return build(config)


def weight_shapes(path: Path) -> Shapes:
    """Name and shape of every tensor in a safetensors file, read from its header alone."""
    try:
        with safe_open(str(path), "pt") as weights:
            names = weights.keys()
            return {name: tuple(weights.get_slice(name).get_shape()) for name in names}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file ({error})") from error


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def mismatch(expected: Shapes, found: Shapes) -> list[str]:
    """A few lines summing up how ``found`` differs from ``expected``: counts and the first names of each kind."""
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    reshaped = [
        f"{name} ({_shape(found[name])} in the file, {_shape(expected[name])} expected)"
        for name in sorted(expected.keys() & found.keys())
        if found[name] != expected[name]
    ]
    kinds = (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
    return [f"{len(names)} {kind}: {preview(names, SHOWN)}" for kind, names in kinds if names]


def check_model_dir(directory: str | Path, build: ModelBuilder) -> None:
    """Refuse, with one short CheckpointError, a model directory whose config describes a model (as ``build`` makes
    it) over MAX_PARAMETERS or whose weights do not fit that config; nothing is allocated on the way."""
    directory = Path(directory)
    config = UMLINConfig.from_dict(read_config(directory)["config"])
    model = meta_model(build, config)
    count = sum(parameter.numel() for parameter in model.parameters())
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"{directory / CONFIG_NAME} describes a model of {count:,} parameters, more than the {MAX_PARAMETERS:,} "
            "flowdeblur loads; the config is damaged or not meant for this program"
        )
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    lines = mismatch(expected, weight_shapes(directory / WEIGHTS_NAME))
    if lines:
        raise CheckpointError(
            f"the weights in {directory / WEIGHTS_NAME} do not fit the architecture in {directory / CONFIG_NAME} "
            "(saved with another config?):\n  " + "\n  ".join(lines)
        )
