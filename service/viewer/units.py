"""How a page names a unit: a neuron, or a dictionary's latent (docs/dictionaries.md)."""

from __future__ import annotations

from html import escape

from service.contract import NeuronReport


def unit_name(report: NeuronReport) -> str:
    """`neuron 12`, or `latent 12 of <dictionary>` for a dictionary's latent."""
    if report.dictionary is None:
        return f"neuron {report.neuron}"
    return f"latent {report.neuron} of {report.dictionary.id}"


def dictionary_line(report: NeuronReport) -> str:
    found = report.dictionary
    if found is None:
        return ""
    reads = f" → {escape(found.output_hook)}" if found.output_hook else ""
    return (
        f'<p class="muted" id="dictionary">{escape(found.kind)} {escape(found.id)} (revision '
        f"{escape(found.revision)}, {escape(found.format)} {escape(found.architecture)}, files "
        f"{escape(found.digest[:12])}…) reading hook {escape(report.hook)}{reads}</p>"
    )
