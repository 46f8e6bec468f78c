"""One level's flow (paper Eq. 6): a FrEIA GraphINN of K steps ActNorm -> 1x1 conv -> affine coupling."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from FrEIA.framework import ConditionNode, GraphINN, InputNode, Node, OutputNode
from FrEIA.modules import GLOWCouplingBlock
from torch import Tensor, nn

from . import fastconv
from .actnorm import ActNorm
from .conv1x1 import InvertibleConv1x1
from .memory import MemorySavingChain


class CouplingSubnet(nn.Sequential):
    """Glow-style coupling subnet: k x k conv, ReLU, 1x1 conv, ReLU, k x k conv with zero-initialised weights.

    The zero last layer makes every coupling the identity at initialisation. The output is returned in
    at least float32 even when the convolutions run under autocast in half precision, so the coupling's
    exponentials and log-dets stay in float32. Under ``torch.inference_mode`` on the CPU it takes
    :mod:`.fastconv`'s route: same results to float rounding, in less time.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int = 64, kernel_size: int = 5):
        padding = kernel_size // 2
        last = nn.Conv2d(hidden_channels, out_channels, kernel_size, padding=padding)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        super().__init__(
            nn.Conv2d(in_channels, hidden_channels, kernel_size, padding=padding),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, hidden_channels, 1),
            nn.ReLU(inplace=True),
            last,
        )

    def forward(self, x: Tensor) -> Tensor:
        if fastconv.applies(x):
            return self._fast_forward(x)
        out = super().forward(x)
        return out.to(torch.promote_types(out.dtype, torch.float32))

    def _fast_forward(self, x: Tensor) -> Tensor:
        """The same layers through :mod:`.fastconv`: channels-last, ReLUs fused, the thin last layer by phases."""
        first, _, pointwise, _, last = self
        hidden = fastconv.conv2d(fastconv.channels_last(x), first, relu=True)
        return fastconv.thin_conv2d(fastconv.conv2d(hidden, pointwise, relu=True), last)


def subnet_factory(hidden_channels: int = 64, kernel_size: int = 5) -> Callable[[int, int], nn.Module]:
    """A FrEIA ``subnet_constructor(c_in, c_out)`` building :class:`CouplingSubnet` with these sizes."""
    return partial(CouplingSubnet, hidden_channels=hidden_channels, kernel_size=kernel_size)


class IdentityFlow(nn.Module):
    """The flow of zero steps: ``z = x`` with log|det J| = 0, called like a level's GraphINN (any condition ignored).

    A wavelet flow of identity levels is the bare Haar pyramid: the row every codec design is measured against.
    """

    def forward(
        self, x: Tensor, c: list[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[Tensor, Tensor]:
        return x, x.new_zeros(x.shape[0])


def glow_step_nodes(
    previous: Node | tuple[Node, int],
    subnet: Callable[[int, int], nn.Module],
    clamp: float = 2.0,
    conditions: Sequence[Node] = (),
    name: str = "",
) -> list[Node]:
    """One Glow step (Kingma & Dhariwal 2018) as FrEIA nodes after ``previous``: ActNorm -> 1x1 conv -> affine coupling.

    The coupling sees ``conditions``; node names end in ``_<name>``. Every flow here, and any FrEIA graph, chains these.
    """
    actnorm = Node(previous, ActNorm, {}, name=f"actnorm_{name}")
    conv = Node(actnorm, InvertibleConv1x1, {}, name=f"conv1x1_{name}")
    coupling = Node(conv, GLOWCouplingBlock, {"subnet_constructor": subnet, "clamp": clamp},
                    conditions=list(conditions), name=f"coupling_{name}")
    return [actnorm, conv, coupling]


def build_level_flow(
    channels: int,
    condition_channels: int = 0,
    steps: int = 4,
    kernel_size: int = 5,
    hidden_channels: int = 64,
    clamp: float = 2.0,
    memory_saving: bool = False,
) -> GraphINN | MemorySavingChain | IdentityFlow:
    """K flow steps of ActNorm -> InvertibleConv1x1 -> GLOWCouplingBlock on (channels, H, W) tensors.

    With ``condition_channels > 0`` every coupling also sees a condition image of that many channels at
    the same resolution (Wavelet Flow's p(detail | low-pass)); call it as ``flow(x, c=[low])``. The graph
    works at any spatial size: every block takes its log-det from the tensor it receives, so the 1 x 1
    spatial dims declared to FrEIA are only placeholders. With ``memory_saving`` the same blocks come as a
    :class:`MemorySavingChain`: same outputs, same call and same state-dict keys, but training memory that
    does not grow with ``steps`` (inputs are recomputed by inversion in the backward pass). Zero steps give
    :class:`IdentityFlow`.

    Example:
        >>> flow = build_level_flow(channels=3, condition_channels=1, steps=2, hidden_channels=16)
        >>> z, log_det = flow(torch.randn(2, 3, 16, 16), c=[torch.rand(2, 1, 16, 16)])
    """
    if channels < 2:
        raise ValueError(f"an affine coupling needs at least 2 channels, got {channels}")
    if steps == 0:
        return IdentityFlow()
    nodes: list[Node] = [InputNode(channels, 1, 1, name="input")]
    conditions = [ConditionNode(condition_channels, 1, 1, name="condition")] if condition_channels else []
    subnet = subnet_factory(hidden_channels, kernel_size)
    for step in range(steps):
        nodes += glow_step_nodes(nodes[-1], subnet, clamp, conditions, name=str(step))
    nodes.append(OutputNode(nodes[-1], name="output"))
    graph = GraphINN(nodes + conditions)
    return MemorySavingChain.from_graph(graph) if memory_saving else graph
