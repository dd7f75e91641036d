"""Every Redis key of one deployment, named in one place: :class:`RedisKeys`, built from the deployment's
prefix (``NEURONLENS_REDIS_PREFIX``).

Deployments that share one Redis database are kept apart by their prefixes alone, so nothing the API or
a worker writes may bypass this: job records, report indexes, request budgets, the worker metrics hash,
enqueue locks, weights checks, API keys, rate limits and the RQ queue names all come from here. RQ's own
job hashes (``rq:job:<id>``) are not ours to name, so the job ids themselves differ between deployments:
:meth:`RedisKeys.job_id` puts the prefix into the hash. The empty default prefix keeps the keys and ids
of a deployment that never set one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from service.contract.artifact_keys import canonical_json
from service.contract.versions import JOB_FORMAT_VERSION

JOB_ID_DIGITS = 24
"""Hex digits of the hash part of a job id."""


@dataclass(frozen=True)
class RedisKeys:
    """The Redis key names of the deployment whose prefix is ``prefix`` (the API builds one from its
    settings, a worker gets one in its WorkerConfig)."""

    prefix: str = ""

    def queue(self, name: str) -> str:
        """Name of the RQ queue ``name`` (RQ keeps it under ``rq:queue:<this>``)."""
        return self.prefix + name

    def job_id(self, kind: str, payload: object) -> str:
        """A deterministic job id: ``kind`` (`scan-`, `exp-`, `part-`) then a hash of ``payload``, the job
        format (``JOB_FORMAT_VERSION``) and the prefix, so equal requests to two deployments never share an
        RQ job, nor jobs of two job formats."""
        hashed = {"format": JOB_FORMAT_VERSION, "prefix": self.prefix, "job": payload}
        return kind + hashlib.sha256(canonical_json(hashed).encode()).hexdigest()[:JOB_ID_DIGITS]

    def job_record(self, job_id: str) -> str:
        """A request's job record (JSON listing its scan job and explain parts)."""
        return f"{self.prefix}nl:job:{job_id}"

    def job_record_state(self, job_id: str) -> str:
        """The state of a request last written to its durable record in the artifact store."""
        return f"{self.prefix}nl:jobstate:{job_id}"

    def job_cancel(self, group: str) -> str:
        """Set when the request ``group`` is cancelled: its running explain jobs stop after their current
        neuron."""
        return f"{self.prefix}nl:cancel:{group}"

    def lock(self, job_id: str) -> str:
        """The lock held while the API checks and enqueues the job ``job_id``."""
        return f"{self.prefix}nl:lock:{job_id}"

    def report_index(self, model: str, layer: int, variant: str) -> str:
        """The set of neuron ids of one layer and variant whose report object is stored."""
        return f"{self.prefix}nl:reports:{model}:{layer}:{variant}"

    def budget_calls(self, group: str) -> str:
        """Counter of the LLM calls reserved by every explain job of the request ``group``."""
        return f"{self.prefix}nl:budget:{group}:calls"

    def budget_cost(self, group: str) -> str:
        """Counter (a float) of the USD spent by every explain job of the request ``group``."""
        return f"{self.prefix}nl:budget:{group}:cost_usd"

    @property
    def metrics(self) -> str:
        """Hash of worker-side counters and duration sums (written by workers, read by the API)."""
        return f"{self.prefix}nl:metrics"

    def weights(self, model: str) -> str:
        """Hash of ``model``'s weights checks (field: worker host, value: WeightsCheck JSON)."""
        return f"{self.prefix}nl:weights:{model}"

    def api_key(self, digest: str) -> str:
        """Hash of the API key whose SHA-256 hex digest is ``digest``."""
        return f"{self.prefix}nl:apikey:{digest}"

    @property
    def api_key_index(self) -> str:
        """Set of the digests of every API key made (revoked ones too), for listing."""
        return f"{self.prefix}nl:apikeys"

    @property
    def rate_limits(self) -> str:
        """Prefix of the rate limiter's and the daily quotas' keys."""
        return f"{self.prefix}nl:limits"
