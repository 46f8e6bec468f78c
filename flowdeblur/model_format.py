"""The model format, in the Hugging Face Hub's layout: a directory or Hub repository holding ``config.json``
(architecture + training record), ``model.safetensors`` and a ``README.md`` model card.

One home for where a model name leads (a shipped name, a directory, a Hub id), for reading ``config.json`` once and
checking it field by field, and for the checks made on the meta device before any weight is allocated. Weights are
safetensors only: nothing a user hands us is ever unpickled. docs/model.md ("Model files") says why this is not
huggingface_hub's ``PyTorchModelHubMixin`` itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write
from .config import UMLINConfig
from .data.errors import preview
from .pretrained import DEFAULT_MODEL, SHIPPED_MODELS, shipped_directory

if TYPE_CHECKING:
    import torch
    from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT_NAME = "flowdeblur.WaveletUNetFlow"
MAX_PARAMETERS = 1_000_000_000  # 4 GB of float32 weights; the paper's model has about 1.1 million
SHOWN = 3
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")  # owner/name: exactly one slash, no ./ or ../
EXPECTED = f"a flowdeblur model directory holds {CONFIG_NAME} and {WEIGHTS_NAME} (see save_pretrained)"

Shapes = dict[str, tuple[int, ...]]
ModelBuilder = Callable[[UMLINConfig], "nn.Module"]


class CheckpointError(ValueError):
    """A model directory is missing, incomplete, corrupt, or does not match the model it is loaded into."""


class ModelNotFoundError(CheckpointError):
    """A model name that leads to no directory, shipped model or Hub repository (the command line names --model)."""


def is_hub_id(name: str) -> bool:
    """Whether ``name`` has the form of a Hub repository id (``owner/name``), as opposed to a longer path."""
    return bool(HUB_ID.fullmatch(name)) and ".." not in name and not name.startswith(".")


def locate_model(model: str | Path | None = None, **hub_options: Any) -> Path:
    """The directory a model name leads to: an existing directory; else a shipped model's name (None: ``general``);
    else a Hub id ``owner/name``, its two files found in the Hub cache or downloaded into it.

    ``hub_options`` go to ``huggingface_hub.hf_hub_download`` (``revision``, ``cache_dir``, ``token``,
    ``force_download``, ``local_files_only``); ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE`` are honoured as there.
    """
    name = DEFAULT_MODEL if model is None else str(model)
    if Path(name).is_dir():
        return Path(name)
    if name in SHIPPED_MODELS:
        directory = shipped_directory(name)
        if not ((directory / CONFIG_NAME).is_file() and (directory / WEIGHTS_NAME).is_file()):
            raise CheckpointError(
                f"the shipped model {name!r} is not installed (expected {CONFIG_NAME} and {WEIGHTS_NAME} in "
                f"{directory}); reinstall flowdeblur, or pass --model DIR with a directory written by save_pretrained"
            )
        return directory
    shipped = ", ".join(SHIPPED_MODELS)
    if not is_hub_id(name):
        raise ModelNotFoundError(f"model {name} does not exist: it is neither a directory, nor a shipped model "
                                 f"({shipped}), nor a Hub id (owner/name)")
    return _download(name, f"model {name} is not a directory or a shipped model ({shipped}); as a Hub id", hub_options)


def _download(repo_id: str, context: str, hub_options: dict[str, Any]) -> Path:
    """The Hub-cache directory holding ``repo_id``'s config and weights, fetched if missing and allowed."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        paths = [Path(hf_hub_download(repo_id, name, **hub_options)) for name in (CONFIG_NAME, WEIGHTS_NAME)]
    except LocalEntryNotFoundError as error:
        why = "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else "the Hub could not be reached"
        cache = constants.HF_HUB_CACHE
        raise ModelNotFoundError(f"{context} it is not in the Hub cache ({cache}) and {why}") from error
    except RepositoryNotFoundError as error:
        raise ModelNotFoundError(f"{context} no such repository on the Hub (a private one needs a token: hf auth "
                                 "login)") from error
    except EntryNotFoundError as error:
        raise CheckpointError(f"{context} its repository lacks {CONFIG_NAME} or {WEIGHTS_NAME}; {EXPECTED}") from error
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{context} it could not be fetched ({reason})") from error
    return paths[0].parent


def read_header(directory: Path) -> tuple[dict[str, Any], UMLINConfig]:
    """``config.json`` parsed once and checked: the JSON, the format, the architecture field by field
    (:meth:`UMLINConfig.from_dict`), and ``metadata`` (the training record) a JSON object where present."""
    if not directory.is_dir():
        raise CheckpointError(f"model directory {directory} does not exist or is not a directory; {EXPECTED}")
    config_path = directory / CONFIG_NAME
    for path in (config_path, directory / WEIGHTS_NAME):
        if not path.is_file():
            raise CheckpointError(f"{path} is missing; {EXPECTED}")
    try:
        header = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as error:  # bad JSON or UTF-8, a number of thousands of digits, deep nesting
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise CheckpointError(f"{config_path} is not valid JSON ({reason}); {EXPECTED}") from error
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME or "config" not in header:
        raise CheckpointError(
            f"{config_path} is not a flowdeblur model config (needs format={FORMAT_NAME!r} and a 'config' entry)"
        )
    try:
        config = UMLINConfig.from_dict(header["config"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path} has an invalid config: {error}") from error
    if header.get("metadata") is not None and not isinstance(header["metadata"], dict):
        raise CheckpointError(f"{config_path}: 'metadata' must be a JSON object, got {header['metadata']!r}")
    return header, config


def weight_shapes(path: Path) -> Shapes:
    """Name and shape of every tensor in a safetensors file, read from its header alone."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as weights:
            return {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}  # noqa: SIM118
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


def check_fits(directory: Path, config: UMLINConfig, build: ModelBuilder) -> None:
    """Refuse, with one short CheckpointError, a config that describes a model (as ``build`` makes it, on the meta
    device: nothing is allocated) of over MAX_PARAMETERS, or weights whose names and shapes do not fit it."""
    import torch

    with torch.device("meta"):
        model = build(config)
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


def read_weights(directory: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``, each finite: a weight holding inf or nan would write black images."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = directory / WEIGHTS_NAME
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors file ({error})") from error
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"weights in {directory} are not finite ({name} holds inf or nan); the model would "
                                  "write black or empty images, so it is refused")
    return state


def write_model_dir(
    directory: Path, header: dict[str, Any], state_dict: dict[str, torch.Tensor], card: Callable[[Path], str]
) -> Path:
    """Write weights, then config, then the card ``card(weights_path)`` makes, each atomically: a directory with a
    config always has its weights."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in state_dict.items()}
    weights = directory / WEIGHTS_NAME
    atomic_write(weights, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    document = json.dumps({"format": FORMAT_NAME, **header}, indent=2, sort_keys=True) + "\n"
    atomic_write(directory / CONFIG_NAME, lambda tmp: tmp.write_text(document, encoding="utf-8"))
    text = card(weights)
    atomic_write(directory / CARD_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return directory
