"""The training loop shared by every recipe: the paper's stages (Appendix A) and the joint stage under 🤗 Accelerate.

One process or many (``accelerate launch``), mixed precision, gradient accumulation, guarded steps, validation,
checkpoints that resume exactly, and a final ``save_pretrained`` model whose metadata says how it was trained.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.logging import get_logger
from accelerate.utils import (
    GradientAccumulationPlugin,
    ProjectConfiguration,
    broadcast_object_list,
    gather_object,
    set_seed,
)
from accelerate.utils import imports as accelerate_imports
from accelerate.utils.environment import str_to_bool
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..data.errors import DatasetError
from ..flows.actnorm import pooled_statistics
from ..flows.precision import set_tf32
from ..model import WaveletUNetFlow
from ..model_format import CheckpointError
from .config import STAGE_COUNT, TrainConfig, TrainConfigError
from .guard import guarded_step
from .loaders import batch_stream, describe, first_batch, load_datasets, training_loader, validation_loader
from .meter import StageMeter, format_losses, mean_losses, reduced_means
from .schedule import stage_optimizer, stage_scheduler
from .stages import STAGES, Stage, StageObjective
from .state import TrainingProgress, check_global_batch, load_checkpoint, resolve_resume, save_checkpoint
from .validate import format_scores, validate

logger = get_logger(__name__)
MODEL_DIR = "model"
CPU_PROCESSES_COMMAND = "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ..."


def train(config: TrainConfig, datasets: tuple[Dataset, Dataset] | None = None) -> Path:
    """Train UML-IN through the configured stages and return the folder of the final model.

    ``datasets`` (train, validation) replaces the configured dataset: any datasets whose items are
    ``{"blurry": (C, H, W), "sharp": (C, H, W)}`` in [0, 1]. Settings, data and the checkpoint to resume from are
    all checked before a model is built. The model folder is ``<output_dir>/model``, written with
    :meth:`WaveletUNetFlow.save_pretrained`; its metadata records the dataset, stage steps, seed, wall time,
    per-stage losses and throughput, skipped steps and the final validation scores.
    """
    tracker = config.report_to
    if tracker != "none" and not getattr(accelerate_imports, f"is_{tracker}_available")():
        package = tracker.replace("_", "-")
        raise TrainConfigError(f"--report-to {tracker} needs the {package} package: pip install {package}")
    datasets = datasets or load_datasets(config)
    resume_from = resolve_resume(config.output_dir, config.resume_from_checkpoint)
    set_tf32(config.tf32)
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=config.gradient_accumulation_steps, sync_with_dataloader=False
        ),
        step_scheduler_with_optimizer=False,
        log_with=None if config.report_to == "none" else config.report_to,
        project_config=ProjectConfiguration(
            project_dir=str(config.output_dir),
            logging_dir=str(config.output_dir / "logs"),
            total_limit=config.checkpoints_total_limit,
        ),
        # One wrapper serves all four stages; the graph is searched for parameters left out only where a scheduled
        # stage leaves some out (a search per step costs time).
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=not all(
            stage.trains_every_part for stage, steps in zip(STAGES, config.stage_steps, strict=True) if steps
        ))],
    )
    if cpu_launch_fell_back_to_one_process(accelerator.num_processes, os.environ):
        logger.warning(f"accelerate launch --cpu asked for several processes, but 1 runs (its CPU launcher needs MPI): "
                       f"for N CPU processes, run {CPU_PROCESSES_COMMAND}")
    resume_from = broadcast_object_list([resume_from])[0]  # the first process's choice, which every process loads
    if config.resume_from_checkpoint and not resume_from:
        logger.info(f"no checkpoint in {config.output_dir} yet: starting from scratch")
    training = _Training(config, accelerator, datasets, resume_from)
    try:
        return training.run()
    except DatasetError as error:
        # A file found bad only when read is found by the process whose share holds it, maybe not the first.
        error.process_index = accelerator.process_index
        raise


def cpu_launch_fell_back_to_one_process(processes: int, environment: Mapping[str, str]) -> bool:
    """Whether ``accelerate launch --cpu`` was asked for several processes (or machines) but started this one alone,
    which Accelerate 1.x does without MPI: its CPU launcher then sets ``MASTER_ADDR`` (only for more than one process
    or machine) beside ``ACCELERATE_USE_CPU``, and nothing sets the world size."""
    use_cpu = str_to_bool(environment.get("ACCELERATE_USE_CPU", "false")) == 1  # as Accelerate reads the flag
    launched = "ACCELERATE_DYNAMO_BACKEND" in environment and "MASTER_ADDR" in environment
    return processes == 1 and use_cpu and launched and "WORLD_SIZE" not in environment


def weight_digest(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes): equal digests mean equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level of scalars, the form trackers take as hyperparameters."""
    flat: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{name}."))
        else:
            flat[prefix + name] = value if isinstance(value, int | float | str | bool) else str(value)
    return flat


def _check_schedule(checkpoint: Path, saved: TrainingProgress, config: TrainConfig) -> None:
    """Refuse to resume a checkpoint under other steps per stage or another optimiser: its learning-rate schedules,
    optimiser states and position belong to the run it was saved in (checkpoints from before a check recorded none,
    and pass it)."""
    if saved.optimizer is not None and saved.optimizer != config.optimizer:
        raise TrainConfigError(f"{checkpoint} belongs to a run with --optimizer {saved.optimizer}, not "
                               f"{config.optimizer}: resume with --optimizer {saved.optimizer}, or train into another "
                               "--output-dir")
    saved_steps, requested = saved.stage_steps, config.stage_steps
    if saved_steps is not None and list(saved_steps) != list(requested):
        flags = ", ".join(f"--{stage.steps_flag.replace('_', '-')} {steps}"
                          for stage, steps in zip(STAGES, saved_steps, strict=False))
        raise TrainConfigError(
            f"{checkpoint} belongs to a run of stage steps {tuple(saved_steps)}, not {tuple(requested)}: resume with "
            f"{flags}, or train the new schedule into another --output-dir"
        )


def _starting_model(config: TrainConfig) -> WaveletUNetFlow:
    """A new model of ``config.model``, or the model ``config.init_from`` names (to fine-tune), which must have that
    architecture."""
    if config.init_from is None:
        return WaveletUNetFlow(config.model)
    try:
        model = WaveletUNetFlow.from_pretrained(config.init_from)
    except CheckpointError as error:
        raise TrainConfigError(f"--init-from {config.init_from}: {error}") from error
    if model.config != config.model:
        differing = sorted(name for name, value in model.config.to_dict().items()
                           if config.model.to_dict()[name] != value)
        raise TrainConfigError(f"--init-from {config.init_from} is a model of another architecture than the run's "
                               f"(it differs in {', '.join(differing)}); leave out --preset and the model flags")
    return model.train()


@dataclass(frozen=True)
class _StageBundle:
    """What one stage trains with: its steps, its prepared optimiser and learning-rate schedule, and its parameters."""

    stage: Stage
    steps: int
    optimizer: Optimizer
    scheduler: LRScheduler
    parameters: list[nn.Parameter]


class _Training:
    """One run: the prepared objects, the progress they are checkpointed with, and the loop over stages."""

    def __init__(
        self, config: TrainConfig, accelerator: Accelerator, datasets: tuple[Dataset, Dataset], resume_from: list[Path]
    ):
        self.config, self.accelerator, self.datasets = config, accelerator, datasets
        pin_memory = accelerator.device.type == "cuda"
        loader = training_loader(datasets[0], config, pin_memory)
        self.sampler = loader.sampler
        set_seed(config.seed)
        model = _starting_model(config)
        self._initialize(model, datasets[0])
        self.objective, self.train_loader, self.val_loader = accelerator.prepare(
            StageObjective(model, config.objectives()), loader, validation_loader(datasets[1], config, pin_memory)
        )
        self.model: WaveletUNetFlow = accelerator.unwrap_model(self.objective).model
        # Prepared stage by stage in STAGES order, the order a checkpoint keeps optimisers and schedules in.
        self.bundles = [self._bundle(stage, learning_rate, steps) for stage, learning_rate, steps in
                        zip(STAGES, config.learning_rates, config.stage_steps, strict=True)]
        self.images_per_step = config.batch_size * config.gradient_accumulation_steps * accelerator.num_processes
        self.progress = TrainingProgress(
            stage_steps=list(config.stage_steps), optimizer=config.optimizer, processes=accelerator.num_processes,
            batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation_steps, images_seen=0,
        )
        accelerator.register_for_checkpointing(self.progress)
        saved_batch = self.images_per_step
        if resume_from:
            checkpoint = load_checkpoint(accelerator, resume_from)
            _check_schedule(checkpoint, self.progress, config)
            saved_batch = check_global_batch(checkpoint, self.progress, config, accelerator.num_processes)
            logger.info(f"resumed from {checkpoint} at {self._position()}")
        self.data_start = self._data_start(saved_batch)
        self.progress.processes, self.progress.batch_size = accelerator.num_processes, config.batch_size
        self.progress.gradient_accumulation_steps = config.gradient_accumulation_steps
        accelerator.init_trackers("flowdeblur", config=_flat(config.to_dict()))
        self.last_validation: tuple[int, dict[str, float]] | None = None
        logger.info(
            f"training on {accelerator.num_processes} process(es) ({accelerator.distributed_type.value} on "
            f"{accelerator.device}), mixed precision {accelerator.mixed_precision}, {self.images_per_step} images "
            f"per step, {len(datasets[0])} training and {len(datasets[1])} validation images"
        )
        if accelerator.mixed_precision != "no" and not accelerator.native_amp:
            logger.warning(f"{accelerator.mixed_precision} autocast is not available on {accelerator.device}: "
                           "the networks run in float32")

    def _initialize(self, model: WaveletUNetFlow, dataset: Dataset) -> None:
        """ActNorm's data-dependent start from the first global batch of epoch 0: each process takes its share, as
        the sharded loader would give it, and the statistics are summed over processes, so the initial weights are
        those of one process reading the whole batch (a no-op for a loaded model: its ActNorms are set)."""
        accelerator, config = self.accelerator, self.config
        blurry, sharp = first_batch(dataset, replace(config, batch_size=config.batch_size * accelerator.num_processes))
        rank, size = accelerator.process_index, config.batch_size
        share = slice(rank * size, (rank + 1) * size)

        def reduce_sum(tensor: Tensor) -> Tensor:
            return accelerator.reduce(tensor.to(accelerator.device), reduction="sum").to(tensor.device)

        with pooled_statistics(reduce_sum):
            model.initialize(blurry[share], sharp[share])

    def _data_start(self, saved_batch: int) -> int:
        """This process's first batch of the training stream: where the run left it, or, under another global batch,
        the first batch after the images the run had read (by epoch and place in it), so none is read twice."""
        progress, micro_batch = self.progress, self.config.batch_size * self.accelerator.num_processes
        if progress.images_seen is None:  # a checkpoint from before the count was recorded: the global batch is kept
            progress.images_seen = self._global_step() * self.images_per_step
        if saved_batch == self.images_per_step:
            return progress.images_seen // micro_batch
        saved_micro = saved_batch // (progress.gradient_accumulation_steps or 1)
        epoch, offset = divmod(progress.images_seen, len(self.datasets[0]) // saved_micro * saved_micro)
        return epoch * len(self.train_loader) + -(-offset // micro_batch)

    def _bundle(self, stage: Stage, learning_rate: float, steps: int) -> _StageBundle:
        """The prepared optimiser and schedule of ``stage``, over the parameters it trains."""
        parameters = stage.parameters(self.model)
        optimizer = stage_optimizer(parameters, learning_rate, self.config.optimizer)
        optimizer, scheduler = self.accelerator.prepare(
            optimizer, stage_scheduler(optimizer, self.config.warmup_steps, steps)
        )
        return _StageBundle(stage, steps, optimizer, scheduler, parameters)

    def _global_step(self) -> int:
        return self.progress.global_step(self.config.stage_steps)

    def _position(self) -> str:
        if self.progress.stage >= STAGE_COUNT:
            return f"the end of training (step {self._global_step()})"
        stage = self.progress.stage
        return (
            f"stage {stage + 1}/{STAGE_COUNT} ({STAGES[stage].name}), step {self.progress.stage_step} of "
            f"{self.config.stage_steps[stage]} (global step {self._global_step()})"
        )

    def run(self) -> Path:
        """Every remaining stage, the final validation, then the final model."""
        config, progress = self.config, self.progress
        self.started, self.elapsed_before = time.perf_counter(), progress.elapsed_s
        self.batches = batch_stream(self.accelerator, self.train_loader, self.sampler, self.data_start)
        self.bar = tqdm(
            total=config.total_steps, initial=self._global_step(), unit="step", dynamic_ncols=True,
            disable=not self.accelerator.is_main_process,
        )
        summaries = {}
        while progress.stage < STAGE_COUNT:
            bundle = self.bundles[progress.stage]
            if progress.stage_step < bundle.steps:
                summaries[bundle.stage.name] = self._run_stage(bundle)
            else:
                self._finish_stage(bundle.stage)
        self.bar.close()
        if self.last_validation is None or self.last_validation[0] != self._global_step():
            self._validate()
        return self._save_model(summaries)

    def _run_stage(self, bundle: _StageBundle) -> dict[str, float]:
        """Run a stage from where the progress stands to its last step; returns its summary."""
        progress, stage, steps = self.progress, bundle.stage, bundle.steps
        index = stage.number - 1  # the progress counts stages from 0
        self.accelerator.unwrap_model(self.objective).stage = stage
        meter = StageMeter()
        logger.info(f"stage {stage.number}/{STAGE_COUNT} ({stage.name}): {stage.description}, from {self._position()}")
        self.bar.set_description(f"stage {stage.number}/{STAGE_COUNT} {stage.name}")
        counted_to = self._global_step()  # skipped steps are read back at log and checkpoint steps only
        while progress.stage_step < steps:
            began, learning_rate = time.perf_counter(), bundle.scheduler.get_last_lr()[0]
            losses, skipped, grad_norm, waited = self._step(bundle)
            means = mean_losses(losses)
            meter.add(means, skipped, self.images_per_step, time.perf_counter() - began, waited)
            progress.stage_step += 1
            progress.images_seen += self.images_per_step
            global_step = self._global_step()
            self.bar.update(1)
            log_due = global_step % self.config.logging_steps == 0 or progress.stage_step == steps
            if log_due or self._checkpoint_due(global_step):
                self._count_skips(stage, meter.new_skips(), counted_to, global_step)
                counted_to = global_step
            if log_due:
                self._log_step(stage, means, {"lr": learning_rate, "grad_norm": grad_norm}, global_step)
            if progress.stage_step < steps:
                self._after_step(global_step, stage_end=False)
        summary = {**meter.summary(self.accelerator), "skipped_steps": progress.skipped[index]}
        logger.info(
            f"stage {stage.number}/{STAGE_COUNT} ({stage.name}) done: {summary['steps']} steps, "
            f"{format_losses({name: summary[name] for name in meter.names})}; "
            f"{summary['images_per_second']:.2f} images/s, {100 * summary['data_wait_share']:.0f}% of it waiting for "
            f"data; {progress.skipped[index]} skipped steps"
        )
        self._finish_stage(stage)
        self._after_step(self._global_step(), stage_end=True)
        return summary

    def _count_skips(self, stage: Stage, new: int, counted_to: int, global_step: int) -> None:
        """Add the ``new`` steps skipped after ``counted_to`` up to ``global_step`` to the progress, with a warning."""
        if not new:
            return
        self.progress.skipped[stage.number - 1] += new
        steps = f"step {global_step}" if global_step == counted_to + 1 else f"steps {counted_to + 1}-{global_step}"
        logger.warning(
            f"{steps} (stage {stage.number}): {new} update(s) skipped, loss or gradients not finite on at least one "
            f"process ({sum(self.progress.skipped)} skipped so far)"
        )

    def _finish_stage(self, stage: Stage) -> None:
        """Move on to the next stage; with ``sharp_init`` "shared", the sharp branch starts as a copy of stage 1's INNs
        (a fine-tuned model whose stage 1 ran no steps keeps its own)."""
        if stage is STAGES[0] and self.config.sharp_init == "shared":
            if self.config.stage_steps[0]:
                self.model.start_sharp_from_blur()
                logger.info("sharp_init shared: the sharp branch starts from the INNs trained in stage 1")
            elif self.config.init_from is not None:
                logger.info(f"the sharp branch keeps the INNs of {self.config.init_from} (stage 1 ran no steps)")
            else:
                self.model.start_sharp_from_blur()
                logger.info("sharp_init shared: the sharp branch starts from the blur branch's INNs, untrained "
                            "(stage 1 ran no steps)")
        self.progress.stage, self.progress.stage_step = stage.number, 0

    def _step(self, bundle: _StageBundle) -> tuple[list[dict[str, Tensor]], Tensor, Tensor, float]:
        """One optimiser step of a stage: accumulate, clip, then apply it unless the guard says skip.

        Returns the micro-batches' losses, whether the update was skipped (1.0) and the gradient norm before clipping
        (NaN where clipping measures none), all left on the device (with Adam nothing waits for it; Adamax reads the
        guard's answer); and the seconds spent waiting for the batches.
        """
        accelerator, optimizer = self.accelerator, bundle.optimizer
        losses, waited = [], 0.0
        for _ in range(self.config.gradient_accumulation_steps):
            asked = time.perf_counter()
            batch = next(self.batches)
            waited += time.perf_counter() - asked
            with accelerator.accumulate(self.objective):
                out = self.objective(batch["blurry"], batch["sharp"])
                accelerator.backward(out["loss"])
            losses.append({name: value.detach().float() for name, value in out.items()})
        clipped = accelerator.clip_grad_norm_(bundle.parameters, self.config.max_grad_norm)
        grad_norm = torch.tensor(math.nan, device=accelerator.device) if clipped is None else clipped
        skipped = guarded_step(accelerator, optimizer, [out["loss"] for out in losses], grad_norm)
        bundle.scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return losses, skipped, grad_norm, waited

    def _log_step(self, stage: Stage, losses: dict[str, Tensor], extra: dict[str, float | Tensor],
                  global_step: int) -> None:
        """The step's losses (:func:`mean_losses`, averaged over processes: every process calls it) and ``extra``
        values, to trackers and the progress bar."""
        values = {f"train/{name}": value for name, value in reduced_means(self.accelerator, losses).items()}
        values.update({f"train/{name}": float(value) for name, value in extra.items()})
        values["train/stage"] = stage.number
        values["train/skipped_steps"] = sum(self.progress.skipped)
        self.accelerator.log(values, step=global_step)
        self.bar.set_postfix(loss=f"{values['train/loss']:.4g}", lr=f"{values['train/lr']:.2e}")

    def _after_step(self, global_step: int, stage_end: bool) -> None:
        """Validate at a stage's end and every ``validation_steps``; save a checkpoint every ``checkpointing_steps``."""
        config = self.config
        if stage_end or (config.validation_steps and global_step % config.validation_steps == 0):
            self._validate()
        if self._checkpoint_due(global_step):
            self.progress.elapsed_s = self._elapsed()
            path = save_checkpoint(self.accelerator, config.output_dir, global_step)
            logger.info(f"saved checkpoint {path}")

    def _checkpoint_due(self, global_step: int) -> bool:
        return bool(self.config.checkpointing_steps) and global_step % self.config.checkpointing_steps == 0

    def _elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def _validate(self) -> None:
        global_step = self._global_step()
        scores = validate(self.accelerator, self.model, self.val_loader)
        logger.info(f"validation at step {global_step}: {format_scores(scores)}")
        self.accelerator.log({f"val/{name}": value for name, value in scores.items()}, step=global_step)
        self.last_validation = (global_step, scores)

    def _save_model(self, summaries: dict[str, dict[str, float]]) -> Path:
        """Check that every process holds the same weights, then write the model with its metadata."""
        accelerator, config = self.accelerator, self.config
        accelerator.wait_for_everyone()
        digests = gather_object([weight_digest(self.model)])
        directory = config.output_dir / MODEL_DIR
        if accelerator.is_main_process:
            if len(set(digests)) > 1:
                logger.warning(f"the {len(digests)} processes ended with different weights: {digests}")
            self.model.metadata = {
                "dataset": describe(self.datasets[0]),
                "validation_dataset": describe(self.datasets[1]),
                "stage_steps": {stage.name: steps for stage, steps in zip(STAGES, config.stage_steps, strict=True)},
                "seed": config.seed,
                "mixed_precision": accelerator.mixed_precision,
                "tf32": config.tf32,
                "wall_time_s": self._elapsed(),
                "validation": self.last_validation[1],
                "skipped_steps": sum(self.progress.skipped),
                "stages": summaries,
                "processes": accelerator.num_processes,
                "weight_digests": digests,
                "train_config": config.to_dict(),
            }
            self.model.save_pretrained(directory)
            logger.info(f"saved the final model to {directory}")
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return directory
