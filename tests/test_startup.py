"""Start-up: each command imports only what it uses (checked in a fresh interpreter), and the thread rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from flowdeblur.threads import choose_threads
from tests.cli_helpers import save_tiny_model
from tests.data_fixtures import pattern, save

HEAVY = ("torch", "accelerate", "skimage", "FrEIA", "flowdeblur.train", "torch._dynamo")


def imported_after(code: str) -> set[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    process = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    return set(json.loads(process.stdout.splitlines()[-1]))


def run_main(*args: str) -> str:
    """Code that runs ``flowdeblur ARGS`` in-process and goes on after its exit."""
    return f"from flowdeblur.cli import main\ntry:\n    main({list(args)!r})\nexcept SystemExit:\n    pass"


@pytest.mark.parametrize("command", [[], ["deblur"], ["eval"], ["demo"], ["info"], ["export"]])
def test_help_imports_no_torch(command):
    assert imported_after(run_main(*command, "--help")) == set()


def test_import_flowdeblur_is_light_and_its_names_load_on_first_use():
    assert imported_after("import flowdeblur") == set()
    names = "from flowdeblur import CheckpointError, Encoding, UMLINConfig, WaveletUNetFlow, __version__"
    assert imported_after(names) == {"torch", "FrEIA"}


def test_deblur_imports_neither_the_trainer_nor_accelerate_nor_skimage(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    image = save(tmp_path / "in.png", pattern(3, 24, 20))
    code = run_main("deblur", str(image), "-o", str(tmp_path / "out"), "--model", str(model), "--no-progress")
    assert imported_after(code) == {"torch", "FrEIA"}
    assert (tmp_path / "out" / "in.png").is_file()


def test_info_imports_neither_the_trainer_nor_accelerate_nor_skimage(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    assert imported_after(run_main("info", "--model", str(model))) == {"torch", "FrEIA"}


@pytest.mark.parametrize(
    ("cores", "cpus", "load", "expected"),
    [
        (2, 2, 0.0, 2),  # idle: every core
        (2, 2, 0.4, 2),
        (2, 2, 1.0, 1),  # one core busy elsewhere
        (2, 2, 3.8, 1),  # oversubscribed: one thread, never zero
        (4, 8, 2.0, 4),  # hyper-threads: at most the physical cores
        (4, 8, 6.0, 2),
        (8, 8, None, 8),  # no load average on this system: the physical cores
    ],
)
def test_default_threads_are_the_idle_cpus_capped_at_the_physical_cores(cores, cpus, load, expected):
    assert choose_threads(cores, cpus, load) == expected


def test_threads_option_then_omp_num_threads_win_over_the_load_rule():
    assert choose_threads(2, 2, 3.8, requested=2, environment="1") == 2
    assert choose_threads(2, 2, 3.8, environment="2") == 2
    assert choose_threads(2, 2, 0.0, environment=" 1 ") == 1
    assert choose_threads(2, 2, 3.8, environment="") == choose_threads(2, 2, 3.8, environment="many") == 1


def test_threads_option_sets_torch_threads(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    code = run_main("info", "--model", str(model), "--threads", "2") + "\nimport torch\nprint(torch.get_num_threads())"
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert process.stdout.split()[-1] == "2"
