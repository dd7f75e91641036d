"""Reports as tables: `GET /v1/jobs/{job_id}/reports` and `GET /v1/neurons/{model}/{layer}?format=…` stream
NDJSON, CSV and Parquet that parse (json, csv, pyarrow) and equal the stored reports a real worker wrote
(real MiniLM, real Redis, the API over real HTTP); gzip when asked; problems for bad input and jobs that are
not finished."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
import redis

from neuronlens import write_csv
from service.contract import ExplanationRequest, NeuronReport, RedisKeys, report_key
from service.http.app import create_app
from service.reports.listing import summarize
from service.settings import Settings
from tests.service.helpers import PROBLEM_JSON, build_report, run_workers, serve, store_reports
from tests.service.test_pipeline_jobs import SAMPLES, _write_registry
from workers.process.report_writer import ReportObjects, store_report

LAYER = 2
NEURONS = [99, 3, 17]
REQUEST = {"model": "minilm-l6", "layer": LAYER, "neurons": NEURONS}
SUMMARY_KEYS = ("neuron_type", "p_visual", "p_text", "p_multimodal", "p_unknown", "high_confidence")


@pytest.fixture()
def api(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Settings]]:
    """An API and in-process workers that agree on a registry whose probe set is cut to SAMPLES (the scan
    artifact is shared with tests/service/test_pipeline_jobs.py)."""
    registry = _write_registry(tmp_path / "registry.json", SAMPLES)
    for name, value in {
        "NEURONLENS_REGISTRY_PATH": str(registry),
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    settings = settings.model_copy(update={"registry_path": registry})
    with serve(create_app(settings)) as url:
        yield url, settings


@pytest.fixture()
def finished(
    api: tuple[str, Settings], redis_conn: redis.Redis
) -> tuple[httpx.Client, str, dict[int, bytes]]:
    """A finished job of three neurons: (client, job id, stored report JSON by neuron as GET serves it)."""
    url, settings = api
    http = httpx.Client(base_url=url, timeout=60)
    job_id = http.post("/v1/explanations", json=REQUEST).json()["job_id"]
    run_workers(redis_conn, settings)
    assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "finished"
    stored = {n: http.get(f"/v1/neurons/minilm-l6/{LAYER}/{n}").content for n in sorted(NEURONS)}
    return http, job_id, stored


def _check_summary(row: dict[str, Any], raw: bytes) -> None:
    """A summary row equals the NeuronSummary of the stored report, plus model, layer, hook and
    domain_specific."""
    expected = summarize(raw)
    report = json.loads(raw)
    assert row["neuron"] == expected.neuron and row["layer"] == LAYER
    assert (row["model"], row["hook"]) == (report["model"], report["hook"])
    assert {key: row[key] for key in SUMMARY_KEYS} == expected.model_dump(include=set(SUMMARY_KEYS))
    assert row["max_activation"] == expected.max_activation
    assert row["explanation"] == expected.explanation and row["correlation"] == expected.correlation
    ci95 = row["ci95"] if "ci95" in row else [row["ci95_low"], row["ci95_high"]]
    assert ci95 == (expected.ci95 or [None, None]) and expected.ci95 is not None
    assert row["domain_specific"] == report["domain_specific"]
    assert row["llm_calls"] == sum(report["provenance"]["llm_calls"].values())


def _csv_row(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row typed back (numbers, booleans, `;`-joined lists, empty cells as null)."""
    typed: dict[str, Any] = {}
    for key, cell in row.items():
        if cell == "":
            typed[key] = None if key != "domain_specific" else []
        elif key in ("neuron", "layer", "llm_calls"):
            typed[key] = int(cell)
        elif key in ("model", "hook", "neuron_type", "explanation", "report"):
            typed[key] = cell
        elif key in ("high_confidence", "beyond_chance"):
            typed[key] = {"true": True, "false": False}[cell]
        elif key == "domain_specific":
            typed[key] = cell.split(";")
        else:
            typed[key] = float(cell)
    return typed


def test_a_finished_job_exports_ndjson_csv_and_parquet_equal_to_its_reports(
    finished: tuple[httpx.Client, str, dict[int, bytes]],
) -> None:
    http, job_id, stored = finished
    raws = list(stored.values())

    ndjson = http.get(f"/v1/jobs/{job_id}/reports")  # the defaults: ndjson, summary
    assert ndjson.status_code == 200, ndjson.text
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    assert ndjson.headers["content-disposition"] == f'attachment; filename="{job_id}-summary.ndjson"'
    rows = [json.loads(line) for line in ndjson.text.splitlines()]
    assert [row["neuron"] for row in rows] == sorted(NEURONS)
    for row, raw in zip(rows, raws, strict=True):
        _check_summary(row, raw)

    full = http.get(f"/v1/jobs/{job_id}/reports", params={"fields": "full"})
    assert full.content.split(b"\n") == [*raws, b""]  # exactly the bodies GET /v1/neurons/... serves

    table = http.get(f"/v1/jobs/{job_id}/reports", params={"format": "csv"})
    assert table.headers["content-type"] == "text/csv; charset=utf-8"
    assert table.headers["content-disposition"] == f'attachment; filename="{job_id}-summary.csv"'
    csv_rows = [_csv_row(row) for row in csv.DictReader(io.StringIO(table.text))]
    for row, raw in zip(csv_rows, raws, strict=True):
        _check_summary(row, raw)
    full_csv = http.get(f"/v1/jobs/{job_id}/reports", params={"format": "csv", "fields": "full"})
    assert [row["report"].encode() for row in csv.DictReader(io.StringIO(full_csv.text))] == raws

    for fields in ("summary", "full"):
        parquet = http.get(f"/v1/jobs/{job_id}/reports", params={"format": "parquet", "fields": fields})
        assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
        read = pq.read_table(io.BytesIO(parquet.content)).to_pylist()
        assert len(read) == len(raws)
        for row, raw in zip(read, raws, strict=True):
            _check_summary(row, raw)
            if fields == "full":
                assert row["report"].encode() == raw


def test_exports_are_gzipped_when_the_client_accepts_it(
    finished: tuple[httpx.Client, str, dict[int, bytes]],
) -> None:
    http, job_id, _ = finished
    for export_format in ("ndjson", "csv", "parquet"):
        path = f"/v1/jobs/{job_id}/reports?format={export_format}&fields=full"
        plain = http.get(path, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        with http.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as zipped:
            assert zipped.headers["content-encoding"] == "gzip"
            wire = b"".join(zipped.iter_raw())  # the bytes as sent, not decoded
        assert gzip.decompress(wire) == plain.content
        if export_format != "parquet":  # Parquet's pages are compressed already (zstd)
            assert len(wire) < len(plain.content) / 3


def test_a_layer_exports_every_stored_report_as_a_table(
    finished: tuple[httpx.Client, str, dict[int, bytes]],
) -> None:
    http, _, stored = finished
    layer = f"/v1/neurons/minilm-l6/{LAYER}"
    listing = http.get(layer, params={"limit": 1000}).json()
    assert [row["neuron"] for row in listing["neurons"]] == sorted(NEURONS)

    ndjson = http.get(layer, params={"format": "ndjson"})
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    assert (
        ndjson.headers["content-disposition"] == f'attachment; filename="minilm-l6-L{LAYER}-summary.ndjson"'
    )
    rows = [json.loads(line) for line in ndjson.text.splitlines()]
    assert [{k: v for k, v in row.items() if k in listing["neurons"][0]} for row in rows] == listing[
        "neurons"
    ]
    for row, raw in zip(rows, stored.values(), strict=True):
        _check_summary(row, raw)
    full = http.get(layer, params={"format": "ndjson", "fields": "full"})
    assert full.content.split(b"\n") == [*stored.values(), b""]
    csv_rows = list(csv.DictReader(io.StringIO(http.get(layer, params={"format": "csv"}).text)))
    assert [int(row["neuron"]) for row in csv_rows] == sorted(NEURONS)
    parquet = pq.read_table(io.BytesIO(http.get(layer, params={"format": "parquet"}).content))
    assert parquet.column("neuron").to_pylist() == sorted(NEURONS)

    empty = http.get("/v1/neurons/minilm-l6/5", params={"format": "csv"})
    assert empty.text.startswith("model,layer,neuron,") and len(empty.text.splitlines()) == 1
    assert pq.read_table(io.BytesIO(http.get("/v1/neurons/minilm-l6/5?format=parquet").content)).num_rows == 0


def test_bad_exports_are_problems(api: tuple[str, Settings], redis_conn: redis.Redis) -> None:
    url, _ = api
    with httpx.Client(base_url=url, timeout=60) as http:
        job_id = http.post("/v1/explanations", json=REQUEST).json()["job_id"]  # no worker runs it
        for path, status in [
            (f"/v1/jobs/{job_id}/reports", 409),
            (f"/v1/jobs/{job_id}/reports?format=csv", 409),
            ("/v1/jobs/exp-000000000000000000000000/reports", 404),
            ("/v1/jobs/nope/reports", 404),
            (f"/v1/jobs/{job_id}/reports?format=xlsx", 422),
            (f"/v1/jobs/{job_id}/reports?fields=some", 422),
            (f"/v1/jobs/{job_id}/reports?offset=3", 422),
            (f"/v1/neurons/minilm-l6/{LAYER}?format=xml", 422),
            (f"/v1/neurons/minilm-l6/{LAYER}?format=csv&fields=some", 422),
            (f"/v1/neurons/minilm-l6/{LAYER}?format=csv&offset=2", 422),
            (f"/v1/neurons/minilm-l6/{LAYER}?fields=full", 422),
            ("/v1/neurons/minilm-l6/40?format=csv", 404),
        ]:
            response = http.get(path)
            assert response.status_code == status, (path, response.text)
            assert response.headers["content-type"].startswith(PROBLEM_JSON)
        conflict = http.get(f"/v1/jobs/{job_id}/reports").json()
        assert conflict["type"] == "urn:neuronlens:problem:job-not-finished"
        assert f"job '{job_id}' is queued" in conflict["detail"]
        assert http.get(f"/v1/jobs/{job_id}/reports", headers={"Accept": "image/png"}).status_code == 406
        layer = f"/v1/neurons/minilm-l6/{LAYER}?format=csv"
        assert http.get(layer, headers={"Accept": "text/csv"}).status_code == 200
        assert http.get(layer, headers={"Accept": "image/png"}).status_code == 406


def test_full_exports_of_a_vision_language_job_link_exemplar_images_as_the_json_api_does(
    settings: Settings, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    model, layer, neurons = "tiny-llava-planted", 2, [11, 200]
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        job_id = http.post(
            "/v1/explanations", json={"model": model, "layer": layer, "neurons": neurons}
        ).json()["job_id"]
        run_workers(redis_conn, settings)
        served = [http.get(f"/v1/neurons/{model}/{layer}/{n}").content for n in neurons]
        assert all(b'"image_url":"/v1/neurons/' in body for body in served), "the report has image links"
        job_lines = http.get(f"/v1/jobs/{job_id}/reports", params={"fields": "full"}).content
        layer_lines = http.get(f"/v1/neurons/{model}/{layer}", params={"format": "ndjson", "fields": "full"})
        table = http.get(f"/v1/jobs/{job_id}/reports", params={"format": "csv", "fields": "full"}).text
    assert job_lines.split(b"\n") == [*served, b""]
    assert layer_lines.content.split(b"\n") == [*served, b""]
    assert [row["report"].encode() for row in csv.DictReader(io.StringIO(table))] == served


def test_every_table_carries_the_report_s_llm_cost_and_the_sdk_writes_the_same_rows(
    http: httpx.Client, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    """`cost_usd` is `provenance.llm_cost_usd` in NDJSON, CSV and Parquet (it used to be always empty), and
    the SDK's `write_csv` of the served reports is byte for byte the API's CSV (one summary row)."""
    model, layer = "minilm-l6", 3
    request = ExplanationRequest(
        model=model, layer=layer, neurons=[1], hook="mlp_act", dataset="text-probe-v2"
    )
    store_reports(redis_conn, report_objects, request, minilm_revision)
    variant = http.get(f"/v1/neurons/{model}/{layer}").json()["variant"]
    plain = build_report(model, minilm_revision, layer, 2, "mlp_act", "text-probe-v2")
    priced = plain.provenance.model_copy(
        update={"llm_cost_usd": 0.0125, "llm_calls": {"explainer": 1, "simulator": 4}}
    )
    report = plain.model_copy(update={"provenance": priced})
    key = report_key(model, layer, 2, variant)
    store_report(redis_conn, RedisKeys(), report_objects, key, variant, report, None)

    path = f"/v1/neurons/{model}/{layer}"
    ndjson = [json.loads(line) for line in http.get(path, params={"format": "ndjson"}).text.splitlines()]
    parquet = pq.read_table(io.BytesIO(http.get(path, params={"format": "parquet"}).content)).to_pylist()
    for rows in (ndjson, parquet):
        assert [(r["neuron"], r["model"], r["cost_usd"], r["llm_calls"]) for r in rows] == [
            (1, model, None, None), (2, model, 0.0125, 5),
        ]  # fmt: skip
    api_csv = http.get(path, params={"format": "csv"}).text
    assert [(r["neuron"], r["cost_usd"]) for r in csv.DictReader(io.StringIO(api_csv))] == [
        ("1", ""), ("2", "0.0125"),
    ]  # fmt: skip
    served = [NeuronReport.model_validate_json(http.get(f"{path}/{n}").content) for n in (1, 2)]
    sdk_csv = io.StringIO()
    assert write_csv(served, sdk_csv) == 2
    assert sdk_csv.getvalue() == api_csv
