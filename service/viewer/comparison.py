"""The comparison pages: a comparison (`/view/comparisons/{id}`: verdict counts and, per layer, its neurons
sorted by score drop) and one compared neuron (`/view/comparisons/{id}/{layer}/{neuron}`: the numbers, the
base's explanation with its score on each side, and both sides' top exemplars side by side). Pure string
building (service/viewer/html.py); exemplars render as on the neuron page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from urllib.parse import quote

from service.contract.comparisons import (
    VERDICTS,
    ComparisonExemplars,
    ComparisonStatus,
    NeuronComparison,
)
from service.viewer.html import link, neuron_page_path, number, page, query_string, type_badge
from service.viewer.neuron import exemplar_html

RELOAD_MS = 2000
"""How often a comparison page that is not finished reloads itself."""
RELOAD_SCRIPT = f"setTimeout(function () {{ location.reload(); }}, {RELOAD_MS});"
VERDICT_COLOURS = {
    "unchanged": "#e6e6e6",
    "rescaled": "#d7e8ff",
    "changed": "#ffd6a8",
    "dead": "#ffd6d6",
    "born": "#d6f5d6",
}


def comparison_path(comparison_id: str) -> str:
    return f"/view/comparisons/{quote(comparison_id, safe='')}"


def compared_neuron_path(comparison_id: str, layer: int, neuron: int) -> str:
    return f"{comparison_path(comparison_id)}/{layer}/{neuron}"


def verdict_badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#eee")
    return f'<span class="badge verdict" style="background: {colour}">{escape(verdict)}</span>'


def _types(item: NeuronComparison) -> str:
    before = type_badge(item.base_type) if item.base_type else "–"
    after = type_badge(item.target_type) if item.target_type else "–"
    return f"{before} → {after}"


def by_score_drop(items: Sequence[NeuronComparison]) -> list[NeuronComparison]:
    """Largest score drop first; neurons without one last, by neuron."""
    return sorted(items, key=lambda i: (i.score_drop is None, -(i.score_drop or 0.0), i.neuron))


def _layer_table(cmp_id: str, layer: int, items: Sequence[NeuronComparison]) -> str:
    head = (
        "<tr><th>neuron</th><th>verdict</th><th>types</th><th class=num>Pearson (maxima)</th>"
        "<th class=num>Jaccard (top)</th><th class=num>max ratio</th><th class=num>score base → target</th>"
        "<th class=num>drop</th><th>base explanation</th></tr>"
    )
    rows = "".join(
        f'<tr data-neuron="{item.neuron}" data-verdict="{escape(item.verdict)}">'
        f"<td>{link(compared_neuron_path(cmp_id, layer, item.neuron), str(item.neuron))}</td>"
        f"<td>{verdict_badge(item.verdict)}</td><td>{_types(item)}</td>"
        f"<td class=num>{number(item.pearson_max)}</td><td class=num>{number(item.jaccard_top)}</td>"
        f"<td class=num>{number(item.max_ratio)}</td>"
        f"<td class=num>{number(item.base_score)} → {number(item.base_score_on_target)}</td>"
        f'<td class="num drop">{number(item.score_drop)}</td>'
        f"<td>{escape(item.base_explanation or '')}</td></tr>"
        for item in by_score_drop(items)
    )
    return f'<h2>Layer {layer}</h2><table class="layer-table" data-layer="{layer}">{head}{rows}</table>'


def _counts(verdicts: Mapping[str, int]) -> str:
    cells = "".join(f'<td id="count-{v}">{verdict_badge(v)} {verdicts.get(v, 0)}</td>' for v in VERDICTS)
    return f'<table id="verdicts"><tr>{cells}</tr></table>'


def _downloads(cmp_id: str) -> str:
    base = f"/v1/comparisons/{quote(cmp_id, safe='')}"
    return (
        f'<p id="exports">Download: {link(base + "/rows?format=csv", "CSV")} · '
        f"{link(base + '/rows?format=parquet', 'Parquet')} · {link(base + '/rows', 'NDJSON')} · "
        f"{link(base, 'status JSON')}</p>"
    )


def render_comparison_page(status: ComparisonStatus) -> str:
    """The page of one comparison: where it stands, verdict counts and (once finished) a table per layer
    sorted by score drop, each neuron linked to its comparison page. Reloads itself until it ends."""
    cmp_id = status.comparison_id
    ended = status.status in ("finished", "failed")
    error = f"{status.error.type}: {status.error.message}" if status.error else ""
    head = (
        f"<p>base <strong>{escape(status.base)}</strong> → target <strong>{escape(status.target)}</strong>"
        f"{_units_note(status.units)} · layers {escape(', '.join(map(str, status.layers)))} · "
        "base explanations: "
        f"{link('/view/jobs/' + quote(status.base_job_id, safe=''), status.base_job_id)}</p>"
        f'<p>Status: <strong id="status">{escape(status.status)}</strong> · '
        f"{status.progress.done} / {status.progress.total} neurons compared</p>"
        f'<p id="error" style="color: #b00">{escape(error)}</p>'
    )
    layers = {layer: [i for i in status.comparisons or [] if i.layer == layer] for layer in status.layers}
    tables = "".join(_layer_table(cmp_id, layer, items) for layer, items in layers.items() if items)
    body = head + _counts(status.verdicts) + _downloads(cmp_id) + tables
    crumbs = [("Home", "/"), ("comparisons", None)]
    return page(f"Comparison {cmp_id}", body, crumbs, script="" if ended else RELOAD_SCRIPT)


def _units_note(units: str | None) -> str:
    """Says that the units compared are latents of a dictionary (nothing for neurons)."""
    return "" if units is None else f' · latents of <strong id="units">{escape(units)}</strong>'


def _numbers(item: NeuronComparison) -> str:
    rows = [
        ("verdict", verdict_badge(item.verdict)),
        ("types (base → target)", _types(item) + (" · changed" if item.type_changed else "")),
        ("Pearson of per-sample maxima", number(item.pearson_max)),
        (f"Pearson over tokens ({item.n_tokens})", number(item.pearson_tokens)),
        ("Jaccard of the top sets", number(item.jaccard_top)),
        ("max activation (base → target)", f"{number(item.base_max)} → {number(item.target_max)}"),
        ("max ratio", number(item.max_ratio)),
        ("density (base → target)", f"{number(item.base_density)} → {number(item.target_density)}"),
    ]
    cells = "".join(f"<tr><th>{escape(name)}</th><td>{value}</td></tr>" for name, value in rows)
    return f'<table id="numbers">{cells}</table>'


def _explanations(item: NeuronComparison, base_link: str, target_link: str | None) -> str:
    old = escape(item.base_explanation) if item.base_explanation else "<em>no stored explanation</em>"
    text = (
        f'<h2>The base\'s explanation</h2><p id="base-explanation">{old}</p>'
        f'<p id="scores">score on the base <strong id="score-base">{number(item.base_score)}</strong> · '
        f'on the target <strong id="score-target">{number(item.base_score_on_target)}</strong> · drop '
        f'<strong id="score-drop">{number(item.score_drop)}</strong> · {base_link}</p>'
    )
    if item.target_explanation is not None:
        fresh = f" · {target_link}" if target_link else ""
        text += (
            f'<h2>The target\'s fresh explanation</h2><p id="target-explanation">'
            f"{escape(item.target_explanation)}</p><p>score on the target "
            f"{number(item.target_score)}{fresh}</p>"
        )
    return text


def _side(title: str, element_id: str, model: str, exemplars: ComparisonExemplars, base: bool) -> str:
    shown = exemplars.base if base else exemplars.target
    content = "".join(exemplar_html(e, f"top {e.rank}") for e in shown) or (
        '<p class="muted">no exemplars stored for this side</p>'
    )
    return f'<div id="{element_id}"><h3>{escape(title)}: {escape(model)}</h3>{content}</div>'


def render_compared_neuron_page(
    cmp_id: str, item: NeuronComparison, exemplars: ComparisonExemplars, query: Mapping[str, str]
) -> str:
    """One compared neuron: its numbers, the base's explanation scored on each side, and both sides' top
    exemplars side by side (tokens shaded by each side's own activations). ``query`` selects the base's
    report variant (its neuron page is linked; the target's too where it was explained afresh)."""
    where = (item.layer, item.neuron)
    base_link = link(neuron_page_path(item.base_model, *where) + query_string(query), "base report")
    target_link = None
    if item.target_explanation is not None and "variant" not in query:
        target_link = link(neuron_page_path(item.target_model, *where) + query_string(query), "target report")
    sides = (
        '<div class="sides" style="display: grid; grid-template-columns: 1fr 1fr; gap: 1.5rem">'
        + _side("Base", "base-exemplars", item.base_model, exemplars, True)
        + _side("Target", "target-exemplars", item.target_model, exemplars, False)
        + "</div>"
    )
    body = _numbers(item) + _explanations(item, base_link, target_link) + f"<h2>Top exemplars</h2>{sides}"
    crumbs = [("Home", "/"), (f"comparison {cmp_id}", comparison_path(cmp_id)), (f"layer {item.layer}", None)]
    unit = "neuron" if item.units is None else f"latent of {item.units}"
    title = f"{item.base_model} → {item.target_model} · layer {item.layer} · {unit} {item.neuron}"
    return page(title, body, crumbs)
