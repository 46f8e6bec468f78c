"""The designs beyond the paper: the pyramid transfer net, the restored coarsest low-pass, the full-resolution stage
and the bare pyramid (zero flow steps). Each stays exactly invertible where it is a codec, starts as the identity,
trains every part it adds, and is refused where it makes no sense."""

import pytest
import torch

from flowdeblur import UMLINConfig, WaveletUNetFlow
from flowdeblur.config import PRESETS
from flowdeblur.flows import IdentityFlow, build_level_flow
from flowdeblur.pyramid_transfer import PyramidTransfer
from flowdeblur.train.stages import STAGES, Objectives, StageObjective
from tests.flow_checks import ROUND_TRIP_TOLERANCE, brute_force_log_det, perturb_parameters

PYRAMID = dict(levels=2, steps=1, hidden_channels=8, transfer_net="pyramid", transfer_hidden_channels=8,
               transfer_blocks=1, transfer_extra_levels=1, restore_lowpass=True, refine_channels=8)
DESIGNS = {"pyramid": PYRAMID, "bare pyramid": {**PYRAMID, "steps": 0}, "pyramid, no extras":
           {**PYRAMID, "transfer_extra_levels": 0, "restore_lowpass": False, "refine_channels": 0}}


def initialised(dtype=torch.float32, **config) -> WaveletUNetFlow:
    torch.manual_seed(0)
    model = WaveletUNetFlow(UMLINConfig(**config)).to(dtype)
    model.initialize(torch.rand(2, 1, 16, 16, dtype=dtype), torch.rand(2, 1, 16, 16, dtype=dtype))
    return model


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_each_codec_of_every_design_inverts_exactly(design, dtype):
    model = initialised(dtype, **DESIGNS[design])
    perturb_parameters(model)
    image = torch.rand(2, 1, 37, 22, dtype=dtype)
    for branch in ("blur", "sharp"):
        restored = model.decode(model.encode(image, branch), branch)
        assert (restored - image).abs().max().item() < ROUND_TRIP_TOLERANCE[dtype]


@pytest.mark.parametrize("design", DESIGNS)
def test_every_design_s_branch_log_det_matches_the_brute_force_jacobian(design):
    model = initialised(torch.float64, **DESIGNS[design])
    perturb_parameters(model)
    image = torch.rand(1, 1, 8, 8, dtype=torch.float64)

    def branch(sample):
        encoding = model.encode(sample[None], "blur")
        return torch.cat([z.flatten() for z in encoding.latents] + [encoding.coarsest.flatten()])

    expected = brute_force_log_det(branch, image[0])
    torch.testing.assert_close(model.encode(image, "blur").log_det[0], expected)


def test_zero_flow_steps_are_the_bare_haar_pyramid():
    flow = build_level_flow(3, condition_channels=1, steps=0)
    x = torch.randn(2, 3, 5, 4)
    z, log_det = flow(x, c=[torch.rand(2, 1, 5, 4)])
    assert isinstance(flow, IdentityFlow) and z is x and torch.equal(log_det, torch.zeros(2))
    model = initialised(**DESIGNS["bare pyramid"])
    assert sum(p.numel() for p in model.flows.parameters()) == 0


@pytest.mark.parametrize("design", DESIGNS)
def test_every_design_starts_as_the_identity_from_the_shared_codec_start(design):
    model = initialised(**DESIGNS[design])
    model.start_sharp_from_blur()
    image = torch.rand(2, 1, 40, 24)
    with torch.no_grad():
        torch.testing.assert_close(model.restore(image), image, atol=2e-5, rtol=0)


def test_the_pyramid_net_restores_every_level_and_the_coarsest_low_pass():
    model = initialised(**PYRAMID)
    perturb_parameters(model.transfer)
    blurry = model.encode(torch.rand(1, 1, 24, 40), "blur")
    latents, coarsest = model.transfer_pyramid(blurry)
    assert [z.shape for z in latents] == [z.shape for z in blurry.latents]
    assert coarsest.shape == blurry.coarsest.shape and not torch.equal(coarsest, blurry.coarsest)
    assert all(not torch.equal(a, b) for a, b in zip(latents, blurry.latents, strict=True))


def test_the_pyramid_net_sees_every_level():
    """A change in the coarsest level's latents reaches the finest level's output (one net across the pyramid)."""
    net = PyramidTransfer(latent_channels=3, condition_channels=1, levels=3, width=4, extra_levels=1)
    perturb_parameters(net, scale=0.3)
    latents = [torch.rand(1, 3, 16 >> level, 16 >> level, requires_grad=True) for level in range(3)]
    lows = [torch.rand(1, 1, 16 >> level, 16 >> level) for level in range(3)]
    net(latents, lows)[0][0].sum().backward()
    assert latents[2].grad.abs().sum() > 0


@pytest.mark.parametrize("index", range(len(STAGES)))
def test_each_stage_trains_exactly_its_parts_of_the_pyramid_design(index):
    model = initialised(**PYRAMID)
    perturb_parameters(model, scale=0.05)
    objective = StageObjective(model, Objectives(l1_weight=0.01, sharp_init="separate"))
    objective.stage = STAGES[index]
    objective(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16))["loss"].backward()
    with_grad = {id(p) for p in model.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == {id(p) for p in STAGES[index].parameters(model)}


@pytest.mark.parametrize("fields, message", [
    ({"transfer_net": "pyramid", "transfer_context": "restored"}, "transfer_context"),
    ({"restore_lowpass": True}, "pyramid"),
    ({"transfer_extra_levels": 1}, "pyramid"),
    ({"refine_channels": -1}, "refine_channels"),
    ({"steps": -1}, "steps"),
])
def test_designs_that_make_no_sense_are_refused_by_name(fields, message):
    with pytest.raises(ValueError, match=message):
        UMLINConfig(**fields)


def test_the_paper_preset_is_still_the_default_config():
    assert PRESETS["paper"] == UMLINConfig()
    assert UMLINConfig().transfer_net == "per-level" and UMLINConfig().refine_channels == 0


def test_inference_shifts_average_shifted_passes_in_eval_mode_only():
    """Cycle spinning: each pass sees the image moved against the block grid; training keeps one pass."""
    model = initialised(**PYRAMID, inference_shifts=(0, 3))
    perturb_parameters(model, scale=0.05)
    image = torch.rand(2, 1, 21, 30, generator=torch.Generator().manual_seed(1))
    one_pass = model.synthesize(model.encode(image, "blur"))
    shifted = torch.nn.functional.pad(image, (3, 0, 3, 0), mode="reflect")
    second = model.synthesize(model.encode(shifted, "blur"))[..., 3:, 3:]
    assert torch.equal(model.train().restore(image), one_pass)
    with torch.no_grad():
        averaged = model.eval().restore(image)
    assert torch.allclose(averaged, (one_pass + second) / 2, atol=1e-6)
    assert (averaged - one_pass).abs().max() > 1e-3  # the grid matters to a perturbed model: the passes differ
    assert model.eval().restore(torch.rand(1, 1, 2, 2)).shape == (1, 1, 2, 2)  # too small to reflect: replicated


@pytest.mark.parametrize("shifts", [(), (0, 0), (0, 8), (-1,)])
def test_inference_shifts_must_be_distinct_offsets_inside_the_grid(shifts):
    with pytest.raises(ValueError, match="inference_shifts must be distinct pixel offsets from 0 to 7"):
        UMLINConfig(**PYRAMID, inference_shifts=shifts)
