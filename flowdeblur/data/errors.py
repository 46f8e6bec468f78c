"""The one error type of ``flowdeblur.data``, and the helpers that word it the same way everywhere.

Every message says where (the path), what was found, what was expected, and where the layout is documented,
so a user with a half-downloaded or mis-unpacked dataset knows what to fix without reading our code. Options are
named as the user sets them: Python parameters (``skip_bad=True``), or a command's flags (``--skip-bad``) inside
:func:`spelled_as`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

DOCS = "docs/datasets.md"
PREVIEW = 5
_FLAGS: ContextVar[Mapping[str, str] | None] = ContextVar("flowdeblur_data_flags", default=None)


@contextmanager
def spelled_as(flags: Mapping[str, str]) -> Iterator[None]:
    """Within the block, messages name a parameter by its command-line flag, e.g. ``{"skip_bad": "--skip-bad"}``."""
    token = _FLAGS.set(flags)
    try:
        yield
    finally:
        _FLAGS.reset(token)


def option(name: str, value: str | None = None) -> str:
    """How the user sets parameter ``name`` (to ``value``): ``--flag value`` (``--flag`` for True) inside
    :func:`spelled_as`, else ``name=value``; without a value, just the flag or the name."""
    flag = (_FLAGS.get() or {}).get(name)
    if flag is not None:
        return flag if value in (None, "True") else f"{flag} {value}"
    return name if value is None else f"{name}={value}"


class DatasetError(ValueError):
    """A dataset that is missing or malformed, or was asked for with options it does not take."""

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        expected: str | None = None,
        section: str | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        parts = [problem if path is None else f"{path}: {problem}"]
        if expected:
            parts.append(f"expected {expected}")
        parts.append(f"see {DOCS}" + (f"#{section}" if section else ""))
        super().__init__("; ".join(parts))


class SkippedItemError(Exception):
    """An item whose file turned out unreadable when read, under ``skip_bad``: the dataset serves the next item."""


def preview(names: Sequence[str], limit: int = PREVIEW) -> str:
    """A short list of names for a message: the first few, then how many more."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def listing(folder: Path) -> str:
    """What a folder holds, for a message about a layout that is not the expected one."""
    if not folder.is_dir():
        return "nothing (the folder does not exist)"
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return preview(entries, limit=8) if entries else "an empty folder"


def require_dir(path: str | Path, *, expected: str, section: str) -> Path:
    """``path`` as a Path if it is a folder; otherwise a DatasetError saying what is there instead."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        found = "a file" if folder.exists() else f"no such folder (its parent holds {listing(folder.parent)})"
        raise DatasetError(f"found {found}", path=folder, expected=expected, section=section)
    return folder


def report_bad(
    problems: Mapping[str, Sequence[str]],
    *,
    path: Path,
    expected: str,
    section: str,
    skip_bad: bool,
) -> dict[str, int]:
    """Raise one DatasetError naming every bad file, or (``skip_bad``) warn and return how many were skipped."""
    found = {kind: list(names) for kind, names in problems.items() if names}
    if not found:
        return {}
    summary = "; ".join(f"{len(names)} {kind} ({preview(names)})" for kind, names in found.items())
    if not skip_bad:
        raise DatasetError(
            f"{summary} (pass {option('skip_bad', 'True')} to skip and count them)",
            path=path,
            expected=expected,
            section=section,
        )
    warnings.warn(f"{path}: skipped {summary}", stacklevel=3)
    return {kind: len(names) for kind, names in found.items()}
