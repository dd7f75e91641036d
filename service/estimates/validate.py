"""Check a request against the registry before anything is enqueued (bad input never reaches a worker).

Schema-level checks (types, ranges that do not depend on the model) live in service/contract/; here go
the checks that need the registry: which models, hooks, datasets, layers and neurons exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from service.contract import (
    ALL,
    SUPPORTED_ARCHITECTURES,
    Backend,
    DatasetSpec,
    ExplanationRequest,
    LLMModels,
    ModelSpec,
    NeuronRange,
    Registry,
    report_variant,
)
from service.estimates.units import check_dictionary_files, resolve_units
from service.problems import FieldProblem, InvalidInput, NotFound
from service.settings import Settings, default_llm_endpoint, llm_endpoint_configs

LLM_SETUP_HINT = (
    "set NEURONLENS_LLM_BASE_URL, NEURONLENS_LLM_API_KEY and NEURONLENS_EXPLAINER_MODEL (or "
    "NEURONLENS_LLM_ENDPOINTS) for the API and the workers, or ask for the `baseline` backend"
)
"""How to configure the `openai` backend, for error messages."""


@dataclass(frozen=True)
class ResolvedRequest:
    """An explanation request with every default filled in and checked against the registry."""

    request: ExplanationRequest
    """The request with `hook`, `dataset`, `explainer` and `simulator` set, `endpoint` and `candidates` set
    when an `openai` backend is used (None otherwise), and `neurons` as a sorted list without repeats.
    One layer is named by `layer` (whether asked as `layer`, `layers: [n]` or `"all"` of a one-layer
    model); several by `layers`, a sorted list without repeats."""
    model: ModelSpec
    dataset: DatasetSpec
    llm_models: LLMModels | None = None
    """Model names of the request's endpoint when a backend is `openai`."""

    @property
    def neurons(self) -> list[int]:
        """The requested neurons of each layer, sorted without repeats."""
        return self.request.neuron_list()

    @property
    def layers(self) -> list[int]:
        """The requested layers, sorted without repeats."""
        return self.request.layer_list()

    def for_layer(self, layer: int, neurons: list[int]) -> ResolvedRequest:
        """The resolved one-layer request of ``layer`` and ``neurons``: what one explain job runs."""
        return ResolvedRequest(
            request=self.request.for_layer(layer, neurons),
            model=self.model,
            dataset=self.dataset,
            llm_models=self.llm_models,
        )

    @cached_property
    def variant(self) -> str:
        """The report variant (contract.report_variant) the request's reports are stored under, hashed
        once per request."""
        return report_variant(
            self.request, revision=self.model.key_revision, dataset=self.dataset, models=self.llm_models
        )


def _choices(items: list[str]) -> str:
    return ", ".join(items)


def _unknown_model(registry: Registry, model_id: str) -> str:
    return f"model '{model_id}' is not served: choose one of {_choices([m.id for m in registry.models])}"


def find_model(registry: Registry, model_id: str, field: str = "model") -> ModelSpec:
    try:
        return registry.model(model_id)
    except KeyError:
        raise InvalidInput.for_field(field, _unknown_model(registry, model_id)) from None


def check_loadable(model: ModelSpec, field: str = "model") -> None:
    """A registry model whose architecture no worker can load is refused here, not as a failed job."""
    if model.architecture not in SUPPORTED_ARCHITECTURES:
        supported = ", ".join(sorted(SUPPORTED_ARCHITECTURES))
        raise InvalidInput.for_field(
            field,
            f"model '{model.id}' has architecture '{model.architecture}', which no worker can load: "
            f"the workers load {supported}",
        )


def check_layer(model: ModelSpec, layer: int, field: str = "layer") -> None:
    if (error := model.layer_error(layer)) is not None:
        raise InvalidInput.for_field(field, error)


def check_neuron(model: ModelSpec, neuron: int, field: str) -> None:
    if (error := model.neuron_error(neuron)) is not None:
        raise InvalidInput.for_field(field, error)


def _check_layers(request: ExplanationRequest, model: ModelSpec) -> list[int]:
    """The requested layers, sorted without repeats (`layers: "all"`: every layer of the model)."""
    if request.layers == ALL:
        return model.layer_ids
    if request.layers is None:
        check_layer(model, request.only_layer())
        return [request.only_layer()]
    for position, layer in enumerate(request.layers):
        check_layer(model, layer, f"layers.{position}")
    return sorted(set(request.layers))


def resolve_hook(model: ModelSpec, hook: str | None, field: str = "hook") -> str:
    if hook is None:
        return model.default_hook
    offered = [point.id for point in model.hook_points]
    if hook not in offered:
        raise InvalidInput.for_field(
            field, f"hook '{hook}' is not offered by {model.id}: choose one of {_choices(offered)}"
        )
    width = model.hook(hook).width
    if model.units is None and width is not None and width != model.neurons_per_layer:
        raise InvalidInput.for_field(
            field,
            f"hook '{hook}' of {model.id} carries {width} values per token, not its "
            f"{model.neurons_per_layer} MLP neurons: it is read through a dictionary (`units`)",
        )
    return hook


def resolve_dataset(
    registry: Registry, model: ModelSpec, dataset: str | None, field: str = "dataset"
) -> DatasetSpec:
    allowed = [d for d in model.datasets if any(spec.id == d for spec in registry.datasets)]
    chosen = dataset if dataset is not None else (allowed[0] if allowed else model.datasets[0])
    if chosen not in allowed:
        raise InvalidInput.for_field(
            field, f"dataset '{chosen}' is not available for {model.id}: choose one of {_choices(allowed)}"
        )
    return registry.dataset(chosen)


def _check_neurons(request: ExplanationRequest, model: ModelSpec, max_neurons: int) -> list[int]:
    n_max = model.neurons_per_layer
    if isinstance(request.neurons, NeuronRange):
        if request.neurons.stop > n_max:
            raise InvalidInput.for_field(
                "neurons.stop",
                f"stop {request.neurons.stop} is out of range: {model.id} has neurons 0–{n_max - 1} "
                f"per layer, so stop may be at most {n_max}",
            )
        count = request.neurons.stop - request.neurons.start
    elif request.neurons == ALL:
        count = n_max
    else:
        for position, neuron in enumerate(request.neurons):
            check_neuron(model, neuron, f"neurons.{position}")
        count = len(set(request.neurons))
    if count > max_neurons:
        every = f" (every neuron of a {model.id} layer)" if request.neurons == ALL else ""
        raise InvalidInput.for_field(
            "neurons",
            f"{count} neurons per layer requested{every}: at most {max_neurons} per layer are allowed "
            "in one request",
        )
    return list(range(n_max)) if request.neurons == ALL else request.neuron_list()


def check_type_method(model: ModelSpec, type_method: str, field: str = "options.type_method") -> None:
    """The permutation test asks whether peaks fall on image rather than text tokens: on a text-only model
    there is nothing to test, so the request is refused instead of answered with a meaningless p-value."""
    if type_method == "permutation" and model.modality == "text":
        raise InvalidInput.for_field(
            field,
            f"type_method 'permutation' tests whether a neuron's peak falls on image rather than text tokens "
            f"within each sample; {model.id} is a text-only model, so the test cannot say anything: use "
            "type_method 'threshold'",
        )


def _check_endpoint_name(name: str, names: list[str]) -> None:
    if not names:
        raise InvalidInput.for_field(
            "endpoint", f"LLM endpoint '{name}' is not configured: this deployment has none; {LLM_SETUP_HINT}"
        )
    if name not in names:
        raise InvalidInput.for_field(
            "endpoint", f"LLM endpoint '{name}' is not configured: choose one of {_choices(sorted(names))}"
        )


def resolve_backends(
    request: ExplanationRequest, settings: Settings | None
) -> tuple[dict[str, object], LLMModels | None]:
    """The request's explainer, simulator, endpoint and candidates with defaults filled, and the endpoint's
    model names. `openai` is the default backend when ``settings`` configure an LLM endpoint (None: none)."""
    configs = llm_endpoint_configs(settings) if settings is not None else {}
    default = Backend.OPENAI if configs else Backend.BASELINE
    explainer, simulator = request.explainer or default, request.simulator or default
    if request.endpoint is not None:
        _check_endpoint_name(request.endpoint, list(configs))
    for field, backend in (("explainer", explainer), ("simulator", simulator)):
        if backend == "openai" and not configs and not request.dry_run:
            raise InvalidInput.for_field(
                field, f"the openai backend needs an LLM endpoint and none is configured: {LLM_SETUP_HINT}"
            )
    if explainer != "openai" and request.candidates is not None:
        raise InvalidInput.for_field(
            "candidates", "candidates apply to the openai explainer only: the baseline writes one explanation"
        )
    if settings is not None and not configs and "openai" in (explainer, simulator):
        # A dry run counts the calls without an endpoint; tokens and cost say why they are missing.
        candidates = (request.candidates or settings.llm_candidates) if explainer == "openai" else None
        return {
            "explainer": explainer,
            "simulator": simulator,
            "endpoint": None,
            "candidates": candidates,
        }, None
    if settings is None or "openai" not in (explainer, simulator):  # no settings: nothing configured
        if request.endpoint is not None:
            raise InvalidInput.for_field(
                "endpoint", "an endpoint applies to the openai backends only: this request uses the baseline"
            )
        return {"explainer": explainer, "simulator": simulator, "endpoint": None, "candidates": None}, None
    endpoint = request.endpoint or default_llm_endpoint(settings)
    config = configs[str(endpoint)]
    models = LLMModels(
        explainer=config.explainer_model, simulator=config.simulator_model or config.explainer_model
    )
    candidates = (request.candidates or settings.llm_candidates) if explainer == "openai" else None
    resolved: dict[str, object] = {
        "explainer": explainer,
        "simulator": simulator,
        "endpoint": endpoint,
        "candidates": candidates,
    }
    return resolved, models


def _check_budget(
    request: ExplanationRequest, backends: dict[str, object], settings: Settings | None
) -> None:
    """A budget limits LLM spending: it needs an `openai` backend, and a USD limit the endpoint's prices."""
    budget = request.budget
    if budget is None:
        return
    if "openai" not in (backends["explainer"], backends["simulator"]):
        raise InvalidInput.for_field(
            "budget",
            "a budget limits the openai backends' LLM calls: this request uses the baseline, "
            "which makes none (leave budget out)",
        )
    endpoint = str(backends["endpoint"])
    config = llm_endpoint_configs(settings).get(endpoint) if settings is not None else None
    if budget.max_cost_usd is not None and (config is None or not config.has_prices):
        raise InvalidInput.for_field(
            "budget.max_cost_usd",
            f"LLM endpoint '{endpoint}' has no prices configured, so its cost is unknown: set "
            "prompt_usd_per_mtok and completion_usd_per_mtok for it (NEURONLENS_LLM_PROMPT_USD_PER_MTOK and "
            "NEURONLENS_LLM_COMPLETION_USD_PER_MTOK for the default endpoint), or give max_llm_calls",
        )


def resolve_request(
    registry: Registry, request: ExplanationRequest, max_neurons: int, settings: Settings | None = None
) -> ResolvedRequest:
    """Fill the defaults of ``request`` and check every part of it; raise InvalidInput naming the field.

    ``settings`` decide the default backends and which LLM endpoints a request may name (None: no LLM
    endpoint, so the baseline). ``max_neurons`` caps the neurons of each layer (a request of L layers
    may name L × ``max_neurons`` neurons in all)."""
    model = find_model(registry, request.model)
    check_loadable(model)
    check_type_method(model, request.options.type_method)
    model = resolve_units(model, request.units, request.hook, request.shards)
    layers = _check_layers(request, model)
    check_dictionary_files(model, layers)
    hook = resolve_hook(model, request.hook)
    dataset = resolve_dataset(registry, model, request.dataset)
    neurons = _check_neurons(request, model, max_neurons)
    backends, llm_models = resolve_backends(request, settings)
    _check_budget(request, backends, settings)
    resolved = request.model_copy(
        update={
            # One layer reads as `layer` whichever way it was asked, so its job id is the same.
            "layer": layers[0] if len(layers) == 1 else None,
            "layers": None if len(layers) == 1 else layers,
            "hook": hook,
            "units": model.units.id if model.units is not None else None,
            "dataset": dataset.id,
            "neurons": neurons,
            **backends,
        }
    )
    return ResolvedRequest(request=resolved, model=model, dataset=dataset, llm_models=llm_models)


def resolve_neuron_path(
    registry: Registry, model_id: str, layer: int, neuron: int, units: str | None = None
) -> ModelSpec:
    """Check the path of `GET /v1/neurons/{model}/{layer}/{neuron}` (its neuron a latent of ``units`` when
    that names a dictionary): a name that does not exist is a 404. The model as ``units`` sees it."""
    try:
        model = registry.model(model_id)
    except KeyError:
        message = _unknown_model(registry, model_id)
        raise NotFound(message, [FieldProblem(field="model", message=message)]) from None
    model = resolve_units(model, units, None)
    for field, error in (("layer", model.layer_error(layer)), ("neuron", model.neuron_error(neuron))):
        if error is not None:
            raise NotFound(error, [FieldProblem(field=field, message=error)])
    return model
