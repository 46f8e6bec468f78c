"""MemorySavingChain: the plain chain's outputs, and its gradients, from inputs recovered by inversion."""

import doctest

import pytest
import torch
from FrEIA.framework import SequenceINN
from FrEIA.modules import GLOWCouplingBlock

import flowdeblur.flows.memory
from flowdeblur.flows import ActNorm, InvertibleConv1x1, MemorySavingChain, build_level_flow, subnet_factory
from tests.flow_checks import perturb_parameters


def level_flows(conditional: bool, dtype: torch.dtype = torch.float64, steps: int = 3):
    """The same level flow twice, plain and memory-saving, initialised and perturbed identically."""
    torch.manual_seed(0)
    condition_channels = 1 if conditional else 0
    plain = build_level_flow(3, condition_channels=condition_channels, steps=steps, hidden_channels=8).to(dtype)
    saving = build_level_flow(3, condition_channels, steps, hidden_channels=8, memory_saving=True).to(dtype)
    x, c = batch(conditional, dtype)
    plain(x, c=c)  # ActNorm's data initialisation
    perturb_parameters(plain, scale=0.05)
    saving.load_state_dict(plain.state_dict())
    return plain, saving


def batch(conditional: bool, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 6, generator=generator, dtype=dtype)
    return x, [torch.rand(2, 1, 6, 6, generator=generator, dtype=dtype)] if conditional else []


def gradients(flow, x, c, rev=False, passes=1):
    """Gradients of a Gaussian NLL (-log-det included) on every parameter, the input and the conditions."""
    x = x.clone().requires_grad_()
    c = [t.clone().requires_grad_() for t in c]
    flow.zero_grad(set_to_none=True)
    for scale in range(1, passes + 1):
        z, log_det = flow(x * scale, c=c, rev=rev)
        (0.5 * z.square().sum() - log_det.sum()).backward()
    named = {name: p.grad for name, p in flow.named_parameters()}
    return {**named, "input": x.grad, **{f"condition {i}": t.grad for i, t in enumerate(c)}}


def assert_same_gradients(expected, actual):
    assert expected.keys() == actual.keys()
    for name, grad in expected.items():
        assert grad is not None and actual[name] is not None, name
        torch.testing.assert_close(actual[name], grad, rtol=1e-5, atol=1e-12, msg=name)


@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("rev", [False, True])
def test_gradients_equal_standard_backprop(conditional, rev):
    plain, saving = level_flows(conditional)
    x, c = batch(conditional)
    assert_same_gradients(gradients(plain, x, c, rev), gradients(saving, x, c, rev))


@pytest.mark.parametrize("conditional", [True, False])
def test_forward_reverse_and_log_det_are_the_plain_chains(conditional):
    plain, saving = level_flows(conditional, torch.float32)
    x, c = batch(conditional, torch.float32)
    for rev in (False, True):
        with torch.enable_grad():
            x_grad = x.clone().requires_grad_()
            expected, actual = plain(x_grad, c=c, rev=rev), saving(x_grad, c=c, rev=rev)
        for want, got in zip(expected, actual, strict=True):
            assert torch.equal(want, got)
        with torch.no_grad():
            assert all(torch.equal(a, b) for a, b in zip(plain(x, c=c, rev=rev), saving(x, c=c, rev=rev), strict=True))


@pytest.mark.parametrize("rev", [False, True])
def test_gradient_accumulation_over_two_backward_passes(rev):
    plain, saving = level_flows(conditional=True)
    x, c = batch(conditional=True)
    assert_same_gradients(gradients(plain, x, c, rev, passes=2), gradients(saving, x, c, rev, passes=2))


@pytest.mark.parametrize("rev", [False, True])
def test_each_coupling_subnet_runs_once_per_backward_pass(rev):
    _, saving = level_flows(conditional=True, steps=2)
    x, c = batch(conditional=True)
    z, log_det = saving(x.requires_grad_(), c=c, rev=rev)
    calls = []
    subnets = [m for m in saving.modules() if isinstance(m, GLOWCouplingBlock) for m in (m.subnet1, m.subnet2)]
    handles = [subnet.register_forward_hook(lambda *_: calls.append(1)) for subnet in subnets]
    try:
        (z.sum() - log_det.sum()).backward()
    finally:
        for handle in handles:
            handle.remove()
    assert len(calls) == len(subnets) == 4


@pytest.mark.parametrize("rev", [False, True])
def test_other_clamp_activation_split_and_a_changed_subclass_get_the_plain_gradients(rev):
    class ShiftedCoupling(GLOWCouplingBlock):
        """Changes the arithmetic, so the chain must recompute it rather than reuse GLOW's inverse."""

        def forward(self, x, c=(), rev=False, jac=True):
            (y,), log_det = super().forward([x[0] + (-1.0 if rev else 0.0)], list(c), rev, jac)
            return (y + (0.0 if rev else 1.0),), log_det

    torch.manual_seed(0)
    sequence = SequenceINN(4, 5, 5)
    sequence.append(GLOWCouplingBlock, subnet_constructor=subnet_factory(8, 3), clamp_activation="TANH", split_len=1)
    sequence.append(InvertibleConv1x1)
    sequence.append(ShiftedCoupling, subnet_constructor=subnet_factory(8, 3), clamp=1.5)
    sequence.double()
    perturb_parameters(sequence, scale=0.05)
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    expected = gradients(sequence, x, [], rev)
    actual = gradients(MemorySavingChain.from_sequence(sequence), x, [], rev)
    assert_same_gradients({name.removeprefix("module_list."): g for name, g in expected.items()},
                          {name.removeprefix("module_list."): g for name, g in actual.items()})


def test_state_dicts_are_interchangeable():
    plain, saving = level_flows(conditional=True)
    assert list(plain.state_dict()) == list(saving.state_dict())
    fresh = build_level_flow(3, condition_channels=1, steps=3, hidden_channels=8).double()
    fresh.load_state_dict(saving.state_dict())
    x, c = batch(conditional=True)
    assert torch.equal(fresh(x, c=c)[0], saving(x, c=c)[0])


@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("rev", [False, True])
def test_bf16_autocast_keeps_the_log_det_in_float32_and_gradients_finite(conditional, rev):
    plain, saving = level_flows(conditional=conditional, dtype=torch.float32)
    x, c = batch(conditional=conditional, dtype=torch.float32)
    x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z, log_det = saving(x, c=c, rev=rev)
        loss = 0.5 * z.float().square().mean() - log_det.mean()
    assert log_det.dtype == torch.float32
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in saving.parameters())


def test_actnorm_initialises_once_in_the_first_forward_pass():
    torch.manual_seed(0)
    plain = build_level_flow(3, condition_channels=1, steps=2, hidden_channels=8).double()
    saving = build_level_flow(3, condition_channels=1, steps=2, hidden_channels=8, memory_saving=True).double()
    saving.load_state_dict(plain.state_dict())  # both uninitialised
    x, c = batch(conditional=True)
    assert_same_gradients(gradients(plain, x, c), gradients(saving, x, c))
    assert all(module.initialized for module in saving.modules() if isinstance(module, ActNorm))


@pytest.mark.parametrize("change", ["in place", "fused Adam step"])
def test_a_parameter_changed_before_backward_is_an_error(change):
    _, saving = level_flows(conditional=False)
    x, _ = batch(conditional=False)
    for parameter in saving.parameters():
        parameter.grad = torch.ones_like(parameter)
    z, log_det = saving(x.requires_grad_())
    if change == "in place":
        with torch.no_grad():
            next(saving.parameters()).add_(1.0)
    else:  # writes the weights without bumping their version counters
        torch.optim.Adam(saving.parameters(), lr=0.1, fused=True).step()
    with pytest.raises(RuntimeError, match="changed between its forward and backward"):
        (z.sum() + log_det.sum()).backward()


def test_a_sequence_inn_with_conditions_becomes_a_chain_with_its_gradients():
    torch.manual_seed(0)
    sequence = SequenceINN(4, 5, 5)
    for _ in range(2):
        sequence.append(ActNorm)
        sequence.append(InvertibleConv1x1)
        sequence.append(GLOWCouplingBlock, cond=0, cond_shape=(2, 5, 5), subnet_constructor=subnet_factory(8, 3))
    sequence.double()
    x, c = torch.randn(3, 4, 5, 5, dtype=torch.float64), [torch.rand(3, 2, 5, 5, dtype=torch.float64)]
    sequence(x, c=c)
    perturb_parameters(sequence, scale=0.05)
    expected = gradients(sequence, x, c)
    chain = MemorySavingChain.from_sequence(sequence)
    assert_same_gradients({name.removeprefix("module_list."): g for name, g in expected.items()},
                          {name.removeprefix("module_list."): g for name, g in gradients(chain, x, c).items()})


def test_distributed_data_parallel_gets_the_plain_gradients(tmp_path):
    plain, saving = level_flows(conditional=True)
    x, c = batch(conditional=True)
    expected = gradients(plain, x, c)
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(saving)
        actual = gradients(wrapped, x, c)
    finally:
        torch.distributed.destroy_process_group()
    assert_same_gradients(expected, {name.removeprefix("module."): g for name, g in actual.items()})


def test_examples_run():
    assert doctest.testmod(flowdeblur.flows.memory).failed == 0
