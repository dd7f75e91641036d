"""Cost before spending (issue 9): dry-run estimates, request budgets and the usage reports and job status
carry, through the API and a real RQ worker against the HTTP LLM peer (tests/llm_peer), which bills
prompt tokens as characters ÷ 4 and records every call."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis

from service.contract import CostEstimate, JobStatus
from service.http.app import create_app
from service.settings import Settings, load_settings
from tests.llm_peer import LLMPeer
from tests.service import test_llm_jobs
from tests.service.helpers import run_workers, serve

pytestmark = pytest.mark.timeout(300)

llm_env = test_llm_jobs.llm_env
"""The LLM test environment (settings from NEURONLENS_* variables pointing at the peer), shared."""
LAYER = test_llm_jobs.LAYER

NEURONS = {"start": 0, "stop": 4}
"""With the default chance null (k = 5) each neuron costs 1 + 20 × 6 requests."""
PRICES = {"NEURONLENS_LLM_PROMPT_USD_PER_MTOK": "2.5", "NEURONLENS_LLM_COMPLETION_USD_PER_MTOK": "10"}
"""USD per million prompt and completion tokens of the default endpoint."""

Env = tuple[pytest.MonkeyPatch, Settings]


def _settings(llm_env: Env, peer: LLMPeer, prices: dict[str, str] | None = None) -> Settings:
    monkeypatch, _ = llm_env
    monkeypatch.setenv("NEURONLENS_LLM_BASE_URL", peer.base_url)
    for name, value in (prices or {}).items():
        monkeypatch.setenv(name, value)
    return load_settings()


def _run(http: httpx.Client, conn: redis.Redis, settings: Settings, body: dict[str, Any]) -> JobStatus:
    answer = http.post("/v1/explanations", json=body)
    assert answer.status_code == 202, answer.text
    run_workers(conn, settings)
    return JobStatus.model_validate(http.get(answer.headers["Location"]).json())


def _peer_usage(peer: LLMPeer, since: int = 0) -> tuple[int, int, int]:
    requests = peer.requests[since:]
    return (
        len(requests),
        sum(r.prompt_tokens for r in requests),
        sum(r.completion_tokens for r in requests),
    )


def llm_cost_per_call(estimate: CostEstimate) -> float:
    assert estimate.llm.cost_usd is not None and estimate.llm.calls
    return estimate.llm.cost_usd / estimate.llm.calls


def _cost(prompt: int, completion: int) -> float:
    return (prompt * 2.5 + completion * 10) / 1e6


def test_dry_run_enqueues_nothing_and_matches_what_the_peer_then_bills(
    llm_env: Env, redis_conn: redis.Redis
) -> None:
    base = {"model": "minilm-l6", "layer": LAYER, "neurons": NEURONS}
    with LLMPeer() as peer:
        settings = _settings(llm_env, peer, PRICES)
        with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=120) as http:
            # An openai request on another neuron scans the layer and writes its prompt profile.
            first = {**base, "neurons": [200], "options": {"chance_explanations": 0}}
            scanned = _run(http, redis_conn, settings, first)
            assert scanned.status == "finished" and peer.calls > 0
            before = len(peer.requests)

            keys_before = set(redis_conn.keys("*"))
            answer = http.post("/v1/explanations", json={**base, "dry_run": True})
            assert answer.status_code == 200, answer.text
            estimate = CostEstimate.model_validate(answer.json())
            assert set(redis_conn.keys("*")) == keys_before  # no job, no queue entry, no counter
            assert redis_conn.llen("rq:queue:explain") == redis_conn.llen("rq:queue:scan") == 0
            assert estimate.token_basis == "records" and estimate.scan.passes == 0
            assert (estimate.neurons, estimate.reports_stored, estimate.neurons_to_explain) == (4, 0, 4)

            # A cost budget below one call's estimated cost could make no call: refused up front.
            tiny = {**base, "budget": {"max_cost_usd": llm_cost_per_call(estimate) / 2}}
            refused = http.post("/v1/explanations", json=tiny)
            assert refused.status_code == 422, refused.text
            assert [problem["field"] for problem in refused.json()["errors"]] == ["budget.max_cost_usd"]
            assert set(redis_conn.keys("*")) == keys_before

            status = _run(http, redis_conn, settings, base)
    assert status.status == "finished", status.error
    calls, prompt, completion = _peer_usage(peer, before)
    llm = estimate.llm
    assert llm.calls == calls
    assert llm.prompt_tokens is not None and llm.completion_tokens is not None and llm.cost_usd is not None
    assert abs(llm.prompt_tokens / prompt - 1) <= 0.05, (llm.prompt_tokens, prompt)
    assert abs(llm.completion_tokens / completion - 1) <= 0.05, (llm.completion_tokens, completion)
    assert abs(llm.cost_usd / _cost(prompt, completion) - 1) <= 0.05
    # What was spent, as the job status and the reports carry it, is what the peer billed.
    assert status.usage is not None
    assert (status.usage.calls, status.usage.prompt_tokens, status.usage.completion_tokens) == (
        calls,
        prompt,
        completion,
    )
    assert status.usage.cost_usd == pytest.approx(_cost(prompt, completion))
    assert status.reports is not None and len(status.reports) == 4
    # The chance null (k = 5 by default): the job explained the layer's 6 donors first (none of them is
    # among neurons 0-3: layer 2's donors are 652, 1108, 1010, 1063, 1191, 124), then simulated 5 of
    # their explanations on every neuron's 20 held-out records.
    donors = [r for r in peer.requests[before:] if r.role == "explainer"][:6]
    assert not {652, 1108, 1010, 1063, 1191, 124} & set(range(4))
    assert all(r.simulation.chance is not None and r.simulation.chance.k == 5 for r in status.reports)
    assert all(
        r.provenance.llm_calls == {"explainer": 1, "simulator": 20, "chance": 100} for r in status.reports
    )
    # What each report carries is its neuron's calls; the donors' explanations are the job's alone.
    provenances = [r.provenance for r in status.reports]
    assert sum(p.llm_tokens["prompt"] for p in provenances) + sum(r.prompt_tokens for r in donors) == prompt
    assert (
        sum(p.llm_tokens["completion"] for p in provenances) + sum(r.completion_tokens for r in donors)
        == completion
    )
    assert sum(sum((p.llm_calls or {}).values()) for p in provenances) + len(donors) == calls
    reported_cost = sum(p.llm_cost_usd or 0 for p in provenances)
    donor_cost = _cost(sum(r.prompt_tokens for r in donors), sum(r.completion_tokens for r in donors))
    assert reported_cost + donor_cost == pytest.approx(_cost(prompt, completion))
    assert not status.budget_exhausted and status.not_done is None


def test_a_call_budget_stops_the_job_cleanly_and_keeps_what_it_finished(
    llm_env: Env, redis_conn: redis.Redis
) -> None:
    # n_holdout 2: five calls per neuron; one call in flight (NEURONLENS_LLM_CONCURRENCY=1).
    body = {
        "model": "minilm-l6",
        "layer": LAYER,
        "neurons": [3, 5, 7, 9, 11, 13],
        "options": {"n_holdout": 2, "chance_explanations": 0},
        "budget": {"max_llm_calls": 12},
    }
    with LLMPeer() as peer:
        settings = _settings(llm_env, peer)
        with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=120) as http:
            status = _run(http, redis_conn, settings, body)
    calls, prompt, completion = _peer_usage(peer)
    assert calls <= 12
    assert status.status == "finished" and status.error is None
    assert status.budget_exhausted
    assert status.reports is not None
    done = sorted(r.neuron for r in status.reports)
    assert len(done) == 2 and calls == 12  # two whole neurons, the third abandoned after two calls
    assert status.progress.done == 2
    assert status.not_done is not None and len(status.not_done) == 1
    assert status.not_done[0].layer == LAYER
    assert sorted(status.not_done[0].neurons + done) == [3, 5, 7, 9, 11, 13]
    assert status.usage is not None
    assert (status.usage.calls, status.usage.prompt_tokens, status.usage.completion_tokens) == (
        calls,
        prompt,
        completion,
    )
    assert status.usage.cost_usd is None  # no prices configured


def test_a_cost_budget_stops_once_the_spent_cost_reaches_it(llm_env: Env, redis_conn: redis.Redis) -> None:
    body = {
        "model": "minilm-l6",
        "layer": LAYER,
        "neurons": [3, 5, 7],
        "options": {"n_holdout": 2},
        "budget": {"max_cost_usd": 0.004},
    }
    with LLMPeer() as peer:
        settings = _settings(llm_env, peer, PRICES)
        with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=120) as http:
            status = _run(http, redis_conn, settings, body)
    calls, prompt, completion = _peer_usage(peer)
    assert status.status == "finished" and status.budget_exhausted
    assert status.usage is not None and status.usage.cost_usd is not None
    spent = _cost(prompt, completion)
    assert status.usage.cost_usd == pytest.approx(spent)
    # Each call reserved its estimated cost first: the calls in flight count, so the budget is overrun by
    # the one call that reached it at most.
    most = max(_cost(r.prompt_tokens, r.completion_tokens) for r in peer.requests)
    assert spent < 0.004 + most
    assert status.usage.calls == calls and status.usage.calls_unanswered == 0
    assert calls < 15


@pytest.mark.parametrize(
    ("extra", "prices", "field"),
    [
        ({"budget": {"max_cost_usd": 1.0}}, None, "budget.max_cost_usd"),
        (
            {"budget": {"max_llm_calls": 5}, "explainer": "baseline", "simulator": "baseline"},
            PRICES,
            "budget",
        ),
    ],
)
def test_budgets_that_cannot_hold_are_refused(
    llm_env: Env, redis_conn: redis.Redis, extra: dict[str, Any], prices: dict[str, str] | None, field: str
) -> None:
    with LLMPeer() as peer:
        settings = _settings(llm_env, peer, prices)
        with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
            answer = http.post(
                "/v1/explanations", json={"model": "minilm-l6", "layer": LAYER, "neurons": [1], **extra}
            )
    assert answer.status_code == 422, answer.text
    assert [problem["field"] for problem in answer.json()["errors"]] == [field]
    assert redis_conn.keys("rq:job:*") == []
