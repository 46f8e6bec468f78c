"""Peak memory and throughput of ``flowdeblur deblur`` on CPU, for a 720p and a 12-megapixel RGB photo.

Each size runs the real command under ``/usr/bin/time -v`` (Debian: ``apt-get install time``) and reports its
peak resident memory, the wall time of the whole process, and the megapixels per second of the deblurring
itself (reading, tiles, writing; model loading and Python start-up excluded), as the command prints it.
The inputs are scikit-image's astronaut photograph tiled to size, saved as 8-bit RGB PNG.

    python benchmarks/cli_speed.py                       # the shipped model
    python benchmarks/cli_speed.py --model runs/x/model  # any model directory
    python benchmarks/cli_speed.py --threads 1           # OMP_NUM_THREADS=1 for the command
    python benchmarks/cli_speed.py --startup 10          # start-up only: `flowdeblur --help` vs `import torch`
    python benchmarks/cli_speed.py --base bea08d9        # also the command as it was at a git revision
    python benchmarks/cli_speed.py --forward             # also the model's forward on the same image, in-process

Without ``--tile`` each revision runs with its own defaults (here: whole images or tiles from ``--max-memory``).
``--base REV`` takes that revision's ``flowdeblur`` package from git (``git archive``) and runs its command in
turn with this checkout's, alternating, ``--repeats`` times each, and prints the ratio of the median MP/s.
``--forward`` times ``model(image)`` under ``torch.inference_mode`` in this process (wall clock, after a warm-up,
median of ``--repeats``) on the same image and model, and prints the whole command's wall time over it.

``--startup RUNS`` times the command's start-up instead: ``flowdeblur --help`` and ``python -c "import torch"``,
alternating, RUNS times each, and prints each one's median and fastest wall time and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage import data

SIZES = {"720p": (720, 1280), "12MP": (3000, 4000)}
TIME = "/usr/bin/time"
ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = "import sys; from flowdeblur.cli import main; sys.argv[0] = 'flowdeblur'; sys.exit(main())"


def photo(height: int, width: int) -> np.ndarray:
    """An (H, W, 3) uint8 photograph of the requested size: the astronaut, mirrored and repeated."""
    astronaut = data.astronaut()
    tile = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[::-1]], axis=0)
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    return np.ascontiguousarray(np.tile(tile, reps)[:height, :width])


def extract_revision(revision: str, folder: Path) -> Path:
    """The ``flowdeblur`` package as it was at ``revision``, unpacked under ``folder``; the folder for PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "flowdeblur"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run(image: Path, output: Path, options: list[str], environment: dict[str, str]) -> dict[str, float]:
    """Run ``flowdeblur deblur`` once under /usr/bin/time -v; peak RSS (MB), wall time (s) and MP/s.

    The package is the one Python imports first in ``environment`` (a PYTHONPATH there picks another revision).
    """
    command = [TIME, "-v", sys.executable, "-c", LAUNCHER, "deblur", str(image), "-o", str(output),
               "--overwrite", "--no-progress", "--device", "cpu", *options]
    process = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if process.returncode != 0:
        raise SystemExit(f"flowdeblur deblur failed:\n{process.stdout}\n{process.stderr}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", process.stderr).group(1))
    clock = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", process.stderr).group(1)
    wall = sum(float(part) * 60**power for power, part in enumerate(reversed(clock.split(":"))))
    speed = re.search(r"in ([\d.]+) s \(([\d.]+) MP/s\)", process.stdout)
    return {"peak_mb": peak_kb / 1024, "wall_s": wall, "deblur_s": float(speed.group(1)),
            "mp_per_s": float(speed.group(2))}


def startup(runs: int) -> None:
    """Time ``flowdeblur --help`` against ``python -c "import torch"``, alternating; print a table and the ratio."""
    commands = {
        "flowdeblur --help": [str(Path(sys.executable).with_name("flowdeblur")), "--help"],
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    print(f"{runs} runs each, alternating; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at end")
    print("| command | median (s) | fastest (s) |")
    print("|---|---:|---:|")
    for name, values in times.items():
        print(f"| `{name}` | {statistics.median(values):.3f} | {min(values):.3f} |")
    help_time, torch_time = (statistics.median(values) for values in times.values())
    print(f"ratio of the medians, flowdeblur --help / import torch: {help_time / torch_time:.2f}")


def forward_seconds(image: Path, model: str | None, repeats: int) -> float:
    """Median wall seconds of ``model(image)`` in this process, under ``torch.inference_mode``, after a warm-up."""
    import torch

    from flowdeblur import WaveletUNetFlow
    from flowdeblur.data.io import read_image

    network = WaveletUNetFlow.from_pretrained(model).eval()
    batch = read_image(image)[None]
    times = []
    with torch.inference_mode():
        network(batch)
        for _ in range(repeats):
            start = time.perf_counter()
            network(batch)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over repeated runs."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def row(label: str, pixels: int, result: dict[str, float]) -> str:
    """One Markdown table row of a size's results."""
    return (f"| {label} | {pixels / 1e6:.2f} | {result['peak_mb']:.0f} | {result['wall_s']:.1f} | "
            f"{result['deblur_s']:.1f} | {result['mp_per_s']:.3f} |")


def measure(name: str, folder: Path, options: list[str], environments: dict[str, dict[str, str]], args: Any) -> None:
    """Run one size: every revision in turn, ``--repeats`` times; print the rows, the ratios and the forward."""
    height, width = SIZES[name]
    image = folder / f"{name}.png"
    Image.fromarray(photo(height, width)).save(image)
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in environments}
    for _ in range(args.repeats):
        for label, environment in environments.items():
            runs[label].append(run(image, folder / "out", options, environment))
    results = {label: median_run(values) for label, values in runs.items()}
    for label, result in results.items():
        suffix = "" if label == "now" else f", {label}"
        print(row(f"{name} ({width}x{height}){suffix}", height * width, result), flush=True)
    extra = []
    if args.base:
        extra.append(f"MP/s now / {args.base}: {results['now']['mp_per_s'] / results[args.base]['mp_per_s']:.2f}")
    if args.forward:
        seconds = forward_seconds(image, args.model, args.repeats)
        extra.append(f"model forward in-process {seconds:.2f} s; whole command / forward: "
                     f"{results['now']['wall_s'] / seconds:.2f}")
    if extra:
        print(f"{name}: " + "; ".join(extra), flush=True)


def main() -> None:
    """Parse arguments, make the inputs, run each size and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--tile", type=int, help="--tile for the command (default: the command's own default)")
    parser.add_argument("--batch-size", type=int, help="--batch-size for the command (default: the command's own)")
    parser.add_argument("--base", help="also run the command as it was at this git revision, alternating")
    parser.add_argument("--repeats", type=int, default=1, help="runs per size and revision (default: 1)")
    parser.add_argument("--forward", action="store_true", help="also time the model's forward in-process")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the command (default: torch's choice)")
    parser.add_argument("--startup", type=int, metavar="RUNS", help="time start-up only (see above), RUNS runs each")
    args = parser.parse_args()
    if args.startup:
        startup(args.startup)
        return
    if shutil.which(TIME) is None:
        raise SystemExit(f"{TIME} is missing: apt-get install time")
    options = ["--tile", str(args.tile)] if args.tile else []
    options += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    options += ["--model", args.model] if args.model else []
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        if args.forward:
            import torch

            torch.set_num_threads(args.threads)
    threads = args.threads or "default"
    print(f"model: {args.model or 'shipped default'}; tile {args.tile or 'default'}, batch "
          f"{args.batch_size or 'default'}, CPU, {os.cpu_count()} cores, threads {threads}, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print("| input | megapixels | peak RSS (MB) | wall, whole command (s) | deblurring (s) | MP/s |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        environments = {"now": {**os.environ, "PYTHONPATH": str(ROOT)}}
        if args.base:
            base = extract_revision(args.base, Path(folder) / "base")
            environments[args.base] = {**os.environ, "PYTHONPATH": str(base)}
        for name in args.sizes:
            measure(name, Path(folder), options, environments, args)


if __name__ == "__main__":
    main()
