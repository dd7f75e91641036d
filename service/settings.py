"""The one settings object of NeuronLens, read from ``NEURONLENS_*`` environment variables.

Pure pydantic-settings: no Litestar, no torch. The API and the workers both read it (workers import
``service.settings`` and ``service.contract`` only), so one variable means the same thing everywhere.
Nothing is read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.contract.redis_keys import RedisKeys

DEFAULT_LLM_ENDPOINT = "default"
"""Name of the endpoint built from the flat ``NEURONLENS_LLM_*`` variables."""


class LLMEndpointConfig(BaseModel):
    """One OpenAI-compatible endpoint (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp's server)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        default=None,
        description="API root including `/v1`, e.g. `http://localhost:11434/v1`; unset means OpenAI's own.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="Bearer key; local servers usually accept any value or none."
    )
    explainer_model: str = Field(description="Model that writes explanations (vision-capable for images).")
    simulator_model: str | None = Field(
        default=None, description="Model that simulates activations; unset uses `explainer_model`."
    )
    concurrency: int | None = Field(
        default=None, ge=1, description="In-flight requests to this endpoint; unset uses `llm_concurrency`."
    )
    prompt_usd_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million prompt tokens; unset: the endpoint has no prices."
    )
    completion_usd_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million completion tokens; set with `prompt_usd_per_mtok`."
    )

    @model_validator(mode="after")
    def _both_prices(self) -> LLMEndpointConfig:
        if (self.prompt_usd_per_mtok is None) != (self.completion_usd_per_mtok is None):
            raise ValueError(
                "an LLM endpoint's prices are set together: prompt_usd_per_mtok and completion_usd_per_mtok"
            )
        return self

    @property
    def has_prices(self) -> bool:
        """True when USD costs can be computed for this endpoint (both prices set)."""
        return self.prompt_usd_per_mtok is not None and self.completion_usd_per_mtok is not None


def default_data_dir(env: Mapping[str, str]) -> Path:
    """NeuronLens's own folder on this machine: ``$XDG_DATA_HOME/neuronlens``, else
    ``~/.local/share/neuronlens``. `neuronlens up` keeps its Redis data there, and the default artifact
    store is in it."""
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    base = env.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return Path(base) / "neuronlens"


def default_artifact_dir(env: Mapping[str, str]) -> Path:
    """The one default artifact store (scans, reports, images): ``<default data dir>/artifacts``. `neuronlens
    demo`, `neuronlens up` without --data-dir and a bare API or worker all use it, so a scan made by one
    is reused by the others."""
    return default_data_dir(env) / "artifacts"


def _default_artifact_url() -> str:
    return str(default_artifact_dir(os.environ))


class Settings(BaseSettings):
    """Service and worker configuration. Every field maps to ``NEURONLENS_<FIELD>``."""

    # validate_by_name: fields with env aliases (the LLM ones) still accept their field name as a keyword.
    model_config = SettingsConfigDict(env_prefix="NEURONLENS_", extra="ignore", validate_by_name=True)

    redis_url: str | None = Field(
        default=None,
        description="Redis URL (redis://host:port/db). Unset: `neuronlens up` starts a private server.",
    )
    artifact_url: str = Field(
        default_factory=_default_artifact_url,
        description="Artifact store root: a local folder or an fsspec URL (s3://bucket/prefix).",
    )
    registry_path: Path | None = Field(
        default=None,
        description="Model/dataset registry JSON; unset uses the bundled service/contract/registry.json.",
    )
    max_neurons_per_request: int = Field(
        default=4096,
        ge=1,
        description="Most neurons one request may name per layer (a list, a range or `all`); a request "
        "of several layers may name this many in each.",
    )
    scan_shards: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Shards each scan's probe set is split into (one scan job each, merged exactly) unless "
        "a request names `shards`.",
    )
    explain_chunk_neurons: int = Field(
        default=256,
        ge=1,
        le=65536,
        description="Neurons per explain job: a request's work is split into jobs per (layer, chunk) so "
        "explain workers share it.",
    )
    scan_timeout_s: int = Field(default=3600, ge=1, description="RQ timeout of one scan job, seconds.")
    explain_timeout_s: int = Field(default=3600, ge=1, description="RQ timeout of one explain job, seconds.")
    job_retries: int = Field(
        default=2, ge=0, description="Times a job is re-run after its worker died or it raised."
    )
    result_ttl_s: int = Field(
        default=7 * 24 * 3600, ge=1, description="How long finished job records are kept in Redis, seconds."
    )
    failure_ttl_s: int = Field(
        default=7 * 24 * 3600, ge=1, description="How long failed job records are kept in Redis, seconds."
    )
    worker_heartbeat_s: int = Field(
        default=10,
        ge=1,
        description="Seconds between a worker's heartbeats; a dead worker's job is "
        "declared abandoned (and retried) after about three missed beats.",
    )
    device: str | None = Field(
        default=None,
        description="Torch device for scan workers (cpu, cuda, cuda:1); unset picks cuda if any.",
    )
    scan_batch_size: int = Field(default=64, ge=1, description="Samples per forward pass during a scan.")
    progress_interval_s: float = Field(
        default=0.25,
        ge=0,
        description="Least seconds between two progress writes of a running job (scan samples, neurons); "
        "0 writes after every batch.",
    )
    scan_memory_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Bytes of recorder state one scan pass may hold on its device; layers that do not fit "
        "run in further passes. Unset derives it from the device: half the free CUDA memory, or half the "
        "available RAM on a CPU.",
    )
    redis_prefix: str = Field(
        default="",
        validation_alias=AliasChoices("NEURONLENS_REDIS_PREFIX", "NEURONLENS_QUEUE_PREFIX"),
        description="Prefix of every Redis key and queue name of this deployment, so deployments can share "
        "one Redis (the deprecated NEURONLENS_QUEUE_PREFIX is read when this is unset).",
    )

    llm_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("NEURONLENS_LLM_BASE_URL", "OPENAI_BASE_URL"),
        description="Base URL of the default OpenAI-compatible endpoint (falls back to OPENAI_BASE_URL).",
    )
    llm_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("NEURONLENS_LLM_API_KEY", "OPENAI_API_KEY"),
        description="API key of the default endpoint (falls back to OPENAI_API_KEY).",
    )
    explainer_model: str | None = Field(
        default=None,
        description="Explainer model of the default endpoint; the endpoint counts as configured only "
        "when this is set, so a stray OPENAI_API_KEY never starts paid calls by itself.",
    )
    simulator_model: str | None = Field(
        default=None, description="Simulator model of the default endpoint; unset uses `explainer_model`."
    )
    llm_prompt_usd_per_mtok: float | None = Field(
        default=None,
        ge=0,
        description="USD per million prompt tokens of the default endpoint (set with the completion price); "
        "unset: no prices, so costs are null and a `max_cost_usd` budget is refused.",
    )
    llm_completion_usd_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million completion tokens of the default endpoint."
    )
    llm_endpoints: dict[str, LLMEndpointConfig] = Field(
        default_factory=dict,
        description="Named endpoints a request may pick by name, as JSON: "
        '`{"name": {"base_url": …, "api_key": …, "explainer_model": …, "simulator_model": …}}`.',
    )
    llm_timeout_s: float = Field(default=120.0, gt=0, description="Timeout of one LLM request, seconds.")
    llm_max_retries: int = Field(
        default=4, ge=0, description="Retries after a 429, 5xx, timeout or connection error."
    )
    llm_backoff_s: float = Field(
        default=1.0, gt=0, description="First retry delay, seconds; doubles per retry, with jitter."
    )
    llm_retry_after_max_s: float = Field(
        default=60.0, gt=0, description="Longest wait honoured from a Retry-After header, seconds."
    )
    llm_concurrency: int = Field(default=8, ge=1, description="In-flight requests per endpoint per process.")
    llm_candidates: int = Field(
        default=1, ge=1, le=10, description="Candidate explanations per neuron; the best on calibration wins."
    )

    auth: Literal["off", "keys"] = Field(
        default="off",
        description="`keys`: every /v1 route needs an API key (`neuronlens keys create`); `off`: open.",
    )
    key_rate_per_minute: int = Field(
        default=600, ge=1, description="Requests per minute of a key created without `--rate-per-minute`."
    )
    key_llm_calls_per_day: int | None = Field(
        default=None, ge=0, description="Estimated LLM calls per day of a key without its own; unset: no cap."
    )
    key_scan_passes_per_day: int | None = Field(
        default=None, ge=0, description="Scan passes per day of a key without its own; unset: no cap."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed by CORS, comma-separated (`*` for any); empty: no CORS headers.",
    )
    request_body_timeout_s: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a request body may take to arrive once its headers have (a slow or stalled "
        "partial body gets a 408 and its connection closed); 0: no limit.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="API log lines (access log included): one JSON object each, or text."
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @property
    def redis_keys(self) -> RedisKeys:
        """Every Redis key of this deployment (``redis_prefix`` applied)."""
        return RedisKeys(self.redis_prefix)


def llm_endpoint_configs(settings: Settings) -> dict[str, LLMEndpointConfig]:
    """Every endpoint a request may name: the flat ``NEURONLENS_LLM_*`` one as `default`, plus the named ones.

    URLs only ever come from here (settings), never from a request.
    """
    endpoints: dict[str, LLMEndpointConfig] = {}
    if settings.explainer_model and (settings.llm_base_url or settings.llm_api_key):
        endpoints[DEFAULT_LLM_ENDPOINT] = LLMEndpointConfig(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            explainer_model=settings.explainer_model,
            simulator_model=settings.simulator_model,
            prompt_usd_per_mtok=settings.llm_prompt_usd_per_mtok,
            completion_usd_per_mtok=settings.llm_completion_usd_per_mtok,
        )
    endpoints.update(settings.llm_endpoints)
    return endpoints


def default_llm_endpoint(settings: Settings) -> str | None:
    """The endpoint a request that names none uses: `default` when configured, else the first named one."""
    configs = llm_endpoint_configs(settings)
    if DEFAULT_LLM_ENDPOINT in configs:
        return DEFAULT_LLM_ENDPOINT
    return next(iter(configs), None)


def llm_configured(settings: Settings) -> bool:
    """True when at least one LLM endpoint is configured: then `openai` is the default backend."""
    return bool(llm_endpoint_configs(settings))


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with keyword overrides on top (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
