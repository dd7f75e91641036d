"""A NeuronReport as one self-contained HTML page: type and evidence, explanation, score, domains, and each
exemplar's tokens shaded by activation next to its shaded image. Pure string building (html.escape for
every value from the report); no templates, no scripts."""

from __future__ import annotations

import re
from html import escape

from service.contract import Exemplar, NeuronReport

PATCH_TOKEN = re.compile(r"^<patch \d+,\d+>$")
"""How vision-language adapters name image-patch tokens; the page shows patches as the image instead."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 60rem; color: #222; }
table { border-collapse: collapse; } td, th { padding: 0.2rem 0.6rem; text-align: left; }
.exemplar { display: flex; gap: 1rem; align-items: flex-start; margin: 0.8rem 0; }
.exemplar img { width: 128px; height: 128px; image-rendering: pixelated; border: 1px solid #ccc; }
.tokens span { padding: 0 1px; border-radius: 2px; }
.muted { color: #777; font-size: 0.9em; }
"""


def _token_html(token: str, value: float) -> str:
    alpha = max(0.0, min(value, 10.0)) / 10.0
    return (
        f'<span style="background: rgba(255, 120, 0, {alpha:.2f})" title="{value:.1f}">{escape(token)}</span>'
    )


def _exemplar_html(exemplar: Exemplar) -> str:
    tokens = " ".join(
        _token_html(token, value)
        for token, value in zip(exemplar.tokens, exemplar.activations_norm, strict=True)
        if not PATCH_TOKEN.match(token)
    )
    image = ""
    if exemplar.image_url is not None:
        alt = f"exemplar {exemplar.rank} shaded by activation"
        image = f'<img src="{escape(exemplar.image_url)}" alt="{alt}">'
    return (
        f'<div class="exemplar">{image}<div><div class="muted">rank {exemplar.rank} · sample '
        f"{exemplar.sample_id} · max {exemplar.max_activation:.3g}</div>"
        f'<div class="tokens">{tokens}</div></div></div>'
    )


def _score_html(report: NeuronReport) -> str:
    simulation = report.simulation
    if simulation.correlation is None:
        return f"undefined ({escape(simulation.null_reason or 'no reason given')})"
    text = f"{simulation.correlation:.3f}"
    if simulation.ci95 is not None:
        text += f" (95% interval {simulation.ci95[0]:.3f} … {simulation.ci95[1]:.3f})"
    return text + (
        f' <span class="muted">pooled Pearson over {simulation.n_tokens} tokens of {simulation.n_top} top '
        f"and {simulation.n_random} random held-out records; simulator {escape(simulation.backend)}</span>"
    )


def _domains_html(report: NeuronReport) -> str:
    if not report.domains:
        return ""
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{share:.3f}</td></tr>" for name, share in report.domains.items()
    )
    specific = ", ".join(report.domain_specific or []) or "none"
    return f"<h2>Domains</h2><p>Domain-specific: {escape(specific)}</p><table>{rows}</table>"


def render_report_page(report: NeuronReport) -> str:
    """The HTML page of one report."""
    evidence = report.type_evidence
    shares = (
        f"visual {evidence.p_visual:.2f} · text {evidence.p_text:.2f} · "
        f"multimodal {evidence.p_multimodal:.2f} · unknown {evidence.p_unknown:.2f} "
        f"over {evidence.n_samples} top samples" + (" (high confidence)" if evidence.high_confidence else "")
    )
    title = f"{report.model} layer {report.layer} neuron {report.neuron}"
    exemplars = "".join(_exemplar_html(exemplar) for exemplar in report.exemplars)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f'<p class="muted">hook {escape(report.hook)} · revision {escape(report.model_revision)} · probe set '
        f"{escape(report.dataset.id)} ({report.dataset.n_samples} samples) · max activation "
        f"{report.max_activation:.4g}</p>"
        f"<h2>Type: {escape(report.neuron_type)}</h2><p>{shares}</p>"
        f"<h2>Explanation</h2><p>{escape(report.explanation.text)}</p>"
        f'<p class="muted">{escape(report.explanation.backend)} · {escape(report.explanation.model)}</p>'
        f"<h2>Simulation score</h2><p>{_score_html(report)}</p>"
        f"{_domains_html(report)}<h2>Top exemplars</h2>{exemplars}</body></html>"
    )
