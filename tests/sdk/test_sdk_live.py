"""The SDK (`neuronlens.Client`, `AsyncClient`) against a live stack: typed answers, lazy paging, exports,
errors, and a request that outlives a Redis restart by retrying its 503s."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from pathlib import Path

import httpx
import pytest

from neuronlens import (
    SUMMARY_COLUMNS,
    AsyncClient,
    Client,
    ExplanationAccepted,
    JobStatus,
    ModelSpec,
    NeuronReport,
    NotFound,
    RequestRejected,
    read_jsonl,
    to_dataframe,
    write_jsonl,
)
from tests.e2e.helpers import wait_for
from tests.sdk.conftest import IdleApi

MODEL, LAYER = "minilm-l6", 3


class CountingClient(Client):
    """A real client that counts its `GET /v1/jobs` calls (to see when pages are fetched)."""

    job_calls = 0

    def job(self, job_id: str, offset: int = 0, limit: int = 100) -> JobStatus:
        self.job_calls += 1
        return super().job(job_id, offset=offset, limit=limit)


def test_models_are_typed(live_url: str) -> None:
    with Client(live_url) as client:
        models = client.models()
    assert all(isinstance(model, ModelSpec) for model in models)
    minilm = next(model for model in models if model.id == MODEL)
    assert (minilm.layers, minilm.neurons_per_layer, minilm.default_hook) == (6, 1536, "mlp_act")


PROGRESS_LINE = re.compile(
    r"^exp-[0-9a-f]{24} (queued|scanning|explaining|simulating|finished) \d+/\d+ "
    r"(neurons|samples, pass \d+/\d+)(, queue position \d+)?$"
)


def test_progress_print_writes_one_short_line_per_update(
    live_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's `progress=print`: a line such as `exp-… explaining 3/5 neurons` per status, also for
    the finished status that carries the first page of reports (an answer from stored reports)."""
    with Client(live_url) as client:
        client.explain(MODEL, LAYER, range(110, 113), progress=print)  # explained now
        fresh = capsys.readouterr().out.splitlines()
        client.explain(MODEL, LAYER, range(110, 113), progress=print)  # all stored: a 200 with reports
        stored = capsys.readouterr().out.splitlines()
    assert fresh and stored == [stored[0]]
    assert all(PROGRESS_LINE.match(line) for line in fresh + stored), fresh + stored
    assert fresh[-1].endswith(" finished 3/3 neurons") and stored[0].endswith(" finished 3/3 neurons")


def test_explain_a_range_returns_typed_reports_with_progress(live_url: str) -> None:
    seen: list[JobStatus] = []
    with Client(live_url) as client:
        reports = client.explain(MODEL, LAYER, range(100, 105), progress=seen.append)
        assert all(isinstance(report, NeuronReport) for report in reports)
        assert [report.neuron for report in reports] == [100, 101, 102, 103, 104]
        assert seen and all(isinstance(status, JobStatus) for status in seen)
        assert seen[-1].status == "finished" and seen[-1].progress.done == 5
        # One stored report, the same document.
        assert client.report(MODEL, LAYER, 102) == reports[2]
        with pytest.raises(NotFound, match="404"):
            client.report(MODEL, LAYER, 1535)


def test_iter_reports_fetches_pages_as_it_goes(live_url: str) -> None:
    with CountingClient(live_url) as client:
        answer = client.submit(MODEL, LAYER, range(100, 105))
        job_id = answer.job_id
        if isinstance(answer, ExplanationAccepted):
            client.wait(job_id)
        client.job_calls = 0
        pages = client.iter_reports(job_id, page_size=2)
        assert client.job_calls == 0, "nothing is fetched before the iteration starts"
        first = next(pages)
        assert first.neuron == 100 and client.job_calls == 1
        next(pages)
        assert client.job_calls == 1, "the second report comes from the same page"
        assert next(pages).neuron == 102 and client.job_calls == 2
        assert [report.neuron for report in pages] == [103, 104] and client.job_calls == 3


def test_jsonl_and_dataframe_exports_agree_with_the_reports(live_url: str, tmp_path: Path) -> None:
    with Client(live_url) as client:
        reports = client.explain(MODEL, LAYER, [100, 104])
    path = tmp_path / "reports.jsonl"
    assert write_jsonl(reports, path) == 2
    assert [json.loads(line)["neuron"] for line in path.read_text().splitlines()] == [100, 104]
    assert read_jsonl(path) == reports

    frame = to_dataframe(reports)
    assert list(frame.columns) == list(SUMMARY_COLUMNS)
    assert frame["neuron"].tolist() == [100, 104]
    assert frame["neuron_type"].tolist() == [report.neuron_type for report in reports]
    assert frame["correlation"].tolist() == pytest.approx(
        [r.simulation.correlation for r in reports], nan_ok=True
    )
    assert frame["model"].tolist() == [MODEL, MODEL]
    assert frame["explanation"].tolist() == [report.explanation.text for report in reports]
    assert frame["p_text"].tolist() == [report.type_evidence.p_text for report in reports]


def test_rejected_requests_name_the_field(live_url: str) -> None:
    with Client(live_url) as client:
        with pytest.raises(RequestRejected, match="layer 40 is out of range") as server_side:
            client.explain(MODEL, 40, [1])
        assert server_side.value.status_code == 422
        with pytest.raises(RequestRejected, match=r"options\.seed") as local:
            client.explain(MODEL, LAYER, [1], options={"seed": "x"})
        assert local.value.status_code is None, "checked before anything was sent"
        with pytest.raises(NotFound, match="no such job"):
            client.job("exp-" + "0" * 24)  # well-formed, never made


def test_async_client_returns_the_same_reports(live_url: str) -> None:
    async def explain() -> list[NeuronReport]:
        async with AsyncClient(live_url) as client:
            return await client.explain(MODEL, LAYER, range(100, 102))

    with Client(live_url) as client:
        assert asyncio.run(explain()) == client.explain(MODEL, LAYER, range(100, 102))


def test_a_request_outlives_a_redis_restart(idle_api: IdleApi, caplog: pytest.LogCaptureFixture) -> None:
    """Redis stops: the API answers 503 with Retry-After; the SDK call waits and retries, and returns once
    Redis is back (append-only, so the job is still there)."""
    client = Client(idle_api.url, retries=120, max_retry_wait_s=1)
    answer = client.submit(MODEL, LAYER, [7])
    assert isinstance(answer, ExplanationAccepted)
    idle_api.redis.stop()
    down = httpx.get(f"{idle_api.url}/v1/jobs/{answer.job_id}")
    assert down.status_code == 503 and down.headers["retry-after"] == "5"

    result: list[JobStatus | BaseException] = []

    def read_status() -> None:
        try:
            result.append(client.job(answer.job_id))
        except BaseException as exc:  # handed to the test thread
            result.append(exc)

    caplog.set_level(logging.WARNING, logger="neuronlens.client")
    thread = threading.Thread(target=read_status)
    thread.start()
    wait_for(lambda: any("HTTP 503" in r.getMessage() for r in caplog.records), 30, "a retried 503")
    assert not result, "the call is still waiting while Redis is down"
    idle_api.redis.start()
    thread.join(timeout=120)
    client.close()
    (status,) = result
    assert isinstance(status, JobStatus), status
    assert status.job_id == answer.job_id and status.status == "queued"
    assert status.workers == 0
