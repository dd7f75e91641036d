"""A NeuronReport as one self-contained HTML page (the viewer's neuron page): links to the neighbouring
stored neurons, the layer and the JSON; type and evidence; explanation and its candidates; the score with
simulated against true activations; an activation histogram; top and random exemplars, tokens shaded by
activation (raw, normalised and simulated values on hover) and images unshaded beside shaded, with a
colour-scale legend; domains sorted by share. Pure string building (service/viewer/html.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape

from service.contract import Exemplar, NeuronReport, option_labels
from service.viewer.chance import chance_html
from service.viewer.html import (
    layer_path,
    link,
    neuron_page_path,
    neuron_path,
    number,
    page,
    query_string,
    type_badge,
    values_histogram_svg,
)
from service.viewer.options_badge import options_badge
from service.viewer.units import dictionary_line, unit_name

PATCH_TOKEN = re.compile(r"^<patch \d+,\d+>$")
"""How vision-language adapters name image-patch tokens; the page shows patches as the image instead."""

TOKEN_RGB = "255, 120, 0"
"""Token shading colour: alpha = normalised activation / 10."""
SIMULATED_RGB = "40, 110, 220"
"""Shading of the simulator's predictions: alpha = predicted value / 10."""
HISTOGRAM_BINS = 24


@dataclass(frozen=True)
class NeuronPageLinks:
    """Where the page links: the report query to carry, and the neighbouring stored neurons."""

    query: Mapping[str, object] = field(default_factory=dict)
    previous: int | None = None
    """The next lower neuron of the layer with a stored report (same variant), if any."""
    next: int | None = None
    n_layers: int | None = None
    same_neuron_stored: Mapping[int, bool] | None = None
    """Per neighbouring layer (layer − 1, layer + 1), whether this neuron has a stored report there; None
    when unknown (then both are linked)."""


def _token_html(token: str, raw: float, norm: float, simulated: float | None) -> str:
    alpha = max(0.0, min(norm, 10.0)) / 10.0
    tip = f"raw {raw:.4g} · normalised {norm:.1f}/10"
    if simulated is not None:
        tip += f" · simulated {simulated:.1f}/10"
    style = f"background: rgba({TOKEN_RGB}, {alpha:.2f})"
    return f'<span style="{style}" title="{escape(tip)}">{escape(token)}</span>'


def _simulated_html(tokens: list[str], simulated: list[float]) -> str:
    spans = (
        f'<span style="background: rgba({SIMULATED_RGB}, {max(0.0, min(v, 10.0)) / 10:.2f})" '
        f'title="simulated {v:.1f}/10">{escape(t)}</span>'
        for t, v in zip(tokens, simulated, strict=True)
        if not PATCH_TOKEN.match(t)
    )
    return f'<div class="tokens simulated"><span class="muted">simulated:</span> {" ".join(spans)}</div>'


def _patch_grid_svg(values: list[float], grid: list[int], label: str) -> str:
    """The simulator's per-patch predictions as a grid of squares (same size as the images)."""
    rows, cols = grid
    cell_w, cell_h = 128 / cols, 128 / rows
    cells = "".join(
        f'<rect x="{(i % cols) * cell_w:.2f}" y="{(i // cols) * cell_h:.2f}" width="{cell_w:.2f}" '
        f'height="{cell_h:.2f}" fill="rgb({SIMULATED_RGB})" fill-opacity="{max(0.0, min(v, 10.0)) / 10:.2f}">'
        f"<title>simulated {v:.1f}/10</title></rect>"
        for i, v in enumerate(values[: rows * cols])
    )
    return (
        f'<svg role="img" aria-label="{escape(label)}" width="128" height="128" viewBox="0 0 128 128" '
        f'style="border: 1px solid #ccc">{cells}</svg>'
    )


def _images_html(exemplar: Exemplar) -> str:
    if exemplar.image_url is None:
        return ""
    parts = []
    if exemplar.original_image_url is not None:
        parts.append(
            f'<figure><img src="{escape(exemplar.original_image_url)}" alt="exemplar image, unshaded">'
            "<figcaption>original</figcaption></figure>"
        )
    parts.append(
        f'<figure><img src="{escape(exemplar.image_url)}" alt="exemplar image shaded by activation">'
        "<figcaption>shaded by activation</figcaption></figure>"
    )
    if exemplar.simulated is not None and exemplar.patch_grid is not None:
        patches = [
            v for t, v in zip(exemplar.tokens, exemplar.simulated, strict=True) if PATCH_TOKEN.match(t)
        ]
        if patches:
            svg = _patch_grid_svg(patches, exemplar.patch_grid, "simulated activation per patch")
            parts.append(f"<figure>{svg}<figcaption>simulated</figcaption></figure>")
    return "".join(parts)


def exemplar_html(exemplar: Exemplar, label: str) -> str:
    simulated = exemplar.simulated or [None] * len(exemplar.tokens)  # type: ignore[list-item]
    tokens = " ".join(
        _token_html(token, raw, norm, sim)
        for token, raw, norm, sim in zip(
            exemplar.tokens, exemplar.activations, exemplar.activations_norm, simulated, strict=True
        )
        if not PATCH_TOKEN.match(token)
    )
    held = " · held out for scoring" if exemplar.simulated is not None else ""
    extra = _simulated_html(exemplar.tokens, exemplar.simulated) if exemplar.simulated is not None else ""
    return (
        f'<div class="exemplar">{_images_html(exemplar)}<div><div class="muted">{escape(label)} · sample '
        f"{exemplar.sample_id} · max {exemplar.max_activation:.4g}{held}</div>"
        f'<div class="tokens">{tokens}</div>{extra}</div></div>'
    )


def _legend_html(report: NeuronReport) -> str:
    # 10 on the scale is the report's normalisation scale (a quantile of per-sample maxima by default),
    # not always the global max: activations above it are clipped to 10.
    top = report.normalisation.scale if report.normalisation is not None else report.max_activation
    gradient = f"linear-gradient(to right, rgba({TOKEN_RGB}, 0), rgba({TOKEN_RGB}, 1))"
    simulated = f"linear-gradient(to right, rgba({SIMULATED_RGB}, 0), rgba({SIMULATED_RGB}, 1))"
    image = "linear-gradient(to right, #fff, #4a4a4a)"

    def scale(background: str, left: str, right: str, what: str) -> str:
        return (
            '<div><div style="width: 14rem; height: 0.9rem; border: 1px solid #ccc; '
            f'background: {background}"></div>'
            '<div style="display: flex; justify-content: space-between; width: 14rem">'
            f"<span>{left}</span><span>{right}</span></div><div>{what}</div></div>"
        )

    has_images = any(e.image_url for e in [*report.exemplars, *(report.random_exemplars or [])])
    images = (
        scale(
            image, "white: ≤ 0", f"original pixel: {top:.4g}", "image shading: pixel·a/10 + white·(1 − a/10)"
        )
        if has_images
        else ""
    )
    return (
        '<div class="legend" id="legend" aria-label="colour scale">'
        + scale(gradient, "0 (raw ≤ 0)", f"10 (raw {top:.4g})", "token shading: normalised activation")
        + images
        + scale(simulated, "0", "10", "simulator's prediction (held-out records)")
        + "</div>"
    )


def _histogram_html(report: NeuronReport) -> str:
    top = [v for e in report.exemplars for v in e.activations]
    randoms = [v for e in report.random_exemplars or [] for v in e.activations]
    values = top + randoms
    if not values:
        return ""
    series = [("top exemplars", "#e08a2c", top)]
    if randoms:
        series.append(("random records", "#7a7a7a", randoms))
    low, high = min(min(values), 0.0), max(max(values), report.max_activation)
    svg = values_histogram_svg(series, low, high, HISTOGRAM_BINS, "activation histogram")
    exemplars = [*report.exemplars, *(report.random_exemplars or [])]
    has_patches = any(PATCH_TOKEN.match(t) for e in exemplars for t in e.tokens)
    what = "Raw activation per token (image patches included)" if has_patches else "Raw activation per token"
    return (
        f'<figure id="activation-histogram">{svg}<figcaption>{what} over the {len(report.exemplars)} top '
        f"exemplars (orange) and "
        f"{len(report.random_exemplars or [])} random records (grey); bar height is the token count. "
        f"The neuron's maximum over the probe set is {report.max_activation:.4g}.</figcaption></figure>"
    )


SCATTER_TICKS = (0, 2, 4, 6, 8, 10)
"""Tick values on both axes of the simulated-against-true scatter (normalised 0–10 scale)."""


def _scatter_svg(points: list[tuple[float, float, bool]]) -> str:
    """Simulated (y) against true (x) activation on the 0–10 scale, with both axes ticked and labelled
    and the diagonal where a perfect simulator's points would lie."""
    size, left, top_pad = 230, 44, 10
    plot = size - left - top_pad
    scale = plot / 10

    def x_at(value: float) -> float:
        return left + value * scale

    def y_at(value: float) -> float:
        return top_pad + plot - value * scale

    dots = "".join(
        f'<circle cx="{x_at(x):.1f}" cy="{y_at(y):.1f}" r="2.2" '
        f'fill="{"#e08a2c" if is_top else "#7a7a7a"}" fill-opacity="0.6"/>'
        for x, y, is_top in points
    )
    ticks = "".join(
        f'<line x1="{x_at(t):.1f}" y1="{y_at(0):.1f}" x2="{x_at(t):.1f}" y2="{y_at(0) + 4:.1f}" '
        'stroke="#888"/>'
        f'<text class="x-tick" x="{x_at(t):.1f}" y="{y_at(0) + 14:.1f}" font-size="10" '
        f'text-anchor="middle">{t}</text>'
        f'<line x1="{left - 4}" y1="{y_at(t):.1f}" x2="{left}" y2="{y_at(t):.1f}" stroke="#888"/>'
        f'<text class="y-tick" x="{left - 6}" y="{y_at(t) + 3:.1f}" font-size="10" '
        f'text-anchor="end">{t}</text>'
        for t in SCATTER_TICKS
    )
    frame = (
        f'<rect x="{left}" y="{top_pad}" width="{plot}" height="{plot}" fill="none" stroke="#bbb"/>'
        f'<line x1="{x_at(0)}" y1="{y_at(0)}" x2="{x_at(10)}" y2="{y_at(10)}" stroke="#ddd"/>'
        f'<text class="x-label" x="{left + plot / 2}" y="{size - 6}" font-size="11" text-anchor="middle">'
        "true activation (normalised 0–10)</text>"
        f'<text class="y-label" x="12" y="{top_pad + plot / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {top_pad + plot / 2})">simulated activation (0–10)</text>'
    )
    return (
        f'<svg role="img" aria-label="simulated against true activations" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}">{frame}{ticks}{dots}</svg>'
    )


def _score_html(report: NeuronReport) -> str:
    simulation = report.simulation
    if simulation.correlation is None:
        score = f"undefined ({escape(simulation.null_reason or 'no reason given')})"
    else:
        score = f"<strong>{simulation.correlation:.3f}</strong>"
        if simulation.ci95 is not None:
            score += f" (95% interval {simulation.ci95[0]:.3f} … {simulation.ci95[1]:.3f})"
    return (
        f'<p>{score} <span class="muted">pooled Pearson over {simulation.n_tokens} tokens of '
        f"{simulation.n_top} top and {simulation.n_random} random held-out records (top only "
        f"{number(simulation.correlation_top)}, random only {number(simulation.correlation_random)}); "
        f"simulator {escape(simulation.backend)} · "
        f"{escape(simulation.model)}; parse failures {simulation.parse_failures}</span></p>"
        + chance_html(report)
    )


def _simulated_vs_true_html(report: NeuronReport) -> str:
    """The scatter of simulated against true values over the held-out records the report carries."""
    held = [e for e in [*report.exemplars, *(report.random_exemplars or [])] if e.simulated is not None]
    is_top = {id(e) for e in report.exemplars}
    points = [
        (norm, sim, id(e) in is_top)
        for e in held
        for norm, sim in zip(e.activations_norm, e.simulated or [], strict=True)
    ]
    if not points:
        return '<p class="muted">This report carries no simulated values (written before they were kept).</p>'
    return (
        f'<figure id="simulated-vs-true">{_scatter_svg(points)}<figcaption>Simulated against true activation '
        f"for every token of the {len(held)} held-out records shown below ({sum(1 for p in points if p[2])} "
        "top tokens orange, the rest random, grey). The score pools all held-out records, including top "
        "ones not among the exemplars shown.</figcaption></figure>"
    )


def _candidates_html(report: NeuronReport) -> str:
    candidates = report.explanation.candidates
    if not candidates:
        return ""
    ranked = sorted(
        candidates,
        key=lambda c: -c.calibration_correlation if c.calibration_correlation is not None else 2.0,
    )
    rows = "".join(
        f"<tr><td>{'✓' if c.text == report.explanation.text else ''}</td><td>{escape(c.text)}</td>"
        f'<td class="num">{number(c.calibration_correlation)}</td>'
        f'<td class="num">{c.parse_failures}</td></tr>'
        for c in ranked
    )
    return (
        '<h3>Candidate explanations</h3><p class="muted">Each scored by simulation on a calibration split of '
        "the explainer's records; the best (✓) is the explanation.</p><table><thead><tr><th></th>"
        '<th>text</th><th class="num">calibration r</th><th class="num">parse failures</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _domains_html(report: NeuronReport) -> str:
    if not report.domains:
        return ""
    specific = set(report.domain_specific or [])
    top = max(report.domains.values()) or 1.0
    rows = "".join(
        f"<tr><td>{escape(name)}{' <strong>(specific)</strong>' if name in specific else ''}</td>"
        f'<td class="num">{share:.3f}</td><td><span class="bar" style="width: {120 * share / top:.0f}px">'
        "</span></td></tr>"
        for name, share in sorted(report.domains.items(), key=lambda item: -item[1])
    )
    return (
        '<h2>Domains</h2><p class="muted">Share = the fraction of that domain\'s tokens in the probe set on '
        "which this neuron's activation is above 0 (MMNeuron, docs/method.md#domain-specific-neurons), "
        "highest first. A neuron is "
        "specific to a domain when its shares are among the least evenly spread of the layer (lowest 1% "
        "entropy) and that domain's share is above the layer's 95th percentile. Specific to: "
        f"{escape(', '.join(sorted(specific)) or 'none')}.</p><table><thead><tr><th>domain</th>"
        f'<th class="num">share</th><th></th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _same_neuron_link(report: NeuronReport, links: NeuronPageLinks, other: int, element_id: str) -> str:
    """A link to the same neuron in layer ``other``, or a note when that layer has no report of it (a link
    would only lead to a 404)."""
    label = f"layer {other}, same neuron"
    stored = links.same_neuron_stored
    if stored is not None and not stored.get(other, False):
        text = f"layer {other}: neuron {report.neuron} not explained"
        return f'<span class="muted" id="{element_id}">{text}</span>'
    href = neuron_page_path(report.model, other, report.neuron) + query_string(links.query)
    return link(href, label, id=element_id)


def _nav_html(report: NeuronReport, links: NeuronPageLinks) -> str:
    query = query_string(links.query)
    model, layer = report.model, report.layer
    items = []
    if links.previous is not None:
        href = neuron_page_path(model, layer, links.previous) + query
        items.append(link(href, f"← neuron {links.previous}", rel="prev", id="prev-neuron"))
    if links.next is not None:
        href = neuron_page_path(model, layer, links.next) + query
        items.append(link(href, f"neuron {links.next} →", rel="next", id="next-neuron"))
    items.append(link(layer_path(model, layer) + query, f"all of layer {layer}", id="layer-link"))
    if layer > 0:
        items.append(_same_neuron_link(report, links, layer - 1, "layer-prev"))
    if links.n_layers is None or layer + 1 < links.n_layers:
        items.append(_same_neuron_link(report, links, layer + 1, "layer-next"))
    items.append(link(neuron_path(model, layer, report.neuron) + query, "JSON", id="json-link"))
    return f'<nav class="step">{"".join(items)}</nav>'


def report_body(report: NeuronReport, nav: str) -> str:
    """Everything below the title: `nav`, then the report's sections."""
    evidence = report.type_evidence
    shares = (
        f"visual {evidence.p_visual:.2f} · text {evidence.p_text:.2f} · "
        f"multimodal {evidence.p_multimodal:.2f} · unknown {evidence.p_unknown:.2f} "
        f"over {evidence.n_samples} top samples" + (" (high confidence)" if evidence.high_confidence else "")
    )
    top = "".join(exemplar_html(e, f"top {e.rank}") for e in report.exemplars)
    if report.random_exemplars is None:
        randoms = (
            '<p class="muted">This report carries no random records (written before they were kept).</p>'
        )
    else:
        randoms = "".join(exemplar_html(e, f"random record {e.rank}") for e in report.random_exemplars)
    return (
        f"{nav}"
        f'<p class="muted">hook {escape(report.hook)} · revision {escape(report.model_revision)} · probe set '
        f"{escape(report.dataset.id)} ({report.dataset.n_samples} samples) · max activation "
        f"{report.max_activation:.4g} · pipeline {escape(report.provenance.pipeline_version)}</p>"
        f"{dictionary_line(report)}"
        f"{options_badge(option_labels(report.provenance.options_changed()))}"
        f"<h2>Type {type_badge(report.neuron_type)}</h2><p>{shares}</p>"
        f"<h2>Explanation</h2><p>{escape(report.explanation.text)}</p>"
        f'<p class="muted">{escape(report.explanation.backend)} · {escape(report.explanation.model)} · '
        f"{escape(report.explanation.prompt_version)}</p>{_candidates_html(report)}"
        f"<h2>Simulation score</h2>{_score_html(report)}"
        "<h2>Activations and simulation</h2>"
        f'<div class="charts">{_histogram_html(report)}{_simulated_vs_true_html(report)}'
        f"</div>{_legend_html(report)}"
        f'<h2>Top exemplars</h2><div id="top-exemplars">{top}</div>'
        '<h2>Random exemplars</h2><p class="muted">Records from the scan\'s seeded random draw, held out '
        "for scoring: how the neuron behaves on ordinary samples.</p>"
        f'<div id="random-exemplars">{randoms}</div>'
        f"{_domains_html(report)}"
    )


def report_title(report: NeuronReport) -> str:
    return f"{report.model} layer {report.layer} {unit_name(report)}"


def render_report_page(report: NeuronReport, links: NeuronPageLinks | None = None) -> str:
    """The HTML page of one report; `links` says where the navigation goes (none but the layer without)."""
    links = links or NeuronPageLinks()
    query = query_string(links.query)
    crumbs = [
        ("Home", "/"),
        (report.model, None),
        (f"layer {report.layer}", layer_path(report.model, report.layer) + query),
        (unit_name(report), None),
    ]
    return page(report_title(report), report_body(report, _nav_html(report, links)), crumbs)
