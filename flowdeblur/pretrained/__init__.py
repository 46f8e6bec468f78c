"""The models shipped inside the package: their names, what each is for, and where each lies."""

from __future__ import annotations

from pathlib import Path

# name -> what it is for, in one line (docs/models/<name>.md has its card)
SHIPPED_MODELS = {
    "general": "blind deblurring of a mixture of blurs (none, Gaussian, defocus, camera shake, noise); the default",
    "gauss3": "the paper's protocol only: 3x3 Gaussian blur with sigma 1 (LSUN/CelebA, §4.1); sharp photos pass "
              "nearly unchanged, other blurs are not removed",
}
DEFAULT_MODEL = "general"


def shipped_directory(name: str) -> Path:
    """Where the shipped model ``name`` lies: ``flowdeblur/pretrained/<name>/``."""
    return Path(__file__).resolve().parent / name
