"""Train UML-IN on Lai et al. 2016 (paper §4.1): its synthetic blur pairs as shipped, Y channel, batch 16.

    accelerate launch recipes/train_lai.py --data-dir /data/lai2016
"""

from flowdeblur.train.cli import run_recipe

if __name__ == "__main__":
    raise SystemExit(run_recipe(__doc__, dataset="lai", batch_size=16))
