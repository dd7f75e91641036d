"""API figures: stored-report GET /v1/neurons/… requests/s ÷ a bare Litestar route's (keys off; keys and
per-key rate limiting on; and conditional GETs answered 304 with keys on), and their latency.

Both servers run side by side in one run with the same server settings (uvicorn, one worker, no access
log, loopback): the NeuronLens app from ``service.http.app:app_from_env`` over a private Redis holding one
stored report (its object in a temporary artifact store, its id in the Redis index, as a worker stores
it), and a bare Litestar app with one GET that returns a constant JSON object. The load
generator is a separate process (keep-alive HTTP/1.1 over raw asyncio sockets, so the client is not the
bottleneck), bounded in time and request count. Rounds alternate between the two servers and the best
round of each is kept, which evens out noise from other processes on the machine. With keys on
(`NEURONLENS_AUTH=keys`) every request also looks its key up in Redis and counts it in the key's
moving window (service/access/auth.py, service/access/ratelimit.py): two more Redis round trips.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 16
"""Concurrent keep-alive connections of the load generator."""
ROUND_S = 3.0
"""Seconds of measured load per round (after WARMUP_S)."""
WARMUP_S = 0.5
MAX_REQUESTS = 200_000
"""Upper bound on requests per round, whatever the speed."""
ROUNDS = 3
"""Rounds per server, alternating."""
REPORT_LAYER, REPORT_NEURON = 3, 42


# --------------------------------------------------------------------------- the bare app (uvicorn factory)


def bare_app() -> Any:
    """The baseline: a Litestar app with one GET returning a constant JSON object."""
    from litestar import Litestar, get

    @get("/bare", sync_to_thread=False)
    def bare() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([bare])


# --------------------------------------------------------------------------- load generator (own process)


async def _connection_loop(
    host: str,
    port: int,
    request: bytes,
    stop_at: float,
    budget: list[int],
    latencies: list[float],
    expect: bytes = b"HTTP/1.1 200",
) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        while time.perf_counter() < stop_at and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(expect):
                errors += 1
    finally:
        writer.close()
    return errors


async def _load(
    url_host: str,
    port: int,
    path: str,
    seconds: float,
    connections: int,
    max_requests: int,
    headers: dict[str, str],
    expect: int,
) -> dict[str, Any]:
    lines = [f"GET {path} HTTP/1.1", f"Host: {url_host}:{port}", "Accept: application/json"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    status = f"HTTP/1.1 {expect}".encode()
    warm: list[float] = []
    await asyncio.gather(
        *(
            _connection_loop(url_host, port, request, time.perf_counter() + WARMUP_S, [10_000], warm, status)
            for _ in range(connections)
        )
    )
    latencies: list[float] = []
    budget = [max_requests]
    started = time.perf_counter()
    errors = await asyncio.gather(
        *(
            _connection_loop(url_host, port, request, started + seconds, budget, latencies, status)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "warm_requests": len(warm),
        "seconds": elapsed,
        "errors": sum(errors),
        "latencies": latencies,
    }


def run_load(
    host: str,
    port: int,
    path: str,
    seconds: float,
    connections: int,
    max_requests: int,
    headers: dict[str, str] | None = None,
    expect: int = 200,
) -> dict[str, Any]:
    result = asyncio.run(_load(host, port, path, seconds, connections, max_requests, headers or {}, expect))
    latencies = sorted(result.pop("latencies"))
    if not latencies:
        raise RuntimeError(f"no request to {path} completed")
    result["rps"] = result["requests"] / result["seconds"]
    result["p50_ms"] = 1000 * latencies[len(latencies) // 2]
    result["p99_ms"] = 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return result


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    port: int, pid: int, path: str, headers: dict[str, str] | None = None, expect: int = 200
) -> dict[str, Any]:
    """One round of load from a separate process; adds the server's CPU time per request."""
    cpu_before = _cpu_s(pid)
    args = [str(port), path, str(ROUND_S), str(CONNECTIONS), str(MAX_REQUESTS), json.dumps(headers or {})]
    args.append(str(expect))
    done = subprocess.run(
        [sys.executable, __file__, "--load", *args],
        capture_output=True,
        text=True,
        timeout=ROUND_S + WARMUP_S + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if result["errors"]:
        raise RuntimeError(
            f"{result['errors']} of {result['requests']} requests to {path} did not answer {expect}"
        )
    served = result["requests"] + result["warm_requests"]
    result["cpu_us"] = 1e6 * (_cpu_s(pid) - cpu_before) / served
    return result


# --------------------------------------------------------------------------- servers


@contextmanager
def uvicorn_server(app: str, env: dict[str, str], app_dir: Path) -> Iterator[tuple[int, int]]:
    """``uvicorn --factory app`` with one worker (so in one process) on a free loopback port;
    yields (port, pid)."""
    import httpx

    from bench._common import stop_process
    from service.commands.embedded_redis import free_port

    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", app,
        "--app-dir", str(app_dir), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{app} exited: {process.stderr.read().decode()[-500:] if process.stderr else ''}"
                )
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not listen on port {port} within 30 s") from None
                time.sleep(0.1)
        yield port, process.pid
    finally:
        stop_process(process)


def _stored_report() -> tuple[str, str, Any]:
    """A schema-valid report of the default size (20 exemplars of 16 tokens), the key the API reads and
    its report variant."""
    from service.contract import (
        DatasetRef,
        Exemplar,
        Explanation,
        ExplanationRequest,
        NeuronReport,
        Provenance,
        Simulation,
        TypeEvidence,
        load_registry,
    )
    from service.estimates.validate import resolve_request
    from service.jobs.record import request_report_keys

    model = load_registry().model("minilm-l6")
    request = ExplanationRequest(
        model=model.id,
        layer=REPORT_LAYER,
        neurons=[REPORT_NEURON],
        hook=model.default_hook,
        dataset=model.datasets[0],
    )
    tokens = [f"tok{i}" for i in range(16)]
    exemplars = [
        Exemplar(
            sample_id=rank * 7,
            rank=rank,
            kind="text",
            tokens=tokens,
            activations=[round(0.1 * i, 3) for i in range(16)],
            activations_norm=[round(10 * i / 15, 3) for i in range(16)],
            max_activation=1.5,
        )
        for rank in range(20)
    ]
    report = NeuronReport(
        model=model.id,
        model_revision=model.revision,
        layer=REPORT_LAYER,
        neuron=REPORT_NEURON,
        hook=model.default_hook,
        neuron_type="text",
        type_evidence=TypeEvidence(
            p_visual=0, p_text=0.9, p_multimodal=0, p_unknown=0.1, n_samples=50, high_confidence=True
        ),
        max_activation=1.5,
        exemplars=exemplars,
        explanation=Explanation(
            text='the tokens "tok15", "tok14"', backend="baseline", model="baseline-v1", prompt_version="1"
        ),
        simulation=Simulation(
            correlation=0.7,
            method="pooled-pearson",
            backend="baseline",
            model="baseline-v1",
            n_top=10,
            n_random=10,
            n_tokens=320,
            correlation_top=0.6,
            correlation_random=0.1,
            ci95=[0.6, 0.8],
            parse_failures=0,
        ),
        dataset=DatasetRef(id=model.datasets[0], revision="1", n_samples=4096, n_tokens=60000),
        provenance=Provenance(
            pipeline_version="0.1.0",
            scan_id="bench",
            seed=0,
            created_at=datetime.now(UTC),
            timings_s={"explain": 0.001},
            llm_tokens={"prompt": 0, "completion": 0},
        ),
    )
    resolved = resolve_request(load_registry(), request, max_neurons=1)
    return request_report_keys(resolved)[0], resolved.variant, report


# --------------------------------------------------------------------------- figure


KEY_RATE_PER_MINUTE = 10_000_000
"""The bench key's rate: high enough never to refuse, so every request pays the full limiter cost."""


def _ratio_row(
    figure: str, rounds: list[dict[str, Any]], bare: dict[str, Any], note: str, setup: str
) -> dict[str, str]:
    """A ratio row: the best round of ``rounds`` against the bare route's best round."""
    api = max(rounds, key=lambda r: r["rps"])
    spread = statistics.pstdev([r["rps"] for r in rounds]) / statistics.mean([r["rps"] for r in rounds])
    return {
        "figure": figure,
        "value": f"{api['rps'] / bare['rps']:.2f}",
        "goal": "report (no goal set)",
        "detail": f"{api['rps']:.0f} vs {bare['rps']:.0f} req/s; server CPU per request "
        f"{api['cpu_us']:.0f} vs {bare['cpu_us']:.0f} µs ({note}); {setup}; rounds vary ±{100 * spread:.0f}%",
    }


def main() -> list[dict[str, str]]:
    if str(REPO_ROOT) not in sys.path:  # run as a script from bench/
        sys.path.insert(0, str(REPO_ROOT))
    import redis

    from service.access.api_keys import KeyStore
    from service.commands.embedded_redis import EmbeddedRedis
    from service.contract import RedisKeys
    from service.http.conventions import strong_etag
    from workers.process.report_writer import ReportObjects, store_report

    key, variant, report = _stored_report()
    body = report.model_dump_json().encode()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURONLENS_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    rounds: dict[str, list[dict[str, Any]]] = {"bare": [], "open": [], "keys": [], "keys_304": []}
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory(prefix="neuronlens-bench-api-") as store:
        client = redis.Redis.from_url(server.url)
        store_report(client, RedisKeys(), ReportObjects(store), key, variant, report, None)
        api_key, _ = KeyStore().create(client, "bench", ["read"], rate_per_minute=KEY_RATE_PER_MINUTE)
        client.close()
        api_env = {**env, "NEURONLENS_REDIS_URL": server.url, "NEURONLENS_ARTIFACT_URL": store}
        keys_env = {**api_env, "NEURONLENS_AUTH": "keys"}
        path = f"/v1/neurons/minilm-l6/{REPORT_LAYER}/{REPORT_NEURON}"
        auth = {"Authorization": f"Bearer {api_key}"}
        conditional = {**auth, "If-None-Match": strong_etag(body)}
        with (
            uvicorn_server("service.http.app:app_from_env", api_env, REPO_ROOT) as (api_port, api_pid),
            uvicorn_server("service.http.app:app_from_env", keys_env, REPO_ROOT) as (keys_port, keys_pid),
            uvicorn_server("bench_api:bare_app", env, Path(__file__).resolve().parent) as (
                bare_port,
                bare_pid,
            ),
        ):
            for _ in range(ROUNDS):
                rounds["bare"].append(measure(bare_port, bare_pid, "/bare"))
                rounds["open"].append(measure(api_port, api_pid, path))
                rounds["keys"].append(measure(keys_port, keys_pid, path, auth))
                rounds["keys_304"].append(measure(keys_port, keys_pid, path, conditional, expect=304))
    best = {name: max(results, key=lambda r: r["rps"]) for name, results in rounds.items()}
    bare = best["bare"]
    load = "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    setup = (
        f"{CONNECTIONS} keep-alive connections, 1 uvicorn worker each, no access log, loopback, "
        f"best of {ROUNDS} × {ROUND_S:.0f} s, interleaved; {load}"
    )
    return [
        _ratio_row(
            "API stored-report GET req/s ÷ bare Litestar route req/s (keys off)",
            rounds["open"], bare, f"one file read, no Redis; report {len(body)} B", setup,
        ),
        _ratio_row(
            "API stored-report GET req/s ÷ bare route, keys and rate limiting on",
            rounds["keys"], bare, "adds the key lookup and the moving-window hit in Redis", setup,
        ),
        _ratio_row(
            "API stored-report GET req/s ÷ bare route, keys on, If-None-Match hits (304)",
            rounds["keys_304"], bare, "same work, no body sent", setup,
        ),
        {
            "figure": "API stored-report GET latency p99 (p50)",
            "value": f"{best['open']['p99_ms']:.1f} ms ({best['open']['p50_ms']:.1f} ms)",
            "goal": "report",
            "detail": f"keys on: p99 {best['keys']['p99_ms']:.1f} ms (p50 {best['keys']['p50_ms']:.1f} ms); "
            f"bare route p99 {bare['p99_ms']:.1f} ms (p50 {bare['p50_ms']:.1f} ms), same load",
        },
    ]  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        port, path, seconds, connections, max_requests, headers, expect = sys.argv[2:9]
        print(
            json.dumps(
                run_load(
                    "127.0.0.1",
                    int(port),
                    path,
                    float(seconds),
                    int(connections),
                    int(max_requests),
                    json.loads(headers),
                    int(expect),
                )
            )
        )
    else:
        for row in main():
            print(json.dumps(row, ensure_ascii=False))
