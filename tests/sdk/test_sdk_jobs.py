"""The job lifecycle through the SDK and the CLI against a live API without workers (jobs stay queued):
`Client.jobs` follows the listing's cursor, filters, `cancel`, the `AsyncClient` twins, `callback_url` sent
with a request, `neuronlens jobs` and `neuronlens cancel`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from neuronlens import AsyncClient, Client, ExplanationAccepted, RequestRejected
from neuronlens.cli.main import main as cli
from tests.sdk.conftest import IdleApi

MODEL, LAYER = "minilm-l6", 3


def test_jobs_cancel_and_callback_url(idle_api: IdleApi, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(idle_api.url, retries=1) as client:
        posted = [client.submit(MODEL, LAYER, [n]) for n in range(3)]
        assert all(isinstance(answer, ExplanationAccepted) for answer in posted)
        ids = [answer.job_id for answer in posted]
        # three jobs over two pages of two: the second page comes from the cursor
        assert [job.job_id for job in client.jobs(page_size=2)] == ids[::-1]
        assert [job.status for job in client.jobs()] == ["queued"] * 3
        assert client.cancel(ids[0]).status == "cancelled"
        assert [job.job_id for job in client.jobs(status="cancelled", page_size=1)] == [ids[0]]
        assert len(list(client.jobs(status="queued", model=MODEL))) == 2
        assert list(client.jobs(model="gpt2")) == []
        later = datetime.now(UTC) + timedelta(hours=1)
        assert list(client.jobs(created_after=later)) == []
        assert len(list(client.jobs(created_before=later.replace(tzinfo=None)))) == 3
        # the callback URL is sent: this API sends no webhooks, so it refuses the field
        with pytest.raises(RequestRejected, match="callback_url"):
            client.submit(MODEL, LAYER, [9], callback_url="http://hooks.example.com/x")

    async def asynchronously() -> tuple[list[str], str]:
        async with AsyncClient(idle_api.url, retries=1) as aclient:
            listed = [job.job_id async for job in aclient.jobs(status="queued", page_size=1)]
            return listed, (await aclient.cancel(ids[1])).status

    assert asyncio.run(asynchronously()) == (ids[:0:-1], "cancelled")

    assert cli(["cancel", ids[2], "--url", idle_api.url, "--retries", "1"]) == 0
    assert capsys.readouterr().out.split("\t")[:2] == [ids[2], "cancelled\n"]
    assert cli(["jobs", "--url", idle_api.url, "--format", "json", "--status", "cancelled"]) == 0
    assert [job["job_id"] for job in json.loads(capsys.readouterr().out)] == ids[::-1]
    assert cli(["jobs", "--url", idle_api.url, "--limit", "1"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split("\t")[:2] == ["job", "status"] and row.startswith(f"{ids[2]}\tcancelled\t{MODEL}")
    assert cli(["cancel", "exp-" + "0" * 24, "--url", idle_api.url, "--retries", "1"]) == 2  # 404
