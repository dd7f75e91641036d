"""The API as deployed (`uvicorn --factory service.http.app:app_from_env`) logs one JSON object per line,
access lines included, each with the request id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.commands.embedded_redis import free_port

REPO = Path(__file__).resolve().parents[2]


def test_log_lines_are_json_with_the_request_id(redis_url: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURONLENS_")}
    env.update(PYTHONPATH=str(REPO), NEURONLENS_REDIS_URL=redis_url)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "service.http.app:app_from_env",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "the API did not start"
                time.sleep(0.1)
        httpx.get(f"http://127.0.0.1:{port}/v1/jobs/exp-missing", headers={"X-Request-ID": "trace-log-1"})
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
    access = [
        r for r in records if r["logger"] == "uvicorn.access" and "/v1/jobs/exp-missing" in r["message"]
    ]
    assert len(access) == 1 and access[0]["request_id"] == "trace-log-1"
    assert " 404" in access[0]["message"]
    assert any(r["logger"] == "uvicorn.error" and "startup complete" in r["message"] for r in records)
