"""Model directories and configs are checked field by field and against the weights, each problem one short error."""

import json
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from flowdeblur import CheckpointError, UMLINConfig, WaveletUNetFlow
from flowdeblur.cli import main
from flowdeblur.fields import check_fields
from tests.cli_helpers import TINY, save_tiny_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def edited(saved, tmp_path, **changes):
    """A copy of the saved model with config.json's top-level entries (or its "config" entries) changed."""
    directory = tmp_path / "edited"
    directory.mkdir()
    (directory / "model.safetensors").write_bytes((saved / "model.safetensors").read_bytes())
    header = json.loads((saved / "config.json").read_text())
    for key, value in changes.items():
        (header if key == "metadata" else header["config"])[key] = value
    (directory / "config.json").write_text(json.dumps(header))
    return directory


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"levels": "3"}, "UMLINConfig.levels must be an integer, got '3'"),
        ({"levels": 3.0}, "UMLINConfig.levels must be an integer, got 3.0"),
        ({"levels": True}, "UMLINConfig.levels must be an integer, got True"),
        ({"metadata": 5}, "'metadata' must be a JSON object, got 5"),
        ({"clamp": math.nan}, "UMLINConfig.clamp must be a finite number, got nan"),
        ({"color": "cmyk"}, "UMLINConfig.color must be one of 'y', 'rgb', got 'cmyk'"),
        ({"clamp": 1e308}, "UMLINConfig.clamp must lie in (0, 20], got 1e+308"),
        ({"levels": 100000}, "UMLINConfig.levels must be from 1 to 16, got 100000"),
        ({"hidden_channels": 10**12}, "UMLINConfig.hidden_channels must be from 1 to 4096, got 1000000000000"),
        ({"hidden_channels": 4096, "steps": 64}, "parameters, more than the 1,000,000,000"),
    ],
)
def test_a_bad_config_is_one_line_before_anything_is_allocated(saved, tmp_path, changes, message):
    directory = edited(saved, tmp_path, **changes)
    with pytest.raises(CheckpointError) as raised:
        WaveletUNetFlow.from_pretrained(directory)
    assert message in str(raised.value)
    result = CliRunner().invoke(main, ["info", "--model", str(directory)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.output


def test_weights_of_another_architecture_are_summed_up_in_a_few_lines(saved, tmp_path):
    WaveletUNetFlow(UMLINConfig(**{**TINY, "levels": 3, "hidden_channels": 4})).save_pretrained(tmp_path / "other")
    directory = edited(saved, tmp_path)
    (directory / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    result = CliRunner().invoke(main, ["info", "--model", str(directory)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert "do not fit the architecture in" in lines[0] and len(lines) == 3
    assert lines[1].startswith("  ") and " unexpected: flows.blur.2." in lines[1] and "more" in lines[1]
    assert " of another shape: " in lines[2] and "(4 in the file, 8 expected)" in lines[2]


def test_field_checks_follow_the_annotations_so_new_fields_are_checked_too():
    @dataclass(frozen=True)
    class Settings:
        size: tuple[int, ...] = (1, 2)
        pair: tuple[int, float] = (1, 2.0)
        rate: float = 0.5
        name: Literal["a", "b"] = "a"
        label: str = "x"
        flag: bool = False
        limit: int | None = None

        def __post_init__(self):
            check_fields(self)

    settings = Settings(size=[3, 4, 5], pair=[1, 2], rate=1, limit=7)
    assert settings.size == (3, 4, 5) and settings.pair == (1, 2.0) and isinstance(settings.rate, float)
    for changes, message in [
        ({"size": [1, "2"]}, "Settings.size must be a list of integers, got [1, '2']"),
        ({"size": 3}, "Settings.size must be a list of integers, got 3"),
        ({"pair": [1]}, "Settings.pair must be a list of 2: an integer, a finite number, got [1]"),
        ({"rate": math.inf}, "Settings.rate must be a finite number, got inf"),
        ({"rate": "0.5"}, "Settings.rate must be a finite number, got '0.5'"),
        ({"name": "c"}, "Settings.name must be one of 'a', 'b', got 'c'"),
        ({"label": 5}, "Settings.label must be a string, got 5"),
        ({"flag": 1}, "Settings.flag must be true or false, got 1"),
        ({"limit": 2.5}, "Settings.limit must be an integer or null, got 2.5"),
    ]:
        with pytest.raises(ValueError) as raised:
            Settings(**changes)
        assert str(raised.value) == message


def test_umlin_config_json_round_trip_keeps_types():
    config = UMLINConfig.from_dict(json.loads(json.dumps({**TINY, "clamp": 2})))
    assert config.clamp == 2.0 and isinstance(config.clamp, float)
    assert UMLINConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(("text", "message"), [
    ('{"format": "flowdeblur.WaveletUNetFlow", "config": {"levels": ' + "9" * 5000 + "}}", "is not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_a_config_json_python_cannot_parse_is_one_line(saved, tmp_path, text, message):
    directory = edited(saved, tmp_path)
    (directory / "config.json").write_text(text)
    result = CliRunner().invoke(main, ["info", "--model", str(directory)])
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output


def test_a_model_with_a_weight_that_is_not_finite_is_refused_before_anything_is_written(saved, tmp_path):
    model = WaveletUNetFlow.from_pretrained(saved)
    name = next(name for name, tensor in model.state_dict().items() if tensor.is_floating_point())
    with torch.no_grad():
        model.state_dict()[name].view(-1)[0] = math.inf
    model.save_pretrained(tmp_path / "inf")
    with pytest.raises(CheckpointError, match=f"{name} holds inf or nan"):
        WaveletUNetFlow.from_pretrained(tmp_path / "inf")
    image = tmp_path / "in.png"
    Image.fromarray(np.full((20, 20, 3), 128, dtype=np.uint8)).save(image)
    result = CliRunner().invoke(main, ["deblur", str(image), "-o", str(tmp_path / "out"), "--model",
                                       str(tmp_path / "inf"), "--no-progress"])
    assert result.exit_code == 1 and "not finite" in result.stderr and not (tmp_path / "out").exists()


def test_finite_weights_whose_output_overflows_write_nothing(saved, tmp_path):
    model = WaveletUNetFlow.from_pretrained(saved)
    with torch.no_grad():  # exp(-200) in the sharp branch's inverse ActNorm: every output pixel overflows
        for name, tensor in model.state_dict().items():
            if name.startswith("flows.sharp") and name.endswith("log_scale"):
                tensor.fill_(-200.0)
    model.save_pretrained(tmp_path / "overflow")
    image = tmp_path / "in.png"
    Image.fromarray(np.full((20, 20, 3), 128, dtype=np.uint8)).save(image)
    result = CliRunner().invoke(main, ["deblur", str(image), "-o", str(tmp_path / "out"), "--model",
                                       str(tmp_path / "overflow"), "--no-progress"])
    assert result.exit_code == 1 and "output is not finite" in result.stderr
    assert not list((tmp_path / "out").glob("*.png"))
    scored = CliRunner().invoke(main, ["eval", "--model", str(tmp_path / "overflow"), "--json",
                                       str(tmp_path / "scores.json"), "--no-progress"])
    assert scored.exit_code == 1 and "is not finite" in scored.stderr and not (tmp_path / "scores.json").exists()
