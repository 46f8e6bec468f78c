"""flowdeblur export: the ONNX graph computes model.restore at sizes it was not exported at; the errors."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from flowdeblur import WaveletUNetFlow
from flowdeblur.cli import main
from tests.cli_helpers import save_tiny_model
from tests.data_fixtures import pattern
from tests.test_docs import python_blocks

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# the export traces a batch of 2 at (3 * 2^L + 1) x (4 * 2^L + 3); neither size here, and 37 x 53 is no multiple of 2^L
SIZES = [(40, 56), (37, 53)]
TOLERANCE = 1e-3


def export(*args: str) -> object:
    return CliRunner().invoke(main, ["export", *args])


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, str]:
    """A tiny Y model's directory, the ONNX file ``flowdeblur export`` wrote from it, and what the command printed."""
    root = tmp_path_factory.mktemp("export")
    model_dir = save_tiny_model(root / "tiny")
    result = export("--model", str(model_dir), "-o", str(root / "tiny.onnx"))
    assert result.exit_code == 0, result.output
    return model_dir, root / "tiny.onnx", result.output


def run_graph(path: Path, working: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": working.numpy()})
    return out


def check_graph_matches_restore(model_dir: Path | str, path: Path, size: tuple[int, int]) -> None:
    """The graph at ``path`` and ``model.restore`` agree on a random batch of ``size``, which the model changes."""
    model = WaveletUNetFlow.from_pretrained(model_dir)
    working = torch.rand(2, model.config.channels, *size, generator=torch.Generator().manual_seed(sum(size)))
    with torch.no_grad():
        expected = model.restore(working).numpy()
    assert np.abs(expected - working.numpy()).max() > 10 * TOLERANCE  # the comparison below can tell them apart
    out = run_graph(path, working)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("size", SIZES)
def test_graph_of_a_small_model_matches_restore(exported, size):
    model_dir, path, _ = exported
    check_graph_matches_restore(model_dir, path, size)


@pytest.mark.slow
def test_graph_of_the_general_model_matches_restore(tmp_path):
    path = tmp_path / "general.onnx"
    assert export("--model", "general", "-o", str(path)).exit_code == 0
    for size in SIZES:
        check_graph_matches_restore("general", path, size)


def test_export_says_what_it_wrote_and_leaves_no_temporary_file(exported):
    _, path, output = exported
    assert f"wrote {path} (" in output and "ONNX opset 18" in output
    assert "input  'input': float32 (batch, 1, height, width), Y (BT.601 luma" in output
    assert "height and width 4 or more" in output
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny", "tiny.onnx"]


def test_graph_names_its_channels_in_its_metadata(exported):
    _, path, _ = exported
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert (metadata["flowdeblur.color"], metadata["flowdeblur.levels"]) == ("y", "2")
    assert [(i.name, i.shape[1]) for i in session.get_inputs()] == [("input", 1)]


def test_docs_onnxruntime_example_deblurs_a_photo_as_the_model_does(exported, tmp_path, monkeypatch):
    model_dir, path, _ = exported
    (block,) = [b for b in python_blocks("cli.md") if "onnxruntime" in b]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "general.onnx").write_bytes(path.read_bytes())
    smooth = np.asarray(Image.fromarray(pattern(1, 12, 16)).resize((52, 44), Image.BICUBIC))
    Image.fromarray(smooth).save("photo.jpg", quality=95)
    exec(compile(block, "docs/cli.md", "exec"), {})
    written = np.asarray(Image.open("photo-sharp.png"), dtype=np.float64) / 255
    photo = torch.from_numpy(np.asarray(Image.open("photo.jpg"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = WaveletUNetFlow.from_pretrained(model_dir)(photo)[0].permute(1, 2, 0).numpy()
    assert np.abs(expected - photo[0].permute(1, 2, 0).numpy()).max() > 0.1
    assert np.abs(written - expected).max() < 1 / 255  # the example rounds to 8 bits


def test_docs_example_refuses_a_photo_smaller_than_the_graph_takes(exported, tmp_path, monkeypatch):
    _, path, _ = exported
    (block,) = [b for b in python_blocks("cli.md") if "onnxruntime" in b]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "general.onnx").write_bytes(path.read_bytes())
    Image.fromarray(pattern(2, 3, 40)).save("photo.jpg")
    with pytest.raises(SystemExit, match="photo.jpg is 40 x 3; this model needs sides of 4 pixels or more"):
        exec(compile(block, "docs/cli.md", "exec"), {})


def test_missing_onnx_is_one_error_naming_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed: importing it raises ImportError
    result = export("-o", str(tmp_path / "model.onnx"))
    assert result.exit_code == 1
    assert result.output == ('Error: exporting to ONNX needs the package(s) onnxscript: '
                             'pip install "flowdeblur[onnx]"\n')
    assert not list(tmp_path.iterdir())


def test_bad_output_and_model_are_one_error_each(tmp_path):
    result = export("-o", str(tmp_path))
    assert result.exit_code == 2 and "--output" in result.output
    result = export("--model", str(tmp_path / "nowhere"), "-o", str(tmp_path / "model.onnx"))
    assert result.exit_code == 1 and "--model: model " in result.output and "does not exist" in result.output
    result = export("--opset", "12", "-o", str(tmp_path / "model.onnx"))
    assert result.exit_code == 2 and "--opset" in result.output


def test_a_write_that_fails_halfway_leaves_an_existing_file_whole(tmp_path, monkeypatch):
    model_dir = save_tiny_model(tmp_path / "tiny")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the previous export")

    class HalfWritten:
        model = SimpleNamespace(metadata_props={}, opset_imports={"": 18})

        def save(self, path, **kwargs):
            Path(path).write_bytes(b"half a graph")
            raise OSError("No space left on device")

    monkeypatch.setattr(torch.export, "export", lambda *args, **kwargs: None)
    monkeypatch.setattr(torch.onnx, "export", lambda *args, **kwargs: HalfWritten())
    result = export("--model", str(model_dir), "-o", str(target))
    assert isinstance(result.exception, OSError)
    assert target.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "tiny"]
