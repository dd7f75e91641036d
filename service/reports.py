"""Reading stored NeuronReports for `GET /v1/neurons/...` (the API's hot path: one Redis GET)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pydantic
from redis.asyncio import Redis as AsyncRedis

from service.errors import InvalidInput, NotFound
from service.jobs import request_report_keys
from service.schemas import ExplanationRequest, Registry
from service.validate import resolve_neuron_path, resolve_request


def _lookup_request(model: str, layer: int, neuron: int, query: dict[str, str | None]) -> ExplanationRequest:
    """The one-neuron request (default options) whose report a lookup reads; query values validated."""
    try:
        return ExplanationRequest.model_validate(
            {"model": model, "layer": layer, "neurons": [neuron], **{k: v for k, v in query.items() if v}}
        )
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "query"
        raise InvalidInput.for_field(field, first["msg"]) from None


KEY_CACHE_SIZE = 65_536
"""Resolved lookups (path + query → report key) remembered per app; the registry never changes under it."""


@dataclass(frozen=True)
class ReportReader:
    """The registry and the asyncio Redis client, handed to the route as one dependency."""

    registry: Registry
    redis: AsyncRedis
    _keys: dict[tuple[object, ...], tuple[str, ExplanationRequest]] = field(default_factory=dict)

    def resolve(
        self, model: str, layer: int, neuron: int, query: dict[str, str | None]
    ) -> tuple[str, ExplanationRequest]:
        """(report key, resolved request) of a lookup; InvalidInput / NotFound for bad names."""
        cache_key = (model, layer, neuron, *query.items())
        cached = self._keys.get(cache_key)
        if cached is not None:
            return cached
        spec = resolve_neuron_path(self.registry, model, layer, neuron)
        resolved = resolve_request(self.registry, _lookup_request(model, layer, neuron, query), max_neurons=1)
        found = (request_report_keys(resolved.request, spec.revision)[0], resolved.request)
        if len(self._keys) >= KEY_CACHE_SIZE:
            self._keys.clear()
        self._keys[cache_key] = found
        return found

    async def read(self, model: str, layer: int, neuron: int, query: dict[str, str | None]) -> bytes:
        """The stored report's JSON for the variant a request with default options (and ``query``'s hook,
        dataset, explainer, simulator) produces. NotFound for names that do not exist or no report."""
        key, request = self.resolve(model, layer, neuron, query)
        raw = await self.redis.get(key)
        if raw is None:
            raise NotFound(
                f"no report stored for {model} layer {layer} neuron {neuron} (hook {request.hook}, dataset "
                f"{request.dataset}, explainer {request.explainer}, simulator {request.simulator}, default "
                "options): POST /v1/explanations to create it"
            )
        return raw if isinstance(raw, bytes) else raw.encode()
