"""Checks shared by every invertible block's tests: round trip, log-det symmetry, brute-force Jacobian; and a counter
of host reads (syncs on a GPU) for the tests that keep them out of hot loops."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

ROUND_TRIP_TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def perturb_parameters(module: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> None:
    """Move every parameter off its initial value, so zero-initialised layers are not trivially the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.add_(scale * noise.to(parameter.dtype))


def check_forward_inverse(module: Callable, x: Tensor, c: list[Tensor] | None = None) -> Tensor:
    """FrEIA-style module: shapes and dtype kept, x -> z -> x within tolerance, log-det(rev) = -log-det."""
    conditions = {"c": c} if c is not None else {}
    (z,), log_det = module([x], **conditions)
    (x_back,), log_det_rev = module([z], rev=True, **conditions)
    assert z.shape == x.shape and z.dtype == x.dtype
    assert log_det.shape == (x.shape[0],)
    error = (x_back - x).abs().max().item()
    assert error < ROUND_TRIP_TOLERANCE[x.dtype], f"round trip error {error:.3g}"
    torch.testing.assert_close(log_det, -log_det_rev)
    return log_det


def brute_force_log_det(function: Callable[[Tensor], Tensor], sample: Tensor) -> Tensor:
    """log|det ∂f/∂x| of one sample (no batch axis) from the full Jacobian, by autograd."""
    jacobian = torch.autograd.functional.jacobian(function, sample)
    return torch.linalg.slogdet(jacobian.reshape(sample.numel(), -1))[1]


def count_host_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every Python-level read of a tensor's value (``bool``, ``item``, ``float``, ``tolist``, ``cpu``).

    Reads by torch's optimisers are left out: they read their step counters, which stay on the CPU (a GPU run's
    too, unless ``capturable``), so they wait for nothing.
    """
    reads: list[str] = []
    for name in ("__bool__", "item", "__float__", "__int__", "tolist", "cpu"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            if "torch/optim/" not in sys._getframe(1).f_code.co_filename.replace("\\", "/"):
                reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return reads
