"""The models shipped inside the package, chosen by name, and loading a model by name or directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError

if TYPE_CHECKING:
    import torch

    from ..model import WaveletUNetFlow

# name -> what it is for, in one line (docs/models/<name>.md has its card)
SHIPPED_MODELS = {
    "general": "blind deblurring of a mixture of blurs (none, Gaussian, defocus, camera shake, noise); the default",
    "gauss3": "the paper's protocol only: 3x3 Gaussian blur with sigma 1 (LSUN/CelebA, §4.1); it damages sharp "
              "photos and other blurs",
}
DEFAULT_MODEL = "general"


def shipped_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """The directory of a shipped model: ``flowdeblur/pretrained/<name>/``."""
    if name not in SHIPPED_MODELS:
        raise CheckpointError(f"no shipped model {name!r}; the shipped models are {', '.join(SHIPPED_MODELS)}")
    return Path(__file__).resolve().parent / name


def resolve_model(model: str | Path | None = None) -> Path:
    """The directory ``--model`` names: an existing directory, else a shipped model's name (None: the default)."""
    if model is None:
        return shipped_model_dir()
    if Path(model).is_dir() or str(model) not in SHIPPED_MODELS:
        return Path(model)
    return shipped_model_dir(str(model))


def load_model(model: str | Path | None = None, device: str | torch.device = "cpu") -> WaveletUNetFlow:
    """The model a directory or shipped name gives (None: ``general``); :class:`CheckpointError` if unusable.

    The directory is checked (:func:`flowdeblur.preflight.check_model_dir`) before anything is allocated.
    """
    from ..model import WaveletUNetFlow  # torch and FrEIA: imported by the commands that load a model

    directory = resolve_model(model)
    shipped = model is None or (str(model) in SHIPPED_MODELS and not Path(model).is_dir())
    if shipped and not ((directory / CONFIG_NAME).is_file() and (directory / WEIGHTS_NAME).is_file()):
        raise CheckpointError(
            f"the shipped model {str(model or DEFAULT_MODEL)!r} is not installed (expected {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} in {directory}); reinstall flowdeblur, or pass --model DIR with a directory written by "
            "save_pretrained"
        )
    if not shipped and not directory.exists():
        names = ", ".join(SHIPPED_MODELS)
        raise CheckpointError(f"--model {model}: no such directory, and not a shipped model ({names})")
    return WaveletUNetFlow.from_pretrained(directory, device=device)
