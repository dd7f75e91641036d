"""Reading stored NeuronReports for `GET /v1/neurons/...` (the API's hot path: one read of the report's
object in the artifact store, service/contract/objects.py; no Redis round trip)."""

from __future__ import annotations

from dataclasses import dataclass

import pydantic
from redis.asyncio import Redis as AsyncRedis

from service.contract import ExplanationRequest, ModelSpec, RedisKeys, Registry, report_key
from service.contract.objects import ObjectStore
from service.estimates.validate import resolve_neuron_path, resolve_request
from service.problems import InvalidInput, NotFound
from service.reports.exemplar_links import link_report_json
from service.reports.listing import request_report_keys
from service.settings import Settings

Query = dict[str, str | int | None]
"""A lookup's query parameters: hook, units, dataset, explainer, simulator, endpoint, candidates, variant."""


def _lookup_request(model: str, layer: int, neuron: int, query: Query) -> ExplanationRequest:
    """The one-neuron request (default options) whose report a lookup reads; query values validated."""
    try:
        return ExplanationRequest.model_validate(
            {
                "model": model,
                "layer": layer,
                "neurons": [neuron],
                **{k: v for k, v in query.items() if v is not None and k != "variant"},
            }
        )
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "query"
        raise InvalidInput.for_field(field, first["msg"]) from None


KEY_CACHE_SIZE = 65_536
"""Resolved lookups (path + query → report key) remembered per app; the registry never changes under it."""


@dataclass(frozen=True)
class ReportLookup:
    """Where the report a lookup asks for is stored, and what it was resolved to."""

    key: str
    """Artifact-store key of the report (`contract.report_key`)."""
    request: ExplanationRequest
    """The resolved one-neuron request (default options) the report answers."""
    variant: str
    """The report variant (``contract.report_variant``) of that request, or the query's `variant`."""
    model: ModelSpec
    pinned: bool = False
    """True when the query named the variant (a report made with non-default options): links carry it."""


class ReportReader:
    """The registry, the settings (default backends, LLM endpoints), the asyncio Redis client and the report
    store, handed to the routes as one dependency; one per app (on ``app.state``), with the lookups it
    resolved so far."""

    def __init__(
        self, registry: Registry, redis: AsyncRedis, store: ObjectStore, settings: Settings | None = None
    ) -> None:
        self.registry = registry
        self.redis = redis
        self.store = store
        self.settings = settings
        self.redis_keys = settings.redis_keys if settings is not None else RedisKeys()
        """The deployment's Redis key names (job records, report indexes)."""
        self._keys: dict[tuple[object, ...], ReportLookup] = {}

    def resolve(self, model: str, layer: int, neuron: int, query: Query) -> ReportLookup:
        """Where a lookup's report is stored; InvalidInput / NotFound for bad names."""
        cache_key = (model, layer, neuron, *query.items())
        cached = self._keys.get(cache_key)
        if cached is not None:
            return cached
        units = query.get("units")
        spec = resolve_neuron_path(self.registry, model, layer, neuron, None if units is None else str(units))
        lookup = _lookup_request(model, layer, neuron, query)
        resolved = resolve_request(self.registry, lookup, max_neurons=1, settings=self.settings)
        pinned = query.get("variant")
        if pinned is not None and pinned != resolved.variant:
            key = report_key(model, layer, neuron, str(pinned))
            found = ReportLookup(key, resolved.request, str(pinned), spec, pinned=True)
        else:
            found = ReportLookup(request_report_keys(resolved)[0], resolved.request, resolved.variant, spec)
        if len(self._keys) >= KEY_CACHE_SIZE:
            self._keys.clear()
        self._keys[cache_key] = found
        return found

    def layer_variant(self, model: str, layer: int, query: Query) -> tuple[str, ExplanationRequest]:
        """(report variant, resolved request) that a lookup of any neuron of ``layer`` with ``query`` reads;
        InvalidInput / NotFound for bad names."""
        lookup = self.resolve(model, layer, 0, query)
        return lookup.variant, lookup.request

    async def read(self, model: str, layer: int, neuron: int, query: Query) -> bytes:
        """The stored report's JSON for the variant a request with default options (and ``query``'s hook,
        dataset, backends, endpoint, candidates) produces, with its exemplar image links. NotFound for
        unknown names or no report."""
        lookup = self.resolve(model, layer, neuron, query)
        request = lookup.request
        stored = await self.store.read_async(lookup.key)
        if stored is None:
            which = (
                f"report variant {lookup.variant}"
                if lookup.pinned
                else f"hook {request.hook}, dataset {request.dataset}, explainer {request.explainer}, "
                f"simulator {request.simulator}{_llm_part(request)}, default options"
            )
            raise NotFound(
                f"no report stored for {model} layer {layer} neuron {neuron} ({which}): "
                "POST /v1/explanations to create it"
            )
        if lookup.model.modality != "vision-language":
            return stored  # text models have no image exemplars: the stored bytes are served as they are
        return link_report_json(stored, request, lookup.variant, pinned=lookup.pinned)


def _llm_part(request: ExplanationRequest) -> str:
    if request.endpoint is None:
        return ""
    candidates = f", candidates {request.candidates}" if request.candidates is not None else ""
    return f", endpoint {request.endpoint}{candidates}"
