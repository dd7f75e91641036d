"""Prometheus metrics of the API: request latency (measured here); jobs and queues (read from Redis).

Every app gets its own CollectorRegistry (tests build many apps in one process). Workers cannot reach the
API's registry, so they count into the Redis hash ``RedisKeys.metrics``, one field per series named
like ``jobs_total{outcome=finished,queue=explain}`` (service/contract/metrics.py); :class:`RedisJobCollector`
turns that hash and the queue lengths into metric families at every scrape.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Histogram, Info, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from rq.job import Job
from rq.registry import DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.utils import utcparse
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from service.contract import RedisKeys, parse_series
from service.jobs.queues import JobQueues

log = logging.getLogger("neuronlens.api")

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram buckets of the HTTP request latency, seconds."""

# worker hash series → (exported family name, help text); counters get `_total` from prometheus_client.
_COUNTERS = {
    "jobs_total": ("neuronlens_jobs", "Jobs run by workers, by queue and outcome (finished or failed)."),
    "neurons_explained_total": ("neuronlens_neurons_explained", "Neuron reports written by explain workers."),
    "scans_total": ("neuronlens_scans", "Scan jobs run, by whether an existing artifact was reused."),
    "llm_tokens_total": (
        "neuronlens_llm_tokens",
        "LLM tokens billed to explainers and simulators, by endpoint and kind (prompt, completion).",
    ),
    "llm_calls_total": (
        "neuronlens_llm_calls",
        "LLM requests behind stored reports, retries included, by endpoint and role (explainer, simulator).",
    ),
    "llm_parse_failures_total": (
        "neuronlens_llm_parse_failures",
        "LLM simulator replies left unparsed after their retry (not JSON or wrong length), by endpoint.",
    ),
    "llm_endpoint_errors_total": (
        "neuronlens_llm_endpoint_errors",
        "Explain jobs failed by an LLM endpoint that kept failing after every retry, by endpoint.",
    ),
}
_HISTOGRAMS = {
    "job_seconds": ("neuronlens_job_duration_seconds", "Wall time of worker jobs, by queue, seconds."),
    "stage_seconds": (
        "neuronlens_stage_duration_seconds",
        "Time spent per pipeline stage (scan per layer; explain, simulate … per neuron), seconds.",
    ),
}


class RedisJobCollector(Collector):
    """Worker counters from the deployment's metrics hash (``RedisKeys.metrics``) and queue depths per
    state, read from Redis at every scrape."""

    def __init__(self, connect: Callable[[], tuple[redis.Redis, JobQueues] | None], keys: RedisKeys) -> None:
        self._connect = connect
        self._keys = keys

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("neuronlens_redis_up", "1 when the API reached Redis during this scrape.")
        connected = self._connect()
        if connected is None:
            up.add_metric([], 0)
            return [up]
        connection, queues = connected
        try:
            fields = connection.hgetall(self._keys.metrics)
            depth = self._queue_depths(connection, queues)
        except redis.RedisError as exc:
            log.warning("metrics scrape could not read Redis: %s", exc)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        series: list[tuple[str, dict[str, str], float]] = []
        for raw_field, raw_value in fields.items():
            parsed = parse_series(raw_field.decode() if isinstance(raw_field, bytes) else str(raw_field))
            if parsed is not None:
                series.append((parsed[0], parsed[1], float(raw_value)))
        return [up, *depth, *self._counters(series), *self._histograms(series)]

    @staticmethod
    def _queue_depths(connection: redis.Redis, queues: JobQueues) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "neuronlens_queue_jobs",
            "Jobs per queue and state (queued, started, deferred, finished, failed), at scrape time.",
            labels=["queue", "state"],
        )
        workers = GaugeMetricFamily(
            "neuronlens_workers", "Workers registered as listening on each queue.", labels=["queue"]
        )
        # Raw lengths: the RQ registries' `count` would run their cleanup, and a scrape must not change state.
        states = ("queued", "started", "deferred", "finished", "failed")
        with connection.pipeline(transaction=False) as pipe:
            for queue in queues.all():
                pipe.llen(queue.key)
                for registry_class in (StartedJobRegistry, DeferredJobRegistry, FinishedJobRegistry):
                    pipe.zcard(registry_class(queue.name, connection=connection).key)
                pipe.zcard(FailedJobRegistry(queue.name, connection=connection).key)
                pipe.scard(WORKERS_BY_QUEUE_KEY % queue.name)
                pipe.lindex(queue.key, 0)  # RQ pushes to the tail and pops the head: the oldest job
            replies = pipe.execute()
        stride = len(states) + 2
        oldest_ids: list[bytes | None] = []
        for index, queue in enumerate(queues.all()):
            row = replies[index * stride : (index + 1) * stride]
            for offset, state in enumerate(states):
                family.add_metric([queue.name, state], row[offset])
            workers.add_metric([queue.name], row[len(states)])
            oldest_ids.append(row[len(states) + 1])
        return [family, workers, RedisJobCollector._oldest_ages(connection, queues, oldest_ids)]

    @staticmethod
    def _oldest_ages(
        connection: redis.Redis, queues: JobQueues, oldest_ids: list[bytes | None]
    ) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "neuronlens_queue_oldest_job_age_seconds",
            "Seconds the oldest queued job of each queue has waited (0 when the queue is empty).",
            labels=["queue"],
        )
        with connection.pipeline(transaction=False) as pipe:
            for job_id in oldest_ids:
                pipe.hget(Job.key_for(job_id.decode()) if job_id else "nl:none", "enqueued_at")
            stamps = pipe.execute()
        now = time.time()
        for queue, stamp in zip(queues.all(), stamps, strict=True):
            age = 0.0
            if stamp:
                age = max(0.0, now - utcparse(stamp.decode()).replace(tzinfo=UTC).timestamp())
            family.add_metric([queue.name], age)
        return family

    @staticmethod
    def _counters(series: list[tuple[str, dict[str, str], float]]) -> Iterator[Metric]:
        for source, (name, help_text) in _COUNTERS.items():
            rows = [(labels, value) for s, labels, value in series if s == source]
            label_names = sorted(rows[0][0]) if rows else []
            family = CounterMetricFamily(name, help_text, labels=label_names)
            for labels, value in rows:
                if sorted(labels) == label_names:
                    family.add_metric([labels[k] for k in label_names], value)
            yield family

    @staticmethod
    def _histograms(series: list[tuple[str, dict[str, str], float]]) -> Iterator[Metric]:
        """Worker histograms: ``<name>_bucket{…,le=…}`` cumulative counts, ``_sum`` and ``_count``."""
        for source, (name, help_text) in _HISTOGRAMS.items():
            sums = {tuple(sorted(lab.items())): v for s, lab, v in series if s == source + "_sum"}
            counts = {tuple(sorted(lab.items())): v for s, lab, v in series if s == source + "_count"}
            buckets: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
            for s, labels, value in series:
                if s == source + "_bucket" and "le" in labels:
                    rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                    buckets.setdefault(rest, {})[labels["le"]] = value
            keys = sorted(set(sums) & set(counts))
            label_names = [k for k, _ in keys[0]] if keys else []
            family = HistogramMetricFamily(name, help_text, labels=label_names)
            for key in keys:
                if [k for k, _ in key] != label_names:
                    continue
                # Series recorded before buckets existed have only their count, as the +Inf bucket.
                bounds = {**buckets.get(key, {}), "+Inf": counts[key]}
                ordered = sorted(bounds.items(), key=lambda item: float(item[0]))
                family.add_metric([v for _, v in key], buckets=ordered, sum_value=sums[key])
            yield family


class ApiMetrics:
    """The per-app registry: the request latency histogram and the Redis-backed job collector."""

    def __init__(
        self,
        connect: Callable[[], tuple[redis.Redis, JobQueues] | None],
        keys: RedisKeys,
        version: str = "unknown",
    ) -> None:
        self.registry = CollectorRegistry()
        Info("neuronlens_build", "Version of the API and of its Python.", registry=self.registry).info(
            {"version": version, "python": platform.python_version()}
        )
        self.request_seconds = Histogram(
            "neuronlens_http_request_duration_seconds",
            "HTTP request latency by method, route template and status code, seconds.",
            labelnames=["method", "route", "status"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(RedisJobCollector(connect, keys))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """ASGI wrapper around the whole app (not a route middleware), so 404s and 405s are measured too."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_observe(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_observe)
        finally:
            route = scope.get("path_template") or "unmatched"
            self.metrics.request_seconds.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - started
            )
