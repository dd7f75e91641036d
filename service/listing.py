"""Listing the stored reports of one layer: the one place that knows how to find them.

Reports live in the artifact store, one object per neuron (`contract.report_key`), with a Redis set of the
stored neuron ids per (model, layer, variant) as their index (service/report_store.py: after a Redis flush
the index is rebuilt from one listing of the store's folder). Everything else (the
`GET /v1/neurons/{model}/{layer}` route, the viewer's layer page and its prev/next links) goes through
:func:`list_layer_reports`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from service.contract import NeuronSummary, option_labels, recorded_non_default_options, report_key
from service.report_store import ReportStore, indexed_neurons


@dataclass(frozen=True)
class LayerReports:
    """The stored reports of one layer and variant."""

    neurons: list[int]
    """Every neuron with a stored report, ascending."""
    reports: list[bytes]
    """Report JSON of ``neurons[offset : offset + limit]``, in that order (a report that cannot be read is
    left out)."""


def list_layer_reports(
    connection: redis.Redis,
    store: ReportStore,
    model: str,
    layer: int,
    variant: str,
    offset: int = 0,
    limit: int = 0,
) -> LayerReports:
    """The neurons of ``model`` ``layer`` with a stored report of ``variant``, and the JSON of the page
    ``offset`` … ``offset + limit`` of them (no reports read when ``limit`` is 0)."""
    ordered = indexed_neurons(connection, store, model, layer, variant)
    page = ordered[offset : offset + limit] if limit > 0 else []
    values = store.read_many([report_key(model, layer, n, variant) for n in page])
    return LayerReports(neurons=ordered, reports=[value for value in values if value is not None])


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
        non_default_options=option_labels(recorded_non_default_options(report["provenance"])),
    )
