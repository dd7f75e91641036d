"""OpenTelemetry spans of the worker: one per job, a child of the request that enqueued it.

The API stores the W3C `traceparent` of its span of a request in the meta of each job it enqueues for it
(`JobMeta.traceparent`: the scan, the explain parts). :func:`job_span` runs a task body in a CONSUMER span
named after the task's queue (`neuronlens.scan`, `neuronlens.explain` …) whose parent is that context, so
the worker's part of a request shows in the request's trace; a job without one starts a trace of its own.
A failing task's exception is recorded on its span (status ERROR).

Spans are made only when a tracer provider is installed: :func:`configure_tracing`, from
`NEURONLENS_OTEL_EXPORTER` (workers/process/worker.py; off by default), or the embedding process's own.
The worker keeps this module apart from the API's (service/http/tracing.py): workers import only the
service's contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from rq.job import Job

from service.contract import JobMeta

_PROPAGATOR = TraceContextTextMapPropagator()


@contextmanager
def job_span(job: Job, queue: str) -> Iterator[None]:
    """Run the block in the span of ``job`` on ``queue``, a child of the job's `JobMeta.traceparent`."""
    meta = JobMeta.from_meta(job.meta)
    parent = _PROPAGATOR.extract({"traceparent": meta.traceparent}) if meta.traceparent else None
    attributes = {
        "messaging.system": "rq",
        "messaging.destination.name": queue,
        "messaging.message.id": job.id,
    }
    if meta.group is not None:
        attributes["neuronlens.job_id"] = meta.group
    if meta.request_id is not None:
        attributes["neuronlens.request_id"] = meta.request_id
    tracer = trace.get_tracer("neuronlens.worker")
    with tracer.start_as_current_span(
        f"neuronlens.{queue}", context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ):
        yield


def configure_tracing(exporter: str, service_name: str = "neuronlens-worker") -> None:
    """Install the process's tracer provider for ``exporter`` (`console`, `otlp`: the
    `OTEL_EXPORTER_OTLP_*` variables, with the `otlp` extra installed); `off` installs none."""
    if exporter == "off":
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    span_exporter: SpanExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    else:
        span_exporter = ConsoleSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
