"""Real 2-process training on CPU through Accelerate's launcher (torchrun underneath, gloo between processes).

Accelerate 1.x starts a single process for ``accelerate launch --cpu --num_processes 2`` (its multi-CPU path
needs MPI), so these runs use ``--multi_gpu`` with ``ACCELERATE_USE_CPU=1``: two CPU processes, one process group.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flowdeblur import WaveletUNetFlow
from flowdeblur.data import build_dataset
from flowdeblur.train.loaders import EpochSampler
from flowdeblur.train.trainer import CPU_PROCESSES_COMMAND, cpu_launch_fell_back_to_one_process, weight_digest
from tests.data_fixtures import make_paired, truncate

REPO = Path(__file__).resolve().parent.parent
TINY_FLAGS = [
    "--levels", "2", "--steps", "1", "--hidden-channels", "8", "--transfer-hidden-channels", "8",
    "--transfer-blocks", "1", "--batch-size", "2", "--crop-size", "32", "--num-workers", "0", "--warmup-steps", "1",
]


def accelerate_launch(script: Path, *args: str, succeeds: bool = True) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", "0", str(script), *args,
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert (result.returncode == 0) == succeeds, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def launch_lsun_recipe(output_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return accelerate_launch(
        REPO / "recipes" / "train_lsun.py", "--dataset", "builtin", *TINY_FLAGS, "--schedule", "paper",
        "--stage1-steps", "2", "--stage2-steps", "2", "--stage3-steps", "2", "--validation-images", "3",
        "--checkpointing-steps", "3", "--output-dir", str(output_dir), *args,
    )


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("two-processes")
    return output_dir, launch_lsun_recipe(output_dir).stderr


@pytest.mark.slow
def test_two_processes_train_all_three_stages_and_end_with_the_same_weights(two_process_run):
    output_dir, log = two_process_run
    assert "training on 2 process(es)" in log
    assert "stage 1/4 (mlr) done: 2 steps" in log and "bits/dim" in log
    assert "stage 2/4 (transfer) done: 2 steps" in log and "stage 3/4 (ssim) done: 2 steps" in log
    assert log.count("images/s") == 3 and "on 3 images" in log  # gathered once each, without padding
    model = WaveletUNetFlow.from_pretrained(output_dir / "model")
    metadata = model.metadata
    assert metadata["processes"] == 2
    assert metadata["weight_digests"] == [weight_digest(model)] * 2
    assert metadata["stage_steps"] == {"mlr": 2, "transfer": 2, "ssim": 2, "joint": 0}
    assert metadata["validation"]["images"] == 3 and metadata["dataset"]["dataset"] == "builtin"
    checkpoint = output_dir / "checkpoints" / "checkpoint-3"
    assert {"random_states_0.pkl", "random_states_1.pkl", "model.safetensors"} <= {p.name for p in checkpoint.iterdir()}


@pytest.mark.slow
def test_two_processes_resume_mid_stage_to_the_same_weights(two_process_run, tmp_path):
    output_dir, _ = two_process_run
    uninterrupted = WaveletUNetFlow.from_pretrained(output_dir / "model").state_dict()
    checkpoint = output_dir / "checkpoints" / "checkpoint-3"  # stage 2, step 1 of 2
    log = launch_lsun_recipe(tmp_path, "--resume-from-checkpoint", str(checkpoint)).stderr
    assert "resumed from" in log and "stage 2/4 (transfer), step 1 of 2 (global step 3)" in log
    resumed = WaveletUNetFlow.from_pretrained(tmp_path / "model")
    assert resumed.metadata["weight_digests"] == [weight_digest(resumed)] * 2
    for name, tensor in resumed.state_dict().items():
        torch.testing.assert_close(tensor, uninterrupted[name], rtol=0, atol=1e-6, msg=name)


POISONED_RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch

    from flowdeblur import UMLINConfig
    from flowdeblur.train import TrainConfig, train
    from flowdeblur.train.loaders import EpochSampler, load_datasets

    config = TrainConfig(
        output_dir=Path(sys.argv[1]), stage_steps=(3, 1, 1, 0), batch_size=2, crop_size=32, num_workers=0,
        warmup_steps=1, checkpointing_steps=0, validation_steps=0, validation_images=2, optimizer=sys.argv[2],
        model=UMLINConfig(levels=2, steps=1, hidden_channels=8, transfer_hidden_channels=8, transfer_blocks=1),
    )
    train_set, val_set = load_datasets(config)
    # Global batch 3 of epoch 0 is the second batch of process 1 only: step 2 is bad on one process.
    bad = list(EpochSampler(train_set, config.seed))[3 * config.batch_size]


    class Poisoned(torch.utils.data.Dataset):
        def __len__(self):
            return len(train_set)

        def __getitem__(self, index):
            item = dict(train_set[index])
            if index == bad:
                item["blurry"] = torch.full_like(item["blurry"], float("nan"))
            return item


    train(config, datasets=(Poisoned(), val_set))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamax", "adam"])
def test_a_nan_batch_on_one_process_is_skipped_by_both(tmp_path, optimizer):
    """Adamax skips on the all-reduced answer read back, fused Adam on the device."""
    script = tmp_path / "poisoned_run.py"
    script.write_text(POISONED_RUN, encoding="utf-8")
    result = accelerate_launch(script, str(tmp_path / "run"), optimizer)
    assert "steps 1-3 (stage 1): 1 update(s) skipped, loss or gradients not finite" in result.stderr
    model = WaveletUNetFlow.from_pretrained(tmp_path / "run" / "model")
    assert model.metadata["skipped_steps"] == 1 and model.metadata["processes"] == 2
    assert model.metadata["weight_digests"] == [weight_digest(model)] * 2


INITIAL_WEIGHTS = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from safetensors.torch import save_file

    from flowdeblur import UMLINConfig
    from flowdeblur.train import TrainConfig, train
    from flowdeblur.train import trainer

    initialize = trainer._Training._initialize


    def initialize_then_stop(self, model, dataset):
        initialize(self, model, dataset)
        save_file(model.state_dict(), f"{sys.argv[1]}-{self.accelerator.process_index}.safetensors")
        raise SystemExit(0)


    trainer._Training._initialize = initialize_then_stop
    train(TrainConfig(
        output_dir=Path(sys.argv[1]), stage_steps=(0, 0, 0, 1), batch_size=int(sys.argv[2]), crop_size=32,
        num_workers=0, model=UMLINConfig(levels=2, steps=2, hidden_channels=8, transfer_hidden_channels=8),
    ))
    """
)


@pytest.mark.slow
def test_actnorm_starts_from_the_global_batch_whatever_the_process_count(tmp_path):
    script = tmp_path / "initial_weights.py"
    script.write_text(INITIAL_WEIGHTS, encoding="utf-8")
    accelerate_launch(script, str(tmp_path / "two"), "2")  # 2 processes x 2 images
    single = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), "4"], capture_output=True, text=True,
                            timeout=300, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr[-3000:]
    one = load_file(tmp_path / "one-0.safetensors")
    for rank in (0, 1):
        two = load_file(tmp_path / f"two-{rank}.safetensors")
        differences = {name: (two[name].double() - tensor.double()).abs().max().item() for name, tensor in one.items()}
        assert max(differences.values()) <= 1e-6, differences
        assert any(name.endswith("log_scale") and value.abs().max() > 0.1 for name, value in two.items())


ONE_OF_TWO = {"ACCELERATE_USE_CPU": "True", "ACCELERATE_DYNAMO_BACKEND": "NO", "MASTER_ADDR": "127.0.0.1"}


@pytest.mark.parametrize(("processes", "environment", "fell_back"), [
    (1, ONE_OF_TWO, True),  # accelerate launch --cpu --num_processes 2, without MPI
    (1, {**ONE_OF_TWO, "MASTER_ADDR": "10.0.0.1"}, True),  # --cpu --num_machines 2
    (1, {key: value for key, value in ONE_OF_TWO.items() if key != "MASTER_ADDR"}, False),  # --cpu, one process
    (1, {**ONE_OF_TWO, "ACCELERATE_USE_CPU": "False"}, False),
    (1, {"ACCELERATE_USE_CPU": "1", "MASTER_ADDR": "127.0.0.1"}, False),  # not started by accelerate launch
    (2, {**ONE_OF_TWO, "WORLD_SIZE": "2"}, False),  # --multi_gpu under ACCELERATE_USE_CPU=1: torchrun, 2 processes
    (1, {}, False),
])
def test_a_cpu_launch_that_starts_one_of_several_processes_is_recognised(processes, environment, fell_back):
    assert cpu_launch_fell_back_to_one_process(processes, environment) is fell_back


@pytest.mark.slow
def test_accelerate_launch_cpu_with_two_processes_warns_that_one_runs_and_names_the_working_command(tmp_path):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "recipes" / "train_builtin.py"), *TINY_FLAGS,
        "--stage4-steps", "1", "--validation-images", "2", "--checkpointing-steps", "0", "--output-dir", str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if CPU_PROCESSES_COMMAND in line]
    assert len(warnings) == 1 and "but 1 runs" in warnings[0]
    assert "training on 1 process(es)" in result.stderr


@pytest.mark.slow
def test_a_file_found_bad_by_the_second_process_alone_is_one_line_it_prints(tmp_path):
    """The first global batch is read by every process (ActNorm's start); process 1's second batch only by it."""
    root = make_paired(tmp_path / "pairs", count=20, size=(40, 48))
    train_set = build_dataset("paired", root, split="train", crop_size=32)
    bad = train_set.names[list(EpochSampler(train_set, 0))[3 * 2]]
    truncate(root / "sharp" / bad)
    result = accelerate_launch(
        REPO / "recipes" / "train_paired.py", "--data-dir", str(root), *TINY_FLAGS, "--stage4-steps", "3",
        "--validation-images", "1", "--output-dir", str(tmp_path / "run"), succeeds=False,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith(f"error (process 1): {root}: 1 unreadable images (sharp/{bad}")
