"""What every test shares: decoded training frames are cached in a temporary folder, never in the user's cache."""

import pytest

from flowdeblur.data.choices import FRAME_CACHE_VARIABLE


@pytest.fixture(autouse=True)
def frame_cache(tmp_path_factory, monkeypatch):
    """A fresh frame cache folder for each test (inherited by the subprocesses it starts)."""
    folder = tmp_path_factory.mktemp("frames")
    monkeypatch.setenv(FRAME_CACHE_VARIABLE, str(folder))
    return folder
