"""GET /v1/jobs: the explanation jobs, newest first, filtered, paged by cursor with `Link` headers, read
from the durable records (they outlive FLUSHALL), and key-scoped with API keys on; DELETE /v1/jobs/{id}
cancels a job."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

import httpx
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from service.access.api_keys import KeyStore
from service.settings import Settings
from tests.service.helpers import explain_parts

REQUESTS = [{"model": "minilm-l6", "layer": 1, "neurons": [n]} for n in (1, 2, 3)]


def _post_all(http: httpx.Client, headers: dict[str, str] | None = None) -> list[str]:
    ids = []
    for body in REQUESTS:
        posted = http.post("/v1/explanations", json=body, headers=headers)
        assert posted.status_code == 202, posted.text
        ids.append(posted.json()["job_id"])
    return ids


def test_jobs_are_listed_newest_first_filtered_and_paged_by_cursor(
    http: httpx.Client, redis_conn: redis.Redis
) -> None:
    assert http.get("/v1/jobs").json() == {"jobs": [], "next_cursor": None}
    ids = _post_all(http)
    newest_first = list(reversed(ids))

    first = http.get("/v1/jobs", params={"limit": 2, "model": "minilm-l6"})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [job["job_id"] for job in page["jobs"]] == newest_first[:2]
    assert page["jobs"][0]["status"] == "queued" and page["jobs"][0]["layers"] == [1]
    assert page["next_cursor"] is not None
    link = first.headers["link"]
    assert link.startswith("</v1/jobs?") and link.endswith('>; rel="next"') and "model=minilm-l6" in link
    second = http.get(link[1 : link.index(">")])
    assert [job["job_id"] for job in second.json()["jobs"]] == newest_first[2:]
    assert second.json()["next_cursor"] is None and "link" not in second.headers

    assert http.get("/v1/jobs", params={"model": "tiny-llava"}).json()["jobs"] == []
    assert http.get("/v1/jobs", params={"status": "finished"}).json()["jobs"] == []
    assert len(http.get("/v1/jobs", params={"status": "queued"}).json()["jobs"]) == 3
    second_created = datetime.fromisoformat(page["jobs"][1]["created_at"])
    ranged = http.get("/v1/jobs", params={"created_after": second_created.isoformat()}).json()["jobs"]
    assert [job["job_id"] for job in ranged] == newest_first[:2]
    before = (second_created + timedelta(microseconds=1)).isoformat()
    ranged = http.get("/v1/jobs", params={"created_before": before}).json()["jobs"]
    assert [job["job_id"] for job in ranged] == newest_first[1:]
    bad = http.get("/v1/jobs", params={"cursor": "not-a-cursor"})
    assert bad.status_code in (400, 422), bad.text

    redis_conn.flushall()  # the listing reads the durable records
    after = http.get("/v1/jobs").json()["jobs"]
    assert [job["job_id"] for job in after] == newest_first


def test_a_key_lists_only_the_jobs_it_posted_and_admin_lists_all(
    settings: Settings,
    redis_conn: redis.Redis,
    start_api: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    keys = KeyStore()
    alice, _ = keys.create(redis_conn, "alice", ["read", "submit"])
    bob, _ = keys.create(redis_conn, "bob", ["read", "submit"])
    admin, _ = keys.create(redis_conn, "ops", ["read", "admin"])
    with start_api(settings.model_copy(update={"auth": "keys"})) as url, httpx.Client(base_url=url) as http:
        mine = _post_all(http, {"Authorization": f"Bearer {alice}"})
        again = http.post("/v1/explanations", json=REQUESTS[0], headers={"Authorization": f"Bearer {bob}"})
        assert again.json()["job_id"] == mine[0]

        def listed(key: str) -> list[str]:
            answer = http.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
            return [job["job_id"] for job in answer.json()["jobs"]]

        assert listed(alice) == list(reversed(mine))
        assert listed(bob) == [mine[0]]  # a repeat by another key lists the job for it too
        assert listed(admin) == list(reversed(mine))


def test_cancelling_a_queued_job_takes_its_parts_off_the_queue_and_a_repeat_runs_it(
    http: httpx.Client, redis_conn: redis.Redis
) -> None:
    job_id = http.post("/v1/explanations", json=REQUESTS[0]).json()["job_id"]
    (part_id,) = explain_parts(redis_conn, job_id)
    cancelled = http.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["ended_at"] is not None
    part = Job.fetch(part_id, connection=redis_conn, serializer=JSONSerializer)
    assert part.get_status() == "canceled"
    assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    listed = http.get("/v1/jobs", params={"status": "cancelled"}).json()["jobs"]
    assert [job["job_id"] for job in listed] == [job_id]
    assert http.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"  # idempotent
    assert http.delete("/v1/jobs/exp-000000000000000000000000").status_code == 404

    again = http.post("/v1/explanations", json=REQUESTS[0])
    assert again.status_code == 202 and again.json()["job_id"] == job_id
    assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
