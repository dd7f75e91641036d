"""The layer page: type distribution and score histogram of every stored neuron of a layer, and a table of
one page of them, sorted server-side so that sorting and paging cover the whole layer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from service.contract import ExplanationRequest, ModelSpec, NeuronSummary
from service.reports.listing import SortColumn
from service.viewer.chance import chance_line
from service.viewer.html import (
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

MODALITY_TYPES = {"text": ("text", "unknown"), "vision-language": tuple(TYPE_COLOURS)}
"""Neuron types a model of each modality can have: a text model has no image tokens, so no visual or
multimodal neurons (a type outside these still shows when a stored report has it)."""


@dataclass(frozen=True)
class LayerView:
    """What one layer page shows: every stored summary (for the statistics) and the page of the table."""

    summaries: Sequence[NeuronSummary]
    """Every stored neuron of the layer and variant, in any order."""
    rows: Sequence[NeuronSummary]
    """The table's page: ``sorted(summaries)[offset : offset + limit]``."""
    offset: int
    limit: int
    sort: SortColumn
    descending: bool
    query: Mapping[str, object]
    """The report query (hook, dataset, backends…) every link carries."""


def _type_distribution(model: ModelSpec, rows: Sequence[NeuronSummary]) -> str:
    counts: Counter[str] = Counter(row.neuron_type for row in rows)
    shown = [t for t in TYPE_COLOURS if t in MODALITY_TYPES[model.modality] or counts[t]]
    total = len(rows) or 1
    bars = "".join(
        f'<tr data-type="{name}"><td>{type_badge(name)}</td><td class="num">{counts[name]}</td>'
        f'<td class="num">{100 * counts[name] / total:.0f}%</td><td><span class="bar" style="width: '
        f'{200 * counts[name] / total:.0f}px; background: {TYPE_COLOURS[name]}"></span></td></tr>'
        for name in shown
    )
    text_only = " (a text model has no visual or multimodal neurons)" if model.modality == "text" else ""
    return (
        f'<figure id="type-distribution"><table><thead><tr><th>type</th><th class="num">neurons</th>'
        f'<th class="num">share</th><th></th></tr></thead><tbody>{bars}</tbody></table>'
        f"<figcaption>Neuron types of all {len(rows)} neurons of the layer with a stored report"
        f"{text_only}.</figcaption></figure>"
    )


def _score_histogram(rows: Sequence[NeuronSummary]) -> str:
    scores = [row.correlation for row in rows if row.correlation is not None]
    svg = values_histogram_svg([("neurons", "#4a7fc1", scores)], -1.0, 1.0, SCORE_BINS, "score histogram")
    undefined = len(rows) - len(scores)
    mean = f"; mean r {sum(scores) / len(scores):.3f} over those {len(scores)}" if scores else ""
    return (
        f'<figure id="score-histogram">{svg}<figcaption>Simulation scores (pooled Pearson r of simulated '
        f"against true activations on held-out records): {len(scores)} defined of {len(rows)} neurons"
        + (f", {undefined} with an undefined score not shown" if undefined else "")
        + f"{mean}.{chance_line(rows)}</figcaption></figure>"
    )


def _cell(text: str, value: object, numeric: bool = False) -> str:
    shown = "" if value is None else str(value)
    css = ' class="num"' if numeric else ""
    return f'<td{css} data-value="{escape(shown)}">{text}</td>'


def _evidence_columns(model: ModelSpec) -> list[SortColumn]:
    """Type-evidence columns: the four shares on a vision-language model; on a text model only p_text
    (p_visual and p_multimodal are always 0 there, and p_unknown is 1 − p_text)."""
    if model.modality == "vision-language":
        return ["p_visual", "p_text", "p_multimodal", "p_unknown"]
    return ["p_text"]


def _row(model: ModelSpec, layer: int, row: NeuronSummary, query: str, planted: Mapping[int, str]) -> str:
    href = neuron_page_path(model.id, layer, row.neuron) + query
    ci = f"{row.ci95[0]:.2f} … {row.ci95[1]:.2f}" if row.ci95 else "–"
    mark = (
        f' <span class="muted" title="{escape(planted[row.neuron])}">planted</span>'
        if row.neuron in planted
        else ""
    )
    evidence = "".join(
        _cell(f"{value:.2f}", value, numeric=True)
        for value in (getattr(row, name) for name in _evidence_columns(model))
    )
    return (
        f'<tr data-neuron="{row.neuron}">'
        + _cell(link(href, str(row.neuron)) + mark, row.neuron, numeric=True)
        + _cell(type_badge(row.neuron_type), row.neuron_type)
        + evidence
        + _cell(escape(row.explanation), row.explanation)
        + _cell(number(row.correlation), row.correlation, numeric=True)
        + _cell(ci, row.ci95[0] if row.ci95 else None, numeric=True)
        + _cell(f"{row.max_activation:.3g}", row.max_activation, numeric=True)
        + "</tr>"
    )


def _page_link(model: ModelSpec, layer: int, view: LayerView, **changes: object) -> str:
    """The layer page's URL with the view's query, sort and page size, and ``changes`` applied."""
    state: dict[str, object] = {
        **view.query,
        "sort": view.sort,
        "order": "desc" if view.descending else "asc",
        "limit": view.limit,
        "offset": view.offset,
    }
    state.update(changes)
    return layer_path(model.id, layer) + query_string(state)


def _header(model: ModelSpec, layer: int, view: LayerView, label: str, column: SortColumn) -> str:
    """A column header linking to the whole layer sorted by it: ascending first, descending when it is
    already the ascending sort."""
    current = view.sort == column
    descending = current and not view.descending
    href = _page_link(model, layer, view, sort=column, order="desc" if descending else "asc", offset=0)
    numeric = column not in ("type", "explanation")
    arrow = (" ▼" if view.descending else " ▲") if current else ""
    order = ' data-order="desc"' if current and view.descending else (' data-order="asc"' if current else "")
    css = "sortable num" if numeric else "sortable"
    return f'<th class="{css}" data-sort="{column}"{order}>{link(href, label + arrow)}</th>'


def _table(model: ModelSpec, layer: int, view: LayerView) -> str:
    planted = {p.neuron: f"{p.type}: {p.concept}" for p in model.planted or [] if p.layer == layer}
    columns: list[tuple[str, SortColumn]] = [
        ("neuron", "neuron"),
        ("type", "type"),
        *((str(name), name) for name in _evidence_columns(model)),
        ("explanation", "explanation"),
        ("score", "score"),
        ("95% CI", "ci95"),
        ("max act.", "max_activation"),
    ]
    head = "".join(_header(model, layer, view, label, column) for label, column in columns)
    qs = query_string(view.query)
    body = "".join(_row(model, layer, row, qs, planted) for row in view.rows)
    return (
        f'<table id="neurons"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        '<p class="muted">Click a column header to sort the whole layer by it; click again to reverse.</p>'
    )


def _pager(model: ModelSpec, layer: int, view: LayerView) -> str:
    total, offset, limit = len(view.summaries), view.offset, view.limit
    links = []
    if offset > 0:
        href = _page_link(model, layer, view, offset=max(0, offset - limit))
        links.append(link(href, "← previous page", id="previous-page", rel="prev"))
    end = min(offset + limit, total)
    links.append(f'<span id="page-position">rows {offset + 1}–{end} of {total}</span>' if total else "")
    if offset + limit < total:
        links.append(
            link(_page_link(model, layer, view, offset=offset + limit), "next page →", id="next-page")
        )
    return f'<nav class="step" id="pager">{"".join(links)}</nav>'


def _layer_steps(model: ModelSpec, layer: int, query: Mapping[str, object]) -> str:
    """Links to the neighbouring layers and to this layer's listing as JSON, CSV and Parquet."""
    qs = query_string(query)
    steps = []
    if layer > 0:
        steps.append(link(layer_path(model.id, layer - 1) + qs, f"← layer {layer - 1}"))
    if layer + 1 < model.layers:
        steps.append(link(layer_path(model.id, layer + 1) + qs, f"layer {layer + 1} →"))
    listing = f"/v1/neurons/{quote(model.id, safe='')}/{layer}"
    steps.append(link(listing + qs, "JSON"))
    for fmt in ("csv", "parquet"):
        steps.append(link(listing + query_string({**query, "format": fmt}), fmt.upper(), id=f"export-{fmt}"))
    return f'<nav class="step">{"".join(steps)}</nav>'


def _units_noun(model: ModelSpec) -> str:
    return "neurons" if model.units is None else f"latents of dictionary {escape(model.units.id)}"


def render_layer_page(model: ModelSpec, layer: int, request: ExplanationRequest, view: LayerView) -> str:
    """The page of a layer's stored neurons: statistics over all of them, the table over one page."""
    title = f"{model.id} layer {layer}"
    total = len(view.summaries)
    summary = (
        f'<p class="muted">hook {escape(str(request.hook))} · probe set {escape(str(request.dataset))} · '
        f"explainer {escape(str(request.explainer))} · simulator {escape(str(request.simulator))} · "
        f"{total} of {model.neurons_per_layer} {_units_noun(model)} have a stored report.</p>"
    )
    crumbs: list[tuple[str, str | None]] = [("Home", "/"), (model.id, None), (f"layer {layer}", None)]
    if not total:
        hint = (
            "<p>No stored reports for this layer and variant yet. Explain some: <code>neuronlens explain "
            f"--model {escape(model.id)} --layer {layer} --range 0:64</code>, or <code>POST /v1/explanations "
            f"{{&quot;model&quot;: &quot;{escape(model.id)}&quot;, &quot;layer&quot;: {layer}, "
            "&quot;neurons&quot;: {&quot;start&quot;: 0, &quot;stop&quot;: 64}}</code>.</p>"
        )
        return page(title, f"{_layer_steps(model, layer, view.query)}{summary}{hint}", crumbs)
    body = (
        f"{_layer_steps(model, layer, view.query)}{summary}"
        f"{options_badge(view.summaries[0].non_default_options)}"
        f'<div class="charts">{_type_distribution(model, view.summaries)}'
        f"{_score_histogram(view.summaries)}</div>"
        f"<h2>Neurons</h2>{_pager(model, layer, view)}{_table(model, layer, view)}"
    )
    return page(title, body, crumbs)
