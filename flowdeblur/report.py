"""A self-contained HTML page of an evaluation: one file, images inlined as PNG data URIs, no server needed.

It holds the summary table, each level's latent sparsity (the paper's Figures 4 and 8), every image's scores
sorted by gain, and for the best and worst images their crops side by side (blurry | deblurred | sharp) with
their per-level latent maps.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .atomic import atomic_write
from .evaluate import CROP_KINDS, KINDS, LATENT_KINDS, NEAR_ZERO, Evaluation, Visual
from .model_info import brief

LATENT_SYMBOLS = {"blurry": "z̃", "transferred": "ẑ", "sharp": "z"}
LATENT_LABELS = {
    "blurry": "z̃ blur branch (blurry input)",
    "transferred": "ẑ = h_Γ(z̃) transfer (used for synthesis)",
    "sharp": "z sharp branch (sharp target)",
}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.25em 0.7em; text-align: right; border-bottom: 1px solid #eee; }
th { background: #f4f4f4; } td.name, th.name { text-align: left; }
.pos { color: #1a7f37; } .neg { color: #c62828; }
figure { display: inline-block; margin: 0.3em; text-align: center; vertical-align: top; }
figure img { width: 256px; display: block; image-rendering: pixelated; }
figure img.latent { width: 128px; }
figcaption { font-size: 0.85em; color: #555; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: 600; } dd { margin: 0; font-size: 0.9em; overflow-wrap: anywhere; }
pre { white-space: pre-wrap; font-size: 0.85em; }
.note { color: #555; font-size: 0.9em; }
"""


def png_data_uri(array: np.ndarray) -> str:
    """A uint8 (H, W) or (H, W, 3) array as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _signed(value: float, digits: int, higher_is_better: bool = True) -> str:
    """A signed gain, green where it is an improvement and red where it is a loss."""
    better = value > 0 if higher_is_better else value < 0
    css = "" if value == 0 else "pos" if better else "neg"
    return f'<span class="{css}">{value:+.{digits}f}</span>'


def _figure(array: np.ndarray, caption: str, css: str = "") -> str:
    return (
        f'<figure><img class="{css}" src="{png_data_uri(array)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def summary_table(summary: Mapping[str, Any]) -> str:
    """Blurry, deblurred and gain rows for each colour space."""
    rows = []
    for space in summary["deblurred"]:
        for kind in (*KINDS, "gain"):
            scores = summary[kind][space]
            if kind == "gain":
                cells = [_signed(scores["psnr"], 2), _signed(scores["ssim"], 4), _signed(scores["mse"], 6, False)]
            else:
                cells = [f"{scores['psnr']:.2f}", f"{scores['ssim']:.4f}", f"{scores['mse']:.6f}"]
            rows.append(f'<tr><td class="name">{space.upper()} {kind}</td>' + "".join(f"<td>{c}</td>" for c in cells)
                        + "</tr>")
    head = '<tr><th class="name"></th><th>PSNR (dB)</th><th>SSIM</th><th>MSE</th></tr>'
    return f"<table>{head}{''.join(rows)}</table>"


def latent_table(latents: Mapping[str, list[Mapping[str, float]]]) -> str:
    """Per level and latent kind: mean |z| and the fraction of near-zero entries."""
    head = (
        '<tr><th class="name">latent</th><th>level</th><th>mean |z|</th>'
        f"<th>fraction |z| &lt; {NEAR_ZERO}</th></tr>"
    )
    rows = [
        f'<tr><td class="name">{html.escape(LATENT_LABELS[kind])}</td><td>{row["level"]}</td>'
        f'<td>{row["mean_abs"]:.4f}</td><td>{row["near_zero"]:.3f}</td></tr>'
        for kind in LATENT_KINDS
        for row in latents[kind]
    ]
    return f"<table>{head}{''.join(rows)}</table>"


def visual_block(visual: Visual, latents: Mapping[str, list[Mapping[str, float]]], expanded: bool) -> str:
    """Crops side by side, then the latent maps (rows: kinds, columns: levels) in a collapsible section."""
    crops = "".join(_figure(visual.crops[kind], kind) for kind in CROP_KINDS)
    rows = []
    for kind in LATENT_KINDS:
        figures = [
            _figure(array, f"{LATENT_SYMBOLS[kind]} level {stats['level']}: mean |z| {stats['mean_abs']:.3f}, "
                    f"{stats['near_zero']:.0%} < {NEAR_ZERO}", "latent")
            for array, stats in zip(visual.latent_maps[kind], latents[kind], strict=True)
        ]
        rows.append(f"<div>{''.join(figures)}</div>")
    return (
        f"<div>{crops}</div><details{' open' if expanded else ''}><summary>latent maps |z| per level: "
        f"blur branch z̃, transferred ẑ, sharp branch z (brighter = larger, one scale per level)</summary>"
        f"{''.join(rows)}</details>"
    )


def image_rows(evaluation: Evaluation) -> str:
    """Every image's Y and RGB scores, sorted by Y PSNR gain (best first), crops under the kept ones."""
    ordered = sorted(evaluation.records, key=lambda record: record["gain"]["y"]["psnr"], reverse=True)
    has_rgb = all("rgb" in record["gain"] for record in ordered)
    headers = ["#", "image", "size", "Y PSNR blurry", "Y PSNR deblurred", "Y PSNR gain", "Y SSIM deblurred",
               "Y SSIM gain"] + (["RGB PSNR deblurred", "RGB PSNR gain"] if has_rgb else [])
    rows = ["<tr>" + "".join(_cell(text, index, "th") for index, text in enumerate(headers)) + "</tr>"]
    expanded = _first(evaluation.visuals, ordered)
    for rank, record in enumerate(ordered, start=1):
        y = {kind: record[kind]["y"] for kind in (*KINDS, "gain")}
        cells = [
            str(rank),
            html.escape(record["name"]),
            f"{record['width']}×{record['height']}",
            f"{y['blurry']['psnr']:.2f}",
            f"{y['deblurred']['psnr']:.2f}",
            _signed(y["gain"]["psnr"], 2),
            f"{y['deblurred']['ssim']:.4f}",
            _signed(y["gain"]["ssim"], 4),
        ]
        if has_rgb:
            cells += [f"{record['deblurred']['rgb']['psnr']:.2f}", _signed(record["gain"]["rgb"]["psnr"], 2)]
        rows.append("<tr>" + "".join(_cell(text, index) for index, text in enumerate(cells)) + "</tr>")
        visual = evaluation.visuals.get(record["name"])
        if visual is not None:
            block = visual_block(visual, record["latents"], expanded=visual is expanded)
            rows.append(f'<tr><td></td><td class="name" colspan="{len(headers) - 1}">{block}</td></tr>')
    return f"<table>{''.join(rows)}</table>"


def _cell(text: str, index: int, tag: str = "td") -> str:
    """A table cell; the image-name column (index 1) is left-aligned."""
    css = ' class="name"' if index == 1 else ""
    return f"<{tag}{css}>{text}</{tag}>"


def _first(visuals: Mapping[str, Visual], ordered: list[dict[str, Any]]) -> Visual | None:
    """The visual of the first image in ``ordered`` that has one (its latent maps are shown expanded)."""
    return next((visuals[record["name"]] for record in ordered if record["name"] in visuals), None)


def render_report(evaluation: Evaluation, context: Mapping[str, Any]) -> str:
    """The whole page; ``context`` holds JSON-ready facts shown at the top (model, dataset, protocol...)."""
    facts = "".join(f"<dt>{html.escape(str(key))}</dt><dd>{fact(value)}</dd>" for key, value in context.items())
    summary = evaluation.summary
    shown = len(evaluation.visuals)
    note = (
        f"Centre crops and latent maps are shown for {shown} of {summary['images']} images: the best and the "
        "worst by Y PSNR gain."
    )
    generated = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>flowdeblur evaluation</title><style>{STYLE}</style></head>
<body>
<h1>flowdeblur evaluation</h1>
<p class="note">Generated {generated}; {summary['images']} images, {summary['seconds_per_image']:.2f} s per image.</p>
<dl>{facts}</dl>
<h2>Summary</h2>
{summary_table(summary)}
<h2>Latent sparsity per level</h2>
<p class="note">The paper's claim (Figures 4 and 8): sharp latents are sparse, blurry ones less so, and the transfer
moves z̃ towards z. Averaged over images, measured on each image's centre crop.</p>
{latent_table(summary["latents"])}
<h2>Per image, sorted by gain</h2>
<p class="note">{html.escape(note)}</p>
{image_rows(evaluation)}
</body></html>
"""


def fact(value: Any) -> str:
    """One context value as HTML: scalars inline; a dict as a one-line digest over its whole JSON, folded."""
    if not isinstance(value, Mapping):
        return html.escape(value if isinstance(value, str) else json.dumps(value))
    return (
        f"<details><summary>{html.escape(brief(value) or 'details')}</summary>"
        f"<pre>{html.escape(json.dumps(value, indent=1))}</pre></details>"
    )


def write_report(path: str | Path, evaluation: Evaluation, context: Mapping[str, Any]) -> Path:
    """Write :func:`render_report` to ``path`` atomically and return the path."""
    path = Path(path)
    page = render_report(evaluation, context)
    atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return path
