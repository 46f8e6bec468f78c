"""Models by Hub id from a populated Hub cache (offline), the card written beside the weights, and push_to_hub."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from huggingface_hub import ModelCard, constants
from PIL import Image

import flowdeblur.model_format as model_format
from flowdeblur import CheckpointError, UMLINConfig, WaveletUNetFlow
from flowdeblur.cli import main
from flowdeblur.model_card import model_card
from flowdeblur.train.cli import build_parser, config_from_args
from tests.cli_helpers import TINY, run_command, save_tiny_model

REPO_ID = "flowdeblur-tests/tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def populate_cache(cache: Path, repo_id: str, source: Path) -> Path:
    """Lay ``source``'s files out as huggingface_hub's cache holds a downloaded repository: content-addressed blobs,
    a snapshot of links to them, and ``refs/main`` naming the snapshot's commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in source.iterdir():
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        blob.write_bytes(file.read_bytes())
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture
def offline_cache(saved, tmp_path, monkeypatch):
    """A Hub cache holding REPO_ID, with huggingface_hub offline and pointed at it (as HF_HUB_OFFLINE=1 and
    HF_HUB_CACHE do when set before it is imported)."""
    cache = tmp_path / "hub"
    populate_cache(cache, REPO_ID, saved)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_a_hub_id_loads_from_the_offline_cache_as_the_directory_does(saved, offline_cache):
    from_hub, local = WaveletUNetFlow.from_pretrained(REPO_ID), WaveletUNetFlow.from_pretrained(saved)
    assert from_hub.directory == offline_cache / f"models--{REPO_ID.replace('/', '--')}" / "snapshots" / COMMIT
    assert from_hub.config == local.config and from_hub.metadata == local.metadata
    image = torch.rand(2, 1, 24, 40, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(from_hub.restore(image), local.restore(image))


def test_a_hub_id_on_the_command_line_gives_the_directory_s_output(saved, offline_cache, tmp_path):
    source = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(source)
    outputs = []
    for model in (REPO_ID, str(saved)):
        output = tmp_path / model.replace("/", "_")
        result = CliRunner().invoke(main, ["deblur", str(source), "-o", str(output), "--model", model, "--no-progress"])
        assert result.exit_code == 0, result.output
        outputs.append((output / "in.png").read_bytes())
    assert outputs[0] == outputs[1]
    info = CliRunner().invoke(main, ["info", "--model", REPO_ID])
    assert info.exit_code == 0 and f"model: {offline_cache}" in info.output


def test_init_from_takes_a_hub_id(offline_cache, tmp_path):
    argv = ["--init-from", REPO_ID, "--output-dir", str(tmp_path / "out")]
    config = config_from_args(build_parser("", dataset="builtin").parse_args(argv))
    assert config.init_from == REPO_ID and config.model.hidden_channels == TINY["hidden_channels"]


@pytest.mark.slow
def test_a_new_user_s_environment_variables_reach_the_real_command(saved, tmp_path):
    populate_cache(tmp_path / "hub", REPO_ID, saved)
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    result = run_command("info", "--model", REPO_ID, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert f"model: {tmp_path / 'hub'}" in result.stdout and "hidden_channels" in result.stdout


@pytest.mark.parametrize(("model", "message"), [
    ("flowdeblur-tests/missing", "model flowdeblur-tests/missing is not a directory or a shipped model (general, "
                                 "gauss3); as a Hub id it is not in the Hub cache"),
    ("runs/a/model", "model runs/a/model does not exist: it is neither a directory, nor a shipped model (general, "
                     "gauss3), nor a Hub id"),
])
def test_a_model_that_is_nowhere_is_one_line(offline_cache, tmp_path, monkeypatch, model, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        WaveletUNetFlow.from_pretrained(model)
    result = CliRunner().invoke(main, ["info", "--model", model])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    if "missing" in model:
        assert "HF_HUB_OFFLINE is set" in result.stderr


def test_config_json_is_parsed_once_per_load(saved, monkeypatch):
    calls = []
    parse = json.loads
    monkeypatch.setattr(model_format.json, "loads", lambda text, **kw: calls.append(1) or parse(text, **kw))
    WaveletUNetFlow.from_pretrained(saved)
    assert len(calls) == 1


def test_the_card_beside_the_weights_follows_the_hub_layout(saved):
    card = ModelCard.load(saved / "README.md")
    assert card.data.license == "mit" and card.data.library_name == "flowdeblur"
    assert card.data.pipeline_tag == "image-to-image"
    weights = hashlib.sha256((saved / "model.safetensors").read_bytes()).hexdigest()
    for section in ("## Intended use", "## Training data", "## Metrics", "## How to use", weights):
        assert section in card.text


def test_a_trained_model_s_card_names_its_data_and_scores():
    model = WaveletUNetFlow.from_pretrained("general")
    card = (model.directory / "README.md").read_text()
    assert "astronaut, camera" in card and "ColdRipple.png" in card and "mixture blur" in card
    validation = model.metadata["validation"]  # the card's scores are the model's own recorded ones
    assert f"| PSNR (dB) | {validation['blurry_psnr']:.2f} | {validation['psnr']:.2f} |" in card
    assert "--model general" in card


def test_a_fine_tuned_model_s_card_names_the_model_it_started_from(tmp_path):
    metadata = {"train_config": {"optimizer": "adam", "batch_size": 16, "init_from": "general"},
                "stage_steps": {"joint": 10}, "seed": 0}
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    card = model_card(UMLINConfig(), metadata, parameters=1, name="tuned", weights=tmp_path / "model.safetensors")
    assert "Stages: joint 10 steps; optimiser adam; batch 16; seed 0; fine-tuned from general." in card


def test_push_to_hub_uploads_the_saved_directory_with_its_card(saved, monkeypatch):
    from huggingface_hub import HfApi, RepoUrl

    uploaded = {}

    def upload_folder(self, *, repo_id, folder_path, **options):
        uploaded.update({path.name: path.read_bytes() for path in Path(folder_path).iterdir()}, repo=repo_id)
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **options: RepoUrl(
        f"https://huggingface.co/{repo_id}"))
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = WaveletUNetFlow.from_pretrained(saved).push_to_hub("someone/deblur")
    assert url == "https://huggingface.co/someone/deblur/commit/abc" and uploaded["repo"] == "someone/deblur"
    assert uploaded["model.safetensors"] == (saved / "model.safetensors").read_bytes()
    assert b"--model someone/deblur" in uploaded["README.md"] and b'"format"' in uploaded["config.json"]
