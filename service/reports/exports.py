"""Exports of stored reports as tables (service/reports/tables.py) for
`GET /v1/neurons/{model}/{layer}?format=…` and, with a job's reports (service/jobs/job_export.py),
`GET /v1/jobs/{job_id}/reports`: which reports, read page by page, streamed as one response.

Reports that are not stored
(not done, or deleted since) are left out, so rows are always complete reports. Rows come by ascending
(layer, neuron). `fields=full` serves each report as `GET /v1/neurons/...` does: exemplar image links
filled for vision-language models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import redis
from litestar.response import Stream

from service.contract import ExplanationRequest, RedisKeys, Registry, report_key
from service.contract.objects import ObjectStore
from service.reports.exemplar_links import link_report_json
from service.reports.listing import indexed_neurons
from service.reports.tables import (
    MEDIA_TYPES,
    PAGE_ROWS,
    ExportFields,
    ExportFormat,
    encode,
    export_file_name,
)

Refs = list[tuple[int, int, str]]
"""(layer, neuron, artifact-store key) of each report to export, in row order."""


def read_pages(
    store: ObjectStore,
    refs: Refs,
    link: Callable[[int, str, bytes], bytes] | None = None,
    page_rows: int = PAGE_ROWS,
) -> Iterator[list[bytes]]:
    """The stored JSON of ``refs``, ``page_rows`` at a time (missing ones left out); ``link(layer, key,
    raw)``, when given, rewrites each report (exemplar image links)."""
    for start in range(0, len(refs), page_rows):
        page = refs[start : start + page_rows]
        values = store.read_many([key for _, _, key in page])
        found = [
            (layer, key, raw) for (layer, _, key), raw in zip(page, values, strict=True) if raw is not None
        ]
        yield [link(layer, key, raw) if link else raw for layer, key, raw in found]


def export_response(
    pages: Iterator[list[bytes]], export_format: ExportFormat, fields: ExportFields, stem: str, cache: str
) -> Stream:
    """The streamed export, with its media type and a `Content-Disposition` file name."""
    name = export_file_name(stem, export_format, fields)
    return Stream(
        encode(pages, export_format, fields),
        media_type=MEDIA_TYPES[export_format],
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": cache},
    )


def is_vision_language(registry: Registry, model: str) -> bool:
    try:
        return registry.model(model).modality == "vision-language"
    except KeyError:
        return False


def layer_export_pages(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    registry: Registry,
    request: ExplanationRequest,
    variant: str,
    fields: ExportFields,
    pinned: bool = False,
) -> Iterator[list[bytes]]:
    """Pages of every stored report of one layer and variant (``request``: the resolved lookup of any of
    its neurons, as `ReportReader.layer_variant` gives it; ``pinned``: the query named the variant)."""
    model, layer = request.model, request.only_layer()
    refs = [
        (layer, n, report_key(model, layer, n, variant))
        for n in indexed_neurons(connection, keys, store, model, layer, variant)
    ]
    link = None
    if fields == "full" and is_vision_language(registry, model):

        def link(_layer: int, _key: str, raw: bytes) -> bytes:
            return link_report_json(raw, request, variant, pinned)

    return read_pages(store, refs, link)
