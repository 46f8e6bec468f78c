"""Training UML-IN: four stages, the paper's three (Appendix A) and a joint one, under 🤗 Accelerate, shared by
every recipe.

``train(TrainConfig(...))`` runs the stages its steps ask for, stage 1 (L_MLR, Eq. 13), stage 2 (L_MSE, Eq. 11),
stage 3 (L_SSIM, Eq. 12) and stage 4 (the image loss, end to end), and returns the folder of the final model;
``recipes/train_*.py`` are this module's command line with each dataset's defaults. See docs/training.md.
"""

from .config import TrainConfig, TrainConfigError
from .trainer import train

__all__ = ["TrainConfig", "TrainConfigError", "train"]
