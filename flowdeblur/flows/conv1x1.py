"""Glow's learned invertible 1x1 convolution, LU-parameterised, as a FrEIA module (FrEIA ships none)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from FrEIA.modules import InvertibleModule
from torch import Tensor, nn

from .precision import exact_float32
from .values_key import values_key


class _CachedInverse(torch.autograd.Function):
    """``W -> W^-1`` given W^-1 already computed (``inverse``, no graph): the gradient of the inverse,
    ``dL/dW = -W^-T (dL/dW^-1) W^-T``, without recomputing it."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(inverse)
        return inverse.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (inverse,) = ctx.saved_tensors
        transposed = inverse.transpose(-2, -1)
        return -transposed @ grad @ transposed, None


class InvertibleConv1x1(InvertibleModule):
    """Channel mixing ``y = W x`` with ``W = P L (U + diag(sign(s) exp(log|s|)))`` (Kingma & Dhariwal 2018).

    P (a permutation), the sign of s and the triangular masks are fixed buffers; L, U and log|s| are
    learned. The log-det is exact and cheap: ``H * W * sum(log|s|)`` for an H x W input. W starts as a
    random rotation drawn from torch's global generator (seed it for reproducibility). The map always
    runs in float32 or wider, also under autocast and with TF32 allowed, so that mixed precision cannot break
    invertibility. W^-1 is computed without a host sync and cached, rebuilt only when L, U or log|s| may have changed
    (their storage or version counter, or any optimiser step: :mod:`.values_key`; writes through ``.data`` go
    unseen); with gradients on, W is rebuilt every call and
    the cached W^-1 carries the gradient of the inverse, so training and its gradients are untouched. With gradients
    off (``torch.no_grad``, ``torch.inference_mode``) W is cached the same way. Within
    :meth:`constant_weights` W and W^-1 are fixed tensors, so a trace (an ONNX export) holds them as constants.

    Example:
        >>> from FrEIA.framework import InputNode, Node, OutputNode, GraphINN
        >>> inp = InputNode(4, 8, 8)
        >>> net = GraphINN([inp, node := Node(inp, InvertibleConv1x1, {}), OutputNode(node)])
        >>> x = torch.randn(2, 4, 8, 8)
        >>> z, log_det = net(x)
        >>> torch.allclose(net(z, rev=True)[0], x, atol=1e-5)
        True
    """

    def __init__(self, dims_in: Sequence[tuple[int, ...]], dims_c: Sequence[tuple[int, ...]] | None = None):
        super().__init__(dims_in, dims_c)
        if len(dims_in[0]) != 3:
            raise ValueError(f"InvertibleConv1x1 needs (C, H, W) inputs, got dims {dims_in[0]}")
        channels = dims_in[0][0]
        # Initial values are computed on the CPU, then put on the default device: on the meta device (a model
        # directory's check builds the model there) ops such as triu, eye and sign import torch._dynamo (0.6 s).
        device = torch.empty(0).device
        rotation, _ = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64, device="cpu"))
        permutation, lower, upper = torch.linalg.lu(rotation)
        diagonal = torch.diagonal(upper)
        upper_mask = torch.triu(torch.ones(channels, channels, device="cpu"), diagonal=1)
        initial = {
            "permutation": permutation.float(), "sign_s": torch.sign(diagonal).float(), "upper_mask": upper_mask,
            "lower_mask": upper_mask.T.contiguous(), "eye": torch.eye(channels, device="cpu"),
        }
        for name, value in initial.items():
            self.register_buffer(name, value.to(device))
        self.lower = nn.Parameter(lower.float().to(device))
        self.upper = nn.Parameter((upper.float() * upper_mask).to(device))
        self.log_s = nn.Parameter(diagonal.abs().log().float().to(device))
        self._cache: dict[tuple[torch.dtype, bool, bool], tuple[tuple[object, ...], Tensor]] = {}
        self._constants: dict[bool, Tensor] | None = None

    def weight(self) -> Tensor:
        """The C x C matrix W, assembled from its LU factors."""
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.upper_mask + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.permutation @ lower @ upper

    def _factors_key(self) -> tuple[object, ...] | None:
        """What identifies the current L, U and log|s| (:func:`~.values_key.values_key`), or None if not trackable."""
        return values_key((self.lower, self.upper, self.log_s))

    @contextmanager
    def constant_weights(self) -> Iterator[None]:
        """Within: W and W^-1 (float32) computed once on entry and used as they are, never rebuilt from L, U, log|s|.

        What an ONNX export traces: a weight that is a constant at inference, instead of the LU product and the
        matrix inverse, which ONNX has no operator for.
        """
        with torch.no_grad(), exact_float32():
            self._constants = {rev: self._matrix(torch.float32, rev) for rev in (False, True)}
        try:
            yield
        finally:
            self._constants = None

    def _matrix(self, dtype: torch.dtype, rev: bool) -> Tensor:
        """W (or W^-1 when ``rev``) in ``dtype``: with gradients on, W is rebuilt and W^-1 comes from the cache with
        its gradient attached; with gradients off both come from the cache."""
        if self._constants is not None:
            return self._constants[rev].to(dtype)
        if not torch.is_grad_enabled():
            return self._cached(dtype, rev)
        weight = self.weight().to(dtype)
        return _CachedInverse.apply(weight, self._cached(dtype, rev)) if rev else weight

    @torch.no_grad()
    def _cached(self, dtype: torch.dtype, rev: bool) -> Tensor:
        """W (or W^-1) of the current L, U and log|s|, without a graph, computed once per change of theirs."""
        key, slot = self._factors_key(), (dtype, rev, torch.is_inference_mode_enabled())  # inference tensors stay there
        cached = self._cache.get(slot)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        matrix = self.weight().to(dtype)
        if rev:
            # inv_ex skips the singularity check (a host sync on a GPU): W = P L U with exp(log|s|) on U's diagonal
            # is invertible by construction
            matrix = torch.linalg.inv_ex(matrix).inverse
        if key is not None:
            self._cache[slot] = (key, matrix)
        return matrix

    def forward(
        self, x: Sequence[Tensor], c: Sequence[Tensor] = (), rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor]:
        (inp,) = x
        with torch.autocast(device_type=inp.device.type, enabled=False), exact_float32():
            dtype = torch.promote_types(inp.dtype, torch.float32)
            weight = self._matrix(dtype, rev)
            out = F.conv2d(inp.to(dtype), weight[:, :, None, None])
            log_det = (self.log_s.to(dtype).sum() * inp[0, 0].numel()).expand(inp.shape[0])
        return (out,), -log_det if rev else log_det

    def output_dims(self, input_dims: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return list(input_dims)
