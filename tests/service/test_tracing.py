"""W3C trace context across the API and the workers: with OpenTelemetry on (the SDK's in-memory exporter
here), a post with a `traceparent` makes an API span in the caller's trace, and the worker's spans of the
request's scan and explain jobs (run by the project's worker in this process) are in the same trace, the
explain span a child of the API span through the job's meta."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rq.job import Job
from rq.serializers import JSONSerializer

from service.contract import JobMeta
from service.settings import Settings
from tests.service.helpers import explain_parts, run_workers

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture()
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span this process ends while the test runs (the global provider is installed once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()  # later spans are dropped, not kept


def test_api_and_worker_spans_join_the_callers_trace(
    spans: InMemorySpanExporter, http: httpx.Client, redis_conn: redis.Redis, settings: Settings
) -> None:
    request = {"model": "tiny-llama", "layer": 0, "neurons": [1]}
    posted = http.post("/v1/explanations", json=request, headers={"traceparent": TRACEPARENT})
    assert posted.status_code == 202, posted.text
    (part_id,) = explain_parts(redis_conn, posted.json()["job_id"])
    run_workers(redis_conn, settings)
    assert http.get(f"/v1/jobs/{posted.json()['job_id']}").json()["status"] == "finished"

    ended = {span.name: span for span in spans.get_finished_spans()}
    api, scan, explain = (
        ended[n] for n in ("POST /v1/explanations", "neuronlens.scan", "neuronlens.explain")
    )
    for span in (api, scan, explain):
        assert span.context is not None
        assert format(span.context.trace_id, "032x") == TRACE_ID
    assert api.parent is not None and format(api.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert api.context is not None and explain.parent is not None
    assert explain.parent.span_id == api.context.span_id
    assert explain.kind == trace.SpanKind.CONSUMER
    assert explain.attributes is not None and explain.attributes["messaging.message.id"] == part_id
    stored = JobMeta.from_meta(Job.fetch(part_id, connection=redis_conn, serializer=JSONSerializer).meta)
    assert stored.traceparent == f"00-{TRACE_ID}-{api.context.span_id:016x}-01"
