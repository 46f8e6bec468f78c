"""Training UML-IN: the paper's three stages (Appendix A) under 🤗 Accelerate, shared by every recipe.

``train(TrainConfig(...))`` runs stage 1 (L_MLR, Eq. 13), stage 2 (L_MSE, Eq. 11) and stage 3 (L_SSIM, Eq. 12)
and returns the folder of the final model; ``recipes/train_*.py`` are this module's command line with each
dataset's defaults. See docs/training.md.
"""

from .config import TrainConfig, TrainConfigError
from .trainer import train

__all__ = ["TrainConfig", "TrainConfigError", "train"]
