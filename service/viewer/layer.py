"""The layer page: type distribution, score histogram and a sortable table of a layer's stored neurons."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape

from service.contract import ExplanationRequest, ModelSpec, NeuronSummary
from service.viewer.html import (
    SORT_SCRIPT,
    TYPE_COLOURS,
    layer_path,
    link,
    neuron_page_path,
    number,
    page,
    query_string,
    type_badge,
    values_histogram_svg,
)
from service.viewer.options_badge import options_badge

SCORE_BINS = 20
"""Bins of the score histogram over −1 … 1 (0.1 wide)."""


def _type_distribution(rows: Sequence[NeuronSummary]) -> str:
    counts: Counter[str] = Counter(row.neuron_type for row in rows)
    total = len(rows) or 1
    bars = "".join(
        f'<tr><td>{type_badge(name)}</td><td class="num">{counts[name]}</td><td class="num">'
        f'{100 * counts[name] / total:.0f}%</td><td><span class="bar" style="width: '
        f'{200 * counts[name] / total:.0f}px; background: {colour}"></span></td></tr>'
        for name, colour in TYPE_COLOURS.items()
    )
    return (
        f'<figure id="type-distribution"><table><thead><tr><th>type</th><th class="num">neurons</th>'
        f'<th class="num">share</th><th></th></tr></thead><tbody>{bars}</tbody></table>'
        "<figcaption>Neuron types of the listed neurons (DESIGN §4.4).</figcaption></figure>"
    )


def _score_histogram(rows: Sequence[NeuronSummary]) -> str:
    scores = [row.correlation for row in rows if row.correlation is not None]
    svg = values_histogram_svg([("neurons", "#4a7fc1", scores)], -1.0, 1.0, SCORE_BINS, "score histogram")
    undefined = len(rows) - len(scores)
    return (
        f'<figure id="score-histogram">{svg}<figcaption>Simulation scores (pooled Pearson r of simulated '
        f"against true activations on held-out records) of {len(scores)} neurons"
        + (f"; {undefined} with an undefined score not shown" if undefined else "")
        + ".</figcaption></figure>"
    )


def _cell(text: str, value: object, numeric: bool = False) -> str:
    shown = "" if value is None else str(value)
    css = ' class="num"' if numeric else ""
    return f'<td{css} data-value="{escape(shown)}">{text}</td>'


def _row(model: ModelSpec, layer: int, row: NeuronSummary, query: str, planted: Mapping[int, str]) -> str:
    href = neuron_page_path(model.id, layer, row.neuron) + query
    ci = f"{row.ci95[0]:.2f} … {row.ci95[1]:.2f}" if row.ci95 else "–"
    mark = (
        f' <span class="muted" title="{escape(planted[row.neuron])}">planted</span>'
        if row.neuron in planted
        else ""
    )
    return (
        f'<tr data-neuron="{row.neuron}">'
        + _cell(link(href, str(row.neuron)) + mark, row.neuron, numeric=True)
        + _cell(type_badge(row.neuron_type), row.neuron_type)
        + "".join(
            _cell(f"{value:.2f}", value, numeric=True)
            for value in (row.p_visual, row.p_text, row.p_multimodal, row.p_unknown)
        )
        + _cell(escape(row.explanation), row.explanation)
        + _cell(number(row.correlation), row.correlation, numeric=True)
        + _cell(ci, row.ci95[0] if row.ci95 else None, numeric=True)
        + _cell(f"{row.max_activation:.3g}", row.max_activation, numeric=True)
        + "</tr>"
    )


def _table(model: ModelSpec, layer: int, rows: Sequence[NeuronSummary], query: str) -> str:
    planted = {p.neuron: f"{p.type}: {p.concept}" for p in model.planted or [] if p.layer == layer}
    headers = [
        ("neuron", True),
        ("type", False),
        ("p_visual", True),
        ("p_text", True),
        ("p_multimodal", True),
        ("p_unknown", True),
        ("explanation", False),
        ("score", True),
        ("95% CI", True),
        ("max act.", True),
    ]
    head = "".join(
        f'<th class="sortable{" num" if numeric else ""}">{escape(name)}</th>' for name, numeric in headers
    )
    body = "".join(_row(model, layer, row, query, planted) for row in rows)
    return (
        f'<table class="sortable" id="neurons"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        '<p class="muted">Click a column header to sort; click again to reverse.</p>'
    )


def _pager(
    model: ModelSpec, layer: int, query: Mapping[str, object], offset: int, limit: int, total: int
) -> str:
    links = []
    if offset > 0:
        links.append(
            link(
                layer_path(model.id, layer) + query_string({**query, "offset": max(0, offset - limit)}),
                "← previous page",
            )
        )
    if offset + limit < total:
        links.append(
            link(
                layer_path(model.id, layer) + query_string({**query, "offset": offset + limit}), "next page →"
            )
        )
    return f'<nav class="step">{"".join(links)}</nav>' if links else ""


def render_layer_page(
    model: ModelSpec,
    layer: int,
    request: ExplanationRequest,
    rows: Sequence[NeuronSummary],
    total: int,
    offset: int,
    limit: int,
    query: Mapping[str, object],
) -> str:
    """The page of a layer's stored neurons `rows` (neurons offset … offset+len(rows) of `total`)."""
    title = f"{model.id} layer {layer}"
    qs = query_string(query)
    steps = []
    if layer > 0:
        steps.append(link(layer_path(model.id, layer - 1) + qs, f"← layer {layer - 1}"))
    if layer + 1 < model.layers:
        steps.append(link(layer_path(model.id, layer + 1) + qs, f"layer {layer + 1} →"))
    steps.append(link(f"/v1/neurons/{model.id}/{layer}" + qs, "JSON"))
    shown = f"neurons {offset}–{offset + len(rows) - 1} in index order" if rows else "none"
    summary = (
        f'<p class="muted">hook {escape(str(request.hook))} · probe set {escape(str(request.dataset))} · '
        f"explainer {escape(str(request.explainer))} · simulator {escape(str(request.simulator))} · "
        f"{total} of {model.neurons_per_layer} neurons have a stored report; showing {shown}.</p>"
    )
    if not rows:
        hint = (
            "<p>No stored reports for this layer and variant yet. Explain some: <code>POST /v1/explanations "
            f"{{&quot;model&quot;: &quot;{escape(model.id)}&quot;, &quot;layer&quot;: {layer}, "
            "&quot;neurons&quot;: {&quot;start&quot;: 0, &quot;stop&quot;: 64}}</code>.</p>"
        )
        body = f'<nav class="step">{"".join(steps)}</nav>{summary}{hint}'
        return page(title, body, [("Home", "/"), (model.id, None), (f"layer {layer}", None)])
    body = (
        f'<nav class="step">{"".join(steps)}</nav>{summary}{options_badge(rows[0].non_default_options)}'
        f'<div class="charts">{_type_distribution(rows)}{_score_histogram(rows)}</div>'
        f"<h2>Neurons</h2>{_pager(model, layer, query, offset, limit, total)}{_table(model, layer, rows, qs)}"
    )
    return page(title, body, [("Home", "/"), (model.id, None), (f"layer {layer}", None)], script=SORT_SCRIPT)
