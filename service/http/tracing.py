"""W3C trace context and OpenTelemetry spans of the API.

`POST /v1/explanations` reads the caller's `traceparent` header (W3C Trace Context, version 00; a malformed
one is ignored, as the spec says). With OpenTelemetry on (`NEURONLENS_OTEL_EXPORTER`, or a tracer provider
the embedding process installed) the API makes a server span, a child of that context, and the jobs it
enqueues carry the span's own context (`JobMeta.traceparent`, and the job record): each worker span of
them is a child, in the same trace (workers/process/tracing.py). With it off no span is made and the
caller's `traceparent` is passed on as it came.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
"""A valid version-00 `traceparent`: trace id and parent id, neither all zeros, and the flags."""

_PROPAGATOR = TraceContextTextMapPropagator()


def valid_traceparent(value: str | None) -> str | None:
    """``value`` when it is a valid `traceparent` (lower-cased, trimmed), else None."""
    if value is None:
        return None
    value = value.strip().lower()
    return value if TRACEPARENT.match(value) else None


@contextmanager
def api_span(name: str, traceparent: str | None) -> Iterator[str | None]:
    """Run the block in the API span ``name``, a child of ``traceparent``; yields the `traceparent` the
    jobs the block enqueues carry (the span's own; the caller's when no span is recorded)."""
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent is not None else None
    tracer = trace.get_tracer("neuronlens.api")
    with tracer.start_as_current_span(name, context=parent, kind=trace.SpanKind.SERVER):
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        yield carrier.get("traceparent", traceparent)


def configure_tracing(exporter: str, service_name: str) -> None:
    """Install the process's tracer provider for ``exporter`` (`console`, `otlp`); `off` installs none
    (spans are not made, unless the embedding process installed a provider of its own)."""
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
