"""Activation normalisation (Glow, Kingma & Dhariwal 2018) as a FrEIA module that works at any image size."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from FrEIA.modules import InvertibleModule
from torch import Tensor, nn

# whether torch.export is tracing; a torch older than 2.7 has no such query, and cannot export these modules anyway
_exporting = getattr(torch.compiler, "is_exporting", lambda: False)
# Sums across processes for the data-dependent initialisation (None: this process's batch alone); see pooled_statistics.
_REDUCE_SUM: ContextVar[Callable[[Tensor], Tensor] | None] = ContextVar("flowdeblur_actnorm_reduce_sum", default=None)


@contextmanager
def pooled_statistics(reduce_sum: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within: ActNorm initialises from the statistics of every process's batch, ``reduce_sum`` summing a tensor
    across processes (an all-reduce), so that the initial weights depend on the global batch, not on how it is split.

    Every process must run the same initialising forward passes inside it, in the same order.
    """
    token = _REDUCE_SUM.set(reduce_sum)
    try:
        yield
    finally:
        _REDUCE_SUM.reset(token)


class ActNorm(InvertibleModule):
    """Per-channel affine map ``y = x * exp(log_scale) + bias`` with data-dependent initialisation.

    Fixes over FrEIA 0.2's ``ActNorm``: the log-det uses the spatial size of the tensor it receives (not
    the size the graph was built with), the module accepts FrEIA's condition argument, initialisation
    happens only on a forward (``rev=False``) pass, and whether it happened is a buffer saved with the
    weights, so a loaded model is never re-initialised. The buffer is read once (a host sync on a GPU) and then
    remembered as a Python flag, which loading a state dict resets. Under :func:`pooled_statistics` the
    initialisation uses the batches of all processes. Under ``torch.export`` (an ONNX export) that buffer is not
    consulted, so the graph holds no branch on it: export an initialised module.

    Example:
        >>> from FrEIA.framework import InputNode, Node, OutputNode, GraphINN
        >>> inp = InputNode(3, 8, 8)
        >>> net = GraphINN([inp, node := Node(inp, ActNorm, {}), OutputNode(node)])
        >>> z, log_det = net(torch.randn(4, 3, 8, 8))
    """

    def __init__(self, dims_in: Sequence[tuple[int, ...]], dims_c: Sequence[tuple[int, ...]] | None = None):
        super().__init__(dims_in, dims_c)
        channels = dims_in[0][0]
        shape = (1, channels) + (1,) * (len(dims_in[0]) - 1)
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.bias = nn.Parameter(torch.zeros(shape))
        self.register_buffer("initialized", torch.tensor(False))
        self._initialized_seen = False  # the buffer was read as True (or set here): no need to read it again

    @torch.no_grad()
    def initialize_from(self, x: Tensor) -> None:
        """Set scale and bias so that ``x`` (with the other processes' batches, under :func:`pooled_statistics`)
        comes out with zero mean and unit variance per channel."""
        flat = x.detach().float().transpose(0, 1).reshape(x.shape[1], -1)
        reduce = _REDUCE_SUM.get() or (lambda t: t)
        count = reduce(flat.new_tensor([flat.shape[1]], dtype=torch.float64))
        mean = reduce(flat.sum(dim=1, dtype=torch.float64)) / count
        squares = reduce(((flat - mean.float()[:, None]).double() ** 2).sum(dim=1))
        std = (squares / (count - 1)).sqrt().float().clamp_min(1e-6)
        self.log_scale.copy_((-std.log()).view_as(self.log_scale))
        self.bias.copy_((-mean.float() / std).view_as(self.bias))
        self.initialized.fill_(True)
        self._initialized_seen = True

    def _needs_initialization(self) -> bool:
        """Whether this forward pass must initialise: the buffer is read only until it is seen set."""
        if not self._initialized_seen:
            self._initialized_seen = bool(self.initialized)
        return not self._initialized_seen

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Load as any module does; the next forward pass reads the loaded ``initialized`` buffer again."""
        super()._load_from_state_dict(state_dict, prefix, *args)
        self._initialized_seen = False

    def forward(
        self, x: Sequence[Tensor], c: Sequence[Tensor] = (), rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor]:
        (inp,) = x
        if not rev and not _exporting() and self._needs_initialization():
            self.initialize_from(inp)
        pixels = inp[0, 0].numel()
        log_scale = self.log_scale.to(torch.promote_types(self.log_scale.dtype, torch.float32))
        log_det = (log_scale.sum() * pixels).expand(inp.shape[0])
        if rev:
            return ((inp - self.bias) * torch.exp(-self.log_scale),), -log_det
        return (inp * torch.exp(self.log_scale) + self.bias,), log_det

    def output_dims(self, input_dims: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return list(input_dims)
