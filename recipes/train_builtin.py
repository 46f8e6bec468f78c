"""Train UML-IN on the built-in images (scikit-image's photographs, 3x3 Gaussian blur): no dataset to download.

A short end-to-end run that finishes on a laptop CPU; every flag of the other recipes works here. The shipped models
(docs/models/) were trained by this recipe with the flags their model cards give.

    python recipes/train_builtin.py --output-dir runs/builtin
"""

from flowdeblur.train.cli import run_recipe

if __name__ == "__main__":
    raise SystemExit(
        run_recipe(
            __doc__, dataset="builtin", blur_kind="gaussian", crop_size=64, batch_size=8, num_workers=0,
            stage4_steps=300, warmup_steps=10, checkpointing_steps=50, validation_steps=50, validation_images=24,
            output_dir="runs/uml-in-builtin",
        )
    )
