"""Activation normalisation (Glow, Kingma & Dhariwal 2018) as a FrEIA module that works at any image size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from FrEIA.modules import InvertibleModule
from torch import Tensor, nn

# whether torch.export is tracing; a torch older than 2.7 has no such query, and cannot export these modules anyway
_exporting = getattr(torch.compiler, "is_exporting", lambda: False)


class ActNorm(InvertibleModule):
    """Per-channel affine map ``y = x * exp(log_scale) + bias`` with data-dependent initialisation.

    Fixes over FrEIA 0.2's ``ActNorm``: the log-det uses the spatial size of the tensor it receives (not
    the size the graph was built with), the module accepts FrEIA's condition argument, initialisation
    happens only on a forward (``rev=False``) pass, and whether it happened is a buffer saved with the
    weights, so a loaded model is never re-initialised. Under ``torch.export`` (an ONNX export) that buffer is not
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

    @torch.no_grad()
    def initialize_from(self, x: Tensor) -> None:
        """Set scale and bias so that ``x`` comes out with zero mean and unit variance per channel."""
        flat = x.detach().float().transpose(0, 1).reshape(x.shape[1], -1)
        std = flat.std(dim=1).clamp_min(1e-6)
        mean = flat.mean(dim=1)
        self.log_scale.copy_((-std.log()).view_as(self.log_scale))
        self.bias.copy_((-mean / std).view_as(self.bias))
        self.initialized.fill_(True)

    def forward(
        self, x: Sequence[Tensor], c: Sequence[Tensor] = (), rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor]:
        (inp,) = x
        if not rev and not _exporting() and not self.initialized:
            self.initialize_from(inp)
        pixels = inp[0, 0].numel()
        log_scale = self.log_scale.to(torch.promote_types(self.log_scale.dtype, torch.float32))
        log_det = (log_scale.sum() * pixels).expand(inp.shape[0])
        if rev:
            return ((inp - self.bias) * torch.exp(-self.log_scale),), -log_det
        return (inp * torch.exp(self.log_scale) + self.bias,), log_det

    def output_dims(self, input_dims: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return list(input_dims)
