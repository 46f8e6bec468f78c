"""Peak memory and throughput of ``flowdeblur deblur`` on CPU, for a 720p and a 12-megapixel RGB photo.

Each size runs the real command under ``/usr/bin/time -v`` (Debian: ``apt-get install time``) and reports its
peak resident memory, the wall time of the whole process, and the megapixels per second of the deblurring
itself (reading, tiles, writing; model loading and Python start-up excluded), as the command prints it.
The inputs are scikit-image's astronaut photograph tiled to size, saved as 8-bit RGB PNG.

    python benchmarks/cli_speed.py                       # the shipped model
    python benchmarks/cli_speed.py --model runs/x/model  # any model directory
    python benchmarks/cli_speed.py --threads 1           # OMP_NUM_THREADS=1 for the command
    python benchmarks/cli_speed.py --startup 10          # start-up only: `flowdeblur --help` vs `import torch`

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

import numpy as np
from PIL import Image
from skimage import data

SIZES = {"720p": (720, 1280), "12MP": (3000, 4000)}
TIME = "/usr/bin/time"


def photo(height: int, width: int) -> np.ndarray:
    """An (H, W, 3) uint8 photograph of the requested size: the astronaut, mirrored and repeated."""
    astronaut = data.astronaut()
    tile = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[::-1]], axis=0)
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    return np.ascontiguousarray(np.tile(tile, reps)[:height, :width])


def run(image: Path, output: Path, options: list[str], environment: dict[str, str]) -> dict[str, float]:
    """Run ``flowdeblur deblur`` once under /usr/bin/time -v; peak RSS (MB), wall time (s) and MP/s."""
    command = [TIME, "-v", str(Path(sys.executable).with_name("flowdeblur")), "deblur", str(image), "-o", str(output),
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


def main() -> None:
    """Parse arguments, make the inputs, run each size and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the command (default: torch's choice)")
    parser.add_argument("--startup", type=int, metavar="RUNS", help="time start-up only (see above), RUNS runs each")
    args = parser.parse_args()
    if args.startup:
        startup(args.startup)
        return
    if shutil.which(TIME) is None:
        raise SystemExit(f"{TIME} is missing: apt-get install time")
    options = ["--tile", str(args.tile), "--batch-size", str(args.batch_size)]
    options += ["--model", args.model] if args.model else []
    environment = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    threads = args.threads or "default"
    print(f"model: {args.model or 'shipped default'}; tile {args.tile}, batch {args.batch_size}, CPU, "
          f"{os.cpu_count()} cores, threads {threads}, load average {os.getloadavg()[0]:.2f} at start")
    print("| input | megapixels | peak RSS (MB) | wall, whole command (s) | deblurring (s) | MP/s |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.sizes:
            height, width = SIZES[name]
            image = Path(folder) / f"{name}.png"
            Image.fromarray(photo(height, width)).save(image)
            result = run(image, Path(folder) / "out", options, environment)
            print(f"| {name} ({width}x{height}) | {height * width / 1e6:.2f} | {result['peak_mb']:.0f} | "
                  f"{result['wall_s']:.1f} | {result['deblur_s']:.1f} | {result['mp_per_s']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
