"""``flowdeblur eval``, ``demo`` and ``info``: the JSON numbers, the HTML report, the summary table."""

import base64
import io
import json
import re
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import flowdeblur.cli
import flowdeblur.demo
from flowdeblur import UMLINConfig, WaveletUNetFlow
from flowdeblur.cli import main
from flowdeblur.data import read_image
from flowdeblur.demo import demo_training_config
from flowdeblur.metrics import image_scores
from tests.cli_helpers import TINY, run_command, save_tiny_model
from tests.data_fixtures import make_paired, pattern, save, truncate

NAMES = ("a.png", "b.png", "c.png")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """root/test/{blur,sharp}/: three RGB pairs, the blurry one a box-blurred copy of the sharp one."""
    root = tmp_path_factory.mktemp("pairs")
    for seed, name in enumerate(NAMES):
        sharp = pattern(seed, 40, 48).astype(np.float64)
        blurry = sum(np.roll(sharp, shift, axis=(0, 1)) for shift in [(0, 0), (0, 1), (1, 0), (1, 1)]) / 4
        save(root / "test" / "sharp" / name, sharp.astype(np.uint8))
        save(root / "test" / "blur" / name, blurry.round().astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, model_dir, pairs):
    out = tmp_path_factory.mktemp("eval")
    result = CliRunner().invoke(main, [
        "eval", "--model", str(model_dir), "--dataset", "paired", "--data-dir", str(pairs), "--no-progress",
        "--json", str(out / "scores.json"), "--report", str(out / "report.html"), "--report-images", "2",
    ])
    return result, out


class Page(HTMLParser):
    """Collects image sources and the text of table cells."""

    def __init__(self):
        super().__init__()
        self.images, self.cells, self._in_cell = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in_cell = tag == "td"

    def handle_data(self, data):
        if self._in_cell and data.strip():
            self.cells.append(data.strip())


def test_eval_prints_the_summary_table_and_writes_json_and_report(evaluated):
    result, out = evaluated
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("3 images, split test,")
    assert [line.split()[:2] for line in lines[2:8]] == [
        ["Y", "blurry"], ["Y", "deblurred"], ["Y", "gain"], ["RGB", "blurry"], ["RGB", "deblurred"], ["RGB", "gain"]
    ]
    assert (out / "scores.json").is_file() and (out / "report.html").is_file()


def test_eval_json_holds_every_per_image_number(evaluated, pairs):
    document = json.loads((evaluated[1] / "scores.json").read_text())
    assert document["dataset"]["dataset"] == "paired" and document["dataset"]["split"] == "test"
    assert document["model_config"]["levels"] == 2 and "quantization" in document["protocol"]
    records = {record["name"]: record for record in document["images"]}
    assert sorted(records) == sorted(NAMES)
    for name, record in records.items():
        blurry, sharp = (read_image(pairs / "test" / folder / name)[None] for folder in ("blur", "sharp"))
        for space in ("y", "rgb"):
            expected = image_scores(blurry, sharp, space=space)
            for metric in ("psnr", "ssim", "mse"):
                assert record["blurry"][space][metric] == pytest.approx(float(expected[metric][0]), rel=1e-9)
                gain = record["deblurred"][space][metric] - record["blurry"][space][metric]
                assert record["gain"][space][metric] == pytest.approx(gain)
        assert [level["level"] for level in record["latents"]["sharp"]] == [1, 2]
        assert all(0 <= level["near_zero"] <= 1 for kind in record["latents"].values() for level in kind)
    summary = document["summary"]
    assert summary["images"] == 3
    mean_psnr = np.mean([record["deblurred"]["y"]["psnr"] for record in records.values()])
    assert summary["deblurred"]["y"]["psnr"] == pytest.approx(mean_psnr)


def test_report_is_self_contained_sorted_by_gain_and_its_images_decode(evaluated):
    document = json.loads((evaluated[1] / "scores.json").read_text())
    page = Page()
    page.feed((evaluated[1] / "report.html").read_text(encoding="utf-8"))
    by_gain = sorted(document["images"], key=lambda record: record["gain"]["y"]["psnr"], reverse=True)
    shown = [cell for cell in page.cells if cell in NAMES]
    assert shown == [record["name"] for record in by_gain]
    # two images with crops: 3 crops + 3 latent kinds x 2 levels each
    assert len(page.images) == 2 * (3 + 3 * 2)
    for source in page.images:
        assert source.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as image:
            image.verify()


def test_eval_on_a_flat_folder_scores_every_pair_and_speaks_in_flags(tmp_path, model_dir):
    flat = make_paired(tmp_path / "flat", count=4)
    truncate(flat / "sharp" / "img_003.jpg")
    common = ["eval", "--model", str(model_dir), "--dataset", "paired", "--data-dir", str(flat), "--no-progress"]
    refused = CliRunner().invoke(main, [*common, "--json", str(tmp_path / "refused.json")])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "1 unreadable images (sharp/img_003.jpg (" in refused.stderr and "pass --skip-bad to skip" in refused.stderr
    assert "skip_bad" not in refused.stderr and not (tmp_path / "refused.json").exists()
    skipped = CliRunner().invoke(main, [*common, "--skip-bad", "--json", str(tmp_path / "scores.json")])
    assert skipped.exit_code == 0, skipped.output
    assert skipped.stderr.startswith("warning: ") and "skipped 1 unreadable images" in skipped.stderr
    assert skipped.stdout.startswith("3 images, split all, scores averaged per image")
    document = json.loads((tmp_path / "scores.json").read_text())
    assert document["dataset"]["split"] == "all" and document["summary"]["split"] == "all"
    assert document["dataset"]["skipped"] == {"unreadable images": 1}
    too_large = CliRunner().invoke(main, [*common, "--skip-bad", "--crop-size", "64"])
    assert too_large.exit_code == 1 and "smaller than --crop-size 64" in too_large.stderr
    no_root = CliRunner().invoke(main, ["eval", "--model", str(model_dir), "--dataset", "gopro"])
    assert no_root.exit_code == 1 and "gopro needs --data-dir <its folder>" in no_root.stderr
    no_files = CliRunner().invoke(main, ["eval", "--model", str(model_dir), "--skip-bad"])
    assert no_files.exit_code == 2 and "--skip-bad applies to --dataset paired, gopro, lai, celeba" in no_files.stderr


def test_eval_on_a_missing_dataset_is_one_clear_error(tmp_path, model_dir):
    result = CliRunner().invoke(main, ["eval", "--model", str(model_dir), "--dataset", "gopro", "--data-dir",
                                       str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "nowhere" in result.stderr


def test_eval_with_a_data_dir_but_no_dataset_says_which_option_names_its_layout(tmp_path, model_dir):
    result = CliRunner().invoke(main, ["eval", "--model", str(model_dir), "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "takes no --data-dir; for a folder of images, give its layout with --dataset <paired|gopro" in result.stderr


@pytest.mark.parametrize("option", ["--json", "--report"])
@pytest.mark.parametrize("case", ["a folder", "under a file", "inside a link loop"])
def test_an_eval_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, option, case):
    (tmp_path / "notes.txt").write_text("a file")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    target, expected = {
        "a folder": (tmp_path, "is a directory"),
        "under a file": (tmp_path / "notes.txt" / "scores", "notes.txt is a file, not a folder"),
        "inside a link loop": (tmp_path / "loop" / "scores", "loop is a symbolic link that leads nowhere"),
    }[case]
    result = CliRunner().invoke(main, ["eval", "--model", str(tmp_path / "not-loaded"), option, str(target)])
    assert result.exit_code == 2 and expected in result.stderr and option in result.stderr


def test_info_explains_a_validation_psnr_below_the_input_s(tmp_path, model_dir):
    """A model validated on the mixture, whose sharp draws score 100 dB as input, can trail the input's mean PSNR."""
    from flowdeblur.model_info import validation_note

    model = WaveletUNetFlow.from_pretrained(model_dir)
    model.metadata = {"validation": {"psnr": 31.9, "blurry_psnr": 32.4, "mse": 0.002, "blurry_mse": 0.003},
                      "validation_dataset": {"blur": {"kind": "mixture", "probabilities": {"none": 0.15}}}}
    model.save_pretrained(tmp_path / "mixed")
    result = CliRunner().invoke(main, ["info", "--model", str(tmp_path / "mixed")])
    assert result.exit_code == 0 and "below the input's (32.40 dB)" in result.stdout
    assert "about 15% of the images\n  sharp, which score 100 dB" in result.stdout
    ahead = {**model.metadata, "validation": {"psnr": 33.0, "blurry_psnr": 32.4}}
    assert validation_note(ahead) is None  # the model ahead: nothing to explain


def test_info_shows_config_parameter_counts_and_training(model_dir):
    result = CliRunner().invoke(main, ["info", "--model", str(model_dir)])
    assert result.exit_code == 0, result.output
    assert "hidden_channels" in result.stdout and "random weights for tests" in result.stdout
    total = sum(parameter.numel() for parameter in WaveletUNetFlow.from_pretrained(model_dir).parameters())
    assert f"{total:,}" in result.stdout


def test_info_and_deblur_take_a_shared_codec_model(tmp_path):
    torch.manual_seed(0)
    model = WaveletUNetFlow(UMLINConfig(shared_codec=True, **TINY))
    model.save_pretrained(tmp_path / "shared")
    result = CliRunner().invoke(main, ["info", "--model", str(tmp_path / "shared")])
    assert result.exit_code == 0, result.output
    assert "flow.shared" in result.stdout and "flow.blur" not in result.stdout
    assert f"{model.parameter_counts()['total']:,}" in result.stdout
    image = save(tmp_path / "in.png", pattern(1, 20, 24))
    result = CliRunner().invoke(main, ["deblur", str(image), "-o", str(tmp_path / "out"), "--model",
                                       str(tmp_path / "shared"), "--no-progress"])
    assert result.exit_code == 0 and (tmp_path / "out" / "in.png").is_file()


def test_info_and_deblur_take_a_pyramid_model(tmp_path):
    torch.manual_seed(0)
    design = dict(transfer_net="pyramid", transfer_extra_levels=1, restore_lowpass=True, refine_channels=4)
    model = WaveletUNetFlow(UMLINConfig(**{**TINY, **design}))
    model.save_pretrained(tmp_path / "pyramid")
    result = CliRunner().invoke(main, ["info", "--model", str(tmp_path / "pyramid")])
    assert result.exit_code == 0, result.output
    counts = model.parameter_counts()
    for part in ("transfer", "refine"):  # parts that span the levels: a row of their own
        assert re.search(rf"^{part} +{counts[part]:,}$", result.stdout, re.MULTILINE), part
    image = save(tmp_path / "in.png", pattern(3, 37, 29))
    result = CliRunner().invoke(main, ["deblur", str(image), "-o", str(tmp_path / "out"), "--model",
                                       str(tmp_path / "pyramid"), "--tile", "16", "--tile-overlap", "4",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out" / "in.png").shape == (3, 37, 29)


@pytest.mark.parametrize("command", ["deblur", "eval", "demo", "info"])
def test_every_command_has_help_with_examples(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "Examples:" in result.stdout


@pytest.mark.slow
def test_demo_runs_as_a_real_command_and_prints_the_gain_and_report(tmp_path, model_dir):
    process = run_command("demo", "--model", str(model_dir), "--output-dir", "demo", cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    assert "Y   gain" in process.stdout and f"report: {tmp_path / 'demo' / 'report.html'}" in process.stdout
    written = sorted((tmp_path / "demo" / "deblurred").glob("*.png"))
    document = json.loads((tmp_path / "demo" / "scores.json").read_text())
    assert len(written) == len(document["images"]) == document["dataset"]["num_items"] > 0
    assert read_image(written[0]).shape == (3, 128, 128)


def test_demo_train_trains_a_model_then_evaluates_it(tmp_path, monkeypatch):
    def tiny_training(output_dir):
        return replace(demo_training_config(output_dir), model=UMLINConfig(**TINY), stage_steps=(2, 1, 1, 0),
                       crop_size=32, batch_size=2, warmup_steps=1, validation_images=2)

    evaluated = {}

    def evaluate_and_write(model, dataset, *args, **kwargs):
        evaluated.update(model=model, dataset=dataset.description)

    monkeypatch.setattr(flowdeblur.demo, "demo_training_config", tiny_training)
    monkeypatch.setattr(flowdeblur.cli, "_evaluate_and_write", evaluate_and_write)
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--train", "--output-dir", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"trained model: {out / 'training' / 'model'}" in result.stdout
    assert evaluated["model"].directory == out / "training" / "model"
    assert evaluated["model"].config == UMLINConfig(**TINY)
    assert evaluated["dataset"]["dataset"] == "builtin" and evaluated["dataset"]["split"] == "test"


def test_demo_train_with_a_model_is_a_usage_error(tmp_path, model_dir):
    result = CliRunner().invoke(main, ["demo", "--train", "--model", str(model_dir)])
    assert result.exit_code == 2 and "--train" in result.output


def test_auto_blur_is_the_blurred_part_of_the_model_s_own_training_mixture(tmp_path, monkeypatch):
    """gauss3 trains on the paper's blur with a fifth of the crops sharp: auto scores it on the paper's blur alone."""
    chosen = {}
    monkeypatch.setattr(flowdeblur.cli, "_evaluate_and_write",
                        lambda model, dataset, *args, **kwargs: chosen.update(dataset.description["blur"]))
    assert CliRunner().invoke(main, ["demo", "--model", "gauss3", "--output-dir", str(tmp_path)]).exit_code == 0
    assert chosen["probabilities"] == {"none": 0.0, "gaussian": 1.0, "defocus": 0.0, "motion": 0.0}
    assert chosen["gaussian_sigma"] == [1.0, 1.0] and chosen["gaussian_kernel_size"] == 3
    assert CliRunner().invoke(main, ["demo", "--output-dir", str(tmp_path)]).exit_code == 0
    assert chosen["probabilities"]["none"] == 0.0 and chosen["motion_length"] == [3.0, 20.0]  # general: mix-blurred
