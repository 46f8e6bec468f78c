"""flowdeblur: image deblurring with normalizing flows (UML-IN, Wang, Wen & Liu, Electronics 2022).

The public names are imported from their modules on first use, so that ``import flowdeblur`` (and the
``flowdeblur`` command's start-up) does not import torch, FrEIA or the trainer until they are needed.
"""

from __future__ import annotations

from .lazy import lazy_getattr

__version__ = "0.1.0"

_MODULES = {
    "CheckpointError": "model_format",
    "Encoding": "model",
    "UMLINConfig": "config",
    "WaveletUNetFlow": "model",
}

__all__ = [*sorted(_MODULES), "__version__"]

__getattr__ = lazy_getattr(__name__, _MODULES)
