"""WaveletUNetFlow: exact branches, the codec invariant, colour handling, sizes, save/load."""

import json
from dataclasses import replace

import pytest
import torch

from flowdeblur import CheckpointError, UMLINConfig, WaveletUNetFlow
from flowdeblur.color import channels_to_image, image_to_channels, rgb_to_ycbcr
from flowdeblur.flows import build_level_flow
from tests.flow_checks import ROUND_TRIP_TOLERANCE, brute_force_log_det, perturb_parameters

SMALL = dict(levels=2, steps=2, hidden_channels=8, transfer_hidden_channels=8, transfer_blocks=1)


def small_model(color="y", dtype=torch.float32, **overrides) -> WaveletUNetFlow:
    torch.manual_seed(0)
    model = WaveletUNetFlow(UMLINConfig(color=color, **{**SMALL, **overrides})).to(dtype)
    channels = model.config.channels
    model.initialize(torch.rand(2, channels, 16, 16, dtype=dtype), torch.rand(2, channels, 16, 16, dtype=dtype))
    perturb_parameters(model, scale=0.05)
    return model


def identity_model(color: str, **overrides) -> WaveletUNetFlow:
    """Both branches share weights and the transfer nets are untrained: the whole U is the identity."""
    model = small_model(color, **overrides)
    for net in model.transfer:
        torch.nn.init.zeros_(net.body[-1].weight)
        torch.nn.init.zeros_(net.body[-1].bias)
    model.start_sharp_from_blur()
    return model


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("color", ["y", "rgb"])
@pytest.mark.parametrize("branch", ["blur", "sharp"])
@pytest.mark.parametrize("shape", [(1, 67, 45), (3, 16, 24)])
def test_codec_invariant_each_branch_decodes_its_own_encoding(dtype, color, branch, shape):
    model = small_model(color, dtype, levels=3)
    batch, height, width = shape
    image = torch.rand(batch, model.config.channels, height, width, dtype=dtype)
    encoding = model.encode(image, branch)
    assert [z.shape[-2:] for z in encoding.latents] == [low.shape[-2:] for low in encoding.lowpasses]
    restored = model.decode(encoding, branch)
    assert restored.shape == image.shape
    assert (restored - image).abs().max().item() < ROUND_TRIP_TOLERANCE[dtype]


@pytest.mark.parametrize("color", ["y", "rgb"])
def test_whole_branch_log_det_matches_the_brute_force_jacobian(color):
    model = small_model(color, torch.float64)
    size = 16 if color == "y" else 8  # 256 and 192 dimensions
    image = torch.rand(1, model.config.channels, size, size, dtype=torch.float64)

    def branch(sample):
        encoding = model.encode(sample[None], "sharp")
        return torch.cat([z.flatten() for z in encoding.latents] + [encoding.coarsest.flatten()])

    encoding = model.encode(image, "sharp")
    total = sum(encoding.log_dets)
    assert abs(total.item()) > 1.0
    torch.testing.assert_close(total[0], brute_force_log_det(branch, image[0]), rtol=1e-6, atol=1e-8)


TRANSFER_OPTIONS = [{}, {"transfer_dilation": 2, "transfer_blocks": 3}, {"transfer_context": "restored"}]


@pytest.mark.parametrize("options", TRANSFER_OPTIONS)
@pytest.mark.parametrize("color,channels", [("y", 1), ("y", 3), ("rgb", 3)])
def test_identical_branches_make_the_model_the_identity(color, channels, options):
    model = identity_model(color, **options)
    image = 0.1 + 0.8 * torch.rand(2, channels, 45, 67)
    torch.testing.assert_close(model(image), image, atol=2e-5, rtol=0)


def test_synthesis_with_the_blurry_context_is_transfer_then_decode():
    model = small_model(levels=3)
    encoding = model.encode(torch.rand(2, 1, 24, 40), "blur")
    expected = model.decode(replace(encoding, latents=tuple(model.transfer_latents(encoding))), "sharp")
    torch.testing.assert_close(model.synthesize(encoding), expected)


def test_the_restored_context_conditions_each_transfer_net_on_the_rebuilt_low_pass():
    model = small_model(levels=2, transfer_context="restored")
    encoding = model.encode(torch.rand(1, 1, 16, 16), "blur")
    seen = []
    for net in model.transfer:
        net.register_forward_hook(lambda module, inputs, output: seen.append(inputs[1]))
    restored = model.synthesize(encoding)
    torch.testing.assert_close(seen[0], encoding.coarsest)  # the coarsest level: nothing restored above it
    latents = [model.transfer[level](encoding.latents[level], low) for level, low in ((1, seen[0]), (0, seen[1]))]
    rebuilt = model.decode(replace(encoding, latents=tuple(latents[::-1])), "sharp")
    torch.testing.assert_close(restored, rebuilt)
    assert not torch.allclose(seen[1], encoding.lowpasses[0])  # level 1 sees x̂^(1), not x̃^(1)


def test_dilated_transfer_nets_grow_their_receptive_field():
    plain, dilated = (small_model(transfer_blocks=3, transfer_dilation=d) for d in (1, 2))
    for model in (plain, dilated):
        perturb_parameters(model.transfer, scale=0.1)
    reach = []
    for model in (plain, dilated):
        latent = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0), requires_grad=True)
        model.transfer[0](latent, torch.rand(1, 1, 64, 64))[0, :, 32, 32].sum().backward()
        reach.append(int((latent.grad.abs().sum((0, 1)) > 0).any(0).sum()))
    assert reach == [1 + 2 * (1 + 2 * 3 + 1), 1 + 2 * (1 + 2 * (1 + 2 + 4) + 1)]  # 3x3 convolutions


def test_y_model_keeps_the_chroma_of_rgb_input_and_clips():
    model = small_model("y")
    image = 0.3 + 0.4 * torch.rand(1, 3, 33, 20)
    out = model(image)
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
    unclipped = (out > 0) & (out < 1)
    inside = unclipped.all(dim=1)
    chroma_in, chroma_out = rgb_to_ycbcr(image)[:, 1:], rgb_to_ycbcr(out)[:, 1:]
    assert inside.any()
    torch.testing.assert_close(chroma_out[:, :, inside[0]], chroma_in[:, :, inside[0]], atol=1e-5, rtol=0)


def test_wrong_channel_counts_are_refused():
    with pytest.raises(ValueError, match="expected a gray \\(1 channel\\) or RGB \\(3 channels\\) image"):
        small_model("y")(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="expected a batch \\(N, 3, H, W\\)"):
        small_model("rgb").encode(torch.rand(1, 1, 8, 8), "blur")
    with pytest.raises(ValueError, match="branch must be one of"):
        small_model("y").encode(torch.rand(1, 1, 8, 8), "noisy")


@pytest.mark.parametrize("color", ["y", "rgb"])
def test_a_gray_batch_is_deblurred_as_the_cli_deblurs_a_gray_file(color):
    """model(gray) deblurs the RGB image with R = G = B and returns it gray, as ``flowdeblur deblur gray.png`` does."""
    model = small_model(color)
    gray = 0.2 + 0.6 * torch.rand(2, 1, 20, 28)
    as_rgb = gray.expand(-1, 3, -1, -1)
    with torch.no_grad():
        networks_see = image_to_channels(as_rgb, color)
        torch.testing.assert_close(image_to_channels(gray, color), networks_see, atol=1e-6, rtol=0)
        restored = model.restore(networks_see)
    if color == "y":  # the input's chroma is neutral, so is the result's
        rgb_result = model(as_rgb)
        torch.testing.assert_close(rgb_result, rgb_result[:, :1].expand(-1, 3, -1, -1), atol=1e-5, rtol=0)
        torch.testing.assert_close(model(gray), rgb_result[:, :1], atol=1e-5, rtol=0)
    torch.testing.assert_close(model(gray), channels_to_image(restored, gray, color).clamp(0, 1), atol=1e-6, rtol=0)


def test_the_composer_uses_the_factories_it_is_handed():
    built = []

    def factory(config, level):
        built.append(level)
        return build_level_flow(3, condition_channels=1, steps=1, hidden_channels=4)

    model = WaveletUNetFlow(UMLINConfig(**SMALL), flow_factory=factory)
    assert built == [0, 1, 0, 1]
    assert model(torch.rand(1, 1, 8, 8)).shape == (1, 1, 8, 8)


def test_default_config_is_the_papers():
    config = UMLINConfig()
    assert (config.levels, config.steps, config.kernel_size, config.color) == (3, 4, 5, "y")
    model = WaveletUNetFlow()
    counts = model.parameter_counts()
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert model.codec("blur").levels == model.codec("sharp").levels == len(model.transfer) == 3
    assert model.codec("blur") is not model.codec("sharp")


def test_save_and_load_round_trip(tmp_path):
    model = small_model("rgb")
    model.metadata = {"trained_on": "builtin"}
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = WaveletUNetFlow.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config and loaded.metadata == model.metadata
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    image = torch.rand(2, 3, 21, 30)
    torch.testing.assert_close(loaded(image), model.eval()(image), atol=0, rtol=0)


def _saved(tmp_path):
    directory = tmp_path / "model"
    small_model("y").save_pretrained(directory)
    return directory


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda d: (d / "config.json").write_text("{not json"), "is not valid JSON"),
        (lambda d: (d / "config.json").write_text("[1, 2]"), "is not a flowdeblur model config"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 64), "is not a readable safetensors file"),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({**json.loads((d / "config.json").read_text()), "config": {**SMALL, "hidden_channels": 4}})
            ),
            "do not fit the architecture",
        ),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({**json.loads((d / "config.json").read_text()), "config": {"levls": 2}})
            ),
            "unknown UMLINConfig fields \\['levls'\\]",
        ),
    ],
)
def test_a_bad_checkpoint_directory_gets_one_clear_error(tmp_path, damage, message):
    directory = _saved(tmp_path)
    damage(directory)
    with pytest.raises(CheckpointError, match=message):
        WaveletUNetFlow.from_pretrained(directory)


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="does-not-exist does not exist"):
        WaveletUNetFlow.from_pretrained(tmp_path / "does-not-exist")


def test_saving_over_a_model_leaves_no_temporary_files(tmp_path):
    directory = _saved(tmp_path)
    small_model("y").save_pretrained(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_a_shared_codec_is_one_wavelet_flow_for_both_branches_and_the_u_starts_as_the_identity(tmp_path):
    torch.manual_seed(0)
    model = WaveletUNetFlow(UMLINConfig(shared_codec=True, **SMALL))
    separate = WaveletUNetFlow(UMLINConfig(**SMALL))
    assert model.codec("blur") is model.codec("sharp")
    assert {key.split(".")[1] for key in model.state_dict() if key.startswith("flows.")} == {"shared"}
    flow_parameters = [separate.parameter_counts()["total"] - model.parameter_counts()["total"],
                       sum(p.numel() for p in model.codec("blur").parameters())]
    assert flow_parameters[0] == flow_parameters[1] > 0
    image = 0.1 + 0.8 * torch.rand(2, 1, 24, 20)
    model.initialize(image, image)
    perturb_parameters(model.flows, scale=0.05)
    with torch.no_grad():
        torch.testing.assert_close(model.restore(image), image, atol=2e-5, rtol=0)
    model.save_pretrained(tmp_path / "shared")
    loaded = WaveletUNetFlow.from_pretrained(tmp_path / "shared")
    assert loaded.config.shared_codec and loaded.codec("blur") is loaded.codec("sharp")
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())


def test_memory_saving_changes_neither_the_output_nor_the_gradients():
    plain = small_model("y", torch.float64)
    saving = WaveletUNetFlow(UMLINConfig(memory_saving=True, **SMALL)).to(torch.float64)
    saving.load_state_dict(plain.state_dict())
    blurry, sharp = torch.rand(2, 1, 16, 24, dtype=torch.float64), torch.rand(2, 1, 16, 24, dtype=torch.float64)
    for model in (plain, saving):
        (model.restore(blurry) - sharp).abs().mean().backward()
    for (name, a), b in zip(plain.named_parameters(), saving.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-12, msg=name)


@pytest.mark.parametrize("context", ["blurry", "restored"])
def test_synthesis_reports_the_transferred_latents_it_inverted(context):
    model = small_model(levels=2, transfer_context=context)
    encoding = model.encode(torch.rand(1, 1, 16, 16), "blur")
    image, latents = model.synthesize_with_latents(encoding)
    torch.testing.assert_close(model.decode(replace(encoding, latents=tuple(latents)), "sharp"), image)
    if context == "blurry":
        torch.testing.assert_close(latents, model.transfer_latents(encoding))
