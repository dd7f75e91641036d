"""Links from a report's image exemplars to `GET /v1/neurons/{model}/{layer}/{neuron}/exemplars/{name}`
(shaded and unshaded, top and random exemplars: `contract.exemplar_image_name`).

Workers never know a route: a stored report leaves `image_url` null, and what identifies an image is in
the report (the exemplar's rank, `Exemplar.has_image`) and its key (the variant). The API fills the links
whenever it serves a report, from the resolved request it serves it for and that request's variant.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from service.contract import Exemplar, ExplanationRequest, NeuronReport, PipelineOptions, exemplar_image_name

_QUERY_FIELDS = ("hook", "units", "dataset", "explainer", "simulator", "endpoint", "candidates")
"""What a lookup needs besides the path to find the request's variant (`units` only for latents: a resolved
request of neurons has none, so neurons' links are unchanged)."""


def exemplar_query(request: ExplanationRequest, variant: str, pinned: bool = False) -> dict[str, str]:
    """Query parameters that select a resolved request's report variant in `GET /v1/neurons/…` and its
    exemplar images: hook, units (a dictionary's latents), dataset and backends (endpoint and k for
    `openai`); `variant` itself too when the request's options are not the defaults, since a lookup
    otherwise assumes default options (or when ``pinned``: the lookup named the variant)."""
    query = {name: str(value) for name in _QUERY_FIELDS if (value := getattr(request, name)) is not None}
    if pinned or request.options != PipelineOptions():
        query["variant"] = variant
    return query


def exemplar_image_url(
    request: ExplanationRequest,
    neuron: int,
    rank: int,
    variant: str,
    *,
    random: bool = False,
    original: bool = False,
    pinned: bool = False,
) -> str:
    """API path of an exemplar's PNG (shaded, or `original`; of a random exemplar when `random`), with the
    query of its report variant."""
    model = quote(request.model, safe="")
    name = exemplar_image_name(rank, random=random, original=original)
    path = f"/v1/neurons/{model}/{request.only_layer()}/{neuron}/exemplars/{name}"
    return f"{path}?{urlencode(exemplar_query(request, variant, pinned))}"


def _linked(
    exemplars: list[Exemplar],
    request: ExplanationRequest,
    neuron: int,
    variant: str,
    random: bool,
    pinned: bool,
) -> list[Exemplar]:
    return [
        exemplar.model_copy(
            update={
                field: exemplar_image_url(
                    request, neuron, exemplar.rank, variant, random=random, original=original, pinned=pinned
                )
                for field, original in (("image_url", False), ("original_image_url", True))
            }
        )
        if exemplar.has_image
        else exemplar
        for exemplar in exemplars
    ]


def link_exemplar_images(
    report: NeuronReport, request: ExplanationRequest, variant: str, pinned: bool = False
) -> NeuronReport:
    """``report`` with `image_url` and `original_image_url` set on every top and random exemplar that has
    stored images (unchanged when none has); ``pinned``: the links name the variant."""
    randoms = report.random_exemplars or []
    if not any(exemplar.has_image for exemplar in [*report.exemplars, *randoms]):
        return report
    update: dict[str, object] = {
        "exemplars": _linked(report.exemplars, request, report.neuron, variant, False, pinned)
    }
    if report.random_exemplars is not None:
        update["random_exemplars"] = _linked(randoms, request, report.neuron, variant, True, pinned)
    return report.model_copy(update=update)


def link_report_json(raw: bytes, request: ExplanationRequest, variant: str, pinned: bool = False) -> bytes:
    """A stored report's JSON with its exemplar image links filled (the same bytes when it has none)."""
    report = NeuronReport.model_validate_json(raw)
    linked = link_exemplar_images(report, request, variant, pinned)
    return raw if linked is report else linked.model_dump_json().encode()
