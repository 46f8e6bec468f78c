"""Where the model shipped inside the package lives, and loading a model directory or that default."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError
from ..model import WaveletUNetFlow
from ..preflight import check_model_dir


def default_model_dir() -> Path:
    """The directory of the shipped default model: ``flowdeblur/pretrained/default/``."""
    return Path(__file__).resolve().parent / "default"


def load_model(directory: str | Path | None = None, device: str | torch.device = "cpu") -> WaveletUNetFlow:
    """The model in ``directory``, or the shipped default when it is None; :class:`CheckpointError` if unusable.

    The directory is checked (:func:`check_model_dir`) before anything is allocated.
    """
    if directory is None:
        directory = default_model_dir()
        if not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
            raise CheckpointError(
                f"no model given and the shipped default model is not installed (expected {CONFIG_NAME} and "
                f"{WEIGHTS_NAME} in {directory}); pass --model DIR with a directory written by save_pretrained"
            )
    check_model_dir(directory)
    return WaveletUNetFlow.from_pretrained(directory, device=device)
