"""atomic_write: the old file or the whole new one, never half of it, and no temporary file left behind."""

import os
import stat

import pytest

from flowdeblur import UMLINConfig, WaveletUNetFlow
from flowdeblur.atomic import atomic_write


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "scores.json"
    atomic_write(path, lambda tmp: tmp.write_text("old", encoding="utf-8"))

    def fail(tmp):
        tmp.write_text("half", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_text(encoding="utf-8") == "old" and os.listdir(path.parent) == ["scores.json"]


def _recreate(tmp):
    """A writer that replaces the file it is given, as safetensors' save_file does: the new file is 0600."""
    tmp.unlink()
    os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600))


@pytest.mark.parametrize("write", [lambda tmp: tmp.write_text("<p>", encoding="utf-8"), _recreate])
def test_the_file_is_as_readable_as_any_other(tmp_path, write):
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "page.html", write)
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "page.html").stat().st_mode) == 0o644


def test_saved_weights_are_as_readable_as_any_other(tmp_path):
    umask = os.umask(0o022)
    try:
        WaveletUNetFlow(UMLINConfig(levels=1, steps=1, hidden_channels=4)).save_pretrained(tmp_path / "model")
    finally:
        os.umask(umask)
    assert {stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "model").iterdir()} == {0o644}
