"""Worker-side metrics: counters and duration sums in the deployment's Redis hash (``RedisKeys.metrics``),
one field per series named by ``contract.series_name``; the API exports them at /metrics
(service/http/prometheus.py).

Metric writes never hide a job's own outcome: a Redis error here is logged, not raised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import redis

from service.contract import DURATION_BUCKETS_S, NeuronReport, RedisKeys, series_name

if TYPE_CHECKING:  # the scan stack (torch) is imported by the scan job itself, not by every task module
    from workers.scan.run import ScanInfo

log = logging.getLogger("neuronlens.metrics")


def observe(
    pipe: redis.client.Pipeline, hash_key: str, name: str, labels: Mapping[str, str], seconds: float
) -> None:
    """Count one duration into the histogram ``name`` of the hash ``hash_key``: its sum, count and
    cumulative buckets (the API exports the `le` bounds it finds, contract.DURATION_BUCKETS_S)."""
    pipe.hincrbyfloat(hash_key, series_name(name + "_sum", labels), seconds)
    pipe.hincrby(hash_key, series_name(name + "_count", labels), 1)
    for bound in DURATION_BUCKETS_S:
        if seconds <= bound:
            pipe.hincrby(hash_key, series_name(name + "_bucket", {**labels, "le": repr(bound)}), 1)
    pipe.hincrby(hash_key, series_name(name + "_bucket", {**labels, "le": "+Inf"}), 1)


def record_job(connection: redis.Redis, keys: RedisKeys, queue: str, outcome: str, seconds: float) -> None:
    """One job of ``queue`` ended with ``outcome`` (finished or failed) after ``seconds``."""
    labels = {"queue": queue}
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hincrby(keys.metrics, series_name("jobs_total", {**labels, "outcome": outcome}), 1)
            observe(pipe, keys.metrics, "job_seconds", labels, seconds)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not record job metrics: %s", exc)


def record_scan(connection: redis.Redis, keys: RedisKeys, info: ScanInfo) -> None:
    """One layer scanned (its pass time counted) or reused."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.hincrby(
            keys.metrics, series_name("scans_total", {"reused": "true" if info.reused else "false"}), 1
        )
        if not info.reused:
            observe(pipe, keys.metrics, "stage_seconds", {"stage": "scan"}, info.seconds)
        pipe.execute()


def record_report(
    pipe: redis.client.Pipeline, keys: RedisKeys, report: NeuronReport, endpoint: str | None
) -> None:
    """Queue the counters of one stored report on ``pipe``: its stage times and, for an LLM ``endpoint``,
    tokens, calls and unparsed simulator replies."""
    pipe.hincrby(keys.metrics, "neurons_explained_total", 1)
    for stage, seconds in report.provenance.timings_s.items():
        observe(pipe, keys.metrics, "stage_seconds", {"stage": stage}, seconds)
    if endpoint is None:
        return
    for kind, tokens in report.provenance.llm_tokens.items():
        if tokens:
            series = series_name("llm_tokens_total", {"endpoint": endpoint, "kind": kind})
            pipe.hincrby(keys.metrics, series, tokens)
    for role, calls in (report.provenance.llm_calls or {}).items():
        if calls:
            pipe.hincrby(
                keys.metrics, series_name("llm_calls_total", {"endpoint": endpoint, "role": role}), calls
            )
    failures = llm_parse_failures(report)
    if failures:
        pipe.hincrby(keys.metrics, series_name("llm_parse_failures_total", {"endpoint": endpoint}), failures)


def llm_parse_failures(report: NeuronReport) -> int:
    """Unparseable LLM simulator replies behind a report: its simulation's and its candidates' scoring."""
    failures = report.simulation.parse_failures if report.simulation.backend == "openai" else 0
    return failures + sum(candidate.parse_failures for candidate in report.explanation.candidates or [])


def record_llm_error(connection: redis.Redis, keys: RedisKeys, endpoint: str) -> None:
    """An explain job failed because ``endpoint`` kept failing after every retry."""
    try:
        connection.hincrby(keys.metrics, series_name("llm_endpoint_errors_total", {"endpoint": endpoint}), 1)
    except redis.RedisError as exc:
        log.warning("could not record LLM error metrics: %s", exc)
