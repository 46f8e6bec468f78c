"""The ``flowdeblur`` command: deblur files, evaluate on a dataset, run the demo, describe or export a model.

This module imports nothing heavy: the group and its options are declared from plain constants, and each
command imports what it uses (torch, the model, the datasets, the trainer) when it runs, so ``--help`` is quick
and ``deblur`` never loads the trainer or scikit-image.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .data.blur_presets import BLUR_PRESETS, BLUR_PRESETS_HELP, blur_preset
from .data.choices import ALL, DATASET_NAMES, DEFAULT_MAX_MEMORY, DEFAULT_MAX_PIXELS, MAX_PIXELS_VARIABLE, SPLITS
from .data.errors import DatasetError, spelled_as
from .export import DEFAULT_OPSET
from .model_format import CheckpointError, ModelNotFoundError
from .pretrained import DEFAULT_MODEL, SHIPPED_MODELS

if TYPE_CHECKING:
    import torch

    from .data import BlurMixture, BlurSpec
    from .inference import TileOptions
    from .model import WaveletUNetFlow

MAX_THREADS = 1024  # more threads than any CPU here has cores; beyond it PyTorch's thread pool fails to map memory
MAX_TILE = 65536  # the largest side an image of the default --max-pixels can have
MAX_MEMORY_GIB = 1024.0
EVAL_DATASET_FLAGS = {"name": "--dataset", "root": "--data-dir", "crop_size": "--crop-size", "skip_bad": "--skip-bad"}


def _model_option(function: Callable) -> Callable:
    names = ", ".join(SHIPPED_MODELS)
    return click.option(
        "--model",
        "model_dir",
        metavar="NAME|DIR|OWNER/NAME",
        help=f"A shipped model ({names}; `flowdeblur info` describes them), a model directory (config.json + "
        "model.safetensors) or a Hugging Face Hub id (from the Hub cache, or downloaded; HF_HUB_OFFLINE=1 reads the "
        f"cache alone). Default: {DEFAULT_MODEL}.",
    )(function)


def _blur_option(function: Callable) -> Callable:
    return click.option(
        "--blur",
        "blur_name",
        type=click.Choice(["auto", *BLUR_PRESETS]),
        default="auto",
        show_default=True,
        help=f"Synthetic blur of the sharp-only datasets (builtin, celeba, lsun): {BLUR_PRESETS_HELP}; auto: "
        "the blurred part of the mixture the model was trained on (mix-blurred for general), else paper.",
    )(function)


def _chosen_blur(name: str, model: WaveletUNetFlow) -> BlurSpec | BlurMixture:
    """The blur ``--blur`` names; ``auto`` is the blurred part of the mixture a model was trained on (its metadata's
    record; mix-blurred where that record is unreadable), else paper."""
    if name != "auto":
        return blur_preset(name)
    dataset = model.metadata.get("dataset")
    trained_on = dataset.get("blur") if isinstance(dataset, dict) else None
    if not isinstance(trained_on, dict) or trained_on.get("kind") != "mixture":
        return blur_preset("paper")
    from .data import BlurMixture

    try:
        return dataclasses.replace(BlurMixture.from_description(trained_on), none=0.0)
    except (KeyError, TypeError, DatasetError):
        return blur_preset("mix-blurred")


def _threads_option(function: Callable) -> Callable:
    """--threads: how many CPU threads PyTorch uses (flowdeblur.threads gives the default's rule)."""

    @click.option("--threads", type=click.IntRange(min=1, max=MAX_THREADS),
                  help=f"CPU threads for PyTorch (1 to {MAX_THREADS}). Default: OMP_NUM_THREADS if set, else the CPUs "
                  "the load average leaves idle, at most the physical cores and at least 1.")
    @functools.wraps(function)
    def wrapper(threads: int | None, **kwargs: Any):
        import torch

        from .threads import command_threads

        torch.set_num_threads(command_threads(threads))
        return function(**kwargs)

    return wrapper


def _run_options(function: Callable) -> Callable:
    """--device, --tile, --max-memory, --tile-overlap, --batch-size, --progress as ``options: TileOptions``."""

    @click.option("--device", default="auto", show_default=True,
                  help="A torch device (cpu, cuda, cuda:1, mps), or auto: CUDA if there is one, else the CPU.")
    @click.option("--tile", default=None, type=click.IntRange(min=16, max=MAX_TILE),
                  help=f"Tile side in pixels (16 to {MAX_TILE}), overriding --max-memory: larger images go in "
                       "overlapping tiles.")
    @click.option("--max-memory", default=DEFAULT_MAX_MEMORY / 2**30, show_default=True,
                  type=click.FloatRange(min=0.01, max=MAX_MEMORY_GIB),
                  help=f"GiB a forward pass may use (0.01 to {MAX_MEMORY_GIB}): an image that fits is processed "
                       "whole, larger ones in the tiles that fit and compute the fewest pixels.")
    @click.option("--tile-overlap", default=32, show_default=True, type=click.IntRange(min=0, max=MAX_TILE // 2),
                  help=f"Overlap between neighbouring tiles (0 to {MAX_TILE // 2}), blended without seams.")
    @click.option("--batch-size", default=4, show_default=True, type=click.IntRange(min=1),
                  help="Tiles per forward pass.")
    @click.option("--progress/--no-progress", default=None, help="Progress bars (default: when run in a terminal).")
    @functools.wraps(function)
    def wrapper(device: str, tile: int | None, max_memory: float, tile_overlap: int, batch_size: int,
                progress: bool | None, **kwargs: Any):
        from .inference import TileOptions, resolve_device

        if tile is not None and 2 * tile_overlap >= tile:
            raise click.BadParameter(f"must be less than half of --tile ({tile})", param_hint="--tile-overlap")
        if not math.isfinite(max_memory):
            raise click.BadParameter(f"must be a number of GiB, got {max_memory}", param_hint="--max-memory")
        try:
            resolved = resolve_device(device)
        except (RuntimeError, ValueError) as error:
            raise click.BadParameter(str(error), param_hint="--device") from error
        options = TileOptions(tile=tile, overlap=tile_overlap, batch_size=batch_size, device=resolved,
                              max_memory=int(max_memory * 2**30))
        show = sys.stderr.isatty() if progress is None else progress
        return function(options=options, progress=show, **kwargs)

    return wrapper


def _max_pixels_option(function: Callable) -> Callable:
    """--max-pixels (or $FLOWDEBLUR_MAX_PIXELS): the pixel limit every image read by the command is held to."""

    @click.option("--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True, type=click.IntRange(min=1),
                  envvar=MAX_PIXELS_VARIABLE, show_envvar=True,
                  help="Refuse images whose header claims more pixels than this, before decoding them.")
    @functools.wraps(function)
    def wrapper(max_pixels: int, **kwargs: Any):
        from .data.io import pixel_limit

        with pixel_limit(max_pixels):
            return function(**kwargs)

    return wrapper


def _load(model_dir: str | None, device: str | torch.device = "cpu") -> WaveletUNetFlow:
    from .model import WaveletUNetFlow  # torch and FrEIA: imported by the commands that load a model

    try:
        return WaveletUNetFlow.from_pretrained(model_dir or DEFAULT_MODEL, device=device)
    except ModelNotFoundError as error:
        raise click.ClickException(f"--model: {error}") from error
    except CheckpointError as error:
        raise click.ClickException(str(error)) from error


def _check_writable(**paths: Path | None) -> None:
    """A usage error, before any work, for an output file (given by its option's name) that cannot be written."""
    from .inference import output_file_problem

    for name, path in paths.items():
        problem = None if path is None else output_file_problem(path)
        if problem:
            raise click.BadParameter(problem, param_hint=f"--{name}")


def _open_dataset(name: str, **arguments: Any) -> Any:
    """An RGB dataset to score, never augmented; each warning (files skipped) one line, an error one ClickException."""
    from .data import build_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            dataset = build_dataset(name, color="rgb", augment=False, **arguments)
        except DatasetError as error:
            raise click.ClickException(str(error)) from error
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    return dataset


def _evaluate_and_write(
    model: WaveletUNetFlow,
    dataset: Any,
    options: TileOptions,
    json_path: Path | None,
    report_path: Path | None,
    **evaluate_options: Any,
) -> None:
    """Evaluate, print the summary table, and write the JSON and the report where asked."""
    from .evaluate import evaluate, evaluation_context, format_summary, write_scores
    from .report import write_report
    from .tiling import TileBudgetError

    try:
        evaluation = evaluate(model, dataset, options, **evaluate_options)
    except (DatasetError, CheckpointError, TileBudgetError) as error:
        raise click.ClickException(str(error)) from error
    context = evaluation_context(model, dataset.description, options)
    click.echo(format_summary(evaluation.summary))
    if json_path is not None:
        click.echo(f"scores: {write_scores(json_path, evaluation, context)}")
    if report_path is not None:
        click.echo(f"report: {write_report(report_path, evaluation, context).resolve()}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowdeblur")
def main() -> None:
    """Deblur images with UML-IN, a U-shaped multi-level invertible network (normalizing flows).

    \b
    Start here (nothing to download; writes flowdeblur-demo/):
      flowdeblur demo
    \b
    Then, on your own photos:
      flowdeblur deblur photos/ -o sharp/
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the deblurred images (created if missing).")
@_model_option
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist (default: skip them).")
@_max_pixels_option
@_run_options
@_threads_option
def deblur(
    inputs: tuple[Path, ...], output_dir: Path, model_dir: str | None, overwrite: bool, options: TileOptions,
    progress: bool,
) -> None:
    """Deblur image files and folders of images into OUTPUT.

    Each output is a PNG of the input's size, bit depth (8 or 16) and mode (gray, RGB, RGBA with the alpha
    passed through), with its ICC profile and EXIF tags (turned upright as EXIF orientation says); a
    Y-channel model keeps the input's colours. Large images are processed in overlapping tiles, so memory
    stays bounded. Unreadable inputs are reported by name and the rest still processed; the exit code is 1 if
    any input failed. An OUTPUT inside an input folder is not read as input.

    \b
    Examples:
      flowdeblur deblur photo.jpg -o out/
      flowdeblur deblur shots/ more/frame.png -o out/ --model runs/gopro/model
      flowdeblur deblur big.tif -o out/ --tile 1024 --device cuda --overwrite
    """
    import itertools
    import time

    from tqdm.auto import tqdm

    from .inference import STATUSES, deblur_files, output_dir_problem, plan_jobs

    problem = output_dir_problem(inputs, output_dir)
    if problem:
        raise click.BadParameter(problem, param_hint="'-o' / '--output'")
    model = _load(model_dir, options.device)
    if model_dir in SHIPPED_MODELS and model_dir != DEFAULT_MODEL and not Path(model_dir).is_dir():
        click.echo(f"model {model_dir}: {SHIPPED_MODELS[model_dir]}", err=True)
    jobs, settled = plan_jobs(inputs, output_dir)
    counts = dict.fromkeys(STATUSES, 0)
    pixels = 0
    start = time.perf_counter()
    for outcome in itertools.chain(settled, deblur_files(model, jobs, options, overwrite, progress)):
        counts[outcome.status] += 1
        pixels += outcome.pixels
        if outcome.status != "written":
            tqdm.write(f"{outcome.status}: {outcome.message}", file=sys.stderr)
    seconds, megapixels = time.perf_counter() - start, pixels / 1e6
    speed = f", {megapixels:.2f} MP in {seconds:.1f} s ({megapixels / seconds:.3f} MP/s)" if pixels else ""
    click.echo(
        f"deblurred {counts['written']} image(s){speed} into {output_dir}; "
        f"{counts['skipped']} skipped, {counts['failed']} failed"
    )
    if counts["failed"]:
        sys.exit(1)


@main.command(name="eval")
@_model_option
@click.option("--dataset", "dataset_name", type=click.Choice(DATASET_NAMES), default="builtin", show_default=True,
              help="Which dataset (see docs/datasets.md).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The dataset's folder (every dataset but builtin).")
@click.option("--split", type=click.Choice([*SPLITS, ALL]),
              help="Which images to score. Default: all for --dataset paired on a flat folder (no train/val/test "
              "folders), else test.")
@click.option("--skip-bad", is_flag=True,
              help="Skip and count unreadable or unmatched files instead of stopping (paired, gopro, lai, celeba).")
@click.option("--crop-size", type=click.IntRange(min=16), help="Centre-crop images to this size (default: whole).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of splits and blur.")
@_blur_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every per-image number here.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML report here.")
@click.option("--report-images", default=24, show_default=True, type=click.IntRange(min=0),
              help="Images shown with crops and latent maps in the report (the best and worst by gain).")
@_max_pixels_option
@_run_options
@_threads_option
def eval_command(
    model_dir: str | None, dataset_name: str, data_dir: Path | None, split: str | None, skip_bad: bool,
    crop_size: int | None, seed: int, blur_name: str, json_path: Path | None, report_path: Path | None,
    report_images: int, options: TileOptions, progress: bool,
) -> None:
    """Score a model on a paired dataset: PSNR, SSIM and MSE, blurry input vs deblurred, and the gain.

    Scores are per image then averaged, on Y (BT.601, the paper's protocol) and RGB, after rounding both
    images to 8 bits. The report shows the summary, per-image rows sorted by gain, crops (blurry |
    deblurred | sharp) and the per-level latent maps with their sparsity.

    \b
    Examples:
      flowdeblur eval --dataset builtin --report report.html
      flowdeblur eval --model gauss3 --blur paper
      flowdeblur eval --dataset paired --data-dir my_pairs/ --skip-bad
      flowdeblur eval --model runs/gopro/model --dataset gopro --data-dir /data/GOPRO_Large --json scores.json
    """
    from .data.factory import SYNTHETIC, dataset_options, default_eval_split, option_takers

    if skip_bad and "skip_bad" not in dataset_options(dataset_name):
        raise click.UsageError(f"--skip-bad applies to --dataset {', '.join(option_takers('skip_bad'))}, "
                               f"not {dataset_name}")
    _check_writable(json=json_path, report=report_path)
    model = _load(model_dir, options.device)
    split = split or default_eval_split(dataset_name, data_dir)
    extra = {"skip_bad": True} if skip_bad else {}
    with spelled_as(EVAL_DATASET_FLAGS):  # dataset errors name this command's flags
        dataset = _open_dataset(dataset_name, root=data_dir, split=split, crop_size=crop_size, seed=seed,
                                blur=_chosen_blur(blur_name, model) if dataset_name in SYNTHETIC else None, **extra)
        _evaluate_and_write(
            model, dataset, options, json_path, report_path, max_visuals=report_images, progress=progress
        )


@main.command()
@_model_option
@click.option("--output-dir", default=Path("flowdeblur-demo"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where the images, scores and report go.")
@click.option("--train", is_flag=True,
              help="First train a small model from scratch on the built-in images (a few minutes), and use it.")
@_blur_option
@_run_options
@_threads_option
def demo(
    model_dir: str | None, output_dir: Path, train: bool, blur_name: str, options: TileOptions, progress: bool
) -> None:
    """Deblur the built-in test crops, score them and write a report: nothing to download.

    Uses the shipped general model (or --model, or with --train one trained here first) on the built-in
    test crops of scikit-image's sample photographs, blurred by the blur the model was trained on (--blur).
    Writes OUTPUT_DIR/deblurred/*.png, OUTPUT_DIR/scores.json and OUTPUT_DIR/report.html, and prints the
    gain over the blurry input.

    \b
    Examples:
      flowdeblur demo
      flowdeblur demo --train --output-dir /tmp/demo
      flowdeblur demo --model runs/builtin/model
    """
    if train and model_dir is not None:
        raise click.UsageError("--train trains its own model; leave out --model")
    _check_writable(**{"output-dir": output_dir / "scores.json"})
    from .data import build_dataset
    from .demo import demo_training_config

    if train:
        from .train import train as train_model

        model_dir = train_model(demo_training_config(output_dir / "training"))
        click.echo(f"trained model: {model_dir}")
    model = _load(model_dir, options.device)
    dataset = build_dataset("builtin", split="test", color="rgb", crop_size=None, blur=_chosen_blur(blur_name, model))
    _evaluate_and_write(
        model, dataset, options, output_dir / "scores.json", output_dir / "report.html",
        save_dir=output_dir / "deblurred", progress=progress,
    )


@main.command()
@_model_option
@_threads_option
def info(model_dir: str | None) -> None:
    """Describe a model: config, parameter counts per level and branch, and what it was trained on.

    Without --model: the shipped models, then the default one described.

    \b
    Examples:
      flowdeblur info
      flowdeblur info --model gauss3
      flowdeblur info --model runs/gopro/model
    """
    from .model_info import describe_model

    if model_dir is None:
        shipped = "\n".join(f"  {name:<10}{purpose}" for name, purpose in SHIPPED_MODELS.items())
        click.echo(f"shipped models (--model NAME):\n{shipped}\n")
    click.echo(describe_model(_load(model_dir)))


@main.command()
@_model_option
@click.option("-o", "--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The ONNX file to write (an existing one is replaced whole, never left half-written).")
@click.option("--opset", default=DEFAULT_OPSET, show_default=True, type=click.IntRange(min=DEFAULT_OPSET),
              help="ONNX opset version of the graph.")
@_threads_option
def export(model_dir: str | None, output_path: Path, opset: int) -> None:
    """Export a model to an ONNX file, to run it outside Python (onnxruntime, chaiNNer).

    The graph is the network on the model's own channels: a float32 (batch, C, height, width) input named
    "input", C = 1 for a Y model (BT.601 luma) or 3 for an RGB model (RGB in [0, 1]), and an output of the
    same shape, unclipped. Batch, height and width are free (each side at least 2^levels); the padding to a
    multiple of 2^levels is inside the graph. Needs pip install "flowdeblur[onnx]".

    \b
    Examples:
      flowdeblur export -o general.onnx
      flowdeblur export --model runs/gopro/model -o gopro.onnx --opset 20
    """
    from .export import OnnxMissingError, export_onnx, require_onnx

    try:
        require_onnx()
    except OnnxMissingError as error:
        raise click.ClickException(str(error)) from error
    _check_writable(output=output_path)
    model = _load(model_dir)
    try:
        written = export_onnx(model, output_path, opset=opset)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"model: {model.directory}")
    click.echo(written.describe())
