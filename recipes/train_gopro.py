"""Train UML-IN on GoPro (paper §4.1): real camera-shake blur pairs as shipped, Y channel, batch 16.

    accelerate launch recipes/train_gopro.py --data-dir /data/GOPRO_Large
"""

from flowdeblur.train.cli import run_recipe

if __name__ == "__main__":
    raise SystemExit(run_recipe(__doc__, dataset="gopro", batch_size=16))
