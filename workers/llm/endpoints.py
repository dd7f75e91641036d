"""Resolve an LLM endpoint by name from settings: the only place a base URL ever comes from."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.settings import DEFAULT_LLM_ENDPOINT, Settings, default_llm_endpoint, llm_endpoint_configs
from workers.llm.errors import UnknownLLMEndpoint

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

    def describe(self) -> str:
        """`'name'`: how errors name the endpoint (they reach API clients, so never its URL)."""
        return f"'{self.name}'"


def endpoint_names(settings: Settings) -> list[str]:
    """Names a request may pick, in settings order (`default` first when configured)."""
    return list(llm_endpoint_configs(settings))


def resolve_endpoint(settings: Settings, name: str | None = None) -> LLMEndpoint:
    """The endpoint called `name` (None: `default`, else the first configured one)."""
    configs = llm_endpoint_configs(settings)
    if not configs:
        raise UnknownLLMEndpoint(
            "no LLM endpoint is configured: set NEURONLENS_LLM_BASE_URL (or OPENAI_BASE_URL) and "
            "NEURONLENS_EXPLAINER_MODEL, or NEURONLENS_LLM_ENDPOINTS"
        )
    if name is None:
        name = default_llm_endpoint(settings) or DEFAULT_LLM_ENDPOINT
    if name not in configs:
        raise UnknownLLMEndpoint(
            f"LLM endpoint '{name}' is not configured: choose one of {', '.join(sorted(configs))}"
        )
    config = configs[name]
    return LLMEndpoint(
        name=name,
        base_url=(config.base_url or OPENAI_BASE_URL).rstrip("/"),
        api_key=(config.api_key.get_secret_value() if config.api_key else "") or NO_KEY,
        explainer_model=config.explainer_model,
        simulator_model=config.simulator_model or config.explainer_model,
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        backoff_s=settings.llm_backoff_s,
        retry_after_max_s=settings.llm_retry_after_max_s,
        concurrency=config.concurrency or settings.llm_concurrency,
    )
