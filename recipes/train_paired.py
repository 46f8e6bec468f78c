"""Train UML-IN on your own blurry/sharp pairs: blur/ and sharp/ folders of same-named images (docs/datasets.md).

Shipped train/, val/, test/ folders are used as they are, otherwise a seeded 8:1:1 split by scene; Y channel, batch
16, the pairs' own blur. --skip-bad skips and counts unreadable or unpaired files instead of stopping.

    accelerate launch recipes/train_paired.py --data-dir /data/my_pairs --output-dir runs/my_pairs
"""

from flowdeblur.train.cli import run_recipe

if __name__ == "__main__":
    raise SystemExit(run_recipe(__doc__, dataset="paired", batch_size=16))
