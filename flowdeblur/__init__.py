"""flowdeblur: image deblurring with normalizing flows (UML-IN, Wang, Wen & Liu, Electronics 2022)."""

import warnings

# pytorch-wavelets 1.3 imports pkg_resources, which warns on every import; the warning is not ours to fix.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from .checkpoint import CheckpointError  # noqa: E402
from .config import UMLINConfig  # noqa: E402
from .model import Encoding, WaveletUNetFlow  # noqa: E402

__version__ = "0.1.0"

__all__ = ["CheckpointError", "Encoding", "UMLINConfig", "WaveletUNetFlow", "__version__"]
