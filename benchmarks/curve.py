"""Quality for cost: where each UML-IN design lies against the NAFNet-style family, from ``quality.py``'s JSON.

The family's curve joins its frontier (the members no faster member outscores) linearly in log forward time and
stays flat after the slowest of them: a wider network that scores less than a faster one does not pull it down. A
design is on or above the curve where its Y-PSNR minus the curve's value at its 720p forward time is >= 0; one
faster than every member has no gap ("—"). The plot draws each protocol's test Y-PSNR against the forward time:
the family's points and curve, every other learned row as a point.

    python benchmarks/curve.py quality-g9.json quality-m15.json --plot curve.svg
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from common import markdown_table

FAMILY_PREFIX = "NAFNet-style w"
DESIGN_PREFIX = "UML-IN pyramid"


def family(methods: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The NAFNet-style family's rows, narrowest first."""
    members = {name: result for name, result in methods.items() if name.startswith(FAMILY_PREFIX)}
    return dict(sorted(members.items(), key=lambda item: int(item[0].removeprefix(FAMILY_PREFIX))))


def frontier(members: dict[str, dict[str, Any]]) -> list[tuple[float, float]]:
    """(forward seconds, Y-PSNR) of the members no faster member outscores, fastest first."""
    points: list[tuple[float, float]] = []
    for result in sorted(members.values(), key=lambda r: r["forward_s"]):
        if not points or result["psnr"] > points[-1][1]:
            points.append((result["forward_s"], result["psnr"]))
    return points


def curve_value(forward_s: float, members: dict[str, dict[str, Any]]) -> float | None:
    """The family's curve at ``forward_s``: its frontier joined linearly in log time, flat after the slowest point
    (None: faster than every member)."""
    points = frontier(members)
    if not points or forward_s < points[0][0]:
        return None
    for (t0, p0), (t1, p1) in zip(points, points[1:], strict=False):
        if forward_s <= t1:
            return p0 + (p1 - p0) * math.log(forward_s / t0) / math.log(t1 / t0)
    return points[-1][1]


def curve_at_designs(protocol: dict[str, Any]) -> dict[str, float | None]:
    """The family's curve at each design row's forward time (None where no member is as fast)."""
    methods = protocol["methods"]
    members = family(methods)
    if not members:
        return {}
    return {name: curve_value(result["forward_s"], members) for name, result in methods.items()
            if name.startswith(DESIGN_PREFIX)}


def gaps(protocol: dict[str, Any]) -> dict[str, float | None]:
    """Each design row's Y-PSNR minus the family's curve at its forward time (dB; None where no member is as fast)."""
    return {name: None if value is None else protocol["methods"][name]["psnr"] - value
            for name, value in curve_at_designs(protocol).items()}


def gap_table(protocols: dict[str, dict[str, Any]]) -> str:
    """One row per design and protocol: Y-PSNR, forward time, the curve's value there and the gap."""
    rows = []
    for protocol in protocols.values():
        for name, value in curve_at_designs(protocol).items():
            result = protocol["methods"][name]
            cells = ("—", "—") if value is None else (f"{value:.2f}", f"{result['psnr'] - value:+.2f}")
            rows.append([protocol["label"], name, f"{result['psnr']:.2f}", f"{result['forward_s']:.2f}", *cells])
    return markdown_table(["protocol", "design", "Y-PSNR (dB)", "720p forward (s)", "curve (dB)", "gap (dB)"], rows,
                          left=2)


def plot(protocols: dict[str, dict[str, Any]], path: Path) -> None:
    """Y-PSNR against 720p forward time, one panel per protocol (two to a row), written to ``path`` (any format
    matplotlib knows)."""
    try:
        import matplotlib
    except ImportError as error:
        raise SystemExit("the plot needs matplotlib: pip install matplotlib (or the package's 'dev' extra)") from error
    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "flowdeblur"})  # text as text, stable ids
    from matplotlib import pyplot
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    columns = min(len(protocols), 2)
    rows = math.ceil(len(protocols) / columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(6 * columns, 4.5 * rows), squeeze=False)
    for axis in axes.flat[len(protocols):]:
        axis.set_visible(False)
    for axis, protocol in zip(axes.flat, protocols.values(), strict=False):
        methods = protocol["methods"]
        members = family(methods)
        points = frontier(members)
        slowest = max(r["forward_s"] for r in members.values())
        axis.plot([t for t, _ in points] + [slowest], [p for _, p in points] + [points[-1][1]], "-",
                  color="tab:blue", label="NAFNet-style curve")
        axis.plot([r["forward_s"] for r in members.values()], [r["psnr"] for r in members.values()], "o",
                  color="tab:blue")
        for name, result in members.items():
            axis.annotate(name.removeprefix("NAFNet-style "), (result["forward_s"], result["psnr"]),
                          textcoords="offset points", xytext=(4, -10), fontsize=8)
        others = {n: r for n, r in methods.items() if "forward_s" in r and n not in members}
        for name, result in others.items():
            design = name.startswith(DESIGN_PREFIX)
            axis.plot(result["forward_s"], result["psnr"], "s" if design else ".",
                      color="tab:red" if design else "gray", markersize=7 if design else 6)
            axis.annotate(name, (result["forward_s"], result["psnr"]), textcoords="offset points", xytext=(4, 4),
                          fontsize=7, color="tab:red" if design else "gray")
        blurry = methods.get("blurry input")
        if blurry:
            axis.axhline(blurry["psnr"], color="gray", linestyle=":", label="blurry input")
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("720p Y forward, one thread (s)")
        axis.set_ylabel("test Y-PSNR (dB)")
        axis.set_title(protocol["label"])
        axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp{path.suffix}")
    figure.savefig(temporary)
    pyplot.close(figure)
    temporary.replace(path)


def main() -> None:
    """Read ``quality.py`` JSON files, print each design's gap to the curve, and plot them if asked."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="+", help="quality.py JSON files (later files win per protocol)")
    parser.add_argument("--plot", type=Path, help="write the plot here (.svg, .png, ...; needs matplotlib)")
    args = parser.parse_args()
    protocols: dict[str, dict[str, Any]] = {}
    for path in args.results:
        try:
            protocols.update(json.loads(path.read_text())["protocols"])
        except (OSError, ValueError, KeyError) as error:
            raise SystemExit(f"{path}: not a quality.py JSON file ({error})") from error
    print(gap_table(protocols))
    if args.plot:
        plot(protocols, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
