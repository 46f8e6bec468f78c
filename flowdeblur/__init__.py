"""flowdeblur: image deblurring with normalizing flows (UML-IN, Wang, Wen & Liu, Electronics 2022).

The public names are imported from their modules on first use, so that ``import flowdeblur`` (and the
``flowdeblur`` command's start-up) does not import torch, FrEIA or the trainer until they are needed.
"""

from __future__ import annotations

import warnings

from .lazy import lazy_getattr

# pytorch-wavelets 1.3 imports pkg_resources, which warns on every import; the warning is not ours to fix.
# Set here, so it holds for every import of a flowdeblur module, whichever comes first.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

__version__ = "0.1.0"

_MODULES = {
    "CheckpointError": "checkpoint",
    "Encoding": "model",
    "UMLINConfig": "config",
    "WaveletUNetFlow": "model",
}

__all__ = [*sorted(_MODULES), "__version__"]

__getattr__ = lazy_getattr(__name__, _MODULES)
