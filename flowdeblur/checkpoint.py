"""Reading and writing model directories: ``config.json`` + ``model.safetensors``, written atomically.

Weights are safetensors only: a directory a user hands us is never unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write
from .config import UMLINConfig

if TYPE_CHECKING:
    import torch

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_NAME = "flowdeblur.WaveletUNetFlow"


class CheckpointError(ValueError):
    """A model directory is missing, incomplete, corrupt, or does not match the model it is loaded into."""


def save_model_dir(directory: str | Path, header: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> Path:
    """Write weights then config (each atomically), so a directory with a config always has its weights."""
    from safetensors.torch import save_file  # imports torch: only where weights are written

    directory = Path(directory)
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in state_dict.items()}
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    document = json.dumps({"format": FORMAT_NAME, **header}, indent=2, sort_keys=True) + "\n"
    atomic_write(directory / CONFIG_NAME, lambda tmp: tmp.write_text(document, encoding="utf-8"))
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    """The parsed and checked ``config.json`` of a model directory, or one :class:`CheckpointError` naming the problem.

    Checked: the JSON, the format, the ``config`` entry field by field (:meth:`UMLINConfig.from_dict`) and that
    ``metadata``, where present, is a JSON object.
    """
    directory = Path(directory)
    expected = f"a flowdeblur model directory holds {CONFIG_NAME} and {WEIGHTS_NAME} (see save_pretrained)"
    if not directory.is_dir():
        raise CheckpointError(f"model directory {directory} does not exist or is not a directory; {expected}")
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; {expected}")
    try:
        header = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as error:  # bad JSON or UTF-8, a number of thousands of digits, deep nesting
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise CheckpointError(f"{config_path} is not valid JSON ({reason}); {expected}") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME or "config" not in header:
        raise CheckpointError(
            f"{config_path} is not a flowdeblur model config (needs format={FORMAT_NAME!r} and a 'config' entry)"
        )
    try:
        UMLINConfig.from_dict(header["config"])
    except ValueError as error:
        raise CheckpointError(f"{config_path} has an invalid config: {error}") from error
    if header.get("metadata") is not None and not isinstance(header["metadata"], dict):
        raise CheckpointError(f"{config_path}: 'metadata' must be a JSON object, got {header['metadata']!r}")
    return header


def read_model_dir(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The checked config.json (:func:`read_config`) and the weights of a model directory, or one CheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file  # imports torch: only where weights are read

    header = read_config(directory)
    weights_path = Path(directory) / WEIGHTS_NAME
    try:
        state = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file ({error})") from error
    return header, state
