"""Building blocks of the viewer's pages: the page shell, links, numbers, inline SVG charts.

Pages are plain strings built here and in the page modules; every value that comes from a report, the
registry or a job goes through :func:`html.escape`. Nothing is loaded from another host: styles, charts and
scripts are inline, so the pages work offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from urllib.parse import quote, urlencode

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem 2rem; max-width: 72rem; color: #222; }
h1 { font-size: 1.5rem; margin: 0.4rem 0; } h2 { font-size: 1.15rem; margin: 1.4rem 0 0.4rem; }
nav.crumbs { font-size: 0.9em; color: #555; } nav.crumbs a { margin-right: 0.2rem; }
nav.step { display: flex; gap: 1rem; margin: 0.5rem 0; flex-wrap: wrap; }
a { color: #0b5cad; } .muted { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.3rem 0; }
td, th { padding: 0.25rem 0.6rem; text-align: left; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f4f4f4; } th.sortable { cursor: pointer; user-select: none; }
th.sortable::after { content: " \\2195"; color: #999; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; gap: 2rem; flex-wrap: wrap; align-items: flex-start; }
figure { margin: 0.3rem 0; } figcaption { font-size: 0.85em; color: #555; max-width: 30rem; }
.exemplar { display: flex; gap: 0.8rem; align-items: flex-start; margin: 0.6rem 0; padding: 0.4rem 0;
  border-bottom: 1px solid #eee; }
.exemplar img { width: 128px; height: 128px; image-rendering: pixelated; border: 1px solid #ccc; }
.exemplar figure { text-align: center; } .exemplar figcaption { font-size: 0.75em; }
.tokens { line-height: 1.9; } .tokens span { padding: 1px 2px; border-radius: 2px; }
.tokens.simulated span { border-bottom: 3px solid transparent; }
.badge { display: inline-block; padding: 0 0.4rem; border-radius: 0.6rem; font-size: 0.85em;
  background: #eee; } .badge.visual { background: #d7e8ff; } .badge.text { background: #ffe3c4; }
.badge.multimodal { background: #e4d7ff; } .badge.unknown { background: #e6e6e6; }
.badge.missing-weights { background: #ffd6d6; color: #8a1010; }
.bar { display: inline-block; height: 0.7rem; background: #4a7fc1; vertical-align: middle; }
.legend { display: flex; gap: 2rem; flex-wrap: wrap; font-size: 0.85em; }
.progress { width: 24rem; height: 1rem; background: #eee; border-radius: 0.5rem; overflow: hidden; }
.progress div { height: 100%; background: #4a7fc1; }
"""

TYPE_COLOURS = {"visual": "#4a7fc1", "text": "#e08a2c", "multimodal": "#8a5cc7", "unknown": "#9a9a9a"}


def page(title: str, body: str, crumbs: Sequence[tuple[str, str | None]] = (), script: str = "") -> str:
    """A complete HTML document: `crumbs` are (label, href or None) shown above the title."""
    trail = " › ".join(link(href, label) if href else escape(label) for label, href in crumbs)
    nav = f'<nav class="crumbs">{trail}</nav>' if trail else ""
    tail = f"<script>{script}</script>" if script else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f"<style>{STYLE}</style></head><body>{nav}<h1>{escape(title)}</h1>{body}{tail}</body></html>"
    )


def link(href: str, label: str, **attributes: str) -> str:
    extra = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"' for name, value in attributes.items()
    )
    return f'<a href="{escape(href)}"{extra}>{escape(label)}</a>'


def query_string(query: Mapping[str, object]) -> str:
    """`?a=1&b=2` of the non-None values, or the empty string."""
    values = {name: str(value) for name, value in query.items() if value is not None}
    return f"?{urlencode(values)}" if values else ""


def layer_path(model: str, layer: int) -> str:
    return f"/view/{quote(model, safe='')}/{layer}"


def neuron_path(model: str, layer: int, neuron: int) -> str:
    return f"/v1/neurons/{quote(model, safe='')}/{layer}/{neuron}"


def neuron_page_path(model: str, layer: int, neuron: int) -> str:
    """The viewer page of a neuron (its JSON is at `neuron_path`)."""
    return neuron_path(model, layer, neuron) + "/page"


def number(value: float | None, digits: int = 3) -> str:
    """A value to `digits` significant figures, or an en dash for None."""
    return "–" if value is None else f"{value:.{digits}g}"


def type_badge(neuron_type: str) -> str:
    return f'<span class="badge {escape(neuron_type)}">{escape(neuron_type)}</span>'


def histogram_svg(
    series: Sequence[tuple[str, str, Sequence[int]]],
    edges: Sequence[float],
    label: str,
    width: int = 420,
    height: int = 160,
) -> str:
    """Bars of counts per bin for each (name, colour, counts) series side by side within each bin, with the
    bin edges (len(counts) + 1 values) on the x axis; each bar's title gives its bin and count."""
    n_bins = len(edges) - 1
    top = max((max(counts, default=0) for _, _, counts in series), default=0) or 1
    left, plot_w, plot_h = 34, width - 44, height - 32
    slot = plot_w / max(n_bins, 1)
    bar_w = slot / max(len(series), 1)
    bars = []
    for index, (name, colour, counts) in enumerate(series):
        for bin_index, count in enumerate(counts):
            bar_h = plot_h * count / top
            x = left + bin_index * slot + index * bar_w
            tip = f"{name}: {count} in [{edges[bin_index]:.3g}, {edges[bin_index + 1]:.3g})"
            bars.append(
                f'<rect x="{x:.1f}" y="{10 + plot_h - bar_h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                f'height="{bar_h:.1f}" fill="{colour}"><title>{escape(tip)}</title></rect>'
            )
    ticks = []
    for position in sorted({0, n_bins // 2, n_bins}):
        x = left + position * slot
        ticks.append(
            f'<text x="{x:.1f}" y="{height - 6}" font-size="10" text-anchor="middle">'
            f"{edges[position]:.3g}</text>"
        )
    axis = (
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{left + plot_w}" y2="{10 + plot_h}" stroke="#888"/>'
        f'<text x="{left - 4}" y="16" font-size="10" text-anchor="end">{top}</text>'
        f'<text x="{left - 4}" y="{10 + plot_h}" font-size="10" text-anchor="end">0</text>'
    )
    return (
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{axis}{"".join(bars)}'
        f"{''.join(ticks)}</svg>"
    )


def values_histogram_svg(
    series: Sequence[tuple[str, str, Iterable[float]]], low: float, high: float, n_bins: int, label: str
) -> str:
    """`histogram_svg` of (name, colour, values) series, binned into `n_bins` even bins over low … high."""
    edges = even_edges(low, high, n_bins)
    return histogram_svg(
        [(name, colour, bin_counts(values, edges)) for name, colour, values in series], edges, label
    )


def bin_counts(values: Iterable[float], edges: Sequence[float]) -> list[int]:
    """Counts of `values` per bin [edges[i], edges[i+1]); the last bin includes its right edge."""
    counts = [0] * (len(edges) - 1)
    low, high = edges[0], edges[-1]
    width = (high - low) / len(counts) if counts else 1.0
    for value in values:
        if value < low or value > high:
            continue
        counts[min(int((value - low) / width), len(counts) - 1)] += 1
    return counts


def even_edges(low: float, high: float, n_bins: int) -> list[float]:
    if high <= low:
        high = low + 1.0
    return [low + (high - low) * i / n_bins for i in range(n_bins + 1)]
