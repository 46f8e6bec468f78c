"""Backpropagation by inversion: an invertible chain whose training memory does not grow with its number of blocks.

FrEIA keeps every block's activations for the backward pass (its issue #36). :class:`MemorySavingChain` keeps only
its output. During the backward pass it recovers each block's input from that block's output by running the block
in reverse, then re-runs the block forward with gradients on to get its local gradients, one block at a time
(the RevNet / i-RevNet technique: Gomez et al. 2017, Jacobsen et al. 2018). The price is about one extra forward
and one reverse pass per training step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from FrEIA.framework import GraphINN, SequenceINN
from FrEIA.modules import InvertibleModule
from torch import Tensor, nn


def _run_block(
    block: nn.Module, x: Tensor, conditions: Sequence[Tensor], rev: bool
) -> tuple[Tensor, Tensor]:
    """One FrEIA block on one tensor: (output, log-det); conditions are passed only to blocks that take them."""
    kwargs = {"c": list(conditions)} if conditions else {}
    (out,), log_det = block((x,), rev=rev, jac=True, **kwargs)
    return out, log_det


class _BackpropByInversion(torch.autograd.Function):
    """Runs the chain without saving activations; the backward pass recomputes them block by block by inversion."""

    @staticmethod
    def forward(ctx: Any, chain: MemorySavingChain, rev: bool, condition_count: int, *tensors: Tensor) -> Any:
        x, conditions, parameters = tensors[0], tensors[1 : 1 + condition_count], tensors[1 + condition_count :]
        out, log_det, input_dtypes = chain.run(x, conditions, rev)
        device = x.device.type
        ctx.chain, ctx.rev, ctx.input_dtypes = chain, rev, input_dtypes
        ctx.autocast = (device, torch.get_autocast_dtype(device), torch.is_autocast_enabled(device))
        ctx.parameters = parameters
        ctx.versions = [parameter._version for parameter in parameters]  # after ActNorm's initialisation, if any
        ctx.save_for_backward(out, *conditions)
        return out, log_det

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor, grad_log_det: Tensor) -> tuple[Tensor | None, ...]:
        if [parameter._version for parameter in ctx.parameters] != ctx.versions:
            raise RuntimeError(
                "a parameter of a MemorySavingChain changed between its forward and backward pass "
                "(an optimiser step or an initialisation in between): its inputs can no longer be recovered"
            )
        out, *conditions = ctx.saved_tensors
        chain, rev = ctx.chain, ctx.rev
        needs = ctx.needs_input_grad[3:]
        leaves = [c.detach().requires_grad_(need) for c, need in zip(conditions, needs[1:], strict=False)]
        grad_conditions: list[Tensor | None] = [None] * len(conditions)
        index = {id(parameter): i for i, parameter in enumerate(ctx.parameters)}
        grad_parameters: list[Tensor | None] = [None] * len(ctx.parameters)
        device, dtype, enabled = ctx.autocast
        steps = list(zip(chain.module_list, chain.conditions, strict=True))
        order = list(zip(steps[::-1] if rev else steps, ctx.input_dtypes, strict=True))
        with torch.autocast(device_type=device, dtype=dtype, enabled=enabled):
            for (block, condition), input_dtype in reversed(order):
                block_conditions = [leaves[condition]] if condition is not None else []
                with torch.no_grad():
                    inp, _ = _run_block(block, out, [c.detach() for c in block_conditions], not rev)
                inp = inp.to(input_dtype).requires_grad_()
                with torch.enable_grad():
                    result, log_det = _run_block(block, inp, block_conditions, rev)
                block_parameters = [p for p in block.parameters() if id(p) in index]
                condition_leaves = [c for c in block_conditions if c.requires_grad]
                grads = torch.autograd.grad(
                    (result, log_det),
                    [inp, *condition_leaves, *block_parameters],
                    (grad_out.to(result.dtype), grad_log_det.to(log_det.dtype)),
                    allow_unused=True,
                )
                grad_out, out = grads[0], inp.detach()
                if condition_leaves and grads[1] is not None:
                    grad_conditions[condition] = _add(grad_conditions[condition], grads[1])
                for parameter, grad in zip(block_parameters, grads[1 + len(condition_leaves) :], strict=True):
                    if grad is not None:
                        grad_parameters[index[id(parameter)]] = _add(grad_parameters[index[id(parameter)]], grad)
        return None, None, None, grad_out if needs[0] else None, *grad_conditions, *grad_parameters


def _add(total: Tensor | None, grad: Tensor) -> Tensor:
    """``total + grad``, where ``None`` is zero."""
    return grad if total is None else total + grad


class MemorySavingChain(InvertibleModule):
    """A chain of single-tensor FrEIA blocks that backpropagates in memory that does not grow with its length.

    Forward and reverse results are those of the same blocks in a ``SequenceINN`` or a chain-shaped ``GraphINN``;
    only the backward pass differs: it keeps the chain's output and recovers every block's input by inversion
    instead of storing it. ``conditions[i]`` is the index, in ``c``, of the condition tensor block ``i`` takes
    (``None``: none). The blocks' parameters are held in ``module_list`` as in FrEIA, so state dicts are
    interchangeable with the plain chain's.

    Requirements: the blocks are deterministic (no dropout) and invertible to float precision, and parameters
    do not change between the forward and the backward pass (checked). A data-dependent initialisation such as
    :class:`~flowdeblur.flows.ActNorm`'s happens once, in the forward pass, before the output is computed, so the
    backward pass recomputes with the initialised values; initialising before wrapping works as well.

    Example:
        >>> from FrEIA.framework import SequenceINN
        >>> from flowdeblur.flows import ActNorm, InvertibleConv1x1
        >>> plain = SequenceINN(4, 8, 8)
        >>> for _ in range(3):
        ...     plain.append(ActNorm)
        ...     plain.append(InvertibleConv1x1)
        >>> chain = MemorySavingChain.from_sequence(plain)
        >>> x = torch.randn(2, 4, 8, 8, requires_grad=True)
        >>> z, log_det = chain(x)
        >>> (z.square().sum() - log_det.sum()).backward()
        >>> x.grad.shape
        torch.Size([2, 4, 8, 8])
    """

    def __init__(self, blocks: Sequence[InvertibleModule], conditions: Sequence[int | None] | None = None):
        if not blocks:
            raise ValueError("a MemorySavingChain needs at least one block")
        conditions = list(conditions) if conditions is not None else [None] * len(blocks)
        if len(conditions) != len(blocks):
            raise ValueError(f"{len(blocks)} blocks but {len(conditions)} condition entries")
        dims_c: dict[int, tuple[int, ...]] = {}
        for block, condition in zip(blocks, conditions, strict=True):
            if condition is not None:
                dims_c[condition] = tuple(block.dims_c[0])
        super().__init__(blocks[0].dims_in, [dims_c[i] for i in sorted(dims_c)])
        self.module_list = nn.ModuleList(blocks)
        self.conditions = conditions

    @classmethod
    def from_sequence(cls, sequence: SequenceINN) -> MemorySavingChain:
        """The blocks of a FrEIA ``SequenceINN``, with its conditions, as a memory-saving chain."""
        return cls(list(sequence.module_list), sequence.conditions)

    @classmethod
    def from_graph(cls, graph: GraphINN) -> MemorySavingChain:
        """The blocks of a chain-shaped FrEIA ``GraphINN`` (one input, one output, one tensor between blocks)."""
        nodes = [node for node in graph.node_list if node.module is not None]
        conditions: list[int | None] = []
        for previous, node in zip([*graph.in_nodes, *nodes], nodes, strict=False):
            if [source for source, _ in node.inputs] != [previous] or len(node.output_dims) != 1:
                raise ValueError(f"{node} is not a link of a single-tensor chain")
            if len(node.conditions) > 1:
                raise ValueError(f"{node} takes {len(node.conditions)} conditions; a chain block takes at most one")
            conditions.append(graph.condition_nodes.index(node.conditions[0]) if node.conditions else None)
        return cls([node.module for node in nodes], conditions)

    def run(self, x: Tensor, conditions: Sequence[Tensor], rev: bool) -> tuple[Tensor, Tensor, list[torch.dtype]]:
        """The plain chain: (output, log-det, the dtype of each block's input in the order they ran)."""
        steps = list(zip(self.module_list, self.conditions, strict=True))
        log_det_total = x.new_zeros(x.shape[0])
        input_dtypes = []
        for block, condition in steps[::-1] if rev else steps:
            input_dtypes.append(x.dtype)
            x, log_det = _run_block(block, x, [conditions[condition]] if condition is not None else [], rev)
            log_det_total = log_det_total + log_det
        return x, log_det_total, input_dtypes

    def forward(
        self, x_or_z: Tensor | Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[Tensor, Tensor]:
        """FrEIA's call contract, ``(z, log_det)`` like ``SequenceINN``; inversion replaces stored activations."""
        x = x_or_z if torch.is_tensor(x_or_z) else x_or_z[0]
        conditions = [c] if torch.is_tensor(c) else list(c or [])
        parameters = [parameter for parameter in self.parameters() if parameter.requires_grad]
        if not torch.is_grad_enabled() or not any(t.requires_grad for t in (x, *conditions, *parameters)):
            out, log_det, _ = self.run(x, conditions, rev)
            return out, log_det
        return _BackpropByInversion.apply(self, rev, len(conditions), x, *conditions, *parameters)

    def output_dims(self, input_dims: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return list(input_dims)
