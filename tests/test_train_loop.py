"""The training loop in one CPU process: what each stage trains, exact resume, bf16, and the non-finite guard."""

import copy
import logging
import math
from dataclasses import replace

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset

from flowdeblur import UMLINConfig, WaveletUNetFlow
from flowdeblur.config import PRESETS
from flowdeblur.data import build_dataset
from flowdeblur.flows.precision import set_tf32, tf32_enabled
from flowdeblur.train import TrainConfig, TrainConfigError, train
from flowdeblur.train import trainer as trainer_module
from flowdeblur.train.guard import guarded_step
from flowdeblur.train.loaders import EpochSampler, batch_stream, load_datasets, training_loader
from flowdeblur.train.schedule import stage_optimizer
from flowdeblur.train.stages import STAGES, Objectives, StageObjective
from flowdeblur.train.state import list_checkpoints
from flowdeblur.train.validate import validate
from tests.flow_checks import ROUND_TRIP_TOLERANCE, count_host_reads

TINY = UMLINConfig(levels=2, steps=1, hidden_channels=8, transfer_hidden_channels=8, transfer_blocks=1)


def tiny_config(tmp_path, name="run", **overrides) -> TrainConfig:
    settings = dict(
        output_dir=tmp_path / name, model=TINY, stage_steps=(2, 2, 2, 0), batch_size=2, crop_size=32, num_workers=0,
        warmup_steps=1, checkpointing_steps=0, validation_steps=0, validation_images=2,
    )
    return TrainConfig(**{**settings, **overrides})


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Accelerate keeps one global state per process; each run here starts its own (on one thread: the models
    are so small that more threads only add overhead)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    torch.set_num_threads(threads)


def final_weights(path) -> dict[str, torch.Tensor]:
    return WaveletUNetFlow.from_pretrained(path).state_dict()


@pytest.mark.parametrize("model_config", [TINY, replace(TINY, shared_codec=True)], ids=["two-codecs", "one-codec"])
@pytest.mark.parametrize("sharp_init", ["separate", "shared"])
@pytest.mark.parametrize("index", range(len(STAGES)))
def test_each_stage_sends_gradients_to_exactly_the_parameters_it_trains(index, sharp_init, model_config):
    torch.manual_seed(0)
    model = WaveletUNetFlow(model_config)
    blurry, sharp = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    model.initialize(blurry, sharp)
    objective = StageObjective(model, Objectives(l1_weight=0.01, sharp_init=sharp_init))
    objective.stage = STAGES[index]
    objective(blurry, sharp)["loss"].backward()
    with_grad = {id(p) for p in model.parameters() if p.grad is not None}
    trained = model.codec("blur") if sharp_init == "shared" and index == 0 else None
    expected = STAGES[index].parameters(model) if trained is None else list(trained.parameters())
    assert with_grad == {id(p) for p in expected}


# Mean losses per stage of tiny_config's run (stage steps 2, 2, 2) as the paper's three stages gave them before the
# joint stage and the image-loss options existed: the reproduction must not drift.
PAPER_SCHEDULE_LOSSES = {
    "mlr": {"loss": -3.0308248698711395, "bpd_blur": -3.064387083053589, "bpd_sharp": 0.01125025749206543},
    "transfer": {"loss": 2.100597083568573},
    "ssim": {"loss": 0.21228283643722534},
}


def test_the_paper_schedule_gives_the_losses_it_always_gave(tmp_path):
    cells = [build_dataset("builtin", split=split, crop_size=32, patch_size=32) for split in ("train", "val")]
    datasets = (cells[0], torch.utils.data.Subset(cells[1], range(2)))  # the data of that run: a 32-pixel grid
    stages = WaveletUNetFlow.from_pretrained(train(tiny_config(tmp_path), datasets)).metadata["stages"]
    for stage, losses in PAPER_SCHEDULE_LOSSES.items():
        for name, value in losses.items():
            assert stages[stage][name] == pytest.approx(value, rel=1e-4, abs=1e-5), (stage, name)
    assert "joint" not in stages


@pytest.mark.parametrize("options", [{}, {"stage4_ssim_weight": 0.5, "stage4_nll_weight": 0.1,
                                      "pixel_loss": "charbonnier"}])
def test_the_joint_schedule_starts_at_the_identity_and_trains_every_part(tmp_path, options):
    config = tiny_config(tmp_path, stage_steps=(0, 0, 0, 3), **options)
    objective_model = WaveletUNetFlow(TINY)
    first = next(iter(training_loader(load_datasets(config)[0], config)))
    torch.manual_seed(config.seed)
    objective_model.initialize(first["blurry"], first["sharp"])
    objective_model.start_sharp_from_blur()
    with torch.no_grad():  # the --sharp-init shared start: the U returns its input
        torch.testing.assert_close(objective_model(first["blurry"]), first["blurry"], atol=2e-5, rtol=0)
    model = WaveletUNetFlow.from_pretrained(train(config))
    summary = model.metadata["stages"]["joint"]
    assert summary["steps"] == 3 and math.isfinite(summary["loss"])
    expected_parts = {"l1"} if not options else {"charbonnier", "ssim", "bpd_blur", "bpd_sharp"}
    assert expected_parts <= set(summary)
    assert set(model.metadata["stages"]) == {"joint"}


@pytest.mark.parametrize("sharp_init", ["shared", "separate"])
def test_sharp_init_shared_hands_stage_1_inns_to_the_sharp_branch(tmp_path, sharp_init):
    weights = final_weights(train(tiny_config(tmp_path, sharp_init, stage_steps=(2, 0, 0, 0), sharp_init=sharp_init)))
    blur = {k[len("flows.blur."):]: v for k, v in weights.items() if k.startswith("flows.blur.")}
    sharp = {k[len("flows.sharp."):]: v for k, v in weights.items() if k.startswith("flows.sharp.")}
    same = all(torch.equal(blur[k], sharp[k]) for k in blur)
    assert same == (sharp_init == "shared")


@pytest.mark.parametrize("steps, said", [((1, 0, 0, 0), "the INNs trained in stage 1"),
                                         ((0, 0, 0, 1), "untrained (stage 1 ran no steps)")])
def test_the_log_says_what_the_sharp_branch_starts_from(tmp_path, caplog, steps, said):
    with caplog.at_level(logging.INFO, logger="flowdeblur"):
        train(tiny_config(tmp_path, stage_steps=steps))
    assert any(said in record.getMessage() for record in caplog.records)


def test_init_from_fine_tunes_a_model_from_its_own_weights_sharp_codec_included(tmp_path):
    """With a learning rate of almost zero, one fine-tuning step ends where the model started; a sharp codec copied
    from the blur codec (what a fresh run with sharp_init shared does) would not."""
    start = train(tiny_config(tmp_path, "start", stage_steps=(0, 0, 0, 3), learning_rates=(1e-3,) * 4))
    before = final_weights(start)
    assert not torch.equal(before["flows.sharp.0.module_list.1.log_s"], before["flows.blur.0.module_list.1.log_s"])
    tuned = train(tiny_config(tmp_path, "tuned", stage_steps=(0, 0, 0, 1), learning_rates=(1e-12,) * 4,
                              init_from=str(start)))
    after = final_weights(tuned)
    for name, tensor in before.items():
        torch.testing.assert_close(after[name], tensor, atol=1e-8, rtol=0, msg=name)
    assert WaveletUNetFlow.from_pretrained(tuned).metadata["train_config"]["init_from"] == str(start)


def test_init_from_a_model_of_another_architecture_is_refused_naming_the_fields(tmp_path):
    start = train(tiny_config(tmp_path, "start", stage_steps=(0, 0, 0, 1)))
    with pytest.raises(TrainConfigError, match="differs in hidden_channels"):
        train(tiny_config(tmp_path, "tuned", stage_steps=(0, 0, 0, 1), init_from=str(start),
                          model=replace(TINY, hidden_channels=4)))


class _InterruptedError(Exception):
    pass


def test_resuming_under_other_stage_steps_is_refused_naming_the_saved_ones(tmp_path):
    """A finished 2-step run resumed with --stage4-steps 4 would train nothing and record 4: it is refused."""
    config = tiny_config(tmp_path, stage_steps=(0, 0, 0, 2), checkpointing_steps=1)
    train(config)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    longer = tiny_config(tmp_path, stage_steps=(0, 0, 0, 4), resume_from_checkpoint="latest")
    with pytest.raises(TrainConfigError, match=r"stage steps \(0, 0, 0, 2\), not \(0, 0, 0, 4\).*--stage4-steps 2"):
        train(longer)


def test_resuming_with_another_optimiser_is_refused_naming_the_saved_one(tmp_path):
    train(tiny_config(tmp_path, stage_steps=(0, 0, 0, 2), checkpointing_steps=1, optimizer="adam"))
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    other = tiny_config(tmp_path, stage_steps=(0, 0, 0, 2), resume_from_checkpoint="latest")
    with pytest.raises(TrainConfigError, match="--optimizer adam, not adamax: resume with --optimizer adam"):
        train(other)


@pytest.mark.parametrize("optimizer", ["adam", "adamax"])
def test_each_optimiser_moves_every_parameter_the_joint_stage_trains(tmp_path, optimizer):
    """One Adam or Adamax step changes every trained weight that had a gradient; the run records which it used."""
    start = final_weights(train(tiny_config(tmp_path, "start", stage_steps=(0, 0, 0, 1), learning_rates=(1e-12,) * 4)))
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    path = train(tiny_config(tmp_path, "run", stage_steps=(0, 0, 0, 1), optimizer=optimizer, warmup_steps=0))
    after = final_weights(path)
    moved = [name for name in start if start[name].is_floating_point() and not torch.equal(start[name], after[name])]
    assert any(name.startswith("transfer.") for name in moved) and any(name.startswith("flows.") for name in moved)
    assert WaveletUNetFlow.from_pretrained(path).metadata["train_config"]["optimizer"] == optimizer


@pytest.mark.parametrize(("interrupt_at", "accumulation"), [(3, 1), (2, 2)])  # mid stage 2; at the 1 -> 2 boundary
def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(
    tmp_path, monkeypatch, interrupt_at, accumulation
):
    stages = dict(stage_steps=(2, 3, 2, 0), gradient_accumulation_steps=accumulation)
    reference = final_weights(train(tiny_config(tmp_path, "uninterrupted", **stages)))

    save = trainer_module.save_checkpoint

    def save_then_stop(accelerator, output_dir, step):
        path = save(accelerator, output_dir, step)
        if step == interrupt_at:
            raise _InterruptedError
        return path

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_then_stop)
    config = tiny_config(tmp_path, "interrupted", checkpointing_steps=1, checkpoints_total_limit=2, **stages)
    with pytest.raises(_InterruptedError):
        train(config)
    assert [p.name for p in list_checkpoints(config.output_dir)] == [
        f"checkpoint-{interrupt_at - 1}", f"checkpoint-{interrupt_at}"
    ]
    monkeypatch.undo()
    AcceleratorState._reset_state(True)
    GradientState._reset_state()

    at_interruption = load_file(config.output_dir / "checkpoints" / f"checkpoint-{interrupt_at}" / "model.safetensors")
    resumed = final_weights(train(tiny_config(tmp_path, "interrupted", resume_from_checkpoint="latest", **stages)))
    assert not list((config.output_dir / "checkpoints").glob(".*"))  # no temporary folders left behind
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)
    moved = [name for name, tensor in resumed.items() if not torch.equal(at_interruption[f"model.{name}"], tensor)]
    assert moved, "training after the interruption should change the weights, or the comparison proves nothing"


def test_resuming_latest_skips_a_damaged_checkpoint_for_the_newest_that_loads(tmp_path, caplog):
    stages = dict(stage_steps=(2, 1, 1, 0))
    reference = final_weights(train(tiny_config(tmp_path, "uninterrupted", **stages)))
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    config = tiny_config(tmp_path, "damaged", checkpointing_steps=1, **stages)
    train(config)
    newest, older = list_checkpoints(config.output_dir)[:-3:-1]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    (older / "optimizer.bin").write_bytes(b"")
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    with caplog.at_level(logging.INFO, logger="flowdeblur"):
        resumed = final_weights(train(tiny_config(tmp_path, "damaged", resume_from_checkpoint="latest", **stages)))
    messages = [record.getMessage() for record in caplog.records]
    skipped = [message.split("skipped checkpoint ")[1] for message in messages if "skipped checkpoint" in message]
    assert [message.split(":")[0] for message in skipped] == [str(newest), str(older)]
    assert "(SafetensorError: Error while deserializing header: incomplete metadata" in skipped[0]
    assert "(EOFError" in skipped[1]
    assert any(f"resumed from {older.parent / 'checkpoint-2'} at" in message for message in messages)
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_an_interrupted_save_leaves_no_half_written_checkpoint(tmp_path, monkeypatch):
    save_state = Accelerator.save_state

    def interrupted_save(self, output_dir, **kwargs):
        save_state(self, output_dir, **kwargs)
        if output_dir.endswith(".checkpoint-2.tmp"):
            raise KeyboardInterrupt  # after the files, before the rename

    monkeypatch.setattr(Accelerator, "save_state", interrupted_save)
    config = tiny_config(tmp_path, checkpointing_steps=1, stage_steps=(3, 1, 1, 0))
    with pytest.raises(KeyboardInterrupt):
        train(config)
    assert [path.name for path in (config.output_dir / "checkpoints").iterdir()] == ["checkpoint-1"]


def test_bf16_training_keeps_losses_finite_and_the_model_exactly_invertible(tmp_path):
    seen = set()
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: seen.add(output.dtype) if isinstance(module, torch.nn.Conv2d) else None
    )
    try:
        path = train(tiny_config(tmp_path, mixed_precision="bf16"))
    finally:
        hook.remove()
    assert torch.bfloat16 in seen, "the subnets should have run in bf16"
    model = WaveletUNetFlow.from_pretrained(path)
    assert model.metadata["skipped_steps"] == 0
    for summary in model.metadata["stages"].values():
        assert all(math.isfinite(v) for v in summary.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    image = torch.rand(3, 1, 32, 32)
    for branch in ("blur", "sharp"):
        encoding = model.encode(image, branch)
        restored = model.decode(encoding, branch)
        assert (restored - image).abs().max().item() < ROUND_TRIP_TOLERANCE[torch.float32]


def test_memory_saving_training_reaches_the_weights_of_standard_backprop(tmp_path):
    """Every stage, with gradient accumulation, through the trainer's Accelerate wrapper: same run, same weights."""
    stages = dict(stage_steps=(2, 1, 1, 2), gradient_accumulation_steps=2)
    plain = final_weights(train(tiny_config(tmp_path, "plain", **stages)))
    saving = final_weights(train(tiny_config(tmp_path, "saving", model=replace(TINY, memory_saving=True), **stages)))
    assert plain.keys() == saving.keys()
    for name, value in plain.items():
        torch.testing.assert_close(saving[name], value, rtol=1e-4, atol=1e-5, msg=name)


class _EpochTagged(Dataset):
    """Six items that say which index and epoch they were read in."""

    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> dict:
        return {"blurry": torch.tensor([index, self.epoch]), "sharp": torch.zeros(2)}


def test_the_batch_stream_resumes_mid_epoch_and_across_epochs(tmp_path):
    config = tiny_config(tmp_path, batch_size=2)
    accelerator = Accelerator()
    raw = training_loader(_EpochTagged(), config)
    loader = accelerator.prepare(raw)

    def batches(start: int, count: int) -> list[list[tuple[int, int]]]:
        stream = batch_stream(accelerator, loader, raw.sampler, start)
        return [[tuple(row) for row in next(stream)["blurry"].tolist()] for _ in range(count)]

    full = batches(0, 9)  # three epochs of three batches
    for epoch in range(3):
        seen = [item for batch in full[3 * epoch : 3 * epoch + 3] for item in batch]
        assert sorted(seen) == [(index, epoch) for index in range(6)]
    assert [i for i, _ in sum(full[:3], [])] != [i for i, _ in sum(full[3:6], [])], "each epoch has its own order"
    assert batches(4, 5) == full[4:]
    assert batches(3, 6) == full[3:]


class _Poisoned(Dataset):
    """A dataset with one item's blurry image made NaN."""

    def __init__(self, dataset: Dataset, bad_index: int):
        self.dataset, self.bad_index = dataset, bad_index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        if index == self.bad_index:
            item["blurry"] = torch.full_like(item["blurry"], float("nan"))
        return item


@pytest.mark.parametrize("optimizer", ["adamax", "adam"])
def test_a_nan_batch_is_skipped_counted_and_logged_and_training_goes_on(tmp_path, caplog, optimizer):
    """Adamax skips on the guard's answer read back, fused Adam on the device; both count and log it alike."""
    config = tiny_config(tmp_path, stage_steps=(3, 1, 1, 0), logging_steps=2, optimizer=optimizer)
    train_set, val_set = load_datasets(config)
    second_batch = list(EpochSampler(train_set, config.seed))[config.batch_size]
    with caplog.at_level(logging.INFO, logger="flowdeblur"):
        path = train(config, datasets=(_Poisoned(train_set, second_batch), val_set))
    model = WaveletUNetFlow.from_pretrained(path)
    assert model.metadata["skipped_steps"] == 1
    assert model.metadata["stages"]["mlr"]["skipped_steps"] == 1
    assert math.isfinite(model.metadata["stages"]["mlr"]["loss"])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    skipped = [r.getMessage() for r in caplog.records if "update(s) skipped" in r.getMessage()]
    assert [message.split("] ", 1)[-1] for message in skipped] == [
        "steps 1-2 (stage 1): 1 update(s) skipped, loss or gradients not finite on at least one process "
        "(1 skipped so far)"
    ]
    assert "1 skipped steps" in next(r.getMessage() for r in caplog.records if "(mlr) done" in r.getMessage())


def test_report_to_tensorboard_logs_steps_and_validations(tmp_path):
    event_processing = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    train(tiny_config(tmp_path, stage_steps=(1, 1, 1, 0), report_to="tensorboard"))
    events = event_processing.EventAccumulator(str(tmp_path / "run" / "logs" / "flowdeblur"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/bpd_blur", "train/lr", "train/grad_norm", "val/psnr", "val/blurry_psnr"} <= tags
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 3]


JOINT = dict(stage_steps=(0, 0, 0, 5), logging_steps=100)


@pytest.mark.parametrize(("optimizer", "reads"), [("adam", 0), ("adamax", 1)])
def test_a_joint_stage_step_reads_from_the_device_only_the_guard_answer_adamax_needs(tmp_path, monkeypatch,
                                                                                    optimizer, reads):
    """Fused Adam takes the non-finite guard's answer on the device, so a step after the first (which starts the
    optimiser's state) reads nothing back (no sync on a GPU); Adamax reads that one answer. Losses wait for logging."""
    reads_per_step: list[int] = []
    step = trainer_module._Training._step

    def counted_step(self, bundle):
        recorded = count_host_reads(monkeypatch)
        out = step(self, bundle)
        reads_per_step.append(len(recorded))
        monkeypatch.undo()  # the counting patches, and this one: put it back for the next step
        monkeypatch.setattr(trainer_module._Training, "_step", counted_step)
        return out

    monkeypatch.setattr(trainer_module._Training, "_step", counted_step)
    train(tiny_config(tmp_path, optimizer=optimizer, **JOINT))
    assert len(reads_per_step) == 5 and reads_per_step[1:] == [reads] * 4


def test_a_step_the_guard_skips_leaves_fused_adam_weights_moments_and_count_as_they_were():
    accelerator = Accelerator(cpu=True)
    layer = torch.nn.Linear(3, 2)
    optimizer = accelerator.prepare(stage_optimizer(layer.parameters(), 0.1, "adam"))
    assert optimizer.optimizer.defaults["fused"]
    layer(torch.ones(1, 3)).sum().backward()
    guarded_step(accelerator, optimizer, [torch.tensor(1.0)], torch.tensor(1.0))
    before = copy.deepcopy((layer.state_dict(), optimizer.state_dict()))
    layer(torch.full((1, 3), float("nan"))).sum().backward()
    skipped = guarded_step(accelerator, optimizer, [torch.tensor(float("nan"))], torch.tensor(float("nan")))
    assert skipped.item() == 1.0 and "found_inf" not in vars(optimizer.optimizer)
    after = (layer.state_dict(), optimizer.state_dict())
    assert all(torch.equal(before[0][name], after[0][name]) for name in after[0])
    for name, value in after[1]["state"][0].items():
        assert torch.equal(before[1]["state"][0][name], value), name


def test_a_joint_stage_trains_every_parameter_of_every_preset():
    """Where every scheduled stage trains every part, the distributed wrapper skips the unused-parameter search:
    each parameter must then get a gradient."""
    assert STAGES[3].trains_every_part and not any(stage.trains_every_part for stage in STAGES[:3])
    for preset in PRESETS.values():
        torch.manual_seed(0)
        model = WaveletUNetFlow(replace(preset, levels=2, hidden_channels=4, transfer_hidden_channels=4))
        blurry, sharp = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
        model.initialize(blurry, sharp)
        objective = StageObjective(model, Objectives())
        objective.stage = STAGES[3]
        objective(blurry, sharp)["loss"].backward()
        assert all(parameter.grad is not None for parameter in model.parameters())


@pytest.fixture
def tf32_policy_restored():
    yield
    set_tf32(False)


@pytest.mark.parametrize("tf32", [False, True])
def test_the_flows_float32_parts_run_without_tf32_whatever_the_policy(tmp_path, monkeypatch, tf32,
                                                                     tf32_policy_restored):
    """Every convolution records the TF32 policy it ran under: the Haar transform's (2x2 filters, stride 2) and
    the 1x1 convolutions' (no bias) never see TF32; the coupling subnets see the run's --tf32."""
    seen: list[tuple[bool, bool]] = []
    for name in ("conv2d", "conv_transpose2d"):
        original = getattr(torch.nn.functional, name)

        def recording(x, weight, bias=None, *args, _original=original, **kwargs):
            invertible = bias is None and weight.shape[-1] <= 2
            seen.append((invertible, tf32_enabled()))
            return _original(x, weight, bias, *args, **kwargs)

        monkeypatch.setattr(torch.nn.functional, name, recording)
    path = train(tiny_config(tmp_path, stage_steps=(0, 0, 0, 1), tf32=tf32))
    assert {enabled for invertible, enabled in seen if invertible} == {False}
    assert {enabled for invertible, enabled in seen if not invertible} == {tf32}
    assert WaveletUNetFlow.from_pretrained(path).metadata["tf32"] is tf32
    assert torch.backends.cudnn.allow_tf32 is tf32  # the legacy switch still answers (torch.export reads it)


def test_resuming_under_another_global_batch_is_refused_unless_allowed(tmp_path, caplog):
    first = tiny_config(tmp_path, stage_steps=(0, 0, 0, 4), checkpointing_steps=2)
    train(first)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    bigger = replace(first, batch_size=4, resume_from_checkpoint=str(first.output_dir / "checkpoints" / "checkpoint-2"))
    with pytest.raises(TrainConfigError, match=r"1 process\(es\) x --batch-size 2 x --gradient-accumulation-steps 1 "
                       r"= 2 images per step, not 1 x 4 x 1 = 4: .*--allow-resume-batch-change"):
        train(replace(bigger, output_dir=tmp_path / "other"))
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    starts = []
    start_of = trainer_module._Training._data_start
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module._Training, "_data_start", lambda self, saved: starts.append(
            start_of(self, saved)) or starts[-1])
        train(replace(bigger, output_dir=tmp_path / "other", allow_resume_batch_change=True))
    assert starts == [1]  # 2 steps x 2 images read: the first batch of 4 not yet read is the second


def test_the_recorded_validation_is_that_of_the_saved_model_after_fused_adam_steps(tmp_path):
    """Fused Adam writes weights without bumping version counters: no cache of derived weights (the 1x1
    convolutions' inverses, the fast path's phase kernels) may outlive a step, or training and the saved model
    compute different functions."""
    config = tiny_config(tmp_path, stage_steps=(0, 0, 0, 3), optimizer="adam", learning_rates=(3e-2,) * 4,
                         validation_steps=1, warmup_steps=0)
    datasets = load_datasets(config)
    model = WaveletUNetFlow.from_pretrained(train(config, datasets))
    accelerator = Accelerator(cpu=True)
    scores = validate(accelerator, model, accelerator.prepare(DataLoader(datasets[1], batch_size=2)))
    assert scores["psnr"] == pytest.approx(model.metadata["validation"]["psnr"], abs=1e-4)
