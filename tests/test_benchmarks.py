"""The benchmark scripts keep working: a --quick run finishes, prints a Markdown table and writes the JSON it should.

Nothing here looks at a time, a speed or a score: those are for the benchmarks to report, not for tests to assert.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_quick(script: str, output: Path) -> str:
    """Run ``benchmarks/<script> --quick`` in a subprocess; its standard output."""
    command = [sys.executable, str(BENCHMARKS / script), "--quick", "--output", str(output)]
    process = subprocess.run(command, capture_output=True, text=True, check=False, cwd=output.parent)
    assert process.returncode == 0, process.stderr[-3000:]
    return process.stdout


def assert_markdown_table(text: str) -> None:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(lines) >= 3, text
    assert set(lines[1].replace(" ", "").strip("|").split("|")) <= {"---", "---:"}


@pytest.mark.slow
def test_quality_quick_run_prints_a_table_and_writes_every_method(tmp_path):
    stdout = run_quick("quality.py", tmp_path / "quality.json")
    assert_markdown_table(stdout)
    document = json.loads((tmp_path / "quality.json").read_text(encoding="utf-8"))
    assert {"machine", "settings", "protocols", "table"} <= set(document)
    assert set(document["protocols"]) == {"gaussian3", "gaussian9", "motion15"}
    methods = {"blurry input", "unsharp masking", "Wiener (true kernel)", "Richardson–Lucy (true kernel)", "U-Net",
               "UML-IN"}
    for protocol in document["protocols"].values():
        assert set(protocol["methods"]) == methods
        assert all({"psnr", "ssim"} <= set(result) for result in protocol["methods"].values())
    ablation = document["protocols"]["gaussian3"]["ablation"]
    assert set(ablation) == {"UML-IN (L_ML only)", "+ SSIM", "+ L1", "+ L1 + SSIM"}
    assert ablation["+ L1 + SSIM"]["psnr"] == document["protocols"]["gaussian3"]["methods"]["UML-IN"]["psnr"]


@pytest.mark.slow
def test_speed_quick_run_prints_tables_and_writes_every_case(tmp_path):
    stdout = run_quick("speed.py", tmp_path / "speed.json")
    assert_markdown_table(stdout)
    document = json.loads((tmp_path / "speed.json").read_text(encoding="utf-8"))
    assert {"machine", "settings", "results", "table", "shares_table"} <= set(document)
    kinds = {(entry["case"]["kind"], entry["case"]["dtype"]) for entry in document["results"]}
    assert kinds == {("train", "fp32"), ("train", "bf16"), ("infer", "fp32"), ("infer", "bf16")}
    for entry in document["results"]:
        assert entry["peak_memory_mb"] > 0
        assert ("images_per_second" if entry["case"]["kind"] == "train" else "megapixels_per_second") in entry
    shares = [entry["shares"] for entry in document["results"] if "shares" in entry]
    assert shares and all(sum(share.values()) == pytest.approx(1.0, abs=0.02) for share in shares)
