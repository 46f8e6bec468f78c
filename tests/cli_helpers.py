"""Shared by the CLI tests: a tiny model saved to disk, images on disk, and running the real command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from flowdeblur import UMLINConfig, WaveletUNetFlow
from tests.flow_checks import perturb_parameters

TINY = dict(levels=2, steps=1, hidden_channels=8, transfer_hidden_channels=8, transfer_blocks=1)


def tiny_model(color: str = "y") -> WaveletUNetFlow:
    """A 2-level model with perturbed weights, so that it changes images (an untrained one is the identity)."""
    torch.manual_seed(0)
    model = WaveletUNetFlow(UMLINConfig(color=color, **TINY))
    sample = torch.rand(2, model.config.channels, 16, 16)
    model.initialize(sample, sample)
    perturb_parameters(model, scale=0.02)
    model.metadata = {"dataset": "none", "note": "random weights for tests"}
    return model.eval()


def save_tiny_model(directory: Path, color: str = "y") -> Path:
    """Write :func:`tiny_model` to ``directory`` and return it."""
    tiny_model(color).save_pretrained(directory)
    return directory


def run_command(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``flowdeblur`` console script in a real subprocess, on one thread, with ``env`` added.

    One thread because on a busy 2-core machine PyTorch's two threads make the many small operations of a
    tiny model several times slower (docs/cli.md, "Speed and memory").
    """
    script = Path(sys.executable).with_name("flowdeblur")
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [str(script), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300, check=False
    )
