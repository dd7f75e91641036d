"""The report query that every `GET /v1/neurons/{model}/{layer}/{neuron}...` route takes.

One dependency declares the parameters (and their OpenAPI descriptions) for the report, its page and its
exemplar images, so the three routes select a report variant the same way.
"""

from __future__ import annotations

from litestar.di import Provide
from litestar.params import Parameter

from service.reports import Query


def provide_report_query(
    hook: str | None = Parameter(default=None, description="Hook point id; default: the model's first."),
    dataset: str | None = Parameter(default=None, description="Probe set id; default: the model's first."),
    explainer: str | None = Parameter(
        default=None, description="Explainer backend (`baseline`, `openai`); default as in a request."
    ),
    simulator: str | None = Parameter(
        default=None, description="Simulator backend (`baseline`, `openai`); default as in a request."
    ),
    endpoint: str | None = Parameter(
        default=None, description="LLM endpoint name for `openai` backends; default as in a request."
    ),
    candidates: int | None = Parameter(
        default=None,
        description="Candidate explanations k of the `openai` explainer; default as in a request.",
    ),
) -> Query:
    """The lookup's query parameters, unset ones None (ReportReader fills in a request's defaults)."""
    return {
        "hook": hook,
        "dataset": dataset,
        "explainer": explainer,
        "simulator": simulator,
        "endpoint": endpoint,
        "candidates": candidates,
    }


REPORT_QUERY = {"report_query": Provide(provide_report_query, sync_to_thread=False)}
"""Route dependencies: a handler takes ``report_query: NamedDependency[Query]``."""
