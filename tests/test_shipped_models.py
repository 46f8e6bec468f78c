"""The models shipped inside the package: each loads by name, inverts exactly, and says what it was trained on."""

import pytest
import torch

from flowdeblur import WaveletUNetFlow
from flowdeblur.data import BlurSpec, build_dataset
from flowdeblur.metrics import image_scores
from flowdeblur.pretrained import SHIPPED_MODELS
from tests.cli_helpers import run_command
from tests.flow_checks import ROUND_TRIP_TOLERANCE

TRAINED_ON = {"general": "mixture", "gauss3": "mixture"}
SHARP_INPUT_PSNR = 40.0  # dB: a shipped model leaves a sharp photograph nearly untouched


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_a_shipped_model_loads_by_name_and_each_branch_inverts_exactly(name):
    model = WaveletUNetFlow.from_pretrained(name)
    image = torch.rand(2, 1, 40, 56, generator=torch.Generator().manual_seed(0))
    for branch in ("blur", "sharp"):
        encoding = model.encode(image, branch)
        restored = model.decode(encoding, branch)
        assert (restored - image).abs().max().item() < ROUND_TRIP_TOLERANCE[torch.float32]
    assert model.metadata["dataset"]["blur"]["kind"] == TRAINED_ON[name]
    assert model.metadata["train_config"]["stage_steps"][:3] == [0, 0, 0]  # trained end to end


def test_info_lists_the_shipped_models_and_describes_the_default(tmp_path):
    result = run_command("info", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listing = result.stdout.split("model: ")[0]
    assert all(name in listing for name in SHIPPED_MODELS)
    assert "pretrained/general" in result.stdout


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_a_shipped_model_leaves_sharp_input_nearly_untouched(name):
    """Sharp built-in validation crops come back above 40 dB: it invents no detail or speckle on them."""
    dataset = build_dataset("builtin", split="val", crop_size=128, blur=BlurSpec(kind="none", kernel_size=1))
    sharp = torch.stack([dataset[index]["sharp"] for index in range(0, len(dataset), 3)])
    with torch.inference_mode():
        restored = WaveletUNetFlow.from_pretrained(name).restore(sharp).clamp(0.0, 1.0)
    assert image_scores(restored, sharp, space="y")["psnr"].clamp(max=100).mean() >= SHARP_INPUT_PSNR
