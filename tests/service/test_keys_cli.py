"""`neuronlens keys create|list|revoke` as an operator runs it, against a real Redis and a real API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx

from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def keys_cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURONLENS_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "service.commands.main", "keys", "--redis-url", redis_url, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_create_list_revoke_through_the_cli(
    redis_url: str, settings: Settings, start_api: Callable[[Settings], AbstractContextManager[str]]
) -> None:
    made = keys_cli(
        redis_url, "create", "--name", "team-a", "--scopes", "read,submit", "--rate-per-minute", "60"
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("nl_") and len(key) > 40

    listed = keys_cli(redis_url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["scopes"], row["rate_per_minute"], row["revoked_at"]) == (
        "team-a",
        "read,submit",
        60,
        None,
    )
    assert key not in listed.stdout and key not in keys_cli(redis_url, "list").stdout
    assert "team-a" in keys_cli(redis_url, "list").stdout
    taken = keys_cli(redis_url, "create", "--name", "team-a")
    assert taken.returncode == 1 and "exists" in taken.stderr

    with start_api(settings.model_copy(update={"auth": "keys"})) as url, httpx.Client(base_url=url) as http:
        assert http.get("/v1/models").status_code == 401
        bearer = {"Authorization": f"Bearer {key}"}
        # The operator's check: a 60/min key gets 60 answers in a minute, and the 61st is 429.
        assert [http.get("/v1/models", headers=bearer).status_code for _ in range(60)] == [200] * 60
        sixty_first = http.get("/v1/models", headers=bearer)
        assert sixty_first.status_code == 429 and int(sixty_first.headers["retry-after"]) >= 1
        revoked = keys_cli(redis_url, "revoke", row["key_id"])
        assert revoked.returncode == 0, revoked.stderr
        assert "team-a" in revoked.stdout
        assert http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert json.loads(keys_cli(redis_url, "list", "--json").stdout)[0]["revoked_at"] is not None
    again = keys_cli(redis_url, "revoke", "team-a")
    assert again.returncode == 1 and "no active key" in again.stderr


def test_bad_arguments_name_what_is_allowed(redis_url: str) -> None:
    bad_scope = keys_cli(redis_url, "create", "--name", "x", "--scopes", "read,write")
    assert bad_scope.returncode == 2
    assert "read, submit, admin" in bad_scope.stderr
    unreachable = keys_cli("redis://127.0.0.1:9/0", "list")
    assert unreachable.returncode != 0 and "unreachable" in unreachable.stderr


def test_flags_after_the_action_and_every_limit_listed(redis_url: str) -> None:
    """`keys create … --redis-url URL` works as `keys --redis-url URL create …` does, and `keys list` shows
    each limit: requests per minute, LLM calls per day, scan passes per day."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURONLENS_") and k != "REDIS_URL"}
    env["PYTHONPATH"] = str(REPO)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "service.commands.main", "keys", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)

    made = cli(
        "create", "--name", "team-b", "--llm-calls-per-day", "100000", "--scan-passes-per-day", "7",
        "--redis-url", redis_url,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    listed = cli("list", "--redis-url", redis_url)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[4:8] == ["RATE/MIN", "LLM", "CALLS/DAY", "SCANS/DAY"], header
    assert row.split()[1:6] == ["team-b", "read", "default", "100000", "7"], row
    [record] = json.loads(cli("list", "--json", "--redis-url", redis_url).stdout)
    assert (record["llm_calls_per_day"], record["scan_passes_per_day"]) == (100000, 7)
    revoked = cli("revoke", "team-b", "--redis-url", redis_url)
    assert revoked.returncode == 0 and "team-b" in revoked.stdout, revoked.stderr
