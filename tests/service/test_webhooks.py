"""callback_url webhooks: signed per Standard Webhooks (checked with the `standardwebhooks` library), sent
to a real receiver on loopback on each terminal state by the project's worker, retried after 5xx, every
attempt in the job record; refused hosts are a 422."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import redis
from standardwebhooks import Webhook

from service.contract import BUNDLED_REGISTRY, ExplanationRequest, JobStatus
from service.settings import Settings, load_settings
from tests.service.helpers import run_workers, store_reports
from workers.process.report_writer import ReportObjects

SECRET = "whsec_" + base64.b64encode(b"neuronlens-test-webhook-secret!!").decode()
REQUEST = {"model": "minilm-l6", "layer": 1, "neurons": [4, 5]}


@dataclass
class Receiver:
    """A webhook receiver on loopback: answers ``fail_first`` requests 500, then 204."""

    url: str
    fail_first: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["content-length"]))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            code = 500 if len(state.received) <= state.fail_first else 204
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/neuronlens"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture()
def hook_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """API and workers that send webhooks to loopback (the workers read theirs from the environment)."""
    env = {
        "NEURONLENS_WEBHOOK_SECRET": SECRET,
        "NEURONLENS_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,hooks.example.com,metadata.example",
        "NEURONLENS_WEBHOOK_ALLOW_LOOPBACK": "true",
        "NEURONLENS_WEBHOOK_BACKOFF_S": "0.05",
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(redis_url=settings.redis_url, artifact_url=settings.artifact_url)


def _verified(receiver: Receiver) -> list[dict[str, object]]:
    """Every body the receiver got, each checked against its Standard Webhooks signature."""
    events = []
    for headers, body in receiver.received:
        events.append(Webhook(SECRET).verify(body, headers))
    return events


def test_a_finished_job_is_delivered_signed_and_retried_after_500s(
    hook_settings: Settings,
    start_api: Callable[[Settings], AbstractContextManager[str]],
    redis_conn: redis.Redis,
    receiver: Receiver,
    minilm_revision: str,
) -> None:
    receiver.fail_first = 2
    store_reports(
        redis_conn, ReportObjects(hook_settings.artifact_url), ExplanationRequest(**REQUEST), minilm_revision
    )
    with start_api(hook_settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        posted = http.post("/v1/explanations", json={**REQUEST, "callback_url": receiver.url})
        assert posted.status_code == 200, posted.text
        job_id = posted.json()["job_id"]
        # the callback is not part of the job's identity
        assert http.post("/v1/explanations", json=REQUEST).json()["job_id"] == job_id
        run_workers(redis_conn, hook_settings)
        status = JobStatus.model_validate(http.get(f"/v1/jobs/{job_id}").json())

    events = _verified(receiver)
    assert len(events) == 3  # two 500s, then taken
    assert all(e["type"] == "job.finished" for e in events)
    assert events[-1]["data"]["job_id"] == job_id and events[-1]["data"]["status"] == "finished"
    assert len({headers["webhook-id"] for headers, _ in receiver.received}) == 1  # one event, retried
    assert status.webhooks is not None
    assert [(d.attempt, d.status_code, d.delivered) for d in status.webhooks] == [
        (1, 500, False),
        (2, 500, False),
        (3, 204, True),
    ]
    # A hook job run again sends nothing the receiver already took.
    with start_api(hook_settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        http.post("/v1/explanations", json={**REQUEST, "callback_url": receiver.url})
        run_workers(redis_conn, hook_settings)
    assert len(receiver.received) == 3


def test_a_failed_job_is_delivered(
    hook_settings: Settings,
    start_api: Callable[[Settings], AbstractContextManager[str]],
    redis_conn: redis.Redis,
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    registry["models"][0]["id"] = "other-model"  # workers without minilm-l6: its scan fails
    path = tmp_path / "worker-registry.json"
    path.write_text(json.dumps(registry))
    monkeypatch.setenv("NEURONLENS_REGISTRY_PATH", str(path))
    with start_api(hook_settings) as url, httpx.Client(base_url=url, timeout=30) as http:
        posted = http.post("/v1/explanations", json={**REQUEST, "callback_url": receiver.url})
        assert posted.status_code == 202, posted.text
        run_workers(redis_conn, hook_settings)
        status = JobStatus.model_validate(http.get(f"/v1/jobs/{posted.json()['job_id']}").json())
    (event,) = _verified(receiver)
    assert event["type"] == "job.failed" and event["data"]["status"] == "failed"
    assert event["data"]["error"]["type"] == "UnknownModel"
    assert status.status == "failed" and status.webhooks is not None and status.webhooks[0].delivered


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://elsewhere.example.org/hook", "is not one this deployment allows"),
        ("http://169.254.169.254/latest/meta-data", "is not one this deployment allows"),
        ("ftp://hooks.example.com/x", "http:// or https://"),
    ],
)
def test_a_refused_callback_url_is_a_422(
    hook_settings: Settings,
    start_api: Callable[[Settings], AbstractContextManager[str]],
    redis_conn: redis.Redis,
    url: str,
    why: str,
) -> None:
    with start_api(hook_settings) as api, httpx.Client(base_url=api, timeout=30) as http:
        refused = http.post("/v1/explanations", json={**REQUEST, "callback_url": url})
    assert refused.status_code == 422, refused.text
    assert why in refused.json()["detail"]
    assert redis_conn.keys("*hook-*") == []  # nothing scheduled


def test_allowed_hosts_never_reach_link_local_metadata_or_unallowed_loopback(
    hook_settings: Settings,
    start_api: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    allowed = hook_settings.model_copy(
        update={
            "webhook_allowed_hosts": ["169.254.169.254", "fe80::1", "127.0.0.1"],
            "webhook_allow_loopback": False,
        }
    )
    with start_api(allowed) as api, httpx.Client(base_url=api, timeout=30) as http:
        for url, why in [
            ("http://169.254.169.254/x", "a cloud metadata address"),
            ("http://[fe80::1]/x", "a link-local address"),
            ("http://127.0.0.1:9/x", "a loopback address"),
        ]:
            refused = http.post("/v1/explanations", json={**REQUEST, "callback_url": url})
            assert refused.status_code == 422 and why in refused.json()["detail"], refused.text
    off = hook_settings.model_copy(update={"webhook_secret": None})
    with start_api(off) as api, httpx.Client(base_url=api, timeout=30) as http:
        refused = http.post("/v1/explanations", json={**REQUEST, "callback_url": "http://127.0.0.1:9/x"})
        assert refused.status_code == 422 and "sends no webhooks" in refused.json()["detail"]
