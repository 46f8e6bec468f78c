"""Where design and training choices are made: one variant trained for a fixed number of steps, scored on VAL crops.

``quality.py`` reports scores on the test crops; no choice may be tuned there. This script trains one variant on the
built-in train crops of a protocol, exactly as ``quality.py`` does (its datasets, settings and trainer), for a fixed
number of steps rather than seconds (so a busy machine cannot move the score), and scores it on the protocol's 24
validation crops: a UML-IN preset with any architecture fields changed, under a chosen optimiser and learning rate
(the joint stage alone, cosine decay), or the NAFNet-style network of a width under Adam at a constant rate.

    python benchmarks/val_probe.py --preset pyramid-light --steps 986 --optimizer adam --lr 2e-3
    python benchmarks/val_probe.py --preset pyramid --steps 492 --fields '{"transfer_hidden_channels": 16}'
    python benchmarks/val_probe.py --nafnet-width 8 --steps 1482 --lr 3e-3
    python benchmarks/val_probe.py --quick
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import quality as q
import torch
from accelerate import Accelerator
from common import TINY, add_common_arguments, describe_machine, machine, markdown_table, set_threads, write_json
from learned import train_for
from nafnet import NAFNet
from torch import nn
from torch.utils.data import Subset

from flowdeblur import WaveletUNetFlow
from flowdeblur.config import PRESETS
from flowdeblur.train import train
from flowdeblur.train.loaders import batch_stream, training_loader
from flowdeblur.train.schedule import OPTIMIZERS


def trained_nafnet(width: int, steps: int, lr: float, settings: q.Settings, train_set: Any) -> nn.Module:
    """The NAFNet-style network of ``width`` after ``steps`` Adam steps at ``lr`` on L1 (``quality.py``'s batches)."""
    config = q.train_config(settings, settings.work_dir, (0, 0, 0, 1), q.Variant(q.JOINT, q.JOINT_ONLY))
    torch.manual_seed(q.SEED)
    accelerator = Accelerator(mixed_precision="no")
    loader = training_loader(train_set, config)
    model, prepared = accelerator.prepare(NAFNet(1, width), loader)
    train_for(model, accelerator, batch_stream(accelerator, prepared, loader.sampler), math.inf, lr=lr, max_steps=steps)
    return model


def trained_uml_in(
    fields: dict[str, Any], steps: int, optimizer: str, lr: float, settings: q.Settings, datasets: tuple[Any, Any]
) -> nn.Module:
    """UML-IN of ``settings.model`` with ``fields`` changed after ``steps`` joint steps of ``optimizer`` at ``lr``."""
    variant = q.Variant("probe", q.JOINT_ONLY, model=tuple(fields.items()))
    config = q.train_config(settings, settings.work_dir, (0, 0, 0, steps), variant)
    config = replace(config, optimizer=optimizer, learning_rates=(*config.learning_rates[:3], lr))
    return WaveletUNetFlow.from_pretrained(train(config, datasets))


def main() -> None:
    """Train the variant, score it on the val crops, print a one-row table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "val_probe.json")
    parser.add_argument("--protocol", choices=list(q.PROTOCOLS), default="gaussian9")
    parser.add_argument("--steps", type=int, default=500, help="optimiser steps (default 500)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="pyramid", help="the UML-IN architecture")
    parser.add_argument("--fields", type=json.loads, default={}, help="UMLINConfig fields to change, as JSON")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adamax", help="UML-IN's optimiser")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--nafnet-width", type=int, help="train the NAFNet-style network of this width instead")
    args = parser.parse_args()
    set_threads(args.threads)
    facts = machine()
    print(describe_machine(facts), flush=True)
    steps, crop, images = (3, 32, 2) if args.quick else (args.steps, 64, 24)
    model_base = TINY if args.quick else PRESETS[args.preset]
    blur = q.PROTOCOLS[args.protocol][1]
    train_set = q.split(blur, "train", crop)
    val_set = q.split(blur, "val", 32 if args.quick else q.TEST_CROP)
    val = q.triples(val_set, images)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work_dir:
        settings = q.Settings(model_base, 1.0, l1_weight=q.L1_WEIGHT, crop_size=crop,
                              batch_size=2 if args.quick else 16, images=images, calibration_steps=1,
                              warmup_steps=1 if args.quick else 10, protocols=(args.protocol,), work_dir=Path(work_dir))
        if args.nafnet_width:
            model = trained_nafnet(args.nafnet_width, steps, args.lr, settings, train_set)
            name = f"NAFNet-style w{args.nafnet_width}, Adam {args.lr:g}"
        else:
            model = trained_uml_in(args.fields, steps, args.optimizer, args.lr, settings,
                                   (train_set, Subset(val_set, range(images))))
            changed = f" {json.dumps(args.fields)}" if args.fields else ""
            name = f"{'tiny' if args.quick else args.preset}{changed}, {args.optimizer} {args.lr:g}"
    seconds = time.perf_counter() - started
    scores = q.model_scores(model, val, torch.device("cpu"))
    blurry = q.scores(lambda batch: batch, val)
    rows = [[name, steps, f"{seconds:.0f}", f"{blurry['psnr']:.2f}", f"{scores['psnr']:.2f}"]]
    table = markdown_table(["variant", "steps", "seconds", "blurry val Y-PSNR", "val Y-PSNR (dB)"], rows)
    document = {"benchmark": "val probe", "machine": facts, "protocol": args.protocol, "variant": name,
                "steps": steps, "seconds": seconds, "val_psnr": scores["psnr"], "blurry_psnr": blurry["psnr"],
                "table": table}
    write_json(args.output, document)
    print(table)


if __name__ == "__main__":
    main()
