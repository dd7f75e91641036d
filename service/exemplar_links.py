"""Links from a report's image exemplars to `GET /v1/neurons/{model}/{layer}/{neuron}/exemplars/{rank}.png`.

Workers never know a route: a stored report leaves `image_url` null, and what identifies an image is in
the report (the exemplar's rank, `Exemplar.has_image`) and its key (the variant). The API fills the links
whenever it serves a report, from the resolved request it serves it for and that request's variant.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from service.contract import ExplanationRequest, NeuronReport, PipelineOptions, exemplar_image_name

_QUERY_FIELDS = ("hook", "dataset", "explainer", "simulator", "endpoint", "candidates")


def exemplar_query(request: ExplanationRequest, variant: str) -> dict[str, str]:
    """Query parameters that select a resolved request's report variant in `GET /v1/neurons/…` and its
    exemplar images: hook, dataset and backends (endpoint and k for `openai`); `variant` itself too when
    the request's options are not the defaults, since a lookup otherwise assumes default options."""
    query = {name: str(value) for name in _QUERY_FIELDS if (value := getattr(request, name)) is not None}
    if request.options != PipelineOptions():
        query["variant"] = variant
    return query


def exemplar_image_url(request: ExplanationRequest, neuron: int, rank: int, variant: str) -> str:
    """API path of an exemplar's shaded PNG, with the query of its report variant."""
    model = quote(request.model, safe="")
    path = f"/v1/neurons/{model}/{request.layer}/{neuron}/exemplars/{exemplar_image_name(rank)}"
    return f"{path}?{urlencode(exemplar_query(request, variant))}"


def link_exemplar_images(report: NeuronReport, request: ExplanationRequest, variant: str) -> NeuronReport:
    """``report`` with `image_url` set on every exemplar that has a stored image (unchanged when none has)."""
    if not any(exemplar.has_image for exemplar in report.exemplars):
        return report
    exemplars = [
        exemplar.model_copy(
            update={"image_url": exemplar_image_url(request, report.neuron, exemplar.rank, variant)}
        )
        if exemplar.has_image
        else exemplar
        for exemplar in report.exemplars
    ]
    return report.model_copy(update={"exemplars": exemplars})


def link_report_json(raw: bytes, request: ExplanationRequest, variant: str) -> bytes:
    """A stored report's JSON with its exemplar image links filled (the same bytes when it has none)."""
    report = NeuronReport.model_validate_json(raw)
    linked = link_exemplar_images(report, request, variant)
    return raw if linked is report else linked.model_dump_json().encode()
