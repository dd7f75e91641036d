"""The NeuronLens worker process: ``python -m workers.process.worker --queues scan,explain [--burst]``.

The edge of the worker side: the only place that reads the settings (service/settings.py). It builds the
process's WorkerRuntime and a NeuronLensWorker (workers/process/rq_worker.py: heartbeats, abandoned jobs,
Redis outages ridden out) on the deployment's queues and runs it; ``--check`` is the liveness probe
(workers/process/liveness.py).

SIGTERM / SIGINT request a warm shutdown (finish the running job, then exit); a second one is a cold
shutdown (RQ's own handling).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from service.contract import QUEUE_NAMES, load_registry
from service.settings import Settings, default_llm_endpoint, llm_endpoint_configs, load_settings
from workers.llm.endpoints import NO_KEY, OPENAI_BASE_URL, LLMEndpoint, LLMEndpoints
from workers.process.liveness import ABANDON_AFTER_BEATS, check_liveness
from workers.process.rq_worker import NeuronLensWorker
from workers.process.runtime import WorkerConfig, WorkerRuntime
from workers.process.tracing import configure_tracing

log = logging.getLogger("neuronlens.worker")


def llm_endpoints(settings: Settings) -> LLMEndpoints:
    """The LLM endpoints the settings configure, as the plain config the worker domain takes."""
    endpoints = {
        name: LLMEndpoint(
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
            prompt_usd_per_mtok=config.prompt_usd_per_mtok,
            completion_usd_per_mtok=config.completion_usd_per_mtok,
        )
        for name, config in llm_endpoint_configs(settings).items()
    }
    return LLMEndpoints(endpoints, default_llm_endpoint(settings), settings.llm_candidates)


def build_runtime(settings: Settings) -> WorkerRuntime:
    """The WorkerRuntime of a worker process configured by ``settings`` (the registry read once here)."""
    config = WorkerConfig(
        registry=load_registry(settings.registry_path),
        artifact_url=settings.artifact_url,
        device=settings.device,
        scan_batch_size=settings.scan_batch_size,
        progress_interval_s=settings.progress_interval_s,
        scan_memory_bytes=settings.scan_memory_bytes,
        scan_checkpoint_s=settings.scan_checkpoint_s,
        llm=llm_endpoints(settings),
        redis_keys=settings.redis_keys,
    )
    return WorkerRuntime(config)


def resolve_redis_url(settings: Settings) -> str:
    """``NEURONLENS_REDIS_URL``, else ``REDIS_URL``; a clear error when neither is set."""
    url = settings.redis_url or os.environ.get("REDIS_URL")
    if not url:
        raise SystemExit(
            "no Redis to work for: set NEURONLENS_REDIS_URL (or REDIS_URL) to redis://host:port/db, "
            "or run `neuronlens up`, which starts Redis, the API and workers together"
        )
    return url


def parse_queue_names(text: str) -> list[str]:
    """``"scan,explain"`` → ``["scan", "explain"]``; unknown names are an error naming the allowed ones."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUEUE_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown queue {', '.join(map(repr, unknown)) or '(none given)'}: "
            f"choose from {', '.join(QUEUE_NAMES)} (comma-separated)"
        )
    return names


def build_worker(
    settings: Settings,
    queue_names: Sequence[str],
    name: str | None = None,
    connection: redis.Redis | None = None,
    runtime: WorkerRuntime | None = None,
) -> NeuronLensWorker:
    """A worker on the deployment's queue of each queue name, connected to the settings' Redis,
    running its jobs with ``runtime`` (default: built from ``settings``), which must name the same Redis
    keys: a worker taking one deployment's jobs must count and index into that deployment's keys."""
    runtime = runtime or build_runtime(settings)
    if runtime.config.redis_keys != settings.redis_keys:
        raise ValueError(
            f"the worker's runtime uses Redis prefix {runtime.config.redis_keys.prefix!r} but its queues "
            f"{settings.redis_prefix!r}: build both from the same settings"
        )
    connection = connection or redis.Redis.from_url(resolve_redis_url(settings))
    queues = [
        Queue(settings.redis_keys.queue(queue_name), connection=connection, serializer=JSONSerializer)
        for queue_name in queue_names
    ]
    return NeuronLensWorker(
        queues,
        connection=connection,
        heartbeat_s=settings.worker_heartbeat_s,
        runtime=runtime,
        name=name,
        default_result_ttl=settings.result_ttl_s,
    )


def run_check(settings: Settings, name: str | None) -> int:
    """``--check``: 0 when the worker's heartbeat is fresh, 1 when it is stale or missing.

    An unreachable Redis exits 0: a Redis outage is not this worker's fault, and restarting every worker
    for it would only add a restart storm to the outage (the work loop itself exits on a lost Redis).
    """
    url = resolve_redis_url(settings)
    connection = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        queues = [settings.redis_keys.queue(queue) for queue in QUEUE_NAMES]
        alive, reason = check_liveness(connection, settings.worker_heartbeat_s, name=name, queues=queues)
    except redis.RedisError as exc:
        print(
            f"neuronlens-worker --check: cannot reach Redis ({exc}); not judging this worker", file=sys.stderr
        )
        return 0
    finally:
        connection.close()
    print(f"neuronlens-worker --check: {reason}", file=sys.stdout if alive else sys.stderr)
    return 0 if alive else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuronlens-worker",
        description="Run a NeuronLens worker: takes scan and/or explain jobs from Redis until stopped.",
    )
    parser.add_argument(
        "--queues",
        type=parse_queue_names,
        default=list(QUEUE_NAMES),
        help="comma-separated queues to take jobs from, in priority order (default: "
        + ",".join(QUEUE_NAMES)
        + ")",
    )
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--name", default=None, help="worker name (default: a random id)")
    parser.add_argument("--max-jobs", type=int, default=None, help="exit after this many jobs")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="liveness probe: exit 0 when the worker --name (default: the newest on this host) beat within "
        f"{ABANDON_AFTER_BEATS} heartbeats, 1 when not; 0 when Redis is unreachable",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Model loaders must never reach a hub from a worker: weights come from the registry
    # (docs/models.md#weights-and-your-own-probe-sets).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings()
    if args.check:
        return run_check(settings, args.name)
    url = resolve_redis_url(settings)
    connection = redis.Redis.from_url(url)
    try:
        connection.ping()
    except redis.RedisError as exc:
        shown = url.replace(f":{password}@", ":***@") if (password := urlsplit(url).password) else url
        print(f"neuronlens-worker: cannot reach Redis at {shown}: {exc}", file=sys.stderr)
        return 1
    configure_tracing(settings.otel_exporter)  # off by default (workers/process/tracing.py)
    worker = build_worker(settings, args.queues, name=args.name, connection=connection)
    log.info(
        "worker %s (pid %d) on queues %s; heartbeat every %ds, jobs abandoned after %ds without one",
        worker.name,
        os.getpid(),
        ", ".join(queue.name for queue in worker.queues),
        worker.heartbeat_s,
        worker.abandon_after_s,
    )
    worker.work(burst=args.burst, max_jobs=args.max_jobs, logging_level=args.log_level.upper())
    return 0


if __name__ == "__main__":
    sys.exit(main())
