"""Deblurring images and image files: any size (tiled), gray or RGB, 8 or 16 bits, written atomically.

The model's colour layer (``flowdeblur.color.image_to_channels``) deblurs a gray image as the RGB image with
R = G = B, so a Y model sees its true BT.601 luma and an RGB model its three equal channels; the result is gray
again. Outputs are PNG (lossless, 8 or 16 bits, gray or RGB as the input was, with its ICC profile and EXIF
tags), so deblurring never adds compression artefacts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .config import UMLINConfig
from .data import DatasetError, ImageInfo, read_image_with_info, write_image
from .data.choices import DEFAULT_MAX_MEMORY
from .data.io import IMAGE_SUFFIXES
from .model import WaveletUNetFlow
from .model_format import CheckpointError
from .tiling import TileBudgetError, cheapest_tile, process_tiled, tile_grid

OUTPUT_SUFFIX = ".png"
LEADS_NOWHERE = "a symbolic link that leads nowhere (a loop or a missing target)"
Status = Literal["written", "skipped", "failed"]
STATUSES: tuple[str, ...] = get_args(Status)


def forward_bytes_per_pixel(config: UMLINConfig) -> float:
    """Peak working memory of one float32 forward pass per input pixel, so tiles can be sized to a budget.

    A linear fit to peak resident memory measured on a CPU (docs/benchmarks.md, "Memory per pixel"): the peak
    is where the level-1 transfer net or coupling subnet holds its hidden activations (a quarter of the
    pixels each), plus the images and latents; the pyramid transfer net holds about 12 bytes per pixel and channel
    of its width there, and a full-resolution stage adds 4 per channel; rounded up by a quarter for safety.
    """
    if config.transfer_net == "pyramid":
        hidden = max(12.0 * config.transfer_hidden_channels, 2.5 * config.hidden_channels)
    else:
        hidden = max(4.5 * config.transfer_hidden_channels, 2.5 * config.hidden_channels)
    return 1.25 * (32 * config.channels + hidden + 4 * config.refine_channels)


@dataclass(frozen=True)
class TileOptions:
    """How a large image is cut: tile side and overlap in pixels, tiles per forward pass, device, memory budget.

    With ``tile=None`` the tile is the one whose forward passes fit ``max_memory`` bytes and that computes the fewest
    pixels in all (an image that fits is processed whole, so no overlap is computed twice); a ``tile`` given
    overrides the budget.
    """

    tile: int | None = None
    overlap: int = 32
    batch_size: int = 4
    device: torch.device = torch.device("cpu")
    max_memory: int = DEFAULT_MAX_MEMORY


def available_devices() -> list[str]:
    """The devices this machine can run on: the CPU, each CUDA GPU, and Apple's MPS where present."""
    cuda = [f"cuda:{index}" for index in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return ["cpu", *cuda, *(["mps"] if torch.backends.mps.is_available() else [])]


def resolve_device(name: str) -> torch.device:
    """A torch device from a name; "auto" picks CUDA when there is one, else the CPU.

    A device this machine does not have is a ValueError saying which ones it has, before any model is moved.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"{name!r} is not a device name; use auto, cpu, cuda, cuda:<index> or mps") from error
    if device.type == "cpu" and device.index not in (None, 0):
        raise ValueError(f"{name!r}: the CPU has no index other than 0; use cpu")
    try:
        usable = device.type != "meta" and torch.empty(1, device=device).device.type == device.type
    except Exception:  # each backend fails in its own way (RuntimeError, AssertionError, NotImplementedError, ...)
        usable = False
    if not usable:
        raise ValueError(f"device {name!r} is not available on this machine; it has {', '.join(available_devices())}")
    return device


def tile_side(model: WaveletUNetFlow, height: int, width: int, options: TileOptions) -> int:
    """The tile side :func:`deblur_image` uses for an image of this size: ``options.tile``, or the budget's cheapest."""
    if options.tile is not None:
        return options.tile
    per_pixel = forward_bytes_per_pixel(model.config)
    align = model.config.grid
    return cheapest_tile(height, width, per_pixel, options.max_memory, options.batch_size, options.overlap, align)


def tile_count(model: WaveletUNetFlow, height: int, width: int, options: TileOptions) -> int:
    """How many tiles :func:`deblur_image` cuts an image of this size into."""
    tile = tile_side(model, height, width, options)
    return len(tile_grid(height, width, tile, options.overlap, align=model.config.grid))


@torch.inference_mode()
def deblur_image(
    model: WaveletUNetFlow, image: Tensor, options: TileOptions, on_tile: Callable[[int], None] | None = None
) -> Tensor:
    """Deblur one image (C, H, W) in [0, 1], tile by tile; same shape, float32, on the CPU.

    C is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGB + alpha); an alpha channel is passed through unchanged. An
    output that is not finite (weights that overflow) is a :class:`CheckpointError`, so no caller writes or scores it.
    """
    if image.dim() != 3 or image.shape[0] not in (1, 2, 3, 4):
        raise ValueError(f"expected a gray or RGB image (C, H, W), C in 1..4 with alpha, got {tuple(image.shape)}")
    colour, alpha = (image[:-1], image[-1:]) if image.shape[0] in (2, 4) else (image, None)

    restored = process_tiled(
        model,
        colour,
        tile=tile_side(model, *colour.shape[-2:], options),
        overlap=options.overlap,
        batch_size=options.batch_size,
        align=model.config.grid,
        device=options.device,
        on_tile=on_tile,
    )
    if not bool(torch.isfinite(restored).all()):
        raise CheckpointError("the model's output is not finite (inf or nan): its weights cannot deblur")
    return restored if alpha is None else torch.cat([restored, alpha.float().cpu()])


@dataclass(frozen=True)
class Job:
    """One input file and the output file it becomes."""

    source: Path
    target: Path


@dataclass(frozen=True)
class Outcome:
    """What happened to one input: "written", "skipped" (output exists) or "failed", with a message naming it."""

    source: Path
    status: Status
    message: str = ""
    pixels: int = 0


def _leads_nowhere(path: Path) -> bool:
    """A symbolic link whose target does not resolve: a loop, or a target that is missing."""
    return path.is_symlink() and not path.exists()


def output_dir_problem(inputs: Sequence[Path], output_dir: Path) -> str | None:
    """Why ``output_dir`` cannot take the outputs (named like an image file, an input folder itself, under a file, a
    link that leads nowhere, not writable), or None. Checked before any work, so that a run never deblurs images it
    then cannot write.
    """
    if output_dir.suffix.lower() in IMAGE_SUFFIXES and not output_dir.is_dir():
        return (f"{output_dir} is named like an image file, but the outputs go into a folder: give a folder, e.g. "
                f"-o {output_dir.parent / output_dir.stem}/ (each input is written into it as <name>.png)")
    resolved = os.path.realpath(output_dir)
    for given in inputs:
        if given.is_dir() and os.path.realpath(given) == resolved:
            return f"{output_dir} is the input folder itself; choose another, so outputs do not mix with the inputs"
    return _folder_problem(output_dir)


def output_file_problem(path: Path) -> str | None:
    """Why a file cannot be written at ``path``, a file name (its folder is under a file, a link that leads nowhere, or
    not writable), or None. Checked before any work, so that an evaluation never fails only when it writes."""
    return _folder_problem(path.parent)


def _folder_problem(folder: Path) -> str | None:
    """Why files cannot be written into ``folder`` (created if missing): it or a parent is a link that leads nowhere,
    it lies under a file, or it is not writable; or None."""
    for path in (folder, *folder.parents):
        if _leads_nowhere(path):
            return f"cannot write into {folder}: {path} is {LEADS_NOWHERE}"
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        return f"cannot write into {folder}: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write into {existing} (permission denied)"
    return None


def _folder_images(folder: Path, output_dir: Path) -> tuple[list[Path], list[Path]]:
    """Image files under ``folder`` (recursive, hidden files skipped), leaving out an output folder inside it, and the
    links among them that lead nowhere (a loop or a missing target), which cannot be read."""
    resolved, excluded = folder.resolve(), output_dir.resolve()
    skip = excluded if excluded != resolved and excluded.is_relative_to(resolved) else None
    named = sorted(
        path for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )
    broken = [path for path in named if _leads_nowhere(path)]
    images = [path for path in named if path.is_file() and not (skip and path.resolve().is_relative_to(skip))]
    return images, broken


def plan_jobs(inputs: Sequence[Path], output_dir: Path) -> tuple[list[Job], list[Outcome]]:
    """Files to deblur and where each goes, plus a failure for every input that cannot be planned.

    A file goes to ``output_dir/<stem>.png``; a folder contributes its images (recursively, hidden files
    skipped, ``output_dir`` left out when it lies inside) at their paths relative to it. A missing input, a
    folder without images or a link in one that leads nowhere, two inputs that would write the same output, or an
    output that would replace any input (its own or another's, even with ``--overwrite``) are failures naming the
    input; a file given twice is deblurred once (the repeat is skipped).
    """
    jobs: list[Job] = []
    failures: list[Outcome] = []
    claimed: dict[Path, Path] = {}
    sources: list[Path] = []
    for given in inputs:
        if given.is_dir():
            found, broken = _folder_images(given, output_dir)
            failures += [Outcome(link, "failed", f"{link}: {LEADS_NOWHERE}") for link in broken]
            if not found and not broken:
                readable = ", ".join(sorted(IMAGE_SUFFIXES))
                failures.append(Outcome(given, "failed", f"{given}: folder holds no images ({readable})"))
            pairs = [(source, source.relative_to(given)) for source in found]
        elif given.is_file():
            pairs = [(given, Path(given.name))]
        else:
            failures.append(Outcome(given, "failed", f"{given}: no such file or folder"))
            continue
        sources += [source for source, _ in pairs]
        for source, relative in pairs:
            target = output_dir / relative.with_suffix(OUTPUT_SUFFIX)
            if target in claimed and os.path.realpath(claimed[target]) == os.path.realpath(source):
                failures.append(Outcome(source, "skipped", f"{source}: given more than once; deblurred once"))
                continue
            if target in claimed:
                failures.append(Outcome(source, "failed", f"{source}: {claimed[target]} already writes {target}; "
                                        "deblur one of them in a run of its own, into another -o folder"))
                continue
            claimed[target] = source
            jobs.append(Job(source, target))
    return _sparing_inputs(jobs, failures, sources)


def _sparing_inputs(
    jobs: list[Job], failures: list[Outcome], sources: list[Path]
) -> tuple[list[Job], list[Outcome]]:
    """The jobs whose output is none of the input files; each other job becomes a failure naming the input it would
    replace. Paths are compared after resolving links (``os.path.realpath``, which a link loop cannot stop)."""
    inputs = {os.path.realpath(source): source for source in sources}
    safe = []
    for job in jobs:
        replaced = inputs.get(os.path.realpath(job.target))
        if replaced is None:
            safe.append(job)
        else:
            failures.append(Outcome(job.source, "failed", f"{job.source}: its output {job.target} would replace the "
                                    f"input {replaced}; choose another output folder"))
    return safe, failures


def _read_and_deblur(
    model: WaveletUNetFlow, source: Path, options: TileOptions, progress: bool
) -> tuple[Tensor, ImageInfo]:
    """Read a file and deblur it behind a tile progress bar; the input is freed on return, before writing."""
    image, info = read_image_with_info(source, keep_alpha=True)
    tiles = tile_count(model, info.height, info.width, options)
    with tqdm(total=tiles, desc=source.name, unit="tile", leave=False, disable=not progress or tiles == 1) as bar:
        return deblur_image(model, image, options, on_tile=bar.update), info


def deblur_file(model: WaveletUNetFlow, job: Job, options: TileOptions, overwrite: bool, progress: bool) -> Outcome:
    """Read, deblur and write one file, keeping its size, bit depth and gray/RGB mode; errors become an Outcome.

    An output name taken by anything, a link that leads nowhere included, is kept unless ``overwrite``.
    """
    if os.path.lexists(job.target) and not overwrite:
        return Outcome(job.source, "skipped", f"{job.source}: {job.target} exists (pass --overwrite to replace it)")
    try:
        restored, info = _read_and_deblur(model, job.source, options, progress)
    except DatasetError as error:
        return Outcome(job.source, "failed", str(error))  # names the file already
    except (TileBudgetError, CheckpointError) as error:
        return Outcome(job.source, "failed", f"{job.source}: {error}; nothing was written")
    try:
        job.target.parent.mkdir(parents=True, exist_ok=True)
        write_image(job.target, restored, bit_depth=info.bit_depth, metadata=info.metadata, exclusive=not overwrite)
    except FileExistsError:
        return Outcome(job.source, "skipped", f"{job.source}: {job.target} appeared while it was deblurred; kept "
                       "(pass --overwrite to replace it)")
    except OSError as error:
        return Outcome(job.source, "failed", f"{job.source}: cannot write {job.target}: {error}")
    return Outcome(job.source, "written", str(job.target), pixels=info.height * info.width)


def deblur_files(
    model: WaveletUNetFlow, jobs: Sequence[Job], options: TileOptions, overwrite: bool = False, progress: bool = True
) -> Iterator[Outcome]:
    """Deblur every job in turn behind a progress bar, yielding each file's :class:`Outcome`."""
    for job in tqdm(jobs, desc="deblurring", unit="image", disable=not progress):
        yield deblur_file(model, job, options, overwrite, progress)
