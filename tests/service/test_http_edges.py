"""HTTP edges over real HTTP: `Accept` (with q values) chooses an export's format or answers 406, repeated
query parameters and repeated JSON members are 422, a partial body times out (408, connection closed), the
declared defaults of the layer listing are accepted when a client sends them."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from urllib.parse import urlsplit

import httpx
import pyarrow.parquet as pq
import pytest
import redis

from service.contract import ExplanationRequest
from service.settings import Settings
from tests.service.helpers import PROBLEM_JSON, store_reports
from workers.process.report_writer import ReportObjects

LAYER = "/v1/neurons/minilm-l6/3"
PARQUET = "application/vnd.apache.parquet"


@pytest.fixture()
def layer_stored(redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str) -> None:
    request = ExplanationRequest(model="minilm-l6", layer=3, neurons=[5, 42])
    store_reports(redis_conn, report_objects, request, minilm_revision)


def _media(answer: httpx.Response) -> str:
    return answer.headers["content-type"].split(";")[0]


@pytest.mark.usefixtures("layer_stored")
def test_accept_chooses_the_export_format_and_q_0_excludes_a_type(http: httpx.Client) -> None:
    assert _media(http.get(LAYER)) == "application/json"  # no preference: the default
    assert _media(http.get(LAYER, headers={"Accept": "*/*"})) == "application/json"
    csv = http.get(LAYER, headers={"Accept": "text/csv"})
    assert csv.status_code == 200 and _media(csv) == "text/csv"
    assert csv.text.splitlines()[0].startswith("model,layer,neuron")
    ndjson = http.get(LAYER, headers={"Accept": "application/x-ndjson"})
    assert [json.loads(line)["neuron"] for line in ndjson.text.splitlines()] == [5, 42]
    parquet = http.get(LAYER, headers={"Accept": f"text/csv;q=0.5, {PARQUET}"})
    assert _media(parquet) == PARQUET and pq.read_table(io.BytesIO(parquet.content)).num_rows == 2
    # q=0 means "not acceptable" (RFC 9110 §12.5.1), whatever a wildcard says.
    not_json = http.get(LAYER, headers={"Accept": "application/json;q=0, */*;q=0.1"})
    assert _media(not_json) == "application/x-ndjson"
    refused = http.get("/v1/models", headers={"Accept": "application/json;q=0"})
    assert refused.status_code == 406 and _media(refused) == PROBLEM_JSON
    assert http.get("/v1/models", headers={"Accept": "application/json;q=0.2"}).status_code == 200
    # A named format is served only when Accept admits it.
    assert http.get(LAYER, params={"format": "parquet"}, headers={"Accept": "text/csv"}).status_code == 406
    named = http.get(LAYER, params={"format": "csv"}, headers={"Accept": "text/*"})
    assert named.status_code == 200 and _media(named) == "text/csv"
    assert http.get(LAYER, headers={"Accept": "image/png"}).status_code == 406


@pytest.mark.usefixtures("layer_stored")
def test_declared_defaults_are_accepted_when_sent_in_every_format(http: httpx.Client) -> None:
    defaults = {"offset": 0, "limit": 100, "fields": "summary"}
    for listing_format in ("json", "ndjson", "csv", "parquet"):
        answer = http.get(LAYER, params={**defaults, "format": listing_format})
        assert answer.status_code == 200, (listing_format, answer.text)
    # What the format does not use is still refused when it is not the default.
    paged = http.get(LAYER, params={"format": "csv", "offset": 1})
    assert paged.status_code == 422 and paged.json()["errors"][0]["field"] == "offset"
    full = http.get(LAYER, params={"format": "json", "fields": "full"})
    assert full.status_code == 422 and full.json()["errors"][0]["field"] == "fields"


def test_repeated_query_parameters_and_json_members_are_422(http: httpx.Client) -> None:
    twice = http.get(f"{LAYER}?format=csv&format=parquet")
    assert twice.status_code == 422, twice.text
    assert twice.json()["errors"] == [{"field": "format", "message": "given more than once; send it once"}]
    body = b'{"model": "minilm-l6", "layer": 3, "neurons": [1], "layer": 4}'
    duplicate = http.post("/v1/explanations", content=body, headers={"Content-Type": "application/json"})
    assert duplicate.status_code == 422, duplicate.text
    assert duplicate.json()["errors"][0]["field"] == "layer"
    nested = (
        b'{"model": "minilm-l6", "layer": 3, "neurons": [1], '
        b'"budget": {"max_llm_calls": 1, "max_llm_calls": 2}}'
    )
    answer = http.post("/v1/explanations", content=nested, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "max_llm_calls"


def test_a_partial_body_times_out_and_its_connection_is_closed(
    settings: Settings, start_api: Callable[[Settings], AbstractContextManager[str]]
) -> None:
    with start_api(settings.model_copy(update={"request_body_timeout_s": 0.5})) as url:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
            conn.sendall(
                b"POST /v1/explanations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"model": '
            )
            started = time.monotonic()
            received = b""
            while chunk := conn.recv(65536):  # until the server closes the connection
                received += chunk
            waited = time.monotonic() - started
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b"request-timeout" in received and b"connection: close" in received.lower()
        assert 0.4 < waited < 5
        # A body that arrives in time is answered as usual.
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.post("/v1/explanations", json={"model": "nope"}).status_code == 422
