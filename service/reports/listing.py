"""Listing the stored reports of one layer: the one place that knows how to find them.

Reports live in the artifact store, one object per neuron (`contract.report_key`), with a Redis set of the
stored neuron ids per (model, layer, variant) as their index (`RedisKeys.report_index`; after a Redis
flush it is rebuilt from one listing of the store's folder). This module is the only reader of that index:
everything else (the `GET /v1/neurons/{model}/{layer}` route, the viewer's pages and links, exports, job
status and submission) asks :func:`indexed_neurons` or :func:`list_layer_reports`; the layer page's
statistics and sorting, which cover the whole layer, read every summary through :func:`layer_summaries`.
Rows are the contract's summary (service/contract/summary.py), as in the exports and the SDK.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import redis
from pydantic_core import from_json

from service.contract import (
    REPORT_INDEX_SYNCED,
    NeuronSummary,
    RedisKeys,
    neuron_summary,
    report_key,
)
from service.contract.objects import ObjectStore
from service.estimates.validate import ResolvedRequest


def indexed_neurons(
    connection: redis.Redis, keys: RedisKeys, store: ObjectStore, model: str, layer: int, variant: str
) -> list[int]:
    """Every neuron of one layer and variant with a stored report, ascending: from the Redis index, or,
    when the index is not known complete, from the store's folder (and the index is rebuilt from it)."""
    key = keys.report_index(model, layer, variant)
    members = {int(member) for member in connection.smembers(key)}  # type: ignore[union-attr]
    if REPORT_INDEX_SYNCED in members:
        members.discard(REPORT_INDEX_SYNCED)
        return sorted(members)
    # Workers add to the set only after their object is written, so whatever they add while we list is
    # either in the listing or added after it: the union below stays complete.
    stored = store.stored_neurons(model, layer, variant)
    connection.sadd(key, REPORT_INDEX_SYNCED, *stored)
    return sorted(stored | members)


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
    keys: RedisKeys,
    store: ObjectStore,
    model: str,
    layer: int,
    variant: str,
    offset: int = 0,
    limit: int = 0,
) -> LayerReports:
    """The neurons of ``model`` ``layer`` with a stored report of ``variant``, and the JSON of the page
    ``offset`` … ``offset + limit`` of them (no reports read when ``limit`` is 0)."""
    ordered = indexed_neurons(connection, keys, store, model, layer, variant)
    page = ordered[offset : offset + limit] if limit > 0 else []
    values = store.read_many([report_key(model, layer, n, variant) for n in page])
    return LayerReports(neurons=ordered, reports=[value for value in values if value is not None])


SUMMARY_READ_PAGE = 256
"""Reports read from the store at once by :func:`layer_summaries` (bounds memory to one page of JSON)."""

SortColumn = Literal[
    "neuron", "type", "p_visual", "p_text", "p_multimodal", "p_unknown", "explanation", "score", "ci95",
    "max_activation",
]  # fmt: skip
"""Columns a layer's summaries can be sorted by (`score` is the correlation, `ci95` its lower bound)."""


def layer_summaries(
    connection: redis.Redis, keys: RedisKeys, store: ObjectStore, model: str, layer: int, variant: str
) -> list[NeuronSummary]:
    """The summary row of every stored report of ``model`` ``layer`` of ``variant``, by ascending neuron:
    what whole-layer statistics and sorting need, read a page at a time (a report is mostly exemplars)."""
    ordered = indexed_neurons(connection, keys, store, model, layer, variant)
    rows: list[NeuronSummary] = []
    for start in range(0, len(ordered), SUMMARY_READ_PAGE):
        names = [report_key(model, layer, n, variant) for n in ordered[start : start + SUMMARY_READ_PAGE]]
        rows.extend(summarize(value) for value in store.read_many(names) if value is not None)
    return rows


def _sort_value(row: NeuronSummary, column: SortColumn) -> float | str | None:
    values: dict[str, float | str | None] = {
        "neuron": row.neuron,
        "type": row.neuron_type,
        "p_visual": row.p_visual,
        "p_text": row.p_text,
        "p_multimodal": row.p_multimodal,
        "p_unknown": row.p_unknown,
        "explanation": row.explanation.casefold(),
        "score": row.correlation,
        "ci95": row.ci95[0] if row.ci95 else None,
        "max_activation": row.max_activation,
    }
    return values[column]


def sort_summaries(
    rows: Sequence[NeuronSummary], column: SortColumn, descending: bool = False
) -> list[NeuronSummary]:
    """``rows`` ordered by ``column`` (ties by neuron index); rows without a value (an undefined score)
    come last in either direction."""
    present = [row for row in rows if _sort_value(row, column) is not None]
    missing = [row for row in rows if _sort_value(row, column) is None]
    present.sort(key=lambda row: row.neuron)
    present.sort(key=lambda row: _sort_value(row, column), reverse=descending)  # type: ignore[arg-type,return-value]
    return present + sorted(missing, key=lambda row: row.neuron)


def summarize(report_json: bytes) -> NeuronSummary:
    """The summary row of a stored report (parsed by jiter as plain objects: a layer parses many)."""
    return neuron_summary(from_json(report_json))


def request_report_keys(resolved: ResolvedRequest) -> list[str]:
    """Artifact-store keys of the reports a resolved request produces, in (layer, neuron) order."""
    request, variant = resolved.request, resolved.variant
    neurons = request.neuron_list()
    return [report_key(request.model, layer, n, variant) for layer in request.layer_list() for n in neurons]
