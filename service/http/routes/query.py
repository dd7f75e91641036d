"""The report query that every `GET /v1/neurons/{model}/{layer}/{neuron}...` route takes.

One dependency declares the parameters (and their OpenAPI descriptions) for the report, its page and its
exemplar images, so the three routes select a report variant the same way.
"""

from __future__ import annotations

from typing import Annotated

from litestar.di import Provide
from litestar.params import Parameter, QueryParameter

from service.contract import ENDPOINT_NAME_PATTERN, MAX_CANDIDATES, MAX_NAME_LENGTH, Backend
from service.reports.reading import Query

VARIANT_PATTERN = r"^[0-9a-f]{16}$"
"""What a report variant looks like (`contract.report_variant`)."""


def provide_report_query(
    hook: str | None = Parameter(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Hook point id; default: the model's first.",
    ),
    units: str | None = Parameter(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="`neurons` (default) or a dictionary id of the model: the path's neuron is then that "
        "dictionary's latent (docs/dictionaries.md).",
    ),
    dataset: str | None = Parameter(
        default=None,
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Probe set id; default: the model's first.",
    ),
    explainer: Annotated[
        Backend | None,
        Parameter(description="Explainer backend (`baseline`, `openai`); default as in a request."),
    ] = None,
    simulator: Annotated[
        Backend | None,
        Parameter(description="Simulator backend (`baseline`, `openai`); default as in a request."),
    ] = None,
    endpoint: str | None = Parameter(
        default=None,
        pattern=ENDPOINT_NAME_PATTERN,
        description="LLM endpoint name for `openai` backends; default as in a request.",
    ),
    candidates: int | None = Parameter(
        default=None,
        ge=1,
        le=MAX_CANDIDATES,
        description=f"Candidate explanations k (1–{MAX_CANDIDATES}) of the `openai` explainer; "
        "default as in a request.",
    ),
    variant: str | None = Parameter(
        default=None,
        pattern=VARIANT_PATTERN,
        description="Report variant (16 hex digits: the job's, or `variant` of the layer listing), for "
        "reports made with non-default options, which no other parameter selects; it overrides the "
        "other query parameters. Links in the viewer and image URLs in reports carry it when needed.",
    ),
) -> Query:
    """The lookup's query parameters, unset ones None (ReportReader fills in a request's defaults)."""
    return {
        "hook": hook,
        "units": units,
        "dataset": dataset,
        "explainer": explainer,
        "simulator": simulator,
        "endpoint": endpoint,
        "candidates": candidates,
        "variant": variant,
    }


REPORT_QUERY = {"report_query": Provide(provide_report_query, sync_to_thread=False)}
"""Route dependencies: a handler takes ``report_query: NamedDependency[Query]``."""

EXPORT_FORMAT_PARAMETER = QueryParameter(
    name="format",
    description="Table format: `ndjson` (one JSON object per line), `csv` (with a header) or `parquet`.",
)
"""The `format` of an export (the Python name of the parameter differs: `format` is a builtin)."""
EXPORT_FIELDS_PARAMETER = QueryParameter(
    description="`summary`: neuron, layer, type and its evidence, max activation, explanation, score and its "
    "95% interval, domain_specific, LLM calls and cost; `full`: the whole reports as well (NDJSON: one "
    "report per line; CSV and Parquet: the summary columns and a `report` JSON column).",
)
"""The `fields` of an export: summary rows or whole reports (service/reports/tables.py)."""
