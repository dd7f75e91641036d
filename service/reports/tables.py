"""Stored reports as tables: NDJSON, CSV and Parquet, one row per neuron, written page by page.

Input is pages of stored report JSON (bytes, as the artifact store holds them, exemplar image links already
filled for `full`); output is an iterator of byte chunks, so a route streams an export of any size with
memory bounded by one page. Nothing here knows Redis, the store or a route.

Columns of `fields=summary`: the contract's summary row (`contract.SUMMARY_COLUMNS`, built by
`contract.summary_row`; the listing and the SDK use the same). In NDJSON a row is a JSON object
(`contract.summary_record`: `ci95` a two-number list, `domain_specific` a list); in CSV and Parquet `ci95`
is split into `ci95_low` / `ci95_high`, and CSV joins the list columns with `;` (an empty cell for both
null and an empty list; Parquet keeps a list of strings).

`fields=full`: NDJSON is one whole report per line, the bytes the JSON API serves; CSV and Parquet carry
the summary columns plus a `report` column holding the whole report as a JSON string. (Nested Parquet
columns inferred from the reports would change type with optional fields from one row group to the next;
one JSON column keeps one schema for every export, and `pyarrow.compute` / DuckDB read JSON strings.)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic_core import from_json

from service.contract import SUMMARY_COLUMNS, csv_cell, summary_record, summary_row

ExportFormat = Literal["ndjson", "csv", "parquet"]
"""Table formats of an export."""
ExportFields = Literal["summary", "full"]
"""`summary`: one row of :data:`SUMMARY_COLUMNS` per neuron; `full`: the whole report as well."""

MEDIA_TYPES: dict[str, str] = {
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",  # served as `text/csv; charset=utf-8` (Litestar adds the charset to text types)
    "parquet": "application/vnd.apache.parquet",
}
"""Content-Type of each export format."""
EXTENSIONS: dict[str, str] = {"ndjson": "ndjson", "csv": "csv", "parquet": "parquet"}

REPORT_COLUMN = "report"
"""The column of `fields=full` CSV and Parquet that holds the whole report as JSON."""

PAGE_ROWS = 256
"""Reports read and written per page (and per Parquet row group): a few MB of report JSON at most."""


# --------------------------------------------------------------------------- rows


def _parse(raw: bytes) -> Any:
    """A stored report as Python objects: jiter (pydantic's parser) reads them about twice as fast as the
    json module, which is most of a summary export's time (a report is mostly exemplars)."""
    return from_json(raw)


# --------------------------------------------------------------------------- encoders


def ndjson_chunks(pages: Iterable[list[bytes]], fields: ExportFields) -> Iterator[bytes]:
    """One line per report: its summary object, or (`full`) the report's JSON as given."""
    for page in pages:
        if fields == "full":
            lines = [raw if b"\n" not in raw else _compact(raw) for raw in page]
        else:
            lines = [_json_line(summary_record(_parse(raw))) for raw in page]
        if lines:
            yield b"\n".join(lines) + b"\n"


def _json_line(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _compact(raw: bytes) -> bytes:
    """A report stored with line breaks, on one line (workers write compact JSON; this is a safeguard)."""
    return _json_line(_parse(raw))


def csv_chunks(pages: Iterable[list[bytes]], fields: ExportFields) -> Iterator[bytes]:
    """A header, then one row per report (UTF-8, `\\n` line ends); `full` adds the `report` column."""
    columns = [*SUMMARY_COLUMNS, REPORT_COLUMN] if fields == "full" else list(SUMMARY_COLUMNS)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for page in pages:
        for raw in page:
            report = _parse(raw)
            cells = [csv_cell(name, value) for name, value in summary_row(report).items()]
            if fields == "full":
                cells.append(raw.decode() if b"\n" not in raw else _compact(raw).decode())
            writer.writerow(cells)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    rest = buffer.getvalue()
    if rest:
        yield rest.encode()


class _Chunks:
    """A write-only file for pyarrow's Parquet writer that hands what was written to the caller."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _arrow_types() -> dict[str, tuple[Any, bool]]:
    """(Arrow type, nullable) of each summary column."""
    import pyarrow as pa

    text, number, integer, labels = pa.string(), pa.float64(), pa.int64(), pa.list_(pa.string())
    types: dict[str, tuple[Any, bool]] = {
        "model": (text, False), "layer": (integer, False), "neuron": (integer, False), "hook": (text, False),
        "neuron_type": (text, False), "high_confidence": (pa.bool_(), False), "explanation": (text, False),
        "correlation": (number, True), "ci95_low": (number, True), "ci95_high": (number, True),
        "chance_p_value": (number, True), "beyond_chance": (pa.bool_(), True),
        "domain_specific": (labels, True), "llm_calls": (integer, True), "cost_usd": (number, True),
        "non_default_options": (labels, False),
    }  # fmt: skip
    types.update({name: (number, False) for name in ("p_visual", "p_text", "p_multimodal", "p_unknown")})
    types["max_activation"] = (number, False)
    return types


def parquet_schema(fields: ExportFields) -> Any:
    """The Arrow schema of a Parquet export: the same for every export of ``fields``, empty ones too."""
    import pyarrow as pa

    types = _arrow_types()
    columns = [pa.field(name, types[name][0], nullable=types[name][1]) for name in SUMMARY_COLUMNS]
    if fields == "full":
        columns.append(pa.field(REPORT_COLUMN, pa.string(), nullable=False))
    return pa.schema(columns)


def parquet_chunks(pages: Iterable[list[bytes]], fields: ExportFields) -> Iterator[bytes]:
    """A Parquet file (zstd), one row group per page, yielded as each row group is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(fields)
    sink = _Chunks()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for page in pages:
            if not page:
                continue
            rows = [summary_row(_parse(raw)) for raw in page]
            if fields == "full":
                for row, raw in zip(rows, page, strict=True):
                    row[REPORT_COLUMN] = raw.decode()
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            yield sink.take()
    yield sink.take()


ENCODERS = {"ndjson": ndjson_chunks, "csv": csv_chunks, "parquet": parquet_chunks}
"""The chunk iterator of each format: ``ENCODERS[format](pages, fields)``."""


def encode(
    pages: Iterable[list[bytes]], export_format: ExportFormat, fields: ExportFields
) -> Iterator[bytes]:
    """The export of ``pages`` of report JSON in ``export_format``, as byte chunks."""
    return ENCODERS[export_format](pages, fields)


def export_file_name(stem: str, export_format: ExportFormat, fields: ExportFields) -> str:
    """`<stem>-<fields>.<extension>`, with characters outside `[A-Za-z0-9._-]` replaced by `_`."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in stem)
    return f"{safe}-{fields}.{EXTENSIONS[export_format]}"
