"""The one settings object of NeuronLens, read from ``NEURONLENS_*`` environment variables.

Pure pydantic-settings: no Litestar, no torch. The API and the workers both read it (workers import
``service.settings`` and ``service.schemas`` only), so one variable means the same thing everywhere.
Nothing is read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_artifact_url() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(cache) / "neuronlens" / "artifacts")


class Settings(BaseSettings):
    """Service and worker configuration. Every field maps to ``NEURONLENS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="NEURONLENS_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        description="Redis URL (redis://host:port/db). Unset: `neuronlens up` starts a private server.",
    )
    artifact_url: str = Field(
        default_factory=_default_artifact_url,
        description="Artifact store root: a local folder or an fsspec URL (s3://bucket/prefix).",
    )
    registry_path: Path | None = Field(
        default=None, description="Model/dataset registry JSON; unset uses the bundled service/registry.json."
    )
    max_neurons_per_request: int = Field(
        default=4096, ge=1, description="Largest neuron list or range one request may name."
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
    queue_prefix: str = Field(
        default="", description="Prefix for queue names (lets deployments share Redis)."
    )


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with keyword overrides on top (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
