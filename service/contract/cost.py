"""What LLM work costs, agreed between the API and the workers.

- Prompt profiles: scan workers write, per scanned layer, the prompt sizes of its neurons' actual records
  (:class:`PromptProfile`, at :func:`prompt_profile_key`) and, per (model, probe set), the probe set's
  average record sizes (:class:`ProbeProfile`, at :func:`probe_profile_key`). The API reads them from the
  artifact store to answer a dry run (:class:`CostEstimate`) without importing worker code.
- Request budgets: the Redis counters every explain job of one request reserves calls on and adds cost
  to (``RedisKeys.budget_calls``, ``RedisKeys.budget_cost``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import Field

from service.contract.artifact_keys import canonical_json, dataset_identity
from service.contract.base import ContractModel
from service.contract.registry import DatasetSpec

PROFILE_ROOT = "profiles"
"""Artifact-store folder of prompt profiles (written by scan and explain workers, read by the API)."""

PROMPT_PROFILE_VERSION = 1
"""Layout of :class:`PromptProfile` and :class:`ProbeProfile`; part of their keys."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _digest(payload: object) -> str:
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def prompt_profile_key(
    model: str, revision: str, hook: str, layer: int, dataset: DatasetSpec, n_top: int, seed: int
) -> str:
    """Artifact-store key of the prompt profile of one scanned layer (what its scan artifact depends on)."""
    digest = _digest(
        {
            "model": model,
            "revision": revision,
            "hook": hook,
            "layer": layer,
            "dataset": dataset_identity(dataset),
            "n_top": n_top,
            "seed": seed,
            "version": PROMPT_PROFILE_VERSION,
        }
    )
    return f"{PROFILE_ROOT}/{_UNSAFE.sub('_', model)}/L{layer}-{digest}.json"


def probe_profile_key(model: str, revision: str, dataset: DatasetSpec) -> str:
    """Artifact-store key of the probe-set profile of (model, probe set): its tokenisation's sizes."""
    digest = _digest(
        {
            "model": model,
            "revision": revision,
            "dataset": dataset_identity(dataset),
            "version": PROMPT_PROFILE_VERSION,
        }
    )
    return f"{PROFILE_ROOT}/{_UNSAFE.sub('_', model)}/probe-{digest}.json"


class PromptTemplates(ContractModel):
    """Characters of the prompt text that do not depend on the records (system messages, few-shot turns,
    instructions), for the prompt versions the profile was measured with."""

    explainer_text_chars: int = Field(
        ge=0, description="Text explainer prompt (Bills et al.) without records: system, few-shot, trailer."
    )
    simulator_text_chars: int = Field(
        ge=0, description="Text simulator prompt with an empty explanation and a record of no tokens."
    )
    explainer_prompt_version: str = Field(description="Text explainer prompt version measured.")
    simulator_prompt_version: str = Field(description="Text simulator prompt version measured.")


class PromptProfile(ContractModel):
    """Prompt sizes of one scanned layer's neurons for one selection of records (n_explain, n_holdout):
    what the `openai` explainer and simulator will send for them, in characters of text."""

    version: int = Field(default=PROMPT_PROFILE_VERSION, description="Layout version.")
    model: str = Field(description="Model id.")
    layer: int = Field(ge=0, description="Layer index.")
    n_top: int = Field(ge=1, description="Top records per neuron in the scan.")
    n_explain: int = Field(ge=1, description="Explainer records of the selection measured.")
    n_holdout: int = Field(ge=1, description="Held-out top records asked for in the selection measured.")
    templates: PromptTemplates
    explainer_chars: list[int] = Field(
        description="Per neuron (index = neuron): characters of its text explainer prompt, records included."
    )
    holdout_chars: list[list[int]] = Field(
        description="Per neuron: per held-out record (top, then random), the characters of its text "
        "simulator prompt with an empty explanation."
    )
    holdout_tokens: list[list[int]] = Field(
        description="Per neuron: per held-out record, its content tokens (one predicted value each)."
    )


class ProbeProfile(ContractModel):
    """Average record sizes of a probe set as a model tokenises it: the fallback of a dry run for a layer
    whose scan (and so whose records) does not exist yet."""

    version: int = Field(default=PROMPT_PROFILE_VERSION, description="Layout version.")
    n_samples: int = Field(ge=0, description="Samples of the probe set.")
    n_tokens: int = Field(ge=0, description="Content tokens of the probe set (what a scan pass reads).")
    mean_record_tokens: float = Field(ge=0, description="Content tokens per sample, mean.")
    mean_explainer_record_chars: float = Field(
        ge=0, description="Characters one sample adds to the text explainer prompt, mean."
    )
    mean_simulator_record_chars: float = Field(
        ge=0, description="Characters one sample adds to the text simulator prompt, mean."
    )
    templates: PromptTemplates


TokenBasis = Literal["records", "probe-set", "none"]
"""Where the token figures of an estimate come from: the layer's actual records (its prompt profile), the
probe set's average record (no scan of the layer yet), or nowhere (tokens null)."""


class ScanEstimate(ContractModel):
    """The scan a request needs before it can explain."""

    layers_to_scan: list[int] = Field(description="Requested layers whose scan is not stored yet.")
    passes: int = Field(ge=0, description="Forward passes over the probe set (0 when every scan is stored).")
    passes_basis: str = Field(description="How `passes` was planned.")
    samples: int = Field(ge=0, description="Samples the passes read (samples × passes).")
    tokens: int | None = Field(
        default=None,
        ge=0,
        description="Content tokens the passes read; null when the probe set was never "
        "tokenised for this model.",
    )


class LLMEstimate(ContractModel):
    """Estimated LLM requests and tokens of a request, and their price."""

    calls: int = Field(ge=0, description="LLM requests, retries left out (0 for the baseline backends).")
    prompt_tokens: int | None = Field(
        default=None, ge=0, description="Prompt tokens; null when no prompt profile exists (see `basis`)."
    )
    completion_tokens: int | None = Field(default=None, ge=0, description="Completion tokens; null as above.")
    cost_usd: float | None = Field(
        default=None, ge=0, description="USD at the endpoint's prices; null without prices or tokens."
    )
    missing: str | None = Field(
        default=None,
        description="Why `prompt_tokens`, `completion_tokens` or `cost_usd` are null, in words (no prompt "
        "profile yet, no LLM endpoint configured, an endpoint without prices); null when all are known.",
    )


class CostEstimate(ContractModel):
    """`POST /v1/explanations` with `dry_run: true`: what the request would cost; nothing is enqueued."""

    model: str = Field(description="Model id.")
    layers: list[int] = Field(description="Layers the request names.")
    neurons: int = Field(ge=0, description="Neurons the request names (over all its layers).")
    reports_stored: int = Field(
        ge=0, description="Of those, neurons whose report is already stored: reused, not counted below."
    )
    neurons_to_explain: int = Field(ge=0, description="Neurons the request would explain.")
    scan: ScanEstimate
    llm: LLMEstimate = Field(description="Estimated LLM calls, tokens and USD.")
    token_basis: TokenBasis = Field(description="Where the token figures come from.")
    basis: str = Field(description="How the figures were estimated, in words (and what they leave out).")
    endpoint: str | None = Field(default=None, description="LLM endpoint the request would use.")


CALIBRATION_STRIDE = 4
"""With k > 1 candidates every 4th explainer record (ranks 3, 7, …) is kept from the explanation prompt and
scores the candidates (workers/explain/openai_explainer.py); the estimates count those calibration
simulations from the same value."""


class CallEstimate(ContractModel):
    """The estimated cost of one explanation request, before retries."""

    neurons: int = Field(description="Neurons the request names.")
    llm_calls_per_neuron: int = Field(
        description="LLM requests per neuron: 1 explanation request (k candidates drawn in one), plus "
        "k × ⌊n_explain / 4⌋ calibration simulations when k > 1, plus 2 × n_holdout held-out simulations "
        "(top and random records) when the simulator is `openai` (⌈2 × n_holdout / batch_records⌉ with "
        "`simulation-batched`), that simulation again for each of the k null explanations "
        "(`chance_explanations`); 0 for the offline baselines."
    )
    donor_explanation_calls: int = Field(
        default=0,
        ge=0,
        description="Explanations of the chance null's donors (at most k + 1 per explain job) that are not "
        "among the job's own neurons, times the LLM requests of one explanation.",
    )
    llm_calls: int = Field(
        description="neurons × llm_calls_per_neuron + donor_explanation_calls; retries left out."
    )
    scan_passes: int = Field(
        description="Layer scans the request may start (1: its layer; none runs when the scan is stored)."
    )
