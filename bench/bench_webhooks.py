"""Issue 20 figure: how long after a job ends its webhook arrives.

Through the real API (under uvicorn on loopback), a private Redis and the project's own worker (in this
process, working every queue as `neuronlens-worker` does, `webhooks` included): each round posts a small
offline request (minilm-l6, a few neurons of one layer, baseline backends) with a `callback_url` on a
loopback receiver, works the queues, and measures from the job's `ended_at` (as `GET /v1/jobs/{id}` says)
to the moment the receiver got the signed delivery. The layer is scanned once before the rounds, so each
round is an explain part and its delivery. Median and max over the rounds.
"""

from __future__ import annotations

import base64
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench._common import load_average  # noqa: E402  (after the path set-up above)
from bench.bench_cost import bench_environment  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_WEBHOOK_ROUNDS", "6"))
LAYER = 1
SECRET = "whsec_" + base64.b64encode(b"neuronlens-bench-webhook-secret!").decode()


class Receiver:
    """A loopback receiver that notes when each delivery arrived (wall clock, UTC) and answers 204."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[datetime, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.arrivals.append((datetime.now(UTC), body))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _rounds(http: Any, conn: Any, settings: Any, receiver: Receiver) -> list[float]:
    from service.contract import JobStatus
    from tests.service.helpers import run_workers

    base = {"model": "minilm-l6", "layer": LAYER, "explainer": "baseline", "simulator": "baseline"}
    http.post("/v1/explanations", json={**base, "neurons": [0]})  # scans the layer once
    run_workers(conn, settings)
    latencies = []
    for round_ in range(ROUNDS):
        neurons = [10 + 3 * round_, 11 + 3 * round_, 12 + 3 * round_]
        before = len(receiver.arrivals)
        answer = http.post(
            "/v1/explanations", json={**base, "neurons": neurons, "callback_url": receiver.url}
        )
        if answer.status_code != 202:
            raise RuntimeError(f"POST: {answer.status_code} {answer.text[:300]}")
        run_workers(conn, settings)
        status = JobStatus.model_validate(http.get(answer.headers["Location"]).json())
        deadline = time.monotonic() + 10
        while len(receiver.arrivals) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        if status.status != "finished" or status.ended_at is None or len(receiver.arrivals) == before:
            raise RuntimeError(
                f"round {round_}: {status.status}, {len(receiver.arrivals) - before} deliveries"
            )
        latencies.append((receiver.arrivals[before][0] - status.ended_at).total_seconds())
    return latencies


def main() -> list[dict[str, str]]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import httpx
    import redis
    import torch

    from service.commands.embedded_redis import EmbeddedRedis
    from service.http.app import create_app
    from service.settings import load_settings
    from tests.service.helpers import serve

    torch.set_num_threads(1)
    receiver = Receiver()
    try:
        with tempfile.TemporaryDirectory(prefix="neuronlens-bench-hooks-") as root, EmbeddedRedis() as server:
            environment = {
                "NEURONLENS_REDIS_URL": server.url,
                "NEURONLENS_ARTIFACT_URL": str(Path(root) / "artifacts"),
                "NEURONLENS_DEVICE": "cpu",
                "HF_HUB_OFFLINE": "1",
                "NEURONLENS_WEBHOOK_SECRET": SECRET,
                "NEURONLENS_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
                "NEURONLENS_WEBHOOK_ALLOW_LOOPBACK": "true",
            }
            with bench_environment(environment):
                settings = load_settings()
                conn = redis.Redis.from_url(server.url)
                with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=300) as http:
                    latencies = _rounds(http, conn, settings, receiver)
                conn.close()
    finally:
        receiver.close()
    return [
        {
            "figure": "webhook delivery after a job ends (median / max)",
            "value": f"{1000 * statistics.median(latencies):.0f} ms / {1000 * max(latencies):.0f} ms",
            "goal": "-",
            "detail": f"{len(latencies)} jobs of 3 minilm-l6 neurons (baseline), from the job's ended_at "
            "to the signed delivery at a loopback receiver, the project's worker working every queue; "
            f"{load_average()}",
        }
    ]


if __name__ == "__main__":
    for row in main():
        print(" | ".join(row.values()))
