"""A finished comparison as a table: NDJSON, CSV or Parquet, one row per neuron with both sides' columns
(`base_…`, `target_…`) and the comparison's (agreement numbers, verdict, score drop).

The columns are NeuronComparison's scalar fields (`COMPARISON_COLUMNS`, in its order); the top sample ids
stay in the JSON pages. CSV writes null as an empty cell and booleans as `true`/`false`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

from litestar.response import Stream

from service.contract.comparisons import NeuronComparison
from service.reports.tables import MEDIA_TYPES, ExportFormat

COMPARISON_COLUMNS: tuple[str, ...] = tuple(
    name for name in NeuronComparison.model_fields if name not in ("base_top_ids", "target_top_ids")
)
"""The columns of a comparison table, in order."""
_TEXT = {
    "base_model",
    "target_model",
    "units",
    "verdict",
    "base_type",
    "target_type",
    "base_explanation",
    "target_explanation",
}
_INTEGER = {"layer", "neuron", "n_tokens"}
_BOOLEAN = {"type_changed"}
PAGE_ROWS = 256
"""Rows per Parquet row group."""


def comparison_rows(items: Sequence[NeuronComparison]) -> list[dict[str, Any]]:
    """One dict of `COMPARISON_COLUMNS` per neuron."""
    return [item.model_dump(mode="json", include=set(COMPARISON_COLUMNS)) for item in items]


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ndjson(rows: list[dict[str, Any]]) -> Iterator[bytes]:
    for begin in range(0, len(rows), PAGE_ROWS):
        page = rows[begin : begin + PAGE_ROWS]
        yield b"".join(
            json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for row in page
        )


def _csv(rows: list[dict[str, Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COMPARISON_COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(row[name]) for name in COMPARISON_COLUMNS])
    yield buffer.getvalue().encode()


def comparison_schema() -> Any:
    """The Arrow schema of a comparison's Parquet table."""
    import pyarrow as pa

    def kind(name: str) -> Any:
        if name in _TEXT:
            return pa.string()
        if name in _INTEGER:
            return pa.int64()
        return pa.bool_() if name in _BOOLEAN else pa.float64()

    return pa.schema([pa.field(name, kind(name)) for name in COMPARISON_COLUMNS])


def _parquet(rows: list[dict[str, Any]]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    schema = comparison_schema()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for begin in range(0, len(rows), PAGE_ROWS):
            writer.write_table(pa.Table.from_pylist(rows[begin : begin + PAGE_ROWS], schema=schema))
    yield sink.getvalue().to_pybytes()


def comparison_chunks(items: Sequence[NeuronComparison], export_format: ExportFormat) -> Iterator[bytes]:
    """The comparison's table in ``export_format``, as byte chunks."""
    return {"ndjson": _ndjson, "csv": _csv, "parquet": _parquet}[export_format](comparison_rows(items))


def comparison_export(items: Sequence[NeuronComparison], export_format: ExportFormat, stem: str) -> Stream:
    """The comparison's table as a streamed answer with its media type and file name."""
    chunks = comparison_chunks(items, export_format)
    name = f"{stem}.{export_format}"
    return Stream(
        chunks,
        media_type=MEDIA_TYPES[export_format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
