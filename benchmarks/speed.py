"""Training and inference speed of UML-IN, its peak memory, where the time goes, and float32 against bf16.

For the paper's architecture and the compact preset's, on the CPU and (where there is one) the GPU:

- training throughput of each stage (images/s): the trainer's own objective (``StageObjective``), optimiser
  (Adamax) and gradient clipping, on batches of 16 crops of 128 x 128 (Y);
- inference throughput (megapixels/s) on a 256 x 256, a 1280 x 720 and a 4000 x 3000 RGB photograph through the
  tiled path of ``flowdeblur deblur`` (``flowdeblur.inference.deblur_image``, 512-pixel tiles, batches of 4);
- the peak memory of each case: every case runs in a fresh subprocess, which reports its peak resident set size
  (CPU) or ``torch.cuda.max_memory_allocated`` (GPU) (``--quick`` runs all cases in one subprocess);
- the share of time in the wavelet transform, the coupling subnets, the transfer nets and the rest, from one
  extra pass with timers around each part (synchronised on a GPU);
- each case in float32 and under bf16 autocast (the 12-megapixel case in float32 only on a CPU).

``--ddp`` measures instead the trainer itself (``flowdeblur.train.train``: its loaders, Accelerate's distributed
wrapper, the guarded step) on the joint stage of the ``pyramid-light`` preset, reading a paired folder of generated
1280 x 720 PNG pairs, in 1 and 2 processes (``accelerate launch --multi_gpu``; gloo between CPU processes, one GPU
each where there are GPUs): images/s of all processes together, and the share of a step's time the first process
waited for its next batch (float32 on a CPU; float32, TF32 and bf16 on GPUs).

The whole command's memory and speed on files is ``benchmarks/cli_speed.py``; this script measures the model.

    python benchmarks/speed.py                     # the full run
    python benchmarks/speed.py --precisions fp32   # float32 only (bf16 is slow on CPUs without bf16 units)
    python benchmarks/speed.py --models compact    # one of the two models
    python benchmarks/speed.py --quick             # a smoke run of about a minute
    python benchmarks/speed.py --ddp --output speed_ddp.json   # the trainer in 1 and 2 processes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from cli_speed import photo
from common import (
    COMPACT_SIZE,
    PAPER_SIZE,
    TINY,
    add_common_arguments,
    describe_machine,
    machine,
    markdown_table,
    set_threads,
    write_json,
)
from data_pipeline import write_pairs

from flowdeblur import WaveletUNetFlow
from flowdeblur.color import rgb_to_y
from flowdeblur.config import PRESETS
from flowdeblur.data import BlurSpec, build_dataset
from flowdeblur.flows import CouplingSubnet, HaarWavelet
from flowdeblur.inference import TileOptions, deblur_image
from flowdeblur.train import TrainConfig, train
from flowdeblur.train.config import steps_by_stage
from flowdeblur.train.schedule import stage_optimizer
from flowdeblur.train.stages import STAGES, Objectives, StageObjective
from flowdeblur.transfer import TransferNet

RESULT = "RESULT "
MODELS = ("paper", "compact")
PRECISIONS = ("fp32", "bf16")
PARTS = ("wavelet", "coupling subnets", "transfer nets", "rest of forward", "backward + optimiser")


def profiles(quick: bool) -> dict[str, Any]:
    """What a run measures: models, inference sizes (height, width), training batch, tiles, repetitions."""
    if quick:
        return {"models": {"tiny": TINY}, "sizes": {"256²": (64, 64), "720p": (72, 128), "12MP": (200, 264)},
                "crop": 32, "batch": 2, "tile": 64, "overlap": 16, "train_steps": 1, "repeats": 1}
    return {"models": dict(zip(MODELS, (PAPER_SIZE, COMPACT_SIZE), strict=True)),
            "sizes": {"256²": (256, 256), "720p": (720, 1280), "12MP": (3000, 4000)},
            "crop": 128, "batch": 16, "tile": 512, "overlap": 32, "train_steps": 2, "repeats": 3}


# -- timing --------------------------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def precision(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast, or nothing for float32."""
    if dtype == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def timed(device: torch.device, function: Callable[[], Any]) -> float:
    """Seconds ``function()`` takes, queued device work included."""
    synchronize(device)
    started = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - started


class PartTimer:
    """Accumulates seconds per part of the model by wrapping the callables that make up each part."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, function: Callable[..., Any], part: str) -> Callable[..., Any]:
        """``function`` with its (synchronised) time added to ``part``."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            synchronize(self.device)
            started = time.perf_counter()
            result = function(*args, **kwargs)
            synchronize(self.device)
            self.seconds[part] += time.perf_counter() - started
            return result

        return wrapper

    @contextlib.contextmanager
    def attached(self, model: WaveletUNetFlow) -> Iterator[None]:
        """Time the Haar transforms, every coupling subnet and every transfer net of ``model`` while inside."""
        targets: list[tuple[Any, str, str]] = []
        for module in model.modules():
            if isinstance(module, HaarWavelet):
                targets += [(module, "analysis", "wavelet"), (module, "synthesis", "wavelet")]
            elif isinstance(module, CouplingSubnet):
                targets.append((module, "forward", "coupling subnets"))
            elif isinstance(module, TransferNet):
                targets.append((module, "forward", "transfer nets"))
        for owner, name, part in targets:
            setattr(owner, name, self.wrap(getattr(owner, name), part))
        try:
            yield
        finally:
            for owner, name, _ in targets:
                delattr(owner, name)

    def shares(self, forward: float, backward: float = 0.0) -> dict[str, float]:
        """Each part's fraction of ``forward + backward`` seconds; "rest of forward" is what the timers missed."""
        total = forward + backward
        parts = {part: self.seconds[part] / total for part in PARTS[:3]}
        parts["rest of forward"] = max(0.0, forward - sum(self.seconds.values())) / total
        parts["backward + optimiser"] = backward / total
        return parts


# -- one case, in its own process ----------------------------------------------------------------------------------
def training_batch(crop: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurry, sharp) Y crops of the astronaut photograph, blurred by the paper's 3x3 Gaussian."""
    strip = rgb_to_y(torch.from_numpy(photo(crop, crop * batch)).permute(2, 0, 1).float().div(255))
    sharp = torch.stack(strip.split(crop, dim=-1))
    blurry = torch.stack([BlurSpec().apply(image, seed=0, index=i) for i, image in enumerate(sharp)])
    return blurry, sharp


def train_case(model: WaveletUNetFlow, case: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """Images/s of one stage's optimiser steps, and where a step's time goes."""
    device, stage = torch.device(case["device"]), case["stage"]
    blurry, sharp = (t.to(device) for t in training_batch(profile["crop"], profile["batch"]))
    model.initialize(blurry, sharp)
    objective = StageObjective(model, Objectives())
    objective.stage = STAGES[stage]
    parameters = STAGES[stage].parameters(model)
    optimizer = stage_optimizer(parameters, 1e-4)
    timer = PartTimer(device)

    def forward() -> torch.Tensor:
        with precision(device, case["dtype"]):
            return objective(blurry, sharp)["loss"]

    def backward(loss: torch.Tensor) -> None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 50.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    backward(forward())  # warm-up
    steps = profile["train_steps"]
    seconds = timed(device, lambda: [backward(forward()) for _ in range(steps)])
    with timer.attached(model):
        losses: list[torch.Tensor] = []
        forward_s = timed(device, lambda: losses.append(forward()))
    backward_s = timed(device, lambda: backward(losses[0]))
    return {"images_per_second": steps * profile["batch"] / seconds, "seconds_per_step": seconds / steps,
            "shares": timer.shares(forward_s, backward_s)}


def infer_case(model: WaveletUNetFlow, case: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """Megapixels/s of tiled deblurring of one RGB photograph, and where the time goes."""
    device = torch.device(case["device"])
    height, width = profile["sizes"][case["size"]]
    image = torch.from_numpy(photo(height, width)).permute(2, 0, 1).float().div(255)
    options = TileOptions(tile=profile["tile"], overlap=profile["overlap"], batch_size=4, device=device)
    model.eval().to(device)

    def run(picture: torch.Tensor) -> torch.Tensor:
        with precision(device, case["dtype"]):
            return deblur_image(model, picture, options)

    run(image[:, : min(height, 256), : min(width, 256)])  # warm-up
    repeats = profile["repeats"] if height * width <= 256 * 256 else 1
    seconds = timed(device, lambda: [run(image) for _ in range(repeats)]) / repeats
    result: dict[str, Any] = {"megapixels_per_second": height * width / 1e6 / seconds, "seconds": seconds}
    if case["size"] == next(iter(profile["sizes"])):
        timer = PartTimer(device)
        with timer.attached(model):
            forward_s = timed(device, lambda: run(image))
        result["shares"] = timer.shares(forward_s)
    return result


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated by tensors (GPU), else this process's peak resident set size, in MB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Measure one case in this process: throughput, time shares and peak memory."""
    profile = profiles(case["quick"])
    device = torch.device(case["device"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    model = WaveletUNetFlow(profile["models"][case["model"]]).to(device)
    measure = train_case if case["kind"] == "train" else infer_case
    result = measure(model, case, profile)
    return {**result, "peak_memory_mb": peak_memory_mb(device)}


def in_subprocess(
    group: Any, threads: int, script: str = __file__, option: str = "--cases", launcher: Sequence[str] = (),
    environment: dict[str, str] | None = None,
) -> Any:
    """Run ``script`` on cases in a fresh Python process (or under ``launcher``, e.g. ``accelerate launch``'s module
    and flags, with ``environment`` added); a case alone in its process has its own peak."""
    command = [sys.executable, *launcher, script, "--threads", str(threads), option, json.dumps(group)]
    process = subprocess.run(command, capture_output=True, text=True, check=False,
                             env={**os.environ, **(environment or {})})
    lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT)]
    if process.returncode != 0 or not lines:
        raise SystemExit(f"cases {group} failed (exit code {process.returncode}):\n{process.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT):])


# -- the trainer itself, in 1 and 2 processes ----------------------------------------------------------------------
DDP_PRECISIONS = {"fp32": {"mixed_precision": "no", "tf32": False}, "tf32": {"mixed_precision": "no", "tf32": True},
                  "bf16": {"mixed_precision": "bf16", "tf32": False}}


def ddp_profile(quick: bool) -> dict[str, Any]:
    """What ``--ddp`` runs: PNG size (height, width) and pairs, crop, batch per process, joint steps, the model."""
    if quick:
        return {"image": (180, 320), "pairs": 10, "crop": 32, "batch": 2, "steps": 2, "model": "tiny"}
    return {"image": (720, 1280), "pairs": 40, "crop": 128, "batch": 8, "steps": 12, "model": "pyramid-light"}


def ddp_train(case: dict[str, Any]) -> dict[str, Any]:
    """Train the joint stage as one of ``case["processes"]`` processes; the first process's stage summary and this
    process's peak memory."""
    profile = ddp_profile(case["quick"])
    output = Path(case["output_dir"])
    train(TrainConfig(
        dataset="paired", data_dir=Path(case["data_dir"]), output_dir=output, crop_size=profile["crop"],
        model=TINY if case["quick"] else PRESETS[profile["model"]], batch_size=profile["batch"],
        stage_steps=steps_by_stage(joint=profile["steps"]), warmup_steps=1, checkpointing_steps=0, validation_steps=0,
        validation_images=1, logging_steps=profile["steps"], **DDP_PRECISIONS[case["dtype"]],
    ))
    summary = WaveletUNetFlow.from_pretrained(output / "model").metadata["stages"]["joint"]
    return {**summary, "peak_memory_mb": peak_memory_mb(torch.device(case["device"]))}


def ddp_launcher(processes: int) -> list[str]:
    """``accelerate launch --multi_gpu`` for ``processes`` processes on one machine (CPU processes under
    ``ACCELERATE_USE_CPU=1``: its ``--cpu`` launcher starts one process without MPI); none for one process."""
    if processes == 1:
        return []
    return ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines",
            "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]


def ddp_cases(devices: list[str], quick: bool) -> list[dict[str, Any]]:
    """Per device, precision (float32 on a CPU; float32, TF32 and bf16 on GPUs) and process count (1 and 2, or as
    many GPUs as there are)."""
    planned = []
    for device in devices:
        counts = (1, 2) if device == "cpu" else (1, 2)[: torch.cuda.device_count()]
        for dtype in ["fp32"] if device == "cpu" else list(DDP_PRECISIONS):
            planned += [{"device": device, "dtype": dtype, "processes": n, "quick": quick} for n in counts]
    return planned


def run_ddp(args: argparse.Namespace, devices: list[str]) -> None:
    """Write a paired folder, fill the frame cache with it, run every ``--ddp`` case, print the table, write JSON."""
    profile = ddp_profile(args.quick)
    facts = machine()
    print(describe_machine(facts), flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="ddp-") as folder:
        os.environ["FLOWDEBLUR_FRAME_CACHE"] = str(Path(folder) / "frames")
        root = write_pairs(Path(folder) / "pairs", profile["pairs"], profile["image"])
        for split in ("train", "val"):  # decoded once here: the steps read decoded frames, as after a first epoch
            dataset = build_dataset("paired", root, split=split, crop_size=profile["crop"], seed=0)
            for index in range(len(dataset)):
                dataset[index]
        for number, case in enumerate(ddp_cases(devices, args.quick)):
            run = {**case, "data_dir": str(root), "output_dir": str(Path(folder) / f"run-{number}")}
            result = in_subprocess(run, args.threads, option="--ddp-case", launcher=ddp_launcher(case["processes"]),
                                   environment={"ACCELERATE_USE_CPU": str(case["device"] == "cpu")})
            results.append({"case": case, **result})
            print(f"{case['device']} {case['dtype']} {case['processes']} process(es): "
                  f"{result['images_per_second']:.3g} images/s, {100 * result['data_wait_share']:.0f}% waiting for "
                  f"data", flush=True)
    body = [[entry["case"]["device"], entry["case"]["dtype"], entry["case"]["processes"],
             f"{entry['images_per_second']:.3g}", f"{100 * entry['data_wait_share']:.1f}",
             f"{entry['peak_memory_mb']:.0f}"] for entry in results]
    header = ["device", "precision", "processes", "images/s (all processes)", "data wait %", "peak MB (a process)"]
    document = {"benchmark": "speed-ddp", "machine": facts,
                "settings": {**profile, "num_workers": TrainConfig().num_workers}, "results": results,
                "table": markdown_table(header, body, left=2)}
    write_json(args.output, document)
    print(document["table"], f"JSON: {args.output}", sep="\n\n")


# -- the plan and the tables ---------------------------------------------------------------------------------------
def cases(profile: dict[str, Any], devices: list[str], dtypes: list[str], quick: bool) -> list[dict[str, Any]]:
    """Every case of a run: per model, device and precision, each stage and each inference size."""
    planned = []
    for model in profile["models"]:
        for device in devices:
            for dtype in dtypes:
                common = {"model": model, "device": device, "dtype": dtype, "quick": quick}
                planned += [{**common, "kind": "train", "stage": stage} for stage in range(len(STAGES))]
                for size, (height, width) in profile["sizes"].items():
                    if dtype == "bf16" and device == "cpu" and height * width > 4e6 and not quick:
                        continue  # hours on CPUs without bf16 units; GPUs run it
                    planned.append({**common, "kind": "infer", "size": size})
    return planned


def workload(case: dict[str, Any], profile: dict[str, Any]) -> str:
    """The row name of a case: a training stage or an inference size, with its unit."""
    if case["kind"] == "train":
        stage = STAGES[case["stage"]].name
        crop = profile["crop"]
        return f"train stage {case['stage'] + 1} ({stage}), {profile['batch']}×{crop}×{crop}: images/s"
    height, width = profile["sizes"][case["size"]]
    return f"deblur {width}×{height} ({case['size']}): MP/s"


def throughput(result: dict[str, Any]) -> float:
    """Images/s for a training case, megapixels/s for an inference case."""
    return result.get("images_per_second", result.get("megapixels_per_second"))


def speed_table(results: list[dict[str, Any]], profile: dict[str, Any]) -> str:
    """Throughput and peak memory, float32 beside bf16, one row per model, device and workload."""
    rows: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for entry in results:
        case = entry["case"]
        rows.setdefault((case["model"], case["device"], workload(case, profile)), {})[case["dtype"]] = entry
    body = []
    for (model, device, name), by_dtype in rows.items():
        cells = []
        for key in ("throughput", "peak_memory_mb"):
            for dtype in PRECISIONS:
                entry = by_dtype.get(dtype)
                value = None if entry is None else (throughput(entry) if key == "throughput" else entry[key])
                cells.append("—" if value is None else (f"{value:.3g}" if key == "throughput" else f"{value:.0f}"))
        body.append([model, device, name, *cells])
    header = ["model", "device", "workload", "fp32", "bf16", "fp32 peak MB", "bf16 peak MB"]
    return markdown_table(header, body, left=3)


def shares_table(results: list[dict[str, Any]], profile: dict[str, Any]) -> str:
    """Percent of time per part of the model, for every case that was timed part by part."""
    body = []
    for entry in results:
        if "shares" in entry:
            case = entry["case"]
            shares = [f"{100 * entry['shares'][part]:.0f}" for part in PARTS]
            body.append([case["model"], case["device"], case["dtype"], workload(case, profile).split(":")[0], *shares])
    return markdown_table(["model", "device", "precision", "workload", *(f"{p} %" for p in PARTS)], body, left=4)


def main() -> None:
    """Run every case in its own subprocess, print the tables and write the JSON (or run one ``--case``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "speed.json")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS),
                        help="float32 and/or bf16 autocast (default: both)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="the paper-size and/or the compact model (default: both; --quick uses a tiny one)")
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=None,
                        help="where to run (default: the CPU, and the GPU where there is one)")
    parser.add_argument("--ddp", action="store_true",
                        help="the trainer's joint stage on 720p PNG pairs in 1 and 2 processes instead")
    parser.add_argument("--cases", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    set_threads(args.threads)
    if args.cases:
        print(RESULT + json.dumps([run_case(case) for case in json.loads(args.cases)]), flush=True)
        return
    if args.ddp_case:
        result = ddp_train(json.loads(args.ddp_case))
        if os.environ.get("RANK", "0") == "0":  # one line: two processes printing at once can interleave theirs
            print(RESULT + json.dumps(result), flush=True)
        return
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.ddp:
        run_ddp(args, devices)
        return
    facts = machine()
    print(describe_machine(facts), flush=True)
    profile = profiles(args.quick)
    if not args.quick:
        profile["models"] = {name: profile["models"][name] for name in args.models}
    planned = cases(profile, devices, args.precisions, args.quick)
    results = []
    # One process per case, so that each peak is the case's own; a quick run shares one process (faster start).
    for group in [planned] if args.quick else [[case] for case in planned]:
        for case, result in zip(group, in_subprocess(group, args.threads), strict=True):
            results.append({"case": case, **result})
            print(f"{case['model']} {case['device']} {case['dtype']} {workload(case, profile)} "
                  f"{throughput(result):.3g}, peak {result['peak_memory_mb']:.0f} MB", flush=True)
    document = {
        "benchmark": "speed", "machine": facts,
        "settings": {**{k: v for k, v in profile.items() if k != "models"},
                     "models": {name: config.to_dict() for name, config in profile["models"].items()},
                     "parameters": {name: WaveletUNetFlow(config).parameter_counts()["total"]
                                    for name, config in profile["models"].items()}},
        "results": results,
        "table": speed_table(results, profile),
        "shares_table": shares_table(results, profile),
    }
    write_json(args.output, document)
    print(document["table"], document["shares_table"], f"JSON: {args.output}", sep="\n\n")


if __name__ == "__main__":
    main()
