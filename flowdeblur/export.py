"""Exporting a model to ONNX, so that it runs outside Python (onnxruntime, chaiNNer): the network on its own channels.

The graph is :meth:`WaveletUNetFlow.restore`: input ``input`` of shape (batch, C, height, width), float32, C = 1 for a
Y model (BT.601 luma, :func:`flowdeblur.color.rgb_to_y`) or 3 for an RGB model (RGB in [0, 1]); output ``output`` of
the same shape, unclipped. Batch, height and width are dynamic, and the padding to a multiple of 2^L (and the crop
back) is inside the graph, so every height and width of at least 2^L works. This module imports torch only when it
exports, so that the command line can declare its options from it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import atomic_write

if TYPE_CHECKING:
    from torch import nn

    from .model import WaveletUNetFlow

INPUT_NAME = "input"
OUTPUT_NAME = "output"
DEFAULT_OPSET = 18  # the opset torch's exporter writes without a conversion step; onnxruntime >= 1.14 runs it
ONNX_PACKAGES = ("onnx", "onnxscript")  # what torch's exporter needs beyond torch
MIN_TORCH = "2.7"  # torch.export's is_exporting(), which ActNorm asks
INSTALL_HINT = 'pip install "flowdeblur[onnx]"'
CHANNELS = {"y": "Y (BT.601 luma: 16/255 black to 235/255 white)", "rgb": "RGB in [0, 1]"}


class OnnxMissingError(ImportError):
    """What an ONNX export needs is not installed: onnx and onnxscript, or a torch recent enough."""


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: the file, its size and opset, and what the graph's input is."""

    path: Path
    bytes: int
    opset: int
    color: str
    channels: int
    min_side: int

    def describe(self) -> str:
        """The file, and what the graph takes and gives, for a person."""
        return (
            f"wrote {self.path} ({self.bytes / 1e6:.1f} MB, ONNX opset {self.opset})\n"
            f"input  '{INPUT_NAME}': float32 (batch, {self.channels}, height, width), {CHANNELS[self.color]}; "
            f"height and width {self.min_side} or more (padded to a multiple of {self.min_side} inside the graph)\n"
            f"output '{OUTPUT_NAME}': the same shape, deblurred, unclipped (clip it to [0, 1])"
        )


def require_onnx() -> None:
    """Raise :class:`OnnxMissingError`, naming the install command, unless the exporter's packages are installed."""
    import torch

    if torch.torch_version.TorchVersion(torch.__version__) < MIN_TORCH:
        raise OnnxMissingError(f"exporting to ONNX needs torch {MIN_TORCH} or later, this is {torch.__version__}")
    missing = []
    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise OnnxMissingError(f"exporting to ONNX needs the package(s) {', '.join(missing)}: {INSTALL_HINT}")


@contextlib.contextmanager
def _exporter_quiet() -> Iterator[None]:
    """Hide the exporter's notes on its own internals (torchvision ops it skips, deprecations inside torch)."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        log.setLevel(level)


def _restore_module(model: WaveletUNetFlow) -> nn.Module:
    """A module whose forward is ``model.restore``: what torch.export traces (it exports a module's forward)."""
    from torch import Tensor, nn

    class Restore(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, working: Tensor) -> Tensor:
            return self.model.restore(working)

    return Restore()


def export_onnx(model: WaveletUNetFlow, path: str | Path, opset: int = DEFAULT_OPSET) -> OnnxExport:
    """Write ``model.restore`` to ``path`` as an ONNX graph with dynamic batch, height and width, atomically.

    The model must be initialised (trained, loaded, or :meth:`~WaveletUNetFlow.initialize` called): an ActNorm that
    has seen no data would go into the graph as the identity. The learned 1x1 convolutions' weights and their inverses
    go in as constants. Raises :class:`OnnxMissingError` if the exporter's packages are not installed.
    """
    require_onnx()
    import torch

    from .flows import ActNorm, InvertibleConv1x1

    blank = next((name for name, module in model.named_modules()
                  if isinstance(module, ActNorm) and not bool(module.initialized)), None)
    if blank is not None:
        raise ValueError(f"the model is not initialised ({blank} has seen no data): train or load it, or call "
                         "model.initialize")
    min_side = 2**model.config.levels
    # a batch of 2 and sides that are not multiples of 2^L, so that none of them is taken for a constant
    example = torch.rand(2, model.config.channels, 3 * min_side + 1, 4 * min_side + 3,
                         device=next(model.parameters()).device)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height", min=min_side),
            3: torch.export.Dim("width", min=min_side)}
    with contextlib.ExitStack() as context:
        context.enter_context(_exporter_quiet())
        for module in model.modules():
            if isinstance(module, InvertibleConv1x1):
                context.enter_context(module.constant_weights())
        # torch.export (the dynamo exporter's front end) keeps height and width symbolic through the padding
        # arithmetic, where the TorchScript exporter would trace them as the example's numbers; what it cannot prove
        # for every size becomes a check at run time instead of a refusal
        exported = torch.export.export(_restore_module(model), (example,), dynamic_shapes=(dims,),
                                       prefer_deferred_runtime_asserts_over_guards=True)
        program = torch.onnx.export(exported, (example,), dynamo=True, opset_version=opset, verbose=False,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    program.model.metadata_props.update({"flowdeblur.color": model.config.color,
                                         "flowdeblur.levels": str(model.config.levels)})
    path = Path(path)
    atomic_write(path, lambda tmp: program.save(tmp, external_data=False))
    written = program.model.opset_imports[""]
    return OnnxExport(path, path.stat().st_size, written, model.config.color, model.config.channels, min_side)
