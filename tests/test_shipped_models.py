"""The models shipped inside the package: each loads by name, inverts exactly, and says what it was trained on."""

import pytest
import torch

from flowdeblur.pretrained import SHIPPED_MODELS, load_model
from tests.cli_helpers import run_command
from tests.flow_checks import ROUND_TRIP_TOLERANCE

TRAINED_ON = {"general": "mixture", "gauss3": "gaussian"}


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_a_shipped_model_loads_by_name_and_each_branch_inverts_exactly(name):
    model = load_model(name)
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
