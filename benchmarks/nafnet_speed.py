"""UML-IN's forward pass beside NAFNet-width32's on the same frame: seconds and multiply-adds per megapixel.

NAFNet-width32 (Chen et al. 2022, the GoPro configuration: 17.1 M parameters) is built from ``nafnet.py`` with
random weights, which is all a timing needs; UML-IN is the shipped ``general`` model, and every named preset
(random weights). Each deblurs the same RGB frame in one pass, alternating, under
``torch.inference_mode``, timed by this thread's CPU time; multiply-adds are counted by
``torch.utils.flop_counter`` on a 256 x 256 crop.

    python benchmarks/nafnet_speed.py                 # 1280 x 720, 3 repetitions
    python benchmarks/nafnet_speed.py --quick         # 128 x 128, one repetition
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from common import add_common_arguments, describe_machine, machine, markdown_table, set_threads, write_json
from forward_speed import timings
from nafnet import nafnet_w32
from torch.utils.flop_counter import FlopCounterMode

from flowdeblur import WaveletUNetFlow
from flowdeblur.config import PRESETS


def gmac_per_megapixel(network: torch.nn.Module, side: int = 256) -> float:
    """Multiply-adds of one forward pass per pixel of an RGB input (equal to GMAC per megapixel).

    Counted under ``no_grad``, not inference mode: the inference fast path's fused oneDNN calls are not counted by
    the flop counter, and they do the same arithmetic as the plain layers.
    """
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(torch.rand(1, 3, side, side))
    return counter.get_total_flops() / 2 / side**2 / 1e3


def networks() -> dict[str, torch.nn.Module]:
    """The networks timed: NAFNet-width32, the shipped model, every named preset (random weights)."""
    torch.manual_seed(0)
    presets = {f"UML-IN {name}": WaveletUNetFlow(config).eval() for name, config in PRESETS.items()}
    shipped = WaveletUNetFlow.from_pretrained("general")
    return {"NAFNet-width32": nafnet_w32().eval(), "UML-IN general (shipped)": shipped, **presets}


def main() -> None:
    """Time every network on one frame, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, "nafnet_speed.json")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per network (default 3)")
    args = parser.parse_args()
    set_threads(args.threads)
    facts = machine()
    print(describe_machine(facts), flush=True)
    height, width = (128, 128) if args.quick else (720, 1280)
    frame = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    nets = networks()
    seconds, _ = timings({name: (lambda net=net: net(frame)) for name, net in nets.items()}, args.repeats)
    rows: list[dict[str, Any]] = []
    for name, net in nets.items():
        rows.append({"network": name, "parameters": sum(p.numel() for p in net.parameters()),
                     "gmac_per_mp": gmac_per_megapixel(net), "seconds": seconds[name],
                     "relative_to_nafnet": seconds[name] / seconds["NAFNet-width32"]})
    table = markdown_table(
        ["network", "parameters", "GMAC/MP", f"forward {width}×{height} s", "time / NAFNet-width32"],
        [[r["network"], f"{r['parameters']:,}", f"{r['gmac_per_mp']:.0f}", f"{r['seconds']:.2f}",
          f"{r['relative_to_nafnet']:.2f}"] for r in rows],
    )
    print(table)
    write_json(args.output, {"benchmark": "nafnet_speed", "machine": facts, "frame": [height, width],
                             "repeats": args.repeats, "rows": rows, "table": table})


if __name__ == "__main__":
    main()
