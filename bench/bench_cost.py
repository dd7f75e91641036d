"""Cost before spending (issue 9): a dry run's estimate ÷ what the LLM then actually billed, for LLM calls,
prompt tokens, completion tokens and USD (goal: within 5%).

Through the real API (`service.http.app.create_app` under uvicorn on loopback), a private Redis and the
project's own RQ worker (in this process, torch on one thread, as tests/service/helpers.run_workers runs
it) against the OpenAI-compatible peer (tests/llm_peer, in this process; the real `openai` client makes
every call; the peer bills prompt tokens as characters ÷ 4 and records every call). Per case, on
minilm-l6 over its default probe set: an `openai` request on another neuron scans the layers (and so
writes their prompt profiles; its calls are not counted), then `"dry_run": true` for the `openai`
explainer and simulator answers a CostEstimate, then the same request runs and the peer's recorded
calls and tokens are the actual. Prices are set as a user would (NEURONLENS_LLM_PROMPT_USD_PER_MTOK /
NEURONLENS_LLM_COMPLETION_USD_PER_MTOK).
The figures are counts, not timings: load changes only how long the bench takes, printed beside them.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from bench/
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import load_average  # noqa: E402  (after the path set-up above)

MODEL = "minilm-l6"
CASES: list[tuple[str, dict[str, Any]]] = [
    ("layer 3, neurons 0–47", {"layer": 3, "neurons": {"start": 0, "stop": 48}}),
    ("layers [1, 4], neurons 0–23 of each", {"layers": [1, 4], "neurons": {"start": 0, "stop": 24}}),
]
"""(label, request fields) of each case: one layer of a few dozen neurons, and two layers via `layers`."""
PROMPT_USD_PER_MTOK, COMPLETION_USD_PER_MTOK = 2.5, 10.0
"""Prices of the default endpoint, USD per million prompt / completion tokens."""
GOAL = "within 5% (0.95–1.05)"


@contextmanager
def bench_environment(values: dict[str, str]) -> Iterator[None]:
    """The environment the API and the worker read their settings from: every NEURONLENS_ variable (and
    OPENAI_BASE_URL) of the caller's environment set aside, ``values`` set; all restored afterwards, so
    later benches in the same `bench/run.py` process see the environment they were started with."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("NEURONLENS_") or n == "OPENAI_BASE_URL"]:
        del os.environ[name]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_request(http: Any, conn: Any, settings: Any, body: dict[str, Any]) -> Any:
    """POST ``body`` (202), work the queues until empty, return the finished JobStatus."""
    from service.contract import JobStatus
    from tests.service.helpers import run_workers

    answer = http.post("/v1/explanations", json=body)
    if answer.status_code != 202:
        raise RuntimeError(f"POST {body}: {answer.status_code} {answer.text[:300]}")
    run_workers(conn, settings)
    status = JobStatus.model_validate(http.get(answer.headers["Location"]).json())
    if status.status != "finished" or status.budget_exhausted:
        raise RuntimeError(f"request {body} ended {status.status}: {status.error}")
    return status


PRIMING_NEURON = 200
"""The neuron of the request that scans and profiles the layers first (outside every measured range)."""


def estimate_and_actual(
    http: Any, conn: Any, settings: Any, peer: Any, fields: dict[str, Any]
) -> tuple[Any, tuple[int, int, int]]:
    """(the dry run's CostEstimate, (calls, prompt tokens, completion tokens) the peer billed) of a case."""
    from service.contract import CostEstimate

    base = {"model": MODEL, **fields}
    body = {**base, "explainer": "openai", "simulator": "openai"}
    # An openai request on another neuron scans the layers and writes their prompt profiles.
    run_request(http, conn, settings, {**body, "neurons": [PRIMING_NEURON]})
    before = len(peer.requests)
    answer = http.post("/v1/explanations", json={**body, "dry_run": True})
    if answer.status_code != 200:
        raise RuntimeError(f"dry run: {answer.status_code} {answer.text[:300]}")
    estimate = CostEstimate.model_validate(answer.json())
    if estimate.token_basis != "records" or estimate.neurons_to_explain != estimate.neurons:
        raise RuntimeError(f"the dry run did not estimate from the scanned records: {estimate}")
    run_request(http, conn, settings, body)
    billed = peer.requests[before:]
    if any(r.status != 200 for r in billed):
        raise RuntimeError("the peer answered a call with an error (no fault was injected)")
    actual = (
        len(billed),
        sum(r.prompt_tokens for r in billed),
        sum(r.completion_tokens for r in billed),
    )
    return estimate, actual


def case_rows(
    label: str, estimate: Any, actual: tuple[int, int, int], seconds: float
) -> list[dict[str, str]]:
    calls, prompt, completion = actual
    llm = estimate.llm
    if llm.prompt_tokens is None or llm.completion_tokens is None or llm.cost_usd is None:
        raise RuntimeError(f"the dry run left tokens or cost out: {llm}")
    cost = (prompt * PROMPT_USD_PER_MTOK + completion * COMPLETION_USD_PER_MTOK) / 1e6
    where = f"{MODEL} {label} ({estimate.neurons} neurons, default options)"
    load = f"case {seconds:.0f}s; {load_average()}"
    figures = [
        ("LLM calls", llm.calls, calls, f"{llm.calls} estimated / {calls} made"),
        ("prompt tokens", llm.prompt_tokens, prompt, f"{llm.prompt_tokens:,} / {prompt:,} (peer: chars ÷ 4)"),
        (
            "completion tokens",
            llm.completion_tokens,
            completion,
            f"{llm.completion_tokens:,} / {completion:,}",
        ),
        (
            "cost USD",
            llm.cost_usd,
            cost,
            f"${llm.cost_usd:.4f} / ${cost:.4f} "
            f"at ${PROMPT_USD_PER_MTOK}/${COMPLETION_USD_PER_MTOK} per Mtok prompt/completion",
        ),
    ]
    return [
        {
            "figure": f"dry-run ÷ actual {name}: {where}",
            "value": f"{estimated / spent:.3f}",
            "goal": GOAL,
            "detail": f"{numbers}; {load}",
        }
        for name, estimated, spent, numbers in figures
    ]


def measure() -> list[dict[str, str]]:
    """Every case's rows, in a private Redis, artifact store and peer."""
    import httpx
    import redis

    from service.commands.embedded_redis import EmbeddedRedis
    from service.http.app import create_app
    from service.settings import load_settings
    from tests.llm_peer import LLMPeer
    from tests.service.helpers import serve

    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="neuronlens-bench-cost-") as root, EmbeddedRedis() as server:
        with LLMPeer() as peer:
            environment = {
                "NEURONLENS_REDIS_URL": server.url,
                "NEURONLENS_ARTIFACT_URL": str(Path(root) / "artifacts"),
                "NEURONLENS_DEVICE": "cpu",
                "HF_HUB_OFFLINE": "1",
                "NEURONLENS_LLM_BASE_URL": peer.base_url,
                "NEURONLENS_LLM_API_KEY": "bench",
                "NEURONLENS_EXPLAINER_MODEL": "peer-explainer",
                "NEURONLENS_SIMULATOR_MODEL": "peer-simulator",
                "NEURONLENS_LLM_PROMPT_USD_PER_MTOK": str(PROMPT_USD_PER_MTOK),
                "NEURONLENS_LLM_COMPLETION_USD_PER_MTOK": str(COMPLETION_USD_PER_MTOK),
            }
            with bench_environment(environment):
                settings = load_settings()
                conn = redis.Redis.from_url(server.url)
                with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=300) as http:
                    for label, fields in CASES:
                        started = time.perf_counter()
                        estimate, actual = estimate_and_actual(http, conn, settings, peer, fields)
                        rows += case_rows(label, estimate, actual, time.perf_counter() - started)
                conn.close()
    return rows


def main() -> list[dict[str, str]]:
    import torch

    torch.set_num_threads(1)
    # Not one INFO line per LLM call (two thousand of them) on stderr; restored afterwards.
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpx2")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return measure()
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


if __name__ == "__main__":
    from bench.run import markdown_table

    print(markdown_table(main()))
