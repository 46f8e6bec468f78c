"""Every convolution shape of one model forward, timed as NCHW, as channels-last and through flowdeblur's fast path.

A forward pass with gradients off (the reference path) records each ``nn.Conv2d`` call's input shape and how often
it occurs; each distinct shape is then timed on random data in three formulations, alternating, by this thread's
CPU time: ``F.conv2d`` on an NCHW tensor (what the reference path runs), ``F.conv2d`` on a channels-last tensor,
and ``flowdeblur.flows.fastconv`` under ``torch.inference_mode`` (channels-last, ReLU fused where the layer has
one, few-output layers split into output phases). The table gives median milliseconds per call, GFLOP/s of the
NCHW call, calls per pass and the fast path's largest difference from NCHW.

    python benchmarks/conv_shapes.py                  # the paper's architecture on a 720p frame
    python benchmarks/conv_shapes.py --model compact  # the compact architecture
    python benchmarks/conv_shapes.py --quick          # a smoke run with a tiny model
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable

import common
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowdeblur import WaveletUNetFlow
from flowdeblur.flows import fastconv

Shape = tuple[int, int, int, int, int, bool]  # in channels, out channels, kernel, height, width, ReLU after


def record_shapes(model: WaveletUNetFlow, image: Tensor) -> tuple[Counter[Shape], dict[Shape, nn.Conv2d]]:
    """The shape of every convolution call in one forward, how often it occurs, and one layer of each shape."""
    relu_after = {id(layer) for sequence in model.modules() if isinstance(sequence, nn.Sequential)
                  for layer, following in zip(sequence, list(sequence)[1:], strict=False)
                  if isinstance(layer, nn.Conv2d) and isinstance(following, nn.ReLU)}
    counts: Counter[Shape] = Counter()
    layers: dict[Shape, nn.Conv2d] = {}

    def hook(layer: nn.Module, inputs: tuple[Tensor, ...], _: Tensor) -> None:
        _, channels, height, width = inputs[0].shape
        shape = (channels, layer.out_channels, layer.kernel_size[0], height, width, id(layer) in relu_after)
        counts[shape] += 1
        layers.setdefault(shape, layer)

    handles = [layer.register_forward_hook(hook) for layer in model.modules() if isinstance(layer, nn.Conv2d)]
    with torch.no_grad():
        model(image)
    for handle in handles:
        handle.remove()
    return counts, layers


def formulations(layer: nn.Conv2d, x: Tensor, relu: bool) -> dict[str, Callable[[], Tensor]]:
    """The three ways of computing ``layer(x)`` (then ReLU if ``relu``) that the table compares."""
    finish = F.relu if relu else (lambda out: out)
    channels_last = fastconv.channels_last(x)

    def fast() -> Tensor:
        if layer.out_channels <= fastconv.THIN_OUTPUTS:
            return fastconv.thin_conv2d(channels_last, layer)
        return fastconv.conv2d(channels_last, layer, relu=relu)

    return {"nchw": lambda: finish(layer(x)), "channels_last": lambda: finish(layer(channels_last)), "fast": fast}


def time_shape(layer: nn.Conv2d, shape: Shape, repeats: int) -> tuple[dict[str, float], float]:
    """Median CPU seconds per formulation, alternating, and the fast path's largest difference from NCHW."""
    channels, _, _, height, width, relu = shape
    x = torch.randn(1, channels, height, width, generator=torch.Generator().manual_seed(0))
    calls = formulations(layer, x, relu)
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    with torch.inference_mode():
        outputs = {name: call() for name, call in calls.items()}
        for _ in range(repeats):
            for name, call in calls.items():
                started = time.thread_time()
                call()
                seconds[name].append(time.thread_time() - started)
    difference = (outputs["fast"] - outputs["nchw"]).abs().max().item()
    return {name: statistics.median(values) for name, values in seconds.items()}, difference


def main() -> None:
    """Record the shapes of one forward, time each, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_arguments(parser, "conv_shapes.json")
    parser.add_argument("--model", choices=["paper", "compact"], default="paper", help="architecture (default: paper)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per shape and formulation (default: 5)")
    args = parser.parse_args()
    common.set_threads(args.threads)
    facts = common.machine()
    print(common.describe_machine(facts), flush=True)
    config = common.TINY if args.quick else {"paper": common.PAPER_SIZE, "compact": common.COMPACT_SIZE}[args.model]
    height, width = (64, 64) if args.quick else (720, 1280)
    torch.manual_seed(0)
    model = WaveletUNetFlow(config).eval()
    counts, layers = record_shapes(model, torch.rand(1, 3, height, width))
    results, rows = [], []
    for shape, count in sorted(counts.items(), key=lambda item: -item[0][3] * item[0][4] * item[0][0] * item[0][1]):
        seconds, difference = time_shape(layers[shape], shape, 1 if args.quick else args.repeats)
        channels, out_channels, kernel, rows_, columns, relu = shape
        gflop = 2 * channels * out_channels * kernel**2 * rows_ * columns / 1e9
        results.append({"in": channels, "out": out_channels, "kernel": kernel, "height": rows_, "width": columns,
                        "relu": relu, "calls": count, "seconds": seconds, "max_abs_difference": difference})
        rows.append([f"{channels}→{out_channels} {kernel}×{kernel}{' +ReLU' if relu else ''}", f"{rows_}×{columns}",
                     count, f"{1e3 * seconds['nchw']:.2f}", f"{gflop / seconds['nchw']:.0f}",
                     f"{1e3 * seconds['channels_last']:.2f}", f"{1e3 * seconds['fast']:.2f}",
                     f"{seconds['nchw'] / seconds['fast']:.2f}", f"{difference:.1e}"])
        print(" ".join(str(cell) for cell in rows[-1]), flush=True)
    header = ["layer", "input", "calls", "NCHW ms", "NCHW GFLOP/s", "channels-last ms", "fast path ms",
              "NCHW / fast", "max |difference|"]
    table = common.markdown_table(header, rows, left=2)
    common.write_json(args.output, {"benchmark": "conv_shapes", "machine": facts, "model": args.model,
                                    "size": [height, width], "results": results, "table": table})
    print(table, f"JSON: {args.output}", sep="\n\n")


if __name__ == "__main__":
    main()
