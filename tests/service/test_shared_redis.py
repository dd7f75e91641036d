"""Two deployments on one Redis (issue 17): with different ``NEURONLENS_REDIS_PREFIX`` values they share the
server and nothing in it. Each has its own API (real HTTP, API keys on), its own in-process workers built
from its own settings (as `neuronlens-worker` builds them) and its own artifact store; both explain the same
request with the `openai` backends against one LLM peer and a call budget. Neither finds the other's job,
API keys, budget, report index or metrics, and every key left in Redis belongs to one of them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from service.access.api_keys import KeyStore
from service.contract import JobStatus
from service.http.app import create_app
from service.jobs.record import read_record
from service.settings import Settings, load_settings
from tests.llm_peer import LLMPeer
from tests.service import test_llm_jobs
from tests.service.helpers import run_workers, serve

pytestmark = pytest.mark.timeout(300)

llm_env = test_llm_jobs.llm_env
"""The LLM test environment (settings from NEURONLENS_* variables pointing at the peer), shared."""

PREFIXES = ("alpha:", "beta:")
BODY = {
    "model": "minilm-l6",
    "layer": test_llm_jobs.LAYER,
    "neurons": [5, 6],
    "options": test_llm_jobs.SMALL,
    "budget": {"max_llm_calls": 100},
}
RQ_GLOBAL_KEYS = {"rq:queues", "rq:workers"}
"""RQ's own registries of every queue and worker: the only keys deployments share (their members are
checked to be prefixed)."""

Env = tuple[pytest.MonkeyPatch, Settings]


@dataclass
class Deployment:
    prefix: str
    env: dict[str, str]
    """The variables its API and workers read (its prefix, its artifact store)."""
    settings: Settings
    http: httpx.Client
    """A client of its API, carrying its API key."""
    key: str


@pytest.fixture()
def deployments(llm_env: Env, redis_conn: redis.Redis, tmp_path: Path) -> Iterator[list[Deployment]]:
    monkeypatch, base = llm_env
    monkeypatch.setenv("NEURONLENS_AUTH", "keys")
    with LLMPeer() as peer, ExitStack() as stack:
        monkeypatch.setenv("NEURONLENS_LLM_BASE_URL", peer.base_url)
        found = []
        for prefix in PREFIXES:
            artifacts = base.artifact_url if prefix == PREFIXES[0] else str(tmp_path / "beta-artifacts")
            env = {"NEURONLENS_REDIS_PREFIX": prefix, "NEURONLENS_ARTIFACT_URL": artifacts}
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            settings = load_settings()
            key, _ = KeyStore(settings.redis_keys).create(redis_conn, prefix, ["read", "submit"])
            url = stack.enter_context(serve(create_app(settings)))
            headers = {"Authorization": f"Bearer {key}"}
            http = stack.enter_context(httpx.Client(base_url=url, timeout=60, headers=headers))
            found.append(Deployment(prefix, env, settings, http, key))
        yield found


def _work(monkeypatch: pytest.MonkeyPatch, conn: redis.Redis, deployment: Deployment) -> None:
    """Run the deployment's workers until its queues are empty (their runtime read from its variables)."""
    for name, value in deployment.env.items():
        monkeypatch.setenv(name, value)
    run_workers(conn, deployment.settings)


def _counters(http: httpx.Client, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one counter family of /metrics, by their labels."""
    found = {}
    for metric in text_string_to_metric_families(http.get("/metrics").text):
        if metric.name == family:
            for sample in metric.samples:
                if sample.name == family + "_total":
                    found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _owner(conn: redis.Redis, key: str) -> str | None:
    """The prefix of the deployment a Redis key belongs to: its own keys start with the prefix; RQ's keys
    name a prefixed queue, a job whose queue is prefixed, or a worker on prefixed queues."""
    names = [key]
    kind, _, rest = key.removeprefix("rq:").partition(":")
    if key.startswith("rq:") and rest:
        names.append(rest)
        if kind in ("job", "results"):  # rq:job:<id>, rq:job:<id>:dependents, rq:job::<id>:dependencies
            names.append((conn.hget(f"rq:job:{rest.lstrip(':').split(':')[0]}", "origin") or b"").decode())
        if kind == "worker":
            names.extend((conn.hget(key, "queues") or b"").decode().split(","))
    owners = {p for p in PREFIXES for name in names if name.startswith(p)}
    return owners.pop() if len(owners) == 1 else None


def test_two_prefixes_on_one_redis_see_nothing_of_each_other(
    llm_env: Env, redis_conn: redis.Redis, deployments: list[Deployment]
) -> None:
    monkeypatch, _ = llm_env
    alpha, beta = deployments
    ids = []
    for mine in deployments:
        answer = mine.http.post("/v1/explanations", json=BODY)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["job_id"])
    assert ids[0] != ids[1], "the same request got the same job id in both deployments"
    for mine, other_id in ((alpha, ids[1]), (beta, ids[0])):
        assert mine.http.get(f"/v1/jobs/{other_id}").status_code == 404
    # API keys: each deployment knows only its own.
    for mine, other in ((alpha, beta), (beta, alpha)):
        foreign = mine.http.get("/v1/models", headers={"Authorization": f"Bearer {other.key}"})
        assert foreign.status_code == 401, foreign.text

    calls = []
    for mine, job_id in zip(deployments, ids, strict=True):
        _work(monkeypatch, redis_conn, mine)
        status = JobStatus.model_validate(mine.http.get(f"/v1/jobs/{job_id}").json())
        assert status.status == "finished", status.error
        assert status.usage is not None and status.usage.calls > 0
        calls.append(status.usage.calls)
    for mine, job_id, spent in zip(deployments, ids, calls, strict=True):
        # Each one's /metrics counts its own jobs and LLM calls only.
        jobs = _counters(mine.http, "neuronlens_jobs")
        assert jobs == {
            (("outcome", "finished"), ("queue", "explain")): 1.0,
            (("outcome", "finished"), ("queue", "scan")): 1.0,
        }, mine.prefix
        assert sum(_counters(mine.http, "neuronlens_llm_calls").values()) == spent, mine.prefix
        # Its budget counted its own calls; its job record and report index are under its prefix.
        assert int(redis_conn.get(mine.settings.redis_keys.budget_calls(job_id)) or 0) == spent
        record = read_record(redis_conn, mine.settings.redis_keys, job_id)
        assert record is not None
        index = mine.settings.redis_keys.report_index("minilm-l6", test_llm_jobs.LAYER, record.variant)
        assert {int(n) for n in redis_conn.smembers(index)} >= {5, 6}  # type: ignore[union-attr]
        assert redis_conn.exists(mine.settings.redis_keys.weights("minilm-l6"))
        listing = mine.http.get(f"/v1/neurons/minilm-l6/{test_llm_jobs.LAYER}?variant={record.variant}")
        assert listing.status_code == 200, listing.text
        assert [row["neuron"] for row in listing.json()["neurons"]] == [5, 6]

    keys = sorted(k.decode() for k in redis_conn.scan_iter("*"))
    strays = [k for k in keys if k not in RQ_GLOBAL_KEYS and _owner(redis_conn, k) is None]
    assert strays == [], f"keys of no deployment: {strays}"
    for member in redis_conn.smembers("rq:queues"):  # type: ignore[union-attr]
        assert member.decode().removeprefix("rq:queue:").startswith(PREFIXES), member
    for member in redis_conn.smembers("rq:workers"):  # type: ignore[union-attr]
        queues = (redis_conn.hget(member.decode(), "queues") or b"").decode().split(",")
        assert all(queue.startswith(PREFIXES) for queue in queues), (member, queues)


def test_the_former_variable_name_still_sets_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURONLENS_REDIS_PREFIX", raising=False)
    monkeypatch.setenv("NEURONLENS_QUEUE_PREFIX", "old:")
    assert load_settings().redis_keys.job_record("exp-1") == "old:nl:job:exp-1"
    monkeypatch.setenv("NEURONLENS_REDIS_PREFIX", "new:")
    assert load_settings().redis_prefix == "new:"
