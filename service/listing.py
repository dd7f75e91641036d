"""Listing the stored reports of one layer: the one place that knows how to find them.

Reports live in Redis today under `schemas.report_key(model, layer, neuron, variant)`; a layer's are
found with SCAN over that key pattern (never KEYS, which blocks Redis). Everything else (the
`GET /v1/neurons/{model}/{layer}` route, the viewer's layer page and its prev/next links) goes through
:func:`list_layer_reports`, so moving durable reports elsewhere re-points this module only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import redis

from service.contract import NeuronSummary, report_key

SCAN_COUNT = 1000
"""Keys Redis examines per SCAN step: large enough for few round trips, small enough not to stall it."""

_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")


@dataclass(frozen=True)
class LayerReports:
    """The stored reports of one layer and variant."""

    neurons: list[int]
    """Every neuron with a stored report, ascending."""
    reports: list[bytes]
    """Report JSON of ``neurons[offset : offset + limit]``, in that order (a report deleted between the
    listing and the read is left out)."""


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def list_layer_reports(
    connection: redis.Redis, model: str, layer: int, variant: str, offset: int = 0, limit: int = 0
) -> LayerReports:
    """The neurons of ``model`` ``layer`` with a stored report of ``variant``, and the JSON of the page
    ``offset`` … ``offset + limit`` of them (no reports read when ``limit`` is 0)."""
    prefix = report_key(model, layer, 0, variant).rsplit(":", 2)[0] + ":"
    pattern = f"{_glob_escape(prefix)}*:{_glob_escape(variant)}"
    neurons = set()
    for key in connection.scan_iter(match=pattern, count=SCAN_COUNT):
        text = key.decode() if isinstance(key, bytes) else str(key)
        middle = text[len(prefix) : -(len(variant) + 1)]
        if middle.isdigit():
            neurons.add(int(middle))
    ordered = sorted(neurons)
    page = ordered[offset : offset + limit] if limit > 0 else []
    values = connection.mget([report_key(model, layer, n, variant) for n in page]) if page else []
    reports = [value for value in values if value is not None]  # type: ignore[union-attr]
    return LayerReports(neurons=ordered, reports=reports)  # type: ignore[arg-type]


def summarize(report_json: bytes) -> NeuronSummary:
    """The summary row of a stored report (read as plain JSON: a page of a layer parses many reports)."""
    report = json.loads(report_json)
    evidence = report["type_evidence"]
    simulation = report["simulation"]
    return NeuronSummary(
        neuron=report["neuron"],
        neuron_type=report["neuron_type"],
        p_visual=evidence["p_visual"],
        p_text=evidence["p_text"],
        p_multimodal=evidence["p_multimodal"],
        p_unknown=evidence["p_unknown"],
        high_confidence=evidence["high_confidence"],
        max_activation=report["max_activation"],
        explanation=report["explanation"]["text"],
        correlation=simulation["correlation"],
        ci95=simulation.get("ci95"),
    )
