"""HTTP conventions over real HTTP: ETag/304, Cache-Control, gzip, HEAD, X-Request-ID, Accept/406, CORS."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from service.contract import ExplanationRequest
from service.settings import Settings
from tests.service.helpers import PROBLEM_JSON, explain_parts, store_reports
from workers.process.report_writer import ReportObjects

REPORT = "/v1/neurons/minilm-l6/3/42"


def stored(redis_conn: redis.Redis, objects: ReportObjects, revision: str) -> None:
    store_reports(redis_conn, objects, ExplanationRequest(model="minilm-l6", layer=3, neurons=[42]), revision)


def test_a_stored_report_has_a_strong_etag_and_a_matching_if_none_match_is_304(
    http: httpx.Client, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    stored(redis_conn, report_objects, minilm_revision)
    first = http.get(REPORT)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert first.headers["cache-control"] == "public, no-cache"
    assert http.get(REPORT).headers["etag"] == etag
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        again = http.get(REPORT, headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == etag
    assert http.get(REPORT, headers={"If-None-Match": '"other"'}).status_code == 200


def test_large_answers_are_gzipped_when_the_client_accepts_it(http: httpx.Client) -> None:
    with httpx.Client(base_url=str(http.base_url), timeout=30) as raw:
        plain = raw.get("/v1/models", headers={"Accept-Encoding": "identity"})
        with raw.stream("GET", "/v1/models", headers={"Accept-Encoding": "gzip"}) as zipped:
            assert zipped.headers["content-encoding"] == "gzip"
            body = b"".join(zipped.iter_raw())
    assert "content-encoding" not in plain.headers
    assert len(body) < len(plain.content)
    assert gzip.decompress(body) == plain.content


def test_head_answers_every_get_route_with_its_headers_and_no_body(
    http: httpx.Client, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    stored(redis_conn, report_objects, minilm_revision)
    for path in (REPORT, "/v1/models", "/healthz"):
        get = http.get(path, headers={"Accept-Encoding": "identity"})
        head = http.head(path, headers={"Accept-Encoding": "identity"})
        assert head.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-length"] == str(len(get.content))
        assert head.headers["content-type"] == get.headers["content-type"]
    assert http.head(REPORT).headers["etag"] == http.get(REPORT).headers["etag"]
    assert http.head("/v1/neurons/minilm-l6/3/43").status_code == 404


def test_the_request_id_is_echoed_put_in_problems_and_in_job_meta(
    http: httpx.Client, redis_conn: redis.Redis
) -> None:
    generated = http.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert http.get("/healthz").headers["x-request-id"] != generated
    assert http.get("/healthz", headers={"X-Request-ID": "pipeline-7/run:42"}).headers["x-request-id"] == (
        "pipeline-7/run:42"
    )
    bad = http.get("/healthz", headers={"X-Request-ID": "has spaces"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", bad)

    missing = http.get("/v1/neurons/minilm-l6/3/43", headers={"X-Request-ID": "trace-404"})
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "trace-404"
    assert missing.json()["request_id"] == "trace-404"

    accepted = http.post(
        "/v1/explanations",
        json={"model": "minilm-l6", "layer": 3, "neurons": [1]},
        headers={"X-Request-ID": "trace-submit"},
    )
    assert accepted.status_code == 202
    (part_id,) = explain_parts(redis_conn, accepted.json()["job_id"])
    job = Job.fetch(part_id, connection=redis_conn, serializer=JSONSerializer)
    assert job.meta["request_id"] == "trace-submit"
    scan = Job.fetch(job.meta["scan_job_id"], connection=redis_conn, serializer=JSONSerializer)
    assert scan.meta["request_id"] == "trace-submit"


def test_accept_is_honoured_or_406(
    http: httpx.Client, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    stored(redis_conn, report_objects, minilm_revision)
    for accept in ("application/json", "*/*", "application/*", "text/csv, application/json;q=0.1"):
        assert http.get(REPORT, headers={"Accept": accept}).status_code == 200, accept
    refused = http.get(REPORT, headers={"Accept": "text/csv"})
    assert refused.status_code == 406
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert "application/json only" in refused.json()["detail"]
    assert http.get("/v1/models", headers={"Accept": "application/xml"}).status_code == 406
    assert http.get(REPORT + "/page", headers={"Accept": "application/json"}).status_code == 406


def test_cors_is_off_by_default_and_follows_the_configured_origins(
    http: httpx.Client, settings: Settings, start_api: Callable[[Settings], AbstractContextManager[str]]
) -> None:
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}
    assert (
        "access-control-allow-origin"
        not in http.get("/v1/models", headers={"Origin": "https://ui.example"}).headers
    )
    with start_api(settings.model_copy(update={"cors_origins": ["https://ui.example"]})) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            answer = client.options("/v1/explanations", headers=preflight)
            assert answer.status_code in (200, 204)
            assert answer.headers["access-control-allow-origin"] == "https://ui.example"
            simple = client.get("/v1/models", headers={"Origin": "https://ui.example"})
            assert simple.headers["access-control-allow-origin"] == "https://ui.example"
            assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
            other = client.get("/v1/models", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
