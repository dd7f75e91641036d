"""What a job submission will cost, estimated from the request alone (before anything is enqueued).

Quotas (service/access/ratelimit.py) refuse a submission up front when the call estimate does not fit. A dry
run (`"dry_run": true`) answers with :func:`estimate_cost`: calls, tokens and USD from the prompt profiles the
workers write when they scan a layer (service/contract/cost.py); it is the one place the cost model lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from service.contract import (
    CALIBRATION_STRIDE,
    CostEstimate,
    ExplanationRequest,
    LLMEstimate,
    PipelineOptions,
    ProbeProfile,
    PromptProfile,
    ScanEstimate,
    TokenBasis,
    probe_profile_key,
    prompt_profile_key,
    scan_id,
    scan_manifest_key,
)
from service.contract.objects import ObjectStore
from service.estimates.calls import (
    estimate_calls,
    explanation_calls,
    extra_donors,
    null_k,
    parts,
    simulation_calls,
)
from service.estimates.missing import missing_figures
from service.settings import Settings, llm_endpoint_configs

if TYPE_CHECKING:
    from service.estimates.validate import ResolvedRequest

_Profile = TypeVar("_Profile", PromptProfile, ProbeProfile)


# --------------------------------------------------------------------------- dry run (tokens and USD)

CHARS_PER_TOKEN = 4
"""Prompt characters per token: OpenAI's rule of thumb for English text (the loopback LLM peer bills the
same way). Real tokenizers differ by model; the estimate says so in its basis."""

EXPLANATION_CHARS = 48
"""Assumed length of one explanation in characters (one sentence): it is the explainer's answer and part
of every simulator prompt, and is not known before the explainer writes it."""

IMAGE_TOKENS = 85
"""Prompt tokens per image at low detail (OpenAI's figure); vision-language prompts are not profiled yet."""

SIMULATOR_ANSWER_CHARS = (17, 3)
"""A simulator answer `{"activations": [0, 0, …]}`: 17 characters plus about 3 per predicted token."""


@dataclass
class _Tokens:
    prompt: int = 0
    completion: int = 0


def _tokens_of(chars: float) -> int:
    return int(chars) // CHARS_PER_TOKEN


def _answer_tokens(chars: float) -> int:
    return max(1, _tokens_of(chars))


def _simulator_answer(tokens: float) -> int:
    fixed, per_token = SIMULATOR_ANSWER_CHARS
    return _answer_tokens(fixed + per_token * tokens)


def _explainer_tokens(request: ExplanationRequest, explainer_chars: float, fixed_chars: int) -> _Tokens:
    """One explainer request (k choices); with k > 1 a quarter of the shown records become calibration."""
    options = request.options
    candidates = request.candidates or 1
    records_chars = explainer_chars - fixed_chars
    if candidates > 1:
        records_chars *= (options.n_explain - options.n_explain // CALIBRATION_STRIDE) / options.n_explain
    answer = candidates * _answer_tokens(EXPLANATION_CHARS + 1)
    return _Tokens(_tokens_of(fixed_chars + records_chars), answer)


def _simulator_tokens(records: list[tuple[float, float]], template_chars: int) -> _Tokens:
    """Simulator requests, one per (record chars in the prompt beyond the template, record tokens)."""
    total = _Tokens()
    for chars, tokens in records:
        total.prompt += _tokens_of(template_chars + chars + EXPLANATION_CHARS)
        total.completion += _simulator_answer(tokens)
    return total


def _holdout_count(options: PipelineOptions, n_top: int) -> int:
    """Held-out records of a neuron as the split takes them: top ones, and as many random ones."""
    return 2 * min(options.n_holdout, n_top // 2)


def _add(total: _Tokens, spent: _Tokens, times: int = 1) -> None:
    total.prompt += times * spent.prompt
    total.completion += times * spent.completion


def _profile_records(
    request: ExplanationRequest, profile: PromptProfile, neuron: int
) -> list[tuple[float, float]]:
    """A neuron's held-out records as (prompt chars beyond the template, tokens), from its layer's profile."""
    options = request.options
    template = profile.templates.simulator_text_chars
    held = list(zip(profile.holdout_chars[neuron], profile.holdout_tokens[neuron], strict=True))
    records = [(float(chars - template), float(count)) for chars, count in held]
    if options.n_holdout != profile.n_holdout and records:  # another selection: the mean record, n times
        mean = (sum(r[0] for r in records) / len(records), sum(r[1] for r in records) / len(records))
        records = [mean] * _holdout_count(options, profile.n_top)
    return records


def _profile_explanation(
    request: ExplanationRequest, profile: PromptProfile, neuron: int
) -> tuple[int, _Tokens]:
    """(LLM calls, tokens) of explaining one neuron from its layer's prompt profile (its actual records):
    the draw and, with k > 1 candidates, their calibration simulations."""
    options = request.options
    shapes = profile.templates
    calls, tokens = 0, _Tokens()
    if request.explainer != "openai":
        return calls, tokens
    chars = float(profile.explainer_chars[neuron])
    if options.n_explain != profile.n_explain:  # another selection: scale the records' part
        fixed = shapes.explainer_text_chars
        chars = fixed + (chars - fixed) * options.n_explain / profile.n_explain
    _add(tokens, _explainer_tokens(request, chars, shapes.explainer_text_chars))
    calls += 1
    records = _profile_records(request, profile, neuron)
    candidates = request.candidates or 1
    if candidates > 1 and records:
        mean = (sum(r[0] for r in records) / len(records), sum(r[1] for r in records) / len(records))
        calibration = [mean] * (candidates * (options.n_explain // CALIBRATION_STRIDE))
        calls += len(calibration)
        _add(tokens, _simulator_tokens(calibration, shapes.simulator_text_chars))
    return calls, tokens


def _profile_neuron(
    request: ExplanationRequest, profile: PromptProfile, neuron: int, k: int
) -> tuple[int, _Tokens]:
    """(LLM calls, tokens) of one neuron from its layer's prompt profile (its actual records): its
    explanation, its simulation and the k simulations of its chance null."""
    calls, tokens = _profile_explanation(request, profile, neuron)
    if request.simulator == "openai":
        records = _profile_records(request, profile, neuron)
        calls += (1 + k) * simulation_calls(request.options, len(records))
        _add(tokens, _simulator_tokens(records, profile.templates.simulator_text_chars), 1 + k)
    return calls, tokens


def _probe_explanation(request: ExplanationRequest, probe: ProbeProfile) -> tuple[int, _Tokens]:
    """(LLM calls, tokens) of explaining one neuron from the probe set's mean record."""
    options = request.options
    shapes = probe.templates
    calls, tokens = 0, _Tokens()
    if request.explainer != "openai":
        return calls, tokens
    chars = shapes.explainer_text_chars + options.n_explain * probe.mean_explainer_record_chars
    _add(tokens, _explainer_tokens(request, chars, shapes.explainer_text_chars))
    calls += 1
    candidates = request.candidates or 1
    if candidates > 1:
        mean = (probe.mean_simulator_record_chars, probe.mean_record_tokens)
        calibration = [mean] * (candidates * (options.n_explain // CALIBRATION_STRIDE))
        calls += len(calibration)
        _add(tokens, _simulator_tokens(calibration, shapes.simulator_text_chars))
    return calls, tokens


def _probe_neuron(request: ExplanationRequest, probe: ProbeProfile, k: int) -> tuple[int, _Tokens]:
    """(LLM calls, tokens) of one neuron from the probe set's mean record (its records are not known):
    its explanation, its simulation and the k simulations of its chance null."""
    options = request.options
    calls, tokens = _probe_explanation(request, probe)
    if request.simulator == "openai":
        records = [(probe.mean_simulator_record_chars, probe.mean_record_tokens)] * _holdout_count(
            options, options.n_top
        )
        calls += (1 + k) * simulation_calls(options, len(records))
        _add(tokens, _simulator_tokens(records, probe.templates.simulator_text_chars), 1 + k)
    return calls, tokens


def _read_model(store: ObjectStore, key: str, model: type[_Profile]) -> _Profile | None:
    raw = store.read(key)
    if raw is None:
        return None
    try:
        return model.model_validate_json(raw)
    except ValueError:
        return None  # an older layout or a torn write: estimate as if it were absent


_BASIS = {
    "records": "LLM calls and tokens from the prompt sizes of this layer's actual records (its prompt "
    "profile, written when the layer was scanned): prompt characters ÷ {cpt} per request, an explanation "
    "assumed {expl} characters long, a simulator answer of 17 + 3 characters per predicted token",
    "probe-set": "this layer is not scanned yet: tokens from the probe set's mean record (its profile, "
    "written when another layer was scanned), prompt characters ÷ {cpt}, an explanation assumed {expl} "
    "characters long; scan first for figures from the actual records",
    "none": "no prompt profile of this model and probe set exists yet (nothing scanned, or a "
    "vision-language probe set, which is not profiled): LLM calls from the request's options only, tokens "
    "and cost null; run any request (e.g. the baseline) to scan first",
}


@dataclass
class _Tally:
    """What the dry run adds up over the requested layers."""

    calls: int = 0
    tokens: _Tokens = field(default_factory=_Tokens)
    bases: set[str] = field(default_factory=set)
    to_scan: list[int] = field(default_factory=list)
    neurons: int = 0
    stored: int = 0
    chunk_neurons: int | None = None
    """Neurons per explain job (the deployment's `explain_chunk_neurons`)."""


def estimate_cost(resolved: ResolvedRequest, store: ObjectStore, settings: Settings) -> CostEstimate:
    """The dry-run answer: scan passes, neurons, LLM calls, tokens and USD of a resolved request, from the
    prompt profiles in the artifact store. Reads the store only: nothing is enqueued or written."""
    request, model, dataset = resolved.request, resolved.model, resolved.dataset
    layers = request.layer_list()
    uses_llm = "openai" in (request.explainer, request.simulator)
    probe = _read_model(store, probe_profile_key(model.id, model.revision, dataset), ProbeProfile)
    tally = _Tally(chunk_neurons=settings.explain_chunk_neurons)
    for layer in layers:
        _tally_layer(tally, resolved, store, probe, layer)
    bases = tally.bases
    basis: TokenBasis = "none" if "none" in bases else ("probe-set" if "probe-set" in bases else "records")
    if not uses_llm:
        basis = "records"
    known = basis != "none"
    prompt = tally.tokens.prompt if known else None
    completion = tally.tokens.completion if known else None
    passes = 1 if tally.to_scan else 0
    return CostEstimate(
        model=model.id,
        layers=layers,
        neurons=tally.neurons,
        reports_stored=tally.stored,
        neurons_to_explain=tally.neurons - tally.stored,
        scan=ScanEstimate(
            layers_to_scan=tally.to_scan,
            passes=passes,
            passes_basis="one forward pass records every requested layer (a scan memory budget "
            "NEURONLENS_SCAN_MEMORY_BYTES too small for them may split it further); a layer counts as "
            "scanned when its scan artifact (for these hook, probe set, n_top and seed) is stored",
            samples=dataset.n_samples * passes,
            tokens=probe.n_tokens * passes if probe is not None else None,
        ),
        llm=LLMEstimate(
            calls=tally.calls,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=(cost := _cost_usd(request, settings, prompt, completion)),
            missing=missing_figures(request, settings, basis, cost),
        ),
        token_basis=basis,
        basis=_basis_words(request, basis),
        endpoint=request.endpoint,
    )


def _tally_layer(
    tally: _Tally, resolved: ResolvedRequest, store: ObjectStore, probe: ProbeProfile | None, layer: int
) -> None:
    """Add one requested layer: its neurons, those stored, whether it needs a scan, and (with an LLM
    backend) the calls and tokens of its neurons still to explain."""
    request, model, dataset = resolved.request, resolved.model, resolved.dataset
    options = request.options
    neurons = resolved.neurons
    # An openai request with no endpoint configured (a dry run) has no variant: nothing of it is stored.
    no_variant = resolved.llm_models is None and "openai" in (request.explainer, request.simulator)
    stored = set() if no_variant else store.stored_neurons(model.id, layer, resolved.variant) & set(neurons)
    todo = [n for n in neurons if n not in stored]
    tally.neurons += len(neurons)
    tally.stored += len(stored)
    key = prompt_profile_key(
        model.id, model.key_revision, str(request.hook), layer, dataset, options.n_top, options.seed
    )
    profile = _read_model(store, key, PromptProfile) if todo else None
    scan = scan_id(model, dataset, str(request.hook), layer, options.n_top, options.seed)
    if todo and not store.exists(scan_manifest_key(scan)):
        tally.to_scan.append(layer)
    if not todo or "openai" not in (request.explainer, request.simulator):
        return
    k = null_k(resolved)
    for neuron in todo:
        if profile is not None and neuron < len(profile.explainer_chars):
            tally.bases.add("records")
        else:
            tally.bases.add("none" if probe is None else "probe-set")
        spent = _neuron_spend(resolved, profile, probe, neuron, k)
        tally.calls += spent[0]
        _add(tally.tokens, spent[1])
    todo_set = set(todo)
    for part in parts(neurons, tally.chunk_neurons):
        running = [n for n in part if n in todo_set]
        if not running:
            continue  # every report of this explain job is stored: it does not run
        for donor in extra_donors(resolved, layer, running):
            spent = _donor_spend(resolved, profile, probe, donor)
            tally.calls += spent[0]
            _add(tally.tokens, spent[1])


def _neuron_spend(
    resolved: ResolvedRequest, profile: PromptProfile | None, probe: ProbeProfile | None, neuron: int, k: int
) -> tuple[int, _Tokens]:
    """One neuron's calls and tokens from the best profile there is (its basis is added by the caller)."""
    if profile is not None and neuron < len(profile.explainer_chars):
        return _profile_neuron(resolved.request, profile, neuron, k)
    if probe is not None:
        return _probe_neuron(resolved.request, probe, k)
    return estimate_calls(resolved).llm_calls_per_neuron, _Tokens()


def _donor_spend(
    resolved: ResolvedRequest, profile: PromptProfile | None, probe: ProbeProfile | None, donor: int
) -> tuple[int, _Tokens]:
    """One donor's explanation: calls and tokens."""
    if profile is not None and donor < len(profile.explainer_chars):
        return _profile_explanation(resolved.request, profile, donor)
    if probe is not None:
        return _probe_explanation(resolved.request, probe)
    return explanation_calls(resolved.request), _Tokens()


def _cost_usd(
    request: ExplanationRequest, settings: Settings, prompt: int | None, completion: int | None
) -> float | None:
    """USD at the endpoint's configured prices; 0 without an LLM backend, None when unpriced or unknown."""
    if "openai" not in (request.explainer, request.simulator):
        return 0.0
    configs = llm_endpoint_configs(settings)
    config = configs.get(str(request.endpoint)) if request.endpoint is not None else None
    if config is None or not config.has_prices or prompt is None or completion is None:
        return None
    return round(
        (prompt * (config.prompt_usd_per_mtok or 0) + completion * (config.completion_usd_per_mtok or 0))
        / 1e6,
        6,
    )


def _basis_words(request: ExplanationRequest, basis: TokenBasis) -> str:
    """The estimate's `basis`: how its figures were made, in words."""
    if "openai" not in (request.explainer, request.simulator):
        return "baseline backends: no LLM calls"
    words = _BASIS[basis].format(cpt=CHARS_PER_TOKEN, expl=EXPLANATION_CHARS)
    if "simulation-batched" in request.options.scorers:
        words += "; simulation-batched requests counted as batched, their tokens as one prompt per record"
    if {"detection", "fuzzing"} & set(request.options.scorers):
        words += "; detection and fuzzing requests are not modelled"
    return words
