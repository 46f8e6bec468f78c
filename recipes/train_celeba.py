"""Train UML-IN on CelebA (paper §4.1): a seeded sample blurred by a 3x3 Gaussian, Y channel, batch 32.

    accelerate launch recipes/train_celeba.py --data-dir /data/celeba
"""

from flowdeblur.train.cli import run_recipe

if __name__ == "__main__":
    raise SystemExit(run_recipe(__doc__, dataset="celeba", batch_size=32, blur_kind="gaussian"))
