"""The runnable examples in docs/ run and do what they say."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("page", ["flows.md"])
def test_python_examples_run(page, capsys):
    blocks = python_blocks(page)
    assert blocks, f"docs/{page} has no python example"
    for block in blocks:
        exec(compile(block, f"docs/{page}", "exec"), {})
    printed = capsys.readouterr().out
    assert "bits/dim" in printed and "(2, 3, 48, 48)" in printed and "max difference to the plain flow" in printed
    assert "whole-image density" in printed and "(4, 1, 16, 16)" in printed
