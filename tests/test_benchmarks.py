"""The benchmark scripts keep working: a --quick run finishes, prints a Markdown table and writes the JSON it should.

Nothing here looks at a time, a speed or a score: those are for the benchmarks to report, not for tests to assert.
"""

import doctest
import importlib
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
PROTOCOLS = {"gaussian3", "gaussian9", "motion15", "none", "defocus", "mixture"}
METHODS = {"blurry input", "unsharp masking", "Wiener (true kernel)", "Richardson–Lucy (true kernel)", "U-Net",
           "NAFNet-style", "UML-IN", "UML-IN pyramid", "bare pyramid", "NAFNet-style w4", "UML-IN pyramid-light, Adam",
           "UML-IN pyramid-light, Adam, 2 shifted passes"}
LEARNED = METHODS - {"blurry input", "unsharp masking", "Wiener (true kernel)", "Richardson–Lucy (true kernel)"}
COMPACT_PARAMETERS = 587_541  # UML-IN at the compact size


@pytest.fixture
def benchmark(monkeypatch):
    """Import a module of benchmarks/ (they import each other by plain name, as scripts)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module


def run_quick(script: str, output: Path, *options: str) -> str:
    """Run ``benchmarks/<script> --quick [options]`` in a subprocess; its standard output."""
    command = [sys.executable, str(BENCHMARKS / script), "--quick", "--output", str(output), *options]
    process = subprocess.run(command, capture_output=True, text=True, check=False, cwd=output.parent)
    assert process.returncode == 0, process.stderr[-3000:]
    return process.stdout


def quick_document(script: str, tmp_path: Path, keys: set[str]) -> tuple[str, dict]:
    """Run ``script --quick``, check it printed a Markdown table and wrote JSON with ``keys``; (stdout, JSON)."""
    output = tmp_path / script.replace(".py", ".json")
    stdout = run_quick(script, output)
    assert_markdown_table(stdout)
    document = json.loads(output.read_text(encoding="utf-8"))
    assert keys <= set(document)
    return stdout, document


def assert_markdown_table(text: str) -> None:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(lines) >= 3, text
    assert set(lines[1].replace(" ", "").strip("|").split("|")) <= {"---", "---:"}


@pytest.mark.slow
def test_quality_quick_run_prints_a_table_and_writes_every_method(tmp_path):
    stdout, document = quick_document("quality.py", tmp_path, {"machine", "settings", "protocols", "table"})
    assert set(document["protocols"]) == PROTOCOLS
    for protocol in document["protocols"].values():
        assert set(protocol["methods"]) == METHODS
        assert all({"psnr", "ssim"} <= set(result) for result in protocol["methods"].values())
        assert all(math.isfinite(result["psnr"]) for result in protocol["methods"].values())
    assert document["protocols"]["none"]["methods"]["blurry input"]["mse"] == 0
    assert document["protocols"]["mixture"]["blur"]["kind"] == "mixture"
    assert "| blurry input | " in stdout and " ∞ | " in stdout
    ablation = document["protocols"]["gaussian3"]["ablation"]
    assert {"UML-IN (L_ML only)", "+ SSIM", "+ L1", "+ L1 + SSIM"} < set(ablation)
    assert {"joint, L1", "joint, Charbonnier", "joint, dilated + restored context"} < set(ablation)
    assert ablation["joint, L1"]["psnr"] == document["protocols"]["gaussian3"]["methods"]["UML-IN"]["psnr"]
    spun = document["protocols"]["gaussian9"]["methods"]["UML-IN pyramid-light, Adam, 2 shifted passes"]
    design = document["protocols"]["gaussian9"]["methods"]["UML-IN pyramid-light, Adam"]
    assert spun["stage_steps"] == design["stage_steps"] and spun["inference_shifts"] == [0, 3]  # the same weights
    assert spun["psnr"] != design["psnr"]
    for protocol in document["protocols"].values():  # quality for cost: every learned row's forward time and shifts
        for method in LEARNED:
            assert protocol["methods"][method]["forward_s"] > 0
            assert 0 < protocol["methods"][method]["shift_consistency"] <= 100
    assert "| UML-IN pyramid | " in stdout and "| NAFNet-style w4 | " in stdout


def test_nafnet_hits_its_parameter_target_and_starts_as_the_identity(benchmark):
    nafnet, learned = benchmark("nafnet"), benchmark("learned")
    torch.manual_seed(0)
    for target in (COMPACT_PARAMETERS, 20_000):
        assert learned.parameter_count(nafnet.nafnet_with_parameters(target)) == pytest.approx(target, rel=0.1)
    network = nafnet.nafnet_with_parameters(COMPACT_PARAMETERS, channels=3)
    x = torch.rand(2, 3, 45, 30)  # not a multiple of 8: padded and cropped back
    assert torch.equal(network(x), x)
    published = nafnet.nafnet_w32()  # the GoPro NAFNet-width32 the speed comparison times
    assert learned.parameter_count(published) == 17_111_907 and len(published.encoders[3]) == 28


@pytest.mark.parametrize("module", ["unet", "nafnet"])
def test_learned_baselines_examples_run(module, benchmark):
    assert doctest.testmod(benchmark(module)).failed == 0


def result(psnr: float, mse: float, **extra: float) -> dict[str, float]:
    return {"psnr": psnr, "ssim": 0.9, "mse": mse, **extra}


def test_the_table_has_a_row_per_method_and_two_columns_per_protocol_with_an_exact_input_as_infinity(benchmark):
    quality = benchmark("quality")
    assert set(quality.PROTOCOLS) == PROTOCOLS
    learned = {name: result(40.0, 1e-4, parameters=1000, train_seconds=2.0) for name in quality.LEARNED_BASELINES}
    methods = {"blurry input": result(quality.PSNR_CAP, 0.0), **learned,
               "UML-IN": result(38.0, 2e-4, l1_weight=0.01, train_seconds=2.0)}
    protocols = {name: {"label": label, "methods": methods, "ablation": {}}
                 for name, (label, _) in quality.PROTOCOLS.items() if name in ("none", "defocus", "mixture")}
    lines = quality.table(protocols).splitlines()
    assert len(lines) == 2 + len(methods)
    assert all(line.count(" | ") == 1 + 2 * len(protocols) for line in lines)
    assert lines[2].startswith("| blurry input | ∞ | 0.9000 | ∞ |")
    assert "| NAFNet-style, 1,000 parameters, L1 | 40.00 |" in lines[4]


def test_shift_consistency_scores_a_convolution_as_exact_and_a_block_grid_as_not(benchmark):
    consistency = benchmark("shift_consistency")
    torch.manual_seed(0)
    blurry = torch.rand(3, 1, 64, 64)
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 256).reshape(1, 1, 5, 5)

    def gaussian(batch):
        return torch.nn.functional.conv2d(torch.nn.functional.pad(batch, (2,) * 4, mode="reflect"), kernel)

    def block_means(batch):  # 4 x 4 block averages, on a grid fixed to the crop's corner
        height, width = batch.shape[-2:]
        padded = torch.nn.functional.pad(batch, (0, -width % 4, 0, -height % 4), mode="replicate")
        blocks = torch.nn.functional.avg_pool2d(padded, 4)
        return torch.nn.functional.interpolate(blocks, scale_factor=4)[..., :height, :width]

    assert consistency.shift_consistency(gaussian, blurry) == consistency.PSNR_CAP
    assert consistency.shift_consistency(block_means, blurry, shifts=(1, 2, 3)) < 30


@pytest.mark.slow
def test_shift_consistency_quick_run_prints_a_table(tmp_path):
    _, document = quick_document("shift_consistency.py", tmp_path, {"machine", "results", "table"})
    assert set(document["results"]["tiny"]) == {"gaussian9", "motion15"}
    assert {"shift_consistency", "psnr"} == set(document["results"]["tiny"]["gaussian9"])


@pytest.mark.slow
@pytest.mark.parametrize("variant", [[], ["--nafnet-width", "4"]], ids=["uml-in", "nafnet"])
def test_val_probe_quick_run_scores_the_val_crops(tmp_path, variant):
    output = tmp_path / "probe.json"
    stdout = run_quick("val_probe.py", output, *variant)
    assert_markdown_table(stdout)
    document = json.loads(output.read_text())
    assert document["steps"] == 3 and math.isfinite(document["val_psnr"]) and document["val_psnr"] > 0


def test_held_out_quick_run_prints_every_protocol_for_every_model(tmp_path):
    stdout, document = quick_document("held_out.py", tmp_path, {"machine", "photos", "results", "table"})
    assert document["photos"] == ["0.png", "1.png"]
    assert all(set(result) == {"blurry input", "tiny"} for result in document["results"].values())
    assert "| tiny: gain (dB) | " in stdout


@pytest.mark.slow
def test_speed_quick_run_prints_tables_and_writes_every_case(tmp_path):
    _, document = quick_document("speed.py", tmp_path, {"machine", "settings", "results", "table", "shares_table"})
    kinds = {(entry["case"]["kind"], entry["case"]["dtype"]) for entry in document["results"]}
    assert kinds == {("train", "fp32"), ("train", "bf16"), ("infer", "fp32"), ("infer", "bf16")}
    for entry in document["results"]:
        assert entry["peak_memory_mb"] > 0
        assert ("images_per_second" if entry["case"]["kind"] == "train" else "megapixels_per_second") in entry
    shares = [entry["shares"] for entry in document["results"] if "shares" in entry]
    assert shares and all(sum(share.values()) == pytest.approx(1.0, abs=0.02) for share in shares)


@pytest.mark.slow
def test_speed_ddp_quick_run_trains_in_one_and_two_processes_and_writes_the_data_wait(tmp_path):
    output = tmp_path / "speed_ddp.json"
    assert_markdown_table(run_quick("speed.py", output, "--ddp", "--devices", "cpu"))
    document = json.loads(output.read_text(encoding="utf-8"))
    assert [entry["case"]["processes"] for entry in document["results"]] == [1, 2]
    for entry in document["results"]:
        assert entry["steps"] == document["settings"]["steps"] and entry["images_per_second"] > 0
        assert 0 <= entry["data_wait_share"] < 1 and entry["peak_memory_mb"] > 0


@pytest.mark.slow
def test_memory_quick_run_prints_a_table_and_writes_both_modes_per_depth(tmp_path):
    _, document = quick_document("memory.py", tmp_path, {"machine", "settings", "results", "table"})
    modes = {(entry["case"]["steps"], entry["case"]["memory_saving"]) for entry in document["results"]}
    assert modes == {(steps, saving) for steps in document["settings"]["steps"] for saving in (False, True)}
    for entry in document["results"]:
        assert entry["peak_memory_mb"] > 0 and entry["seconds_per_step"] > 0 and entry["training_mb"] >= 0
    assert_markdown_table(run_quick("memory.py", tmp_path / "time.json", "--alternate", "1"))
    timing = json.loads((tmp_path / "time.json").read_text(encoding="utf-8"))
    assert [row["case"]["steps"] for row in timing["results"]] == document["settings"]["steps"]
    assert all(row["ratio"] == row["memory_saving_s"] / row["plain_s"] > 0 for row in timing["results"])


def test_density_scores_the_glow_style_flow_and_wavelet_flow_by_one_formula(benchmark):
    """The benchmark's bits/dim through FrEIA's call is WaveletFlow.bits_per_dim, and the Glow-style graph inverts."""
    density, learned = benchmark("density"), benchmark("learned")
    settings = density.profile(quick=True)
    torch.manual_seed(0)
    flow = density.wavelet_flow(settings)
    images = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(density.bits_per_dim(flow, images, torch.Generator().manual_seed(1)),
                               flow.bits_per_dim(images, generator=torch.Generator().manual_seed(1)))
    glow = density.matched_glow(settings, learned.parameter_count(flow))
    assert learned.parameter_count(glow) == pytest.approx(learned.parameter_count(flow), rel=0.05)
    z, log_jac_det = glow(images)
    restored, reverse = glow(z, rev=True)
    assert (restored - images).abs().max() < 1e-5 and torch.allclose(reverse, -log_jac_det, atol=1e-4)


@pytest.mark.slow
def test_density_quick_run_scores_both_flows_at_matched_size_and_saves_sample_grids(tmp_path):
    output = tmp_path / "density.json"
    stdout = run_quick("density.py", output, "--samples-dir", str(tmp_path / "samples"))
    assert_markdown_table(stdout)
    results = json.loads(output.read_text(encoding="utf-8"))["results"]
    assert set(results) == {"WaveletFlow + prior", "Glow-style"}
    sizes = [result["parameters"] for result in results.values()]
    assert max(sizes) / min(sizes) < 1.05
    for result in results.values():
        assert result["steps"] > 0 and result["test_bits_per_dim"] > 0
        assert all(Path(path).is_file() for path in result["samples"])


@pytest.mark.slow
def test_conv_shapes_quick_run_times_every_shape_with_the_fast_path_equal(tmp_path):
    _, document = quick_document("conv_shapes.py", tmp_path, {"machine", "model", "size", "results", "table"})
    assert document["results"]
    for entry in document["results"]:
        assert set(entry["seconds"]) == {"nchw", "channels_last", "fast"} and entry["calls"] >= 1
        assert entry["max_abs_difference"] <= 1e-5


@pytest.mark.slow
def test_forward_speed_quick_run_compares_a_git_revision_with_this_checkout(tmp_path):
    if subprocess.run(["git", "-C", str(BENCHMARKS), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout: forward_speed.py takes its base revision from git")
    _, document = quick_document("forward_speed.py", tmp_path, {"machine", "base", "results", "table"})
    (entry,) = document["results"]
    assert entry["max_abs_difference"] <= 1e-5 and entry["deblur_max_abs_difference"] <= 1e-5



def point(psnr: float, forward_s: float) -> dict[str, float]:
    return result(psnr, 1e-4, forward_s=forward_s)


def test_the_curve_joins_the_family_frontier_and_gives_each_design_its_gap(benchmark):
    curve = benchmark("curve")
    members = {"NAFNet-style w8": point(33.0, 1.0), "NAFNet-style w16": point(34.0, 4.0),
               "NAFNet-style w32": point(32.0, 9.0)}  # slower and worse than w16: off the frontier
    assert curve.frontier(members) == [(1.0, 33.0), (4.0, 34.0)]
    assert curve.curve_value(2.0, members) == pytest.approx(33.5)  # half-way in log time
    assert curve.curve_value(9.0, members) == 34.0 and curve.curve_value(0.5, members) is None
    protocol = {"label": "9×9", "methods": {**members, "blurry input": point(28.0, 0.0),
                                            "UML-IN pyramid-light, Adam": point(33.6, 2.0),
                                            "UML-IN pyramid": point(32.0, 9.0),
                                            "UML-IN pyramid-light, fast": point(40.0, 0.1)}}
    gaps = curve.gaps(protocol)
    assert gaps["UML-IN pyramid-light, Adam"] == pytest.approx(0.1)
    assert gaps["UML-IN pyramid"] == pytest.approx(-2.0) and gaps["UML-IN pyramid-light, fast"] is None
    table = curve.gap_table({"g9": protocol})
    assert "| 9×9 | UML-IN pyramid-light, Adam | 33.60 | 2.00 | 33.50 | +0.10 |" in table


def test_the_curve_plot_is_written_and_read_back_from_quality_json(benchmark, tmp_path):
    members = {"NAFNet-style w8": point(33.0, 1.0), "NAFNet-style w16": point(34.0, 4.0),
               "UML-IN pyramid-light, Adam": point(33.6, 2.0), "blurry input": point(28.0, 0.0)}
    results = tmp_path / "quality.json"
    results.write_text(json.dumps({"protocols": {"gaussian9": {"label": "9×9", "methods": members}}}))
    plot = tmp_path / "curve.svg"
    command = [sys.executable, str(BENCHMARKS / "curve.py"), str(results), "--plot", str(plot)]
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    assert process.returncode == 0, process.stderr
    assert "| +0.10 |" in process.stdout and plot.read_text().lstrip().startswith("<?xml")
    assert not list(tmp_path.glob(".*tmp*"))
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    process = subprocess.run([*command[:2], str(broken)], capture_output=True, text=True, check=False)
    assert process.returncode == 1 and f"{broken}: not a quality.py JSON file" in process.stderr


@pytest.mark.slow
def test_quality_runs_only_the_designs_and_family_asked_for(tmp_path):
    output = tmp_path / "quality.json"
    stdout = run_quick("quality.py", output, "--protocols", "gaussian9", "--no-main-rows", "--designs",
                       "UML-IN pyramid-light, Adam", "--plot", str(tmp_path / "curve.png"))
    methods = json.loads(output.read_text())["protocols"]["gaussian9"]["methods"]
    assert set(methods) == {"blurry input", "unsharp masking", "Wiener (true kernel)", "Richardson–Lucy (true kernel)",
                            "UML-IN pyramid-light, Adam", "UML-IN pyramid-light, Adam, 2 shifted passes",
                            "NAFNet-style w4"}
    design = methods["UML-IN pyramid-light, Adam"]
    assert methods["NAFNet-style w4"]["train_seconds"] == pytest.approx(design["train_seconds"], rel=0.5)
    assert "| gap (dB) |" in stdout and (tmp_path / "curve.png").stat().st_size > 0


@pytest.mark.slow
def test_quality_trains_the_family_alone_at_the_rate_asked_for(tmp_path):
    output = tmp_path / "quality.json"
    stdout = run_quick("quality.py", output, "--protocols", "gaussian9", "--no-main-rows", "--designs",
                       "--nafnet-lr", "0.002")
    document = json.loads(output.read_text())
    methods = document["protocols"]["gaussian9"]["methods"]
    assert set(methods) == {"blurry input", "unsharp masking", "Wiener (true kernel)", "Richardson–Lucy (true kernel)",
                            "NAFNet-style w4"}
    assert document["settings"]["nafnet_lr"] == methods["NAFNet-style w4"]["lr"] == 0.002
    assert re.search(r"NAFNet-style w4, [\d,]+ parameters, L1, Adam at 0\.002,", stdout)
