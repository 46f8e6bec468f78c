"""What the benchmark scripts share: thread settings, the machine's description, Markdown tables and JSON output.

Every benchmark runs PyTorch on one CPU thread unless ``--threads`` says otherwise: on a CPU that other work
shares, PyTorch's default of one thread per core can be several times slower than one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import flowdeblur
from flowdeblur.config import PRESETS, UMLINConfig

# The compact preset (3 levels, 2 flow steps, 32-channel couplings, per-level transfer nets), which the demo's recipe
# trains: the shipped models' architecture before the pyramid preset, and the size of every earlier figure.
COMPACT_SIZE = PRESETS["compact"]
PAPER_SIZE = UMLINConfig()
# What ``--quick`` runs: small enough that a smoke run of a benchmark takes about a minute on 2 CPU cores.
TINY = UMLINConfig(levels=2, steps=1, hidden_channels=8, transfer_hidden_channels=8, transfer_blocks=1)


def add_common_arguments(parser: argparse.ArgumentParser, default_output: str) -> None:
    """``--quick``, ``--threads`` and ``--output``, the options every benchmark takes."""
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of about a minute")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (default: 1)")
    parser.add_argument("--output", type=Path, default=Path(default_output), help="JSON file to write")


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads here and in every subprocess started from now on."""
    if threads < 1:
        raise SystemExit(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def cpu_name() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor()`` where /proc is missing)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where a benchmark ran: CPU, cores, threads, GPU, memory, load, and the software versions."""
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "memory_gb": round(pages * page_size / 2**30, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "flowdeblur": flowdeblur.__version__,
        "command": " ".join(["python", *sys.argv]),
    }


def describe_machine(facts: dict[str, Any]) -> str:
    """One line for the top of a benchmark's output."""
    gpu = facts["gpu"] or "no GPU"
    return (
        f"{facts['cpu']}, {facts['cores']} cores, {facts['memory_gb']} GB, {gpu}; torch {facts['torch']}, "
        f"{facts['threads']} thread(s), load average {facts['load_average_at_start']} at start"
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    """A Markdown table: the first ``left`` columns aligned left, the others (numbers) right."""
    align = ["---"] * left + ["---:"] * (len(header) - left)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` through a temporary file, so a crash never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
