"""The recipes' command line: flags and defaults, settings checks, and clear errors before any model is built."""

import argparse
import ast
import dataclasses
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from accelerate.utils.imports import is_tensorboard_available

from flowdeblur import UMLINConfig, WaveletUNetFlow
from flowdeblur.cli import main
from flowdeblur.config import PRESETS
from flowdeblur.data import DATASET_NAMES, BlurMixture, BlurSpec
from flowdeblur.data.blur_presets import BLUR_PRESETS, blur_preset
from flowdeblur.data.factory import OPTION_CHOICES, dataset_options
from flowdeblur.train import TrainConfig, TrainConfigError, cli
from flowdeblur.train import trainer as trainer_module
from flowdeblur.train.cli import NOT_FLAGS, build_parser, config_from_args, run_recipe
from flowdeblur.train.config import SCHEDULES, steps_by_stage
from flowdeblur.train.loaders import load_datasets
from flowdeblur.train.stages import STAGES
from flowdeblur.train.state import list_checkpoints, resolve_resume
from tests.data_fixtures import make_celeba, make_gopro, make_paired, truncate
from tests.test_train_launch import TINY_FLAGS

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
COMMON_FLAGS = (
    "--dataset", "--data-dir", "--output-dir", "--stage1-steps", "--stage2-steps", "--stage3-steps", "--batch-size",
    "--crop-size", "--resize", "--skip-bad", "--mixed-precision", "--seed", "--checkpointing-steps",
    "--resume-from-checkpoint", "--validation-steps",
)
# recipe: (dataset, batch size, blur kind): the paper's settings (§4.1)
PAPER_DEFAULTS = {
    "lsun": ("lsun", 32, "gaussian"), "celeba": ("celeba", 32, "gaussian"), "gopro": ("gopro", 16, "None"),
    "lai": ("lai", 16, "None"), "builtin": ("builtin", 8, "gaussian"), "paired": ("paired", 16, "None"),
}


def recipe_command(name: str, *args: str) -> list[str]:
    return [sys.executable, str(RECIPES / f"train_{name}.py"), *args]


def recipe_help(name: str, monkeypatch) -> str:
    """The --help text of a recipe, built in-process from the defaults the recipe hands to run_recipe."""
    handed = {}
    monkeypatch.setattr(cli, "run_recipe", lambda description, **defaults: handed.update(defaults, doc=description))
    with pytest.raises(SystemExit):
        runpy.run_path(str(RECIPES / f"train_{name}.py"), run_name="__main__")
    return cli.build_parser(handed.pop("doc"), **handed).format_help()


@pytest.mark.parametrize("name", sorted(PAPER_DEFAULTS))
def test_every_recipe_help_lists_every_flag_with_its_default(name, monkeypatch):
    text = " ".join(recipe_help(name, monkeypatch).split())
    every_flag = [action.option_strings[0] for action in build_parser("")._actions if action.option_strings and
                  action.dest != "help"]
    for flag in (*COMMON_FLAGS, *every_flag):
        assert flag in text, flag
    assert text.count("(default:") + text.count("(unset:") == len(every_flag)
    dataset, batch_size, blur = PAPER_DEFAULTS[name]
    assert f"dataset to train on (default: {dataset})" in text
    assert f"images per process and step (default: {batch_size})" in text
    assert f"unset: the dataset's default (default: {blur})" in text
    for architecture in ("wavelet levels L (paper: 3) (unset: --preset's)",
                         "flow steps K per level INN (paper: 4); 0 makes each INN the identity",
                         f"--preset {{{','.join(sorted(PRESETS))}}}"):
        assert architecture in text, architecture


@pytest.mark.parametrize("name", ["lsun", "paired"])
def test_a_recipe_prints_its_help_from_the_command_line(name):
    result = subprocess.run(recipe_command(name, "--help"), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert all(flag in result.stdout for flag in COMMON_FLAGS)


def test_every_config_field_and_loader_option_has_a_flag():
    flags = {"--" + dest.replace("_", "-") for dest in vars(build_parser("").parse_args([]))}
    wanted = {f"--{spec.name}" for spec in dataclasses.fields(UMLINConfig)}
    wanted |= {f"--blur-{spec.name}" for spec in dataclasses.fields(BlurSpec)}
    shared = {"border", "quantize"}  # a mixture's are --blur-border and --blur-quantize
    wanted |= {f"--mix-{spec.name}" for spec in dataclasses.fields(BlurMixture) if spec.name not in shared}
    wanted |= {f"--{option}" for name in DATASET_NAMES for option in dataset_options(name) if option not in NOT_FLAGS}
    assert {flag.replace("_", "-") for flag in wanted} <= flags
    assert set(NOT_FLAGS) == {"augment", "real", "full_test_frames"}


def test_crop_size_and_resize_build_the_config_and_the_datasets(tmp_path):
    root = make_celeba(tmp_path / "celeba")
    args = build_parser("", dataset="celeba", blur_kind="gaussian").parse_args(
        ["--data-dir", str(root), "--crop-size", "160", "--resize", "192", "--num-samples", "10"])
    config = config_from_args(args)
    assert config.crop_size == 160 and config.data_options == {"resize": 192, "num_samples": 10}
    train_set, val_set = load_datasets(config)
    assert train_set[0]["sharp"].shape == (1, 160, 160) and val_set[0]["blurry"].shape == (1, 160, 160)
    assert train_set.description["resize"] == 192 and train_set.description["crop"]["size"] == 160


def test_a_loader_option_from_the_command_line_reaches_the_dataset(tmp_path):
    root = make_gopro(tmp_path)
    args = build_parser("", dataset="gopro").parse_args(["--data-dir", str(root), "--blur-folder", "blur_gamma"])
    train_set, _ = load_datasets(config_from_args(args))
    assert train_set.description["blur_folder"] == "blur_gamma"
    assert train_set.description["blur"]["source"] == "blur_gamma/ folders"


@pytest.mark.parametrize(
    ("recipe", "argv", "message"),
    [({"dataset": "gopro"}, ["--data-dir", "x", "--resize", "192"],
      "error: --resize applies to --dataset celeba, lsun, not gopro"),
     ({"dataset": "lsun"}, ["--data-dir", "x", "--skip-bad"],
      "error: --skip-bad applies to --dataset paired, gopro, lai, celeba, not lsun"),
     ({"dataset": "builtin", "blur_kind": "gaussian"}, ["--dataset", "paired", "--data-dir", "x"],
      "error: --blur-kind gaussian applies to --dataset builtin, celeba, lsun (sharp images blurred here), not paired, "
      "which brings its own blurry images: leave --blur-kind unset; recipes/train_paired.py trains on your own pairs"),
     ({"dataset": "builtin", "blur_kind": "gaussian"}, ["--dataset", "gopro", "--data-dir", "x", "--blur", "mix"],
      "error: --blur mix applies to --dataset builtin, celeba, lsun (sharp images blurred here), not gopro, "
      "which brings its own blurry images: leave --blur unset")],
)
def test_an_option_the_dataset_does_not_take_is_one_line(tmp_path, capsys, recipe, argv, message):
    assert run_recipe("", argv=[*argv, "--output-dir", str(tmp_path / "out")], **recipe) == 2
    assert capsys.readouterr().err.splitlines() == [message]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rank, lines", [("0", 1), ("1", 0)])
def test_under_several_processes_only_the_first_prints_the_error(tmp_path, capsys, monkeypatch, rank, lines):
    """Every process of ``accelerate launch`` meets the same error: it is one line in all, and the status is still 2."""
    monkeypatch.setenv("RANK", rank)
    argv = ["--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")]
    assert run_recipe("", argv=argv, dataset="builtin") == 2
    printed = capsys.readouterr().err.splitlines()
    assert len(printed) == lines
    assert all("takes no --data-dir; for a folder of images, give its layout with --dataset <paired|" in line
               for line in printed)


@pytest.mark.parametrize("extra, message", [
    (["--hidden-channels", "8"],
     "error: --init-from gauss3 trains that model's architecture; leave out --hidden-channels"),
    ([], None),
])
def test_init_from_takes_the_named_model_s_architecture(tmp_path, capsys, extra, message):
    argv = ["--init-from", "gauss3", "--output-dir", str(tmp_path / "out"), *extra]
    if message:
        assert run_recipe("", argv=argv, dataset="builtin") == 2
        assert capsys.readouterr().err.splitlines() == [message]
    else:
        config = config_from_args(build_parser("", dataset="builtin").parse_args(argv))
        assert config.model == WaveletUNetFlow.from_pretrained("gauss3").config
        assert config.init_from == "gauss3"


def test_init_from_nowhere_is_one_line(tmp_path, capsys):
    argv = ["--init-from", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "out")]
    assert run_recipe("", argv=argv, dataset="builtin") == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "nowhere" in line and line.startswith("error: ")


@pytest.fixture
def pairs_with_a_truncated_file(tmp_path):
    root = make_paired(tmp_path / "pairs", count=10, size=(32, 40))
    truncate(root / "sharp" / "img_005.png")
    return root


def test_a_bad_file_stops_training_with_an_error_that_names_skip_bad(tmp_path, capsys, pairs_with_a_truncated_file):
    argv = [*TINY_FLAGS, "--data-dir", str(pairs_with_a_truncated_file), "--output-dir", str(tmp_path / "out")]
    assert run_recipe("", argv=argv, dataset="paired") == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "1 unreadable images (sharp/img_005.png" in line and "(pass --skip-bad to skip and count them)" in line
    assert "skip_bad" not in line and "docs/datasets.md#paired-folders" in line


def test_train_paired_skips_and_counts_a_truncated_file_in_two_steps(tmp_path, pairs_with_a_truncated_file):
    output = tmp_path / "run"
    result = subprocess.run(
        recipe_command("paired", *TINY_FLAGS, "--stage4-steps", "2", "--validation-images", "1",
                       "--data-dir", str(pairs_with_a_truncated_file), "--output-dir", str(output), "--skip-bad"),
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped 1 unreadable images (sharp/img_005.png" in result.stderr
    metadata = WaveletUNetFlow.from_pretrained(output / "model").metadata
    assert metadata["dataset"]["skipped"] == {"unreadable images": 1}
    assert metadata["dataset"]["dataset"] == "paired" and metadata["train_config"]["data_options"] == {"skip_bad": True}
    assert metadata["stages"]["joint"]["steps"] == 2


@pytest.mark.parametrize("name", sorted(PAPER_DEFAULTS))
def test_recipes_differ_only_in_their_defaults(name):
    module = ast.parse((RECIPES / f"train_{name}.py").read_text(encoding="utf-8"))
    docstring, imports, main = module.body
    assert ast.get_docstring(module) and isinstance(imports, ast.ImportFrom)
    assert imports.module == "flowdeblur.train.cli" and [a.name for a in imports.names] == ["run_recipe"]
    (statement,) = main.body
    call = statement.exc.args[0]
    assert call.func.id == "run_recipe" and [a.id for a in call.args] == ["__doc__"]
    assert all(isinstance(keyword.value, ast.Constant) for keyword in call.keywords)


def test_flags_become_the_train_config():
    args = build_parser("", dataset="lsun", batch_size=32, blur_kind="gaussian").parse_args(
        ["--data-dir", "/data/lsun", "--schedule", "paper", "--stage2-steps", "7",
         "--stage3-lr", "5e-5", "--levels", "2", "--steps", "1",
         "--checkpoints-total-limit", "0", "--resume-from-checkpoint", "latest", "--mixed-precision", "bf16"]
    )
    config = config_from_args(args)
    assert config.dataset == "lsun" and config.data_dir == Path("/data/lsun") and config.batch_size == 32
    assert config.stage_steps == (50_000, 7, 10_000, 0) and config.learning_rates == (1e-3, 1e-3, 5e-5, 1e-3)
    assert config.model.levels == 2 and config.model.steps == 1 and config.model.kernel_size == 5
    assert config.blur == BlurSpec() and config.checkpoints_total_limit is None
    assert config.resume_from_checkpoint == "latest" and config.mixed_precision == "bf16"


@pytest.mark.parametrize("rank, lines", [("0", ["warning: --codec is deprecated; use --sharp-init"]), ("1", [])])
def test_the_old_codec_flag_sets_sharp_init_with_one_deprecation_line(capsys, monkeypatch, rank, lines):
    monkeypatch.setenv("RANK", rank)
    assert config_from_args(build_parser("").parse_args(["--codec", "separate"])).sharp_init == "separate"
    assert capsys.readouterr().err.splitlines() == lines
    assert config_from_args(build_parser("").parse_args(["--sharp-init", "separate"])).sharp_init == "separate"
    assert capsys.readouterr().err == ""
    assert "--codec" not in build_parser("").format_help()


def test_the_schedule_chooses_the_stages_and_a_recipes_steps_belong_to_its_own_schedule():
    parser = build_parser("", schedule="joint", stage4_steps=300)
    assert config_from_args(parser.parse_args([])).stage_steps == (0, 0, 0, 300)
    assert config_from_args(parser.parse_args(["--schedule", "paper"])).stage_steps == (50_000, 20_000, 10_000, 0)
    paper = parser.parse_args(["--schedule", "paper", "--stage1-steps", "7", "--stage4-steps", "2"])
    assert config_from_args(paper).stage_steps == (7, 20_000, 10_000, 2)
    assert config_from_args(build_parser("").parse_args([])).stage_steps == (0, 0, 0, 50_000)


def test_blur_and_architecture_flags_reach_the_config():
    args = build_parser("").parse_args(
        ["--blur-kind", "mix", "--mix-motion", "0", "--mix-sigma", "1", "2", "--preset", "compact",
         "--transfer-dilation", "2", "--transfer-context", "restored", "--pixel-loss", "charbonnier"])
    config = config_from_args(args)
    assert config.blur == BlurMixture(motion=0.0, sigma=(1.0, 2.0))
    assert config.model == UMLINConfig(steps=2, hidden_channels=32, transfer_dilation=2, transfer_context="restored")
    assert config.pixel_loss == "charbonnier"
    sharp_share = build_parser("").parse_args(["--blur-kind", "mix", "--mix-gaussian-kernel-size", "3"])
    assert config_from_args(sharp_share).blur.gaussian_kernel_size == 3
    pyramid = config_from_args(build_parser("").parse_args(["--preset", "pyramid", "--refine-channels", "8"])).model
    assert pyramid == dataclasses.replace(PRESETS["pyramid"], refine_channels=8) and pyramid.transfer_net == "pyramid"
    switches = config_from_args(build_parser("").parse_args(["--memory-saving", "--no-shared-codec"]))
    assert switches.model == UMLINConfig(memory_saving=True, shared_codec=False)
    defocus = config_from_args(build_parser("").parse_args(["--blur-kind", "defocus", "--blur-kernel-size", "9"]))
    assert defocus.blur == BlurSpec(kind="defocus", kernel_size=9)


@pytest.mark.parametrize("name", BLUR_PRESETS)
def test_a_named_blur_is_the_blur_eval_and_demo_give_that_name(name):
    config = config_from_args(build_parser("", blur_kind="gaussian").parse_args(["--blur", name]))
    assert config.blur == blur_preset(name)
    assert [action.choices for action in build_parser("")._actions if "--blur" in action.option_strings] == [
        BLUR_PRESETS]
    for command in ("eval", "demo"):
        option = next(param for param in main.commands[command].params if param.name == "blur_name")
        assert list(option.type.choices) == ["auto", *BLUR_PRESETS]


def test_a_named_blur_and_a_blur_kind_together_are_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser("").parse_args(["--blur", "mix", "--blur-kind", "motion"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_unknown_recipe_defaults_are_refused():
    with pytest.raises(TypeError, match="batchsize"):
        build_parser("", batchsize=3)


@pytest.mark.parametrize(
    ("settings", "flag"),
    [({"l1_weight": 1.0}, "--l1-weight"), ({"crop_size": 100}, "--crop-size"),
     ({"stage_steps": (0, 0, 0, 0)}, "stage"), ({"mixed_precision": "fp8"}, "--mixed-precision"),
     ({"batch_size": 0}, "--batch-size"), ({"pixel_loss": "l2"}, "--pixel-loss"),
     ({"stage4_ssim_weight": -1.0}, "--stage4-ssim-weight")],
)
def test_impossible_settings_name_the_flag_to_change(settings, flag):
    with pytest.raises(TrainConfigError, match=flag):
        TrainConfig(**settings)


def test_a_missing_dataset_folder_is_one_line_naming_path_layout_and_docs(tmp_path):
    missing = tmp_path / "GOPRO_Large"
    result = subprocess.run(
        recipe_command("gopro", "--data-dir", str(missing), "--output-dir", str(tmp_path / "out")),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert str(missing) in line and "{blur,blur_gamma,sharp}" in line and "docs/datasets.md" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [[], ["--data-dir", "/no/such/lsun"]])
def test_no_model_is_built_for_a_missing_dataset(tmp_path, monkeypatch, capsys, argv):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the dataset was checked")

    monkeypatch.setattr(trainer_module, "WaveletUNetFlow", refuse)
    assert run_recipe("", argv=[*argv, "--output-dir", str(tmp_path)], dataset="lsun") == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "docs/datasets.md" in error
    assert ("--data-dir" in error) if not argv else ("/no/such/lsun" in error and "LMDB" in error)


@pytest.mark.skipif(is_tensorboard_available(), reason="tensorboard is installed")
def test_report_to_tensorboard_without_tensorboard_says_what_to_install(tmp_path, capsys):
    assert run_recipe("", argv=["--report-to", "tensorboard", "--output-dir", str(tmp_path)]) == 2
    assert "pip install tensorboard" in capsys.readouterr().err


def test_resume_lookup(tmp_path):
    assert resolve_resume(tmp_path, None) == []
    assert resolve_resume(tmp_path, "latest") == []
    for step in (5, 10):
        (tmp_path / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
    (tmp_path / "checkpoints" / ".checkpoint-15.tmp").mkdir()  # a save that never finished
    assert resolve_resume(tmp_path, "latest") == [tmp_path / "checkpoints" / f"checkpoint-{step}" for step in (10, 5)]
    with pytest.raises(TrainConfigError, match="--resume-from-checkpoint latest"):
        resolve_resume(tmp_path, None)  # a fresh run would mix with the earlier one
    with pytest.raises(TrainConfigError, match="no such folder"):
        resolve_resume(tmp_path, str(tmp_path / "checkpoints" / "checkpoint-7"))


@pytest.mark.slow
def test_ctrl_c_keeps_every_checkpoint_whole_and_prints_the_command_that_resumes(tmp_path):
    output = tmp_path / "run"
    flags = [*TINY_FLAGS, "--stage1-steps", "100000", "--checkpointing-steps", "5", "--validation-steps", "0",
             "--validation-images", "2", "--output-dir", str(output), "--resume-from-checkpoint", "latest"]
    process = subprocess.Popen(  # a background job ignores SIGINT; a terminal's Ctrl-C does not
        recipe_command("builtin", *flags), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while len(list_checkpoints(output)) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    saved = list_checkpoints(output)
    assert f"interrupted; nothing is half-written (the newest checkpoint is {saved[-1]}). To continue:" in stderr
    resume = stderr.split("To continue:\n  ", 1)[1].splitlines()[0]
    assert resume.endswith(f"--output-dir {output} --resume-from-checkpoint latest")
    assert resume.count("--resume-from-checkpoint") == 1 and "train_builtin.py --levels 2" in resume
    assert sorted(path.name for path in (output / "checkpoints").iterdir()) == sorted(path.name for path in saved)


def field_flag_actions() -> dict[str, list[argparse.Action]]:
    """The parser's flags that set each TrainConfig field of the same name."""
    actions = build_parser("")._actions
    return {spec.name: [action for action in actions if action.dest == spec.name]
            for spec in dataclasses.fields(TrainConfig)}


def test_every_train_config_field_has_exactly_one_flag_or_is_set_by_a_family_of_flags():
    for name, actions in field_flag_actions().items():
        if name in cli.COMPOSITE_FIELDS:
            assert actions == [], name
        else:
            assert [action.option_strings[0] for action in actions] == ["--" + name.replace("_", "-")], name
    assert set(cli.COMPOSITE_FIELDS) == {"model", "blur", "data_options", "stage_steps", "learning_rates"}
    assert set(cli.FIELD_GROUPS) | set(cli.FIELD_METAVARS) <= set(cli.FIELD_FLAGS)
    defaults = build_parser("").parse_args([])
    for spec in dataclasses.fields(TrainConfig):
        if spec.name not in cli.COMPOSITE_FIELDS:
            assert getattr(defaults, spec.name) == spec.default, spec.name


def hand_written_flags() -> list[str]:
    """Flags of flowdeblur/train/ spelled out in an ``add_argument`` call rather than generated."""
    written = []
    for path in (Path(cli.__file__).parent).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and str(first.value).startswith("-"):
                    written.append(first.value)
    return written


def test_no_train_config_flag_is_written_by_hand():
    written = hand_written_flags()
    fields = {"--" + spec.name.replace("_", "-") for spec in dataclasses.fields(TrainConfig)
              if spec.name not in cli.COMPOSITE_FIELDS}  # --blur names a preset of the blur family, like --preset
    assert not fields & set(written)
    assert sorted(written) == ["--blur", "--blur-kind", "--preset", "--schedule"]


def test_field_flags_take_the_field_s_choices_and_type():
    actions = {name: found[0] for name, found in field_flag_actions().items() if found}
    assert actions["pixel_loss"].choices == ("l1", "charbonnier")
    assert actions["mixed_precision"].choices == ("no", "fp16", "bf16") and actions["mixed_precision"].default is None
    assert actions["dataset"].choices == DATASET_NAMES and actions["init_from"].metavar == "NAME|DIR|OWNER/NAME"
    assert actions["batch_size"].type is int and actions["l1_weight"].type is float


def test_each_stage_is_declared_once_with_its_flags_and_the_schedules_name_stages():
    assert [stage.number for stage in STAGES] == list(range(1, len(STAGES) + 1))
    flags = vars(build_parser("").parse_args([]))
    assert all(stage.steps_flag in flags and stage.lr_flag in flags for stage in STAGES)
    assert TrainConfig().learning_rates == tuple(stage.learning_rate for stage in STAGES)
    assert SCHEDULES["paper"] == steps_by_stage(mlr=50_000, transfer=20_000, ssim=10_000)
    with pytest.raises(ValueError, match="unknown stages"):
        steps_by_stage(deblur=1)


def test_the_dataset_options_table_of_training_md_matches_the_flags():
    text = (RECIPES.parent / "docs" / "training.md").read_text(encoding="utf-8")
    table = text.split("| flag | datasets | what it does | unset |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split(" | ") for line in table.strip().splitlines()[1:]]
    documented = {}
    for flag_cell, datasets_cell, *_ in rows:
        flag, *rest = flag_cell.strip("| `").split(" ")
        documented[flag] = (datasets_cell.replace("`", "").split(", "), rest)
    assert set(documented) == {"--" + name.replace("_", "-") for name in cli.LOADER_OPTIONS}
    for name, takers in cli.LOADER_OPTIONS.items():
        datasets, rest = documented["--" + name.replace("_", "-")]
        assert datasets == list(takers), name
        if name in OPTION_CHOICES:
            assert rest == ["{" + ",".join(OPTION_CHOICES[name]) + "}"], name
