"""`GET /v1/neurons/{model}/{layer}/{neuron}`: the stored report of one neuron."""

from __future__ import annotations

import pydantic
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, Parameter
from redis.asyncio import Redis as AsyncRedis

from service.errors import InvalidInput, NotFound, problem_specs
from service.jobs import request_report_keys
from service.schemas import ExplanationRequest, NeuronReport, Registry
from service.validate import resolve_neuron_path, resolve_request


def _lookup_request(model: str, layer: int, neuron: int, query: dict[str, str | None]) -> ExplanationRequest:
    """The one-neuron request (default options) whose report this lookup reads; query values validated."""
    try:
        return ExplanationRequest.model_validate(
            {"model": model, "layer": layer, "neurons": [neuron], **{k: v for k, v in query.items() if v}}
        )
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "query"
        raise InvalidInput.for_field(field, first["msg"]) from None


@get(
    "/v1/neurons/{model:str}/{layer:int}/{neuron:int}",
    operation_id="getNeuronReport",
    summary="Get a stored neuron report",
    tags=["neurons"],
    responses={
        200: ResponseSpec(
            data_container=NeuronReport, description="The stored report.", generate_examples=False
        ),
        **problem_specs(400, 404, 422, 503),
    },
)
async def get_neuron_report(
    model: FromPath[str],
    layer: FromPath[int],
    neuron: FromPath[int],
    redis_async: NamedDependency[AsyncRedis],
    registry: NamedDependency[Registry],
    hook: str | None = Parameter(default=None, description="Hook point id; default: the model's first."),
    dataset: str | None = Parameter(default=None, description="Probe set id; default: the model's first."),
    explainer: str | None = Parameter(
        default=None, description="Explainer backend; default as in a request."
    ),
    simulator: str | None = Parameter(
        default=None, description="Simulator backend; default as in a request."
    ),
) -> Response[bytes]:
    """The stored NeuronReport of one neuron, for the report variant a request with default options
    produces (hook, dataset, explainer and simulator can be chosen). 404 when none is stored yet:
    `POST /v1/explanations` creates it."""
    spec = resolve_neuron_path(registry, model, layer, neuron)
    query = {"hook": hook, "dataset": dataset, "explainer": explainer, "simulator": simulator}
    resolved = resolve_request(registry, _lookup_request(model, layer, neuron, query), max_neurons=1)
    key = request_report_keys(resolved.request, spec.revision)[0]
    raw = await redis_async.get(key)
    if raw is None:
        request = resolved.request
        raise NotFound(
            f"no report stored for {model} layer {layer} neuron {neuron} (hook {request.hook}, dataset "
            f"{request.dataset}, explainer {request.explainer}, simulator {request.simulator}, default "
            "options): POST /v1/explanations to create it"
        )
    # Reports are written through the NeuronReport schema by the workers; pass the bytes through.
    body = raw if isinstance(raw, bytes) else raw.encode()
    return Response(content=body, media_type="application/json")
