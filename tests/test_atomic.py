"""atomic_write: the old file or the whole new one, never half of it, and no temporary file left behind."""

import os
import stat

import pytest

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


def test_the_file_is_as_readable_as_any_other(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "page.html", lambda tmp: tmp.write_text("<p>", encoding="utf-8"))
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "page.html").stat().st_mode) == 0o644
