"""What Litestar cannot say per route in OpenAPI: response headers, examples, and the answers every /v1
route may give (401/403/429 with keys on, 406, 304 on conditional GETs).

Every route handler sets ``operation_class=DocumentedOperation``; Litestar builds the operation, and
:meth:`DocumentedOperation.__post_init__` completes it from the tables here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.openapi.spec import (
    Example,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

from service.http.error_responses import PROBLEM_MEDIA_TYPE, RETRY_AFTER_S
from service.http.openapi_check_examples import CHECK_REQUESTS, check_examples
from service.http.openapi_examples import (
    COMPARISON_REQUESTS,
    EXPLANATION_REQUESTS,
    neuron_comparison,
    neuron_report,
    problem_example,
    response_examples,
)
from service.reports.comparison_tables import comparison_chunks
from service.reports.tables import encode

_STRING = Schema(type=OpenAPIType.STRING)
_INTEGER = Schema(type=OpenAPIType.INTEGER)
REQUEST_ID = OpenAPIHeader(
    schema=_STRING,
    description="The client's `X-Request-ID` when well-formed, else a generated id.",
)
ETAG = OpenAPIHeader(
    schema=_STRING, description="Strong entity tag of the bytes; send it as `If-None-Match`."
)
CACHE_CONTROL = OpenAPIHeader(
    schema=_STRING, description="`no-cache` for reports (revalidate), `max-age=86400` for images."
)
LOCATION = OpenAPIHeader(
    schema=_STRING, description="The job to poll (`/v1/jobs/{job_id}`), as `status_url`."
)
CHECK_LOCATION = OpenAPIHeader(schema=_STRING, description="The check to poll (`/v1/checks/{check_id}`).")
CONTENT_DISPOSITION = OpenAPIHeader(
    schema=_STRING, description='`attachment; filename="<job or model-layer>-<fields>.<format>"`.'
)
RETRY_AFTER = OpenAPIHeader(schema=_INTEGER, description="Seconds until the key's window or quota resets.")
RETRY_AFTER_UNAVAILABLE = OpenAPIHeader(
    schema=_INTEGER,
    description=f"Seconds to wait before trying again ({RETRY_AFTER_S}): Redis is unreachable, as during a "
    "restart; clients back off further on repeats.",
)
OPEN_OPERATIONS = {"healthz", "readyz", "metrics"}
"""Operations no API key is ever asked for (`security: []`, whatever `NEURONLENS_AUTH` says)."""
WWW_AUTHENTICATE = OpenAPIHeader(schema=_STRING, description='`Bearer realm="neuronlens"`.')

HTML_NOT_FOUND = {"getNeuronPage"}
"""HTML pages whose 404 for a neuron without a report is an HTML page (problem details otherwise)."""
CONDITIONAL = {"getNeuronReport", "getExemplarImage"}
"""Operations answering with a strong ETag, and 304 to a matching If-None-Match."""
SUCCESS_HEADERS: dict[tuple[str, str], dict[str, OpenAPIHeader]] = {
    ("createExplanation", "202"): {"Location": LOCATION},
    ("createComparison", "202"): {"Location": LOCATION},
    ("createCheck", "202"): {"Location": CHECK_LOCATION},
    **{(op, "200"): {"ETag": ETAG, "Cache-Control": CACHE_CONTROL} for op in CONDITIONAL},
}
TABLE_EXPORTS = {
    "exportJobReports": "Every stored report of the job",
    "listLayerNeurons": "Every stored report",
    "exportComparison": "Every compared neuron",
}
"""Operations that stream tables (service/reports/tables.py) in 200 answers."""
JSON_AND_TABLES = {"listLayerNeurons"}
"""Of those, the ones that answer JSON too (their default `format`)."""
_TABLE_MEDIA: dict[str, tuple[Schema, str | None]] = {
    "application/x-ndjson": (_STRING, "ndjson"),
    "text/csv": (_STRING, "csv"),
    "application/vnd.apache.parquet": (Schema(type=OpenAPIType.STRING, format="binary"), None),  # type: ignore[arg-type]
}
"""Schema of each table media type, and the export format of its example (None: binary, no example)."""


def _table_example(export_format: Any, op: str) -> str:
    """The example export of ``op`` as the server writes it: the example report's summary row
    (service/reports/tables.py), or the example comparison's row (service/reports/comparison_tables.py)."""
    if op == "exportComparison":
        return b"".join(comparison_chunks([neuron_comparison()], export_format)).decode()
    raw = neuron_report().model_dump_json(exclude_none=True).encode()
    return b"".join(encode([[raw]], export_format, "summary")).decode()


KEYED_PROBLEMS = {
    "401": "No API key, or an unknown or revoked one (only when the deployment sets `NEURONLENS_AUTH=keys`).",
    "403": "The key lacks the scope this route needs, or the request exceeds its whole daily quota.",
    "429": "The key used up its requests per minute or its daily quota (the problem names the estimate).",
}
_PROBLEM_SCHEMA = Reference(ref="#/components/schemas/Problem")


def _problem(status: str, description: str, path: str) -> OpenAPIResponse:
    example = Example(summary=description.split(".")[0], value=problem_example(status, path))
    headers: dict[str, OpenAPIHeader | Reference] = {"X-Request-ID": REQUEST_ID}
    if status == "429":
        headers["Retry-After"] = RETRY_AFTER
    if status == "503":
        headers["Retry-After"] = RETRY_AFTER_UNAVAILABLE
    if status == "401":
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    media = OpenAPIMediaType(schema=_PROBLEM_SCHEMA, examples={"problem": example})
    return OpenAPIResponse(description=description, headers=headers, content={PROBLEM_MEDIA_TYPE: media})


@dataclass
class DocumentedOperation(Operation):
    """An Operation completed with headers, examples and the shared problem answers (see module doc)."""

    def __post_init__(self) -> None:
        op = self.operation_id or ""
        responses = self.responses if self.responses is not None else {}
        if op in OPEN_OPERATIONS:
            self.security = []
        if self.security:
            for status, description in KEYED_PROBLEMS.items():
                responses.setdefault(status, _problem(status, description, "/v1/…"))
            if self.request_body is None:
                responses.setdefault("406", _problem("406", "`Accept` admits no representation.", "/v1/…"))
        if op in CONDITIONAL:
            responses["304"] = OpenAPIResponse(
                description="Not modified: `If-None-Match` names the current ETag (no body).",
                headers={"ETag": ETAG, "Cache-Control": CACHE_CONTROL, "X-Request-ID": REQUEST_ID},
            )
        missing = responses.get("404")
        if op in HTML_NOT_FOUND and isinstance(missing, OpenAPIResponse) and missing.content is not None:
            page = Example(
                value="<!doctype html><html><head><title>minilm-l6 layer 3 neuron 42: no report</title>…"
            )
            missing.content["text/html"] = OpenAPIMediaType(schema=_STRING, examples={"page": page})
            missing.description = (
                "No report stored: an HTML page saying how to explain the neuron; problem "
                "details for an unknown model, layer or neuron"
            )
        if op in TABLE_EXPORTS:
            responses["200"] = _with_tables(responses.get("200"), op, op in JSON_AND_TABLES)
        examples = response_examples() | check_examples()
        for status, response in responses.items():
            if not isinstance(response, OpenAPIResponse):
                continue
            response.headers = {**(response.headers or {}), **SUCCESS_HEADERS.get((op, status), {})}
            response.headers.setdefault("X-Request-ID", REQUEST_ID)
            if status == "503":
                response.headers.setdefault("Retry-After", RETRY_AFTER_UNAVAILABLE)
            self._add_examples(response, status, examples.get((op, status)))
        self.responses = dict(sorted(responses.items()))
        if isinstance(self.request_body, RequestBody) and op == "createExplanation":
            for media in self.request_body.content.values():
                media.examples = _examples(EXPLANATION_REQUESTS)
        if isinstance(self.request_body, RequestBody) and op == "createComparison":
            for media in self.request_body.content.values():
                media.examples = _examples(COMPARISON_REQUESTS)
        if isinstance(self.request_body, RequestBody) and op == "createCheck":
            for media in self.request_body.content.values():
                media.examples = _examples(CHECK_REQUESTS)

    def _add_examples(self, response: OpenAPIResponse, status: str, examples: dict[str, Any] | None) -> None:
        for media_type, media in (response.content or {}).items():
            if media.examples or media_type in _TABLE_MEDIA:
                continue  # a table's example is its own (none for binary Parquet), never the JSON one
            if media_type == PROBLEM_MEDIA_TYPE:
                media.examples = {"problem": Example(value=problem_example(status, "/v1/…"))}
            elif examples is not None:
                media.examples = _examples(examples)


def _with_tables(response: OpenAPIResponse | Reference | None, op: str, keep_json: bool) -> OpenAPIResponse:
    """A 200 answer with the table media types (and its JSON representation when ``keep_json``)."""
    what = TABLE_EXPORTS[op]
    json_content = {}
    if keep_json and isinstance(response, OpenAPIResponse) and response.content:
        json_content = {"application/json": response.content["application/json"]}
    tables = {
        media_type: OpenAPIMediaType(
            schema=schema,
            examples={"summary": Example(value=_table_example(fmt, op))} if fmt is not None else None,
        )
        for media_type, (schema, fmt) in _TABLE_MEDIA.items()
    }
    description = response.description if isinstance(response, OpenAPIResponse) and json_content else ""
    # Parquet first: a generated client reads the answer the way of the first media type it knows, and
    # only bytes hold every format (openapi-python-client with Parquet mapped to octet-stream: a File).
    return OpenAPIResponse(
        description=(description + " " if description else "")
        + f"{what} as one table (`format`): NDJSON, CSV or Parquet; gzip when accepted.",
        headers={"Content-Disposition": CONTENT_DISPOSITION},
        content={**dict(sorted(tables.items())), **json_content},
    )


def _examples(values: dict[str, Any]) -> dict[str, Example | Reference]:
    return {name.replace(" ", "-"): Example(summary=name, value=value) for name, value in values.items()}
