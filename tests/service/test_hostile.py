"""Hostile input, as an attacker would send it: every answer is a 4xx (or 2xx), never a 5xx, and nothing
reaches a queue. Cases from issue 8 (nesting, malformed ids, coercions, unbounded options, duplicates,
content types, unknown query parameters, huge headers)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest
import redis

VALID = {"model": "minilm-l6", "layer": 3, "neurons": [5]}


@dataclass(frozen=True)
class Case:
    """One request: method, path, and a JSON body, raw bytes or query parameters."""

    name: str
    method: str = "POST"
    path: str = "/v1/explanations"
    json: object = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    params: dict[str, str] = field(default_factory=dict)
    expected: int | None = None
    """The status expected, when one is (None: any 4xx)."""


def _with(**changes: object) -> dict[str, object]:
    return {**VALID, **changes}


def _options(**options: object) -> dict[str, object]:
    return _with(options=options)


CASES = [
    Case("json nested 5000 deep", content=b'{"model":' + b"[" * 5000 + b"]" * 5000 + b"}", expected=400),
    Case("json nested 17 deep", json=_with(options={"a": [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}), expected=400),
    Case("json nested in a string is fine", json=_with(model="[" * 5000), expected=422),
    Case("job id with a dot", method="GET", path="/v1/jobs/exp-a.b", expected=404),
    Case("README placeholder job id", method="GET", path="/v1/jobs/exp-…", expected=404),
    Case("job id of 24 non-hex", method="GET", path="/v1/jobs/exp-" + "z" * 24, expected=404),
    Case("scan job id", method="GET", path="/v1/jobs/scan-" + "0" * 24, expected=404),
    Case("negative seed", json=_options(seed=-1), expected=422),
    Case("seed 2**64", json=_options(seed=2**64), expected=422),
    Case("seed 10**100", json=_options(seed=10**100), expected=422),
    Case("n_top 10**100", json=_options(n_top=10**100), expected=422),
    Case("min tokens unbounded", json=_options(text_min_tokens=10**9), expected=422),
    Case("bool neuron", json=_with(neurons=[True]), expected=422),
    Case("string neuron", json=_with(neurons=["1"]), expected=422),
    Case("string layer", json=_with(layer="3"), expected=422),
    Case("bool candidates", json=_with(candidates=True), expected=422),
    Case("string threshold", json=_options(text_threshold="3.0"), expected=422),
    Case("empty neuron list", json=_with(neurons=[]), expected=422),
    Case("65,537 duplicate ids", json=_with(neurons=[0] * 65_537), expected=422),
    Case(
        "2.6 M duplicate ids",
        content=b'{"model":"minilm-l6","layer":3,"neurons":[' + b"0," * 2_600_000 + b"0]}",
        expected=413,
    ),  # fmt: skip
    Case(
        "text/plain body",
        content=b'{"model":"minilm-l6","layer":3,"neurons":[5]}',
        headers={"content-type": "text/plain"},
        expected=415,
    ),  # fmt: skip
    Case(
        "form body",
        content=b"model=minilm-l6",
        headers={"content-type": "application/x-www-form-urlencoded"},
        expected=415,
    ),  # fmt: skip
    Case("no content type", content=b"{}", headers={"content-type": ""}, expected=415),
    Case(
        "not utf-8",
        content=b'{"model":"\xff\xfe"}',
        headers={"content-type": "application/json"},
        expected=400,
    ),
    Case(
        "NaN",
        content=b'{"model":"minilm-l6","layer":NaN,"neurons":[5]}',
        headers={"content-type": "application/json"},
        expected=400,
    ),  # fmt: skip
    Case("empty body", content=b"", headers={"content-type": "application/json"}, expected=400),
    Case("a JSON array", json=[VALID], expected=422),
    Case(
        "unknown query on a report",
        method="GET",
        path="/v1/neurons/minilm-l6/3/5",
        params={"seed": "1"},
        expected=422,
    ),  # fmt: skip
    Case("unknown query on a post", params={"dry_run": "1"}, json=VALID, expected=422),
    Case(
        "empty explainer query",
        method="GET",
        path="/v1/neurons/minilm-l6/3/5",
        params={"explainer": ""},
        expected=422,
    ),  # fmt: skip
    Case(
        "candidates=0",
        method="GET",
        path="/v1/neurons/minilm-l6/3/5",
        params={"candidates": "0"},
        expected=422,
    ),  # fmt: skip
    Case("huge layer", method="GET", path="/v1/neurons/minilm-l6/" + "9" * 40 + "/5", expected=404),
    Case("negative neuron", method="GET", path="/v1/neurons/minilm-l6/3/-1", expected=404),
    Case("huge page offset", method="GET", path="/v1/jobs/exp-" + "0" * 24, params={"offset": "9" * 40}),
    Case("40 KB header", method="GET", path="/v1/models", headers={"x-junk": "a" * 40_000}, expected=431),
    Case("1 MB header", method="GET", path="/v1/models", headers={"x-junk": "a" * 1_000_000}),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input_is_a_4xx_and_enqueues_nothing(
    http: httpx.Client, redis_conn: redis.Redis, case: Case
) -> None:
    try:
        response = http.request(
            case.method,
            case.path,
            json=case.json,
            content=case.content,
            headers=case.headers,
            params=case.params,
        )
    except httpx.TransportError:
        # A header block past h11's buffer: uvicorn drops the connection before any app code runs.
        assert case.name == "1 MB header"
    else:
        assert 400 <= response.status_code < 500, response.text
        if case.expected is not None:
            assert response.status_code == case.expected, response.text
        assert "Traceback" not in response.text
    assert redis_conn.keys("rq:job:*") == [] and redis_conn.keys("rq:queue:*") == []
