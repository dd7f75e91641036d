"""LLM endpoints as plain config: one resolved endpoint (URL, key, models, reliability policy), and the
named set a worker may call. Built from the settings at the edge; a request only ever picks one by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from workers.llm.errors import UnknownLLMEndpoint

DEFAULT_LLM_ENDPOINT = "default"
"""Name of the endpoint a request gets when it names none and no other default is set."""

OPENAI_BASE_URL = "https://api.openai.com/v1"
"""Where an endpoint without a base URL goes (OpenAI's own API)."""

NO_KEY = "no-key"
"""Sent as the bearer key when none is configured: local servers (vLLM, Ollama) accept any value."""


@dataclass(frozen=True)
class LLMEndpoint:
    """One resolved endpoint with the reliability policy that applies to it."""

    name: str
    """Name a request picks it by (`default` for the flat NEURONLENS_LLM_* variables)."""
    base_url: str
    """API root including `/v1`."""
    api_key: str = field(repr=False)
    """Bearer key; never printed or put in an error message."""
    explainer_model: str
    """Model that writes explanations."""
    simulator_model: str
    """Model that predicts activations from an explanation."""
    timeout_s: float = 120.0
    """Timeout of one request, seconds."""
    max_retries: int = 4
    """Retries after 429, 5xx, timeouts and connection errors."""
    backoff_s: float = 1.0
    """First retry delay, seconds; doubles per retry, with jitter."""
    retry_after_max_s: float = 60.0
    """Longest Retry-After wait honoured, seconds."""
    concurrency: int = 8
    """Requests in flight to this endpoint at once, per process."""
    prompt_usd_per_mtok: float | None = None
    """USD per million prompt tokens; None: the endpoint has no prices (costs are unknown)."""
    completion_usd_per_mtok: float | None = None
    """USD per million completion tokens; None as above."""

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """What these tokens cost at the endpoint's prices; None when it has none."""
        if self.prompt_usd_per_mtok is None or self.completion_usd_per_mtok is None:
            return None
        prompt_usd = prompt_tokens * self.prompt_usd_per_mtok
        return (prompt_usd + completion_tokens * self.completion_usd_per_mtok) / 1e6

    def describe(self) -> str:
        """`'name'`: how errors name the endpoint (they reach API clients, so never its URL)."""
        return f"'{self.name}'"


@dataclass(frozen=True)
class LLMEndpoints:
    """The endpoints a worker may call, by name, built from the deployment's settings at the edge
    (workers/process/worker.py); the only place a base URL ever comes from."""

    endpoints: Mapping[str, LLMEndpoint] = field(default_factory=dict)
    """Every configured endpoint by name (`default` first when the flat variables configure one)."""
    default: str | None = None
    """The endpoint a request that names none uses."""
    candidates: int = 1
    """Candidate explanations an `openai` explainer draws when the request does not say."""

    def names(self) -> list[str]:
        """Names a request may pick, in settings order."""
        return list(self.endpoints)

    def resolve(self, name: str | None = None) -> LLMEndpoint:
        """The endpoint called `name` (None: the default one)."""
        if not self.endpoints:
            raise UnknownLLMEndpoint(
                "no LLM endpoint is configured: set NEURONLENS_LLM_BASE_URL (or OPENAI_BASE_URL) and "
                "NEURONLENS_EXPLAINER_MODEL, or NEURONLENS_LLM_ENDPOINTS"
            )
        chosen = name if name is not None else (self.default or DEFAULT_LLM_ENDPOINT)
        if chosen not in self.endpoints:
            choices = ", ".join(sorted(self.endpoints))
            raise UnknownLLMEndpoint(f"LLM endpoint '{chosen}' is not configured: choose one of {choices}")
        return self.endpoints[chosen]
