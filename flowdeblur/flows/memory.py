"""Backpropagation by inversion: an invertible chain whose training memory does not grow with its number of blocks.

FrEIA keeps every block's activations for the backward pass (its issue #36). :class:`MemorySavingChain` keeps only
its output. During the backward pass it recovers each block's input from that block's output and backpropagates
through the block, one block at a time (the RevNet / i-RevNet technique: Gomez et al. 2017, Jacobsen et al. 2018).
A FrEIA ``GLOWCouplingBlock``'s inverse evaluates the same subnets on the same tensors as its forward pass, so each
subnet runs once, with gradients on, and serves both the inversion and the local gradients; other blocks (ActNorm,
the 1x1 convolution: cheap) are run in reverse and then forward again with gradients on. The price is about one
extra forward pass of the couplings per training step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from FrEIA.framework import GraphINN, SequenceINN
from FrEIA.modules import GLOWCouplingBlock, InvertibleModule
from torch import Tensor, nn

from .values_key import values_key


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
        ctx.values = values_key(parameters)  # after ActNorm's initialisation, if any
        ctx.save_for_backward(out, *conditions)
        return out, log_det

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor, grad_log_det: Tensor) -> tuple[Tensor | None, ...]:
        if values_key(ctx.parameters) != ctx.values:
            raise RuntimeError(
                "a parameter of a MemorySavingChain changed between its forward and backward pass "
                "(an optimiser step or an initialisation in between): its inputs can no longer be recovered"
            )
        out, *conditions = ctx.saved_tensors
        chain, rev = ctx.chain, ctx.rev
        needs = ctx.needs_input_grad[3:]
        leaves = [c.detach().requires_grad_(need) for c, need in zip(conditions, needs[1:], strict=False)]
        totals = _Gradients(ctx.parameters)
        device, dtype, enabled = ctx.autocast
        steps = list(zip(chain.module_list, chain.conditions, strict=True))
        order = list(zip(steps[::-1] if rev else steps, ctx.input_dtypes, strict=True))
        with torch.autocast(device_type=device, dtype=dtype, enabled=enabled), torch.enable_grad():
            for (block, condition), input_dtype in reversed(order):
                local = _LocalBackward(block, [leaves[condition]] if condition is not None else [], rev, totals)
                out, grad_out = local.run(out.detach(), grad_out, grad_log_det, input_dtype)
        grad_conditions = [totals.pop(leaf) for leaf in leaves]
        return None, None, None, grad_out if needs[0] else None, *grad_conditions, *totals.parameter_grads()


class _Gradients:
    """Running sums of the gradients of the chain's parameters and condition leaves, kept by tensor identity."""

    def __init__(self, parameters: Sequence[Tensor]):
        self.parameters = list(parameters)
        self.wanted = {id(parameter) for parameter in self.parameters}
        self.sums: dict[int, Tensor] = {}

    def targets(self, module: nn.Module, conditions: Sequence[Tensor]) -> list[Tensor]:
        """The tensors a block's local gradients are taken for: its conditions needing them, its trained parameters."""
        return [c for c in conditions if c.requires_grad] + [p for p in module.parameters() if id(p) in self.wanted]

    def add(self, tensors: Sequence[Tensor], grads: Sequence[Tensor | None]) -> None:
        """Add each gradient to its tensor's sum; ``None`` (unused) adds nothing."""
        for tensor, grad in zip(tensors, grads, strict=True):
            if grad is not None:
                self.sums[id(tensor)] = grad if id(tensor) not in self.sums else self.sums[id(tensor)] + grad

    def pop(self, tensor: Tensor) -> Tensor | None:
        """The gradient summed for ``tensor`` (``None``: none), forgotten here."""
        return self.sums.pop(id(tensor), None)

    def parameter_grads(self) -> list[Tensor | None]:
        """The parameters' summed gradients, in the order the chain passed them."""
        return [self.pop(parameter) for parameter in self.parameters]


class _LocalBackward:
    """One block's share of the backward pass: recover its input from its output and backpropagate through it."""

    def __init__(self, block: nn.Module, conditions: Sequence[Tensor], rev: bool, totals: _Gradients):
        self.block, self.conditions, self.rev, self.totals = block, list(conditions), rev, totals

    def run(
        self, out: Tensor, grad_out: Tensor, grad_log_det: Tensor, input_dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        """(the block's input, the gradient with respect to it), parameter and condition gradients added to the sums."""
        if _is_glow_coupling(self.block):
            return self._coupling(out, grad_out, grad_log_det, input_dtype)
        return self._recompute(out, grad_out, grad_log_det, input_dtype)

    def _recompute(
        self, out: Tensor, grad_out: Tensor, grad_log_det: Tensor, input_dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        """Any block: invert it without gradients, then run it again with gradients and backpropagate."""
        with torch.no_grad():
            inp, _ = _run_block(self.block, out, [c.detach() for c in self.conditions], not self.rev)
        inp = inp.to(input_dtype).requires_grad_()
        result, log_det = _run_block(self.block, inp, self.conditions, self.rev)
        targets = self.totals.targets(self.block, self.conditions)
        grads = torch.autograd.grad(
            (result, log_det), [inp, *targets],
            (grad_out.to(result.dtype), grad_log_det.to(log_det.dtype)), allow_unused=True,
        )
        self.totals.add(targets, grads[1:])
        return inp.detach(), grads[0]

    def _coupling(
        self, out: Tensor, grad_out: Tensor, grad_log_det: Tensor, input_dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        """A GLOW coupling: each subnet runs once, its output serving both the inversion and the local gradients.

        The block is two affine halves, each moving one part of the tensor with coefficients a subnet computes
        from the other part. Undone last to first, a half's subnet input is already known (an output part, or
        one the later half recovered), so the subnet runs once with gradients on; the moved part is recovered
        from its coefficients by FrEIA's own inverse arithmetic, and the half's forward expression on that
        recovered part, with the same coefficients, gives its local gradients.
        """
        block = self.block
        sizes = [block.split_len1, block.split_len2]
        parts = list(torch.split(out, sizes, dim=1))
        grads = list(torch.split(grad_out, sizes, dim=1))
        halves = [(0, block.subnet2), (1, block.subnet1)]  # (moved part, subnet) in the order of FrEIA's forward
        for moved, subnet in (halves if self.rev else halves[::-1]):
            source = parts[1 - moved].detach().requires_grad_()
            parts[moved], grads[moved], grad_source = self._half(
                subnet, source, parts[moved], grads[moved], grad_log_det, input_dtype
            )
            grads[1 - moved] = grads[1 - moved] + grad_source
        return torch.cat(parts, 1), torch.cat(grads, 1)

    def _half(
        self, subnet: nn.Module, source: Tensor, moved_out: Tensor, grad_moved_out: Tensor, grad_log_det: Tensor,
        input_dtype: torch.dtype,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One affine half undone: (the moved part's input, its gradient, the gradient through the subnet's input)."""
        block = self.block
        coefficients = subnet(torch.cat([source, *self.conditions], 1) if block.conditional else source)
        size = moved_out.shape[1]
        scale = block.clamp * block.f_clamp(coefficients[:, :size])
        shift = coefficients[:, size:]
        log_det = torch.sum(scale, dim=tuple(range(1, block.ndims + 1)))
        with torch.no_grad():  # FrEIA's inverse of this half, to the bit
            moved_in = torch.exp(scale) * moved_out + shift if self.rev else (moved_out - shift) * torch.exp(-scale)
        moved_in = moved_in.to(input_dtype).requires_grad_()
        if self.rev:
            result, log_det = (moved_in - shift) * torch.exp(-scale), -log_det
        else:
            result = torch.exp(scale) * moved_in + shift
        targets = self.totals.targets(subnet, self.conditions)
        grads = torch.autograd.grad(
            (result, log_det), [moved_in, source, *targets],
            (grad_moved_out.to(result.dtype), grad_log_det.to(log_det.dtype)), allow_unused=True,
        )
        self.totals.add(targets, grads[2:])
        return moved_in.detach(), grads[0], grads[1]


def _is_glow_coupling(block: nn.Module) -> bool:
    """Whether ``block`` computes exactly FrEIA's ``GLOWCouplingBlock`` (a subclass may not change its arithmetic)."""
    methods = ("forward", "_coupling1", "_coupling2")
    return isinstance(block, GLOWCouplingBlock) and all(
        getattr(type(block), name) is getattr(GLOWCouplingBlock, name) for name in methods
    )


class MemorySavingChain(InvertibleModule):
    """A chain of single-tensor FrEIA blocks whose backward pass keeps no activations per block, whatever its length.

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
