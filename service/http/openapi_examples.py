"""Examples shown in the OpenAPI document, built from the contract's own models (so they always validate)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.contract import (
    CostEstimate,
    DatasetRef,
    DictionaryLayer,
    DictionaryLayerQuality,
    DictionaryQuality,
    DictionarySpec,
    Exemplar,
    Explanation,
    ExplanationAccepted,
    JobStatus,
    LLMEstimate,
    NeuronListing,
    NeuronReport,
    Progress,
    Provenance,
    ScanEstimate,
    Simulation,
    TypeEvidence,
    load_registry,
)
from service.contract.comparisons import ComparisonEstimate, ComparisonStatus, NeuronComparison
from service.contract.job_list import JobList, JobSummary
from service.reports.listing import summarize

JOB_ID = "exp-3f1c2a9b8e7d6c5b4a392817"
CREATED = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

EXPLANATION_REQUESTS: dict[str, dict[str, Any]] = {
    "two neurons": {"model": "minilm-l6", "layer": 3, "neurons": [42, 7]},
    "a range, LLM explainer with 3 candidates": {
        "model": "minilm-l6",
        "layer": 3,
        "neurons": {"start": 0, "stop": 64},
        "explainer": "openai",
        "simulator": "openai",
        "candidates": 3,
    },
}


def neuron_report() -> NeuronReport:
    """A small but complete text-neuron report, as an explain worker stores it."""
    tokens = ["the", "red", "car", "stopped"]
    return NeuronReport(
        model="minilm-l6",
        model_revision=load_registry().model("minilm-l6").revision,
        layer=3,
        neuron=42,
        hook="mlp.act",
        neuron_type="text",
        type_evidence=TypeEvidence(
            p_visual=0.0, p_text=0.92, p_multimodal=0.0, p_unknown=0.08, n_samples=50, high_confidence=True
        ),
        max_activation=3.1,
        exemplars=[
            Exemplar(
                sample_id=1207,
                rank=0,
                kind="text",
                tokens=tokens,
                activations=[0.0, 3.1, 0.4, 0.0],
                activations_norm=[0.0, 10.0, 1.3, 0.0],
                max_activation=3.1,
            )
        ],
        explanation=Explanation(
            text='colour words, mostly "red"', backend="baseline", model="baseline-v1", prompt_version="1"
        ),
        simulation=Simulation(
            correlation=0.71,
            method="pooled-pearson",
            backend="baseline",
            model="baseline-v1",
            n_top=10,
            n_random=10,
            n_tokens=320,
            parse_failures=0,
        ),
        dataset=DatasetRef(id="text-probe", revision="1", n_samples=4096, n_tokens=61234),
        provenance=Provenance(
            pipeline_version="0.1.0",
            scan_id="scan-9a8b7c6d5e4f3a2b1c0d9e8f",
            seed=0,
            created_at=CREATED,
            timings_s={"explain": 0.002, "simulate": 0.004},
            llm_tokens={"prompt": 0, "completion": 0},
        ),
    )


def accepted() -> ExplanationAccepted:
    return ExplanationAccepted(job_id=JOB_ID, status_url=f"/v1/jobs/{JOB_ID}")


def job_queued() -> JobStatus:
    return JobStatus(
        job_id=JOB_ID,
        status="queued",
        progress=Progress(done=0, total=2),
        queue_position=0,
        created_at=CREATED,
    )


CANCELLED = {"status": "cancelled", "queue_position": None, "ended_at": CREATED}


def job_list() -> JobList:
    finished = job_finished()
    row = JobSummary(
        job_id=JOB_ID,
        model="minilm-l6",
        layers=[3],
        neurons=1,
        **finished.model_dump(include={"status", "progress", "created_at", "started_at", "ended_at"}),
    )
    return JobList(jobs=[row], next_cursor="MjAyNi0wMS0wMVQwMDowMDowMCswMDowMHxleHAtMDEyMw")


def job_finished() -> JobStatus:
    report = neuron_report()
    return JobStatus(
        job_id=JOB_ID,
        status="finished",
        progress=Progress(done=1, total=1),
        created_at=CREATED,
        started_at=CREATED,
        ended_at=CREATED,
        reports=[report],
        reports_total=1,
    )


def layer_listing() -> NeuronListing:
    report = neuron_report()
    variant = "0123456789abcdef"
    return NeuronListing(
        model=report.model,
        layer=report.layer,
        variant=variant,
        total=1,
        offset=0,
        neurons=[summarize(report.model_dump_json().encode())],
    )


def cost_estimate() -> CostEstimate:
    """A dry run's answer for 64 neurons of a scanned layer, on an endpoint with prices."""
    return CostEstimate(
        model="minilm-l6",
        layers=[3],
        neurons=64,
        reports_stored=0,
        neurons_to_explain=64,
        scan=ScanEstimate(
            layers_to_scan=[],
            passes=0,
            passes_basis="one forward pass records every requested layer",
            samples=0,
            tokens=0,
        ),
        llm=LLMEstimate(calls=1344, prompt_tokens=412_000, completion_tokens=21_500, cost_usd=0.0747),
        token_basis="records",
        basis="LLM calls and tokens from the prompt sizes of this layer's actual records",
        endpoint="default",
    )


COMPARISON_REQUESTS: dict[str, Any] = {
    "a fine-tune against its base": {
        "base": "tiny-bert-planted",
        "target": "tiny-bert-changed",
        "layers": [0],
        "neurons": "all",
    },
    "every layer, no fresh explanations": {
        "base": "minilm-l6",
        "target": "minilm-l6-finetuned",
        "layers": "all",
        "neurons": {"start": 0, "stop": 64},
        "reexplain": "none",
    },
}
"""Request bodies of `POST /v1/comparisons` shown in the OpenAPI document."""


def neuron_comparison() -> NeuronComparison:
    return NeuronComparison(
        base_model="tiny-bert-planted",
        target_model="tiny-bert-changed",
        layer=0,
        neuron=10,
        verdict="changed",
        pearson_max=0.05,
        pearson_tokens=0.02,
        n_tokens=960,
        jaccard_top=0.03,
        base_max=3.1,
        target_max=2.9,
        max_ratio=0.94,
        base_density=0.21,
        target_density=0.04,
        density_change=-0.17,
        base_type="text",
        target_type="text",
        base_explanation="numbers (digit tokens)",
        base_score=0.98,
        base_score_on_target=0.02,
        score_drop=0.96,
        target_explanation='the question mark "?"',
        target_score=0.95,
    )


def comparison_status() -> ComparisonStatus:
    return ComparisonStatus(
        comparison_id="cmp-0f3c2a9d8b7e6f5a4b3c2d1e",
        status="finished",
        base="tiny-bert-planted",
        target="tiny-bert-changed",
        layers=[0],
        progress=Progress(done=128, total=128),
        base_job_id="exp-1fff0037066397d14e22b973",
        verdicts={"unchanged": 101, "changed": 13, "rescaled": 8, "dead": 6},
        comparisons=[neuron_comparison()],
        comparisons_total=128,
    )


def comparison_estimate() -> ComparisonEstimate:
    base = cost_estimate()
    rescore = 128 * 2 * 10
    return ComparisonEstimate(
        base=base,
        target_scan=base.scan,
        neurons=128,
        rescore_llm_calls=rescore,
        explanation_calls_max=128,
        llm_calls_max=base.llm.calls + rescore + 128,
    )


def dictionary_quality() -> DictionaryQuality:
    spec = DictionarySpec(
        id="minilm-sae",
        kind="sae",
        hook="mlp_act",
        latents=3072,
        layers=[DictionaryLayer(layer=2, path="/data/saes/minilm/layer_2")],
        revision="2026-12-01",
    )
    layer = DictionaryLayerQuality(
        layer=2,
        scanned=True,
        digest="5f0c2b6e9d1a4c3b8e7f6a5d4c3b2a19",
        format="sae-lens",
        architecture="topk",
        fvu=0.162,
        tokens=17769,
        dead=98,
        dense=0,
        dense_fraction=0.1,
        density_quantiles={"0.1": 0.0003, "0.5": 0.0041, "0.9": 0.021, "0.99": 0.058},
    )
    return DictionaryQuality(model="minilm-l6", dataset="text-probe-v2", dictionary=spec, layers=[layer])


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", exclude_none=True)


def response_examples() -> dict[tuple[str, str], dict[str, Any]]:
    """(operationId, status) → {example name: JSON value} of each documented success answer."""
    return {
        ("listModels", "200"): {"served models": [dump(m) for m in load_registry().models]},
        ("getDictionaryQuality", "200"): {"one layer scanned": dump(dictionary_quality())},
        ("createExplanation", "202"): {"job queued": dump(accepted())},
        ("createExplanation", "200"): {
            "every report already stored": dump(job_finished()),
            "dry run": dump(cost_estimate()),
        },
        ("createComparison", "202"): {
            "comparison queued": {
                "comparison_id": "cmp-0f3c2a9d8b7e6f5a4b3c2d1e",
                "status_url": "/v1/comparisons/cmp-0f3c2a9d8b7e6f5a4b3c2d1e",
            }
        },
        ("createComparison", "200"): {"dry run": dump(comparison_estimate())},
        ("getComparison", "200"): {"finished": dump(comparison_status())},
        ("exportComparison", "200"): {"rows": dump(neuron_comparison())},
        ("getJob", "200"): {"queued": dump(job_queued()), "finished": dump(job_finished())},
        ("listJobs", "200"): {"a page": dump(job_list())},
        ("cancelJob", "200"): {"cancelled": dump(job_queued().model_copy(update=CANCELLED))},
        ("getNeuronReport", "200"): {"a text neuron": dump(neuron_report())},
        ("getNeuronPage", "200"): {"page": "<!doctype html><html><head><title>minilm-l6 3/42</title>…"},
        ("listLayerNeurons", "200"): {"a layer": dump(layer_listing())},
        ("getHomePage", "200"): {"page": "<!doctype html><html><head><title>NeuronLens</title>…"},
        ("getLayerPage", "200"): {"page": "<!doctype html><html><head><title>minilm-l6 layer 3</title>…"},
        ("getJobPage", "200"): {"page": "<!doctype html><html><head><title>job exp-…</title>…"},
        ("getComparisonPage", "200"): {"page": "<!doctype html><html><head><title>Comparison cmp-…</title>…"},
        ("getComparedNeuronPage", "200"): {
            "page": "<!doctype html><html><head><title>tiny-bert-planted → tiny-bert-changed · layer 0 · "
            "neuron 10</title>…"
        },
        ("healthz", "200"): {"alive": {"status": "ok"}},
        ("readyz", "200"): {"ready": {"status": "ready"}},
        ("metrics", "200"): {
            "scrape": "# TYPE neuronlens_redis_up gauge\nneuronlens_redis_up 1.0\n"
            'neuronlens_queue_jobs{queue="scan",state="queued"} 0.0\n'
        },
    }


PROBLEM_DETAILS = {
    "400": ("malformed-request", "Malformed request", "the request body is not valid JSON (Expecting value)"),
    "401": ("unauthorized", "Unauthorized", "an API key is required: send `Authorization: Bearer <key>`"),
    "403": ("forbidden", "Forbidden", "key 'team-a' has scopes read; POST /v1/explanations needs `submit`"),
    "404": ("not-found", "Not found", "no report stored for minilm-l6 layer 3 neuron 42 (…)"),
    "406": (
        "not-acceptable",
        "Not acceptable",
        "/v1/neurons/minilm-l6/3/42 is available as application/json only",
    ),
    "409": (
        "job-not-finished",
        "Job not finished",
        "job 'exp-…' is explaining: its reports export once it is finished (GET /v1/jobs/exp-… follows it)",
    ),
    "422": ("invalid-request", "Invalid request", "invalid fields: layer"),
    "429": (
        "rate-limited",
        "Too many requests",
        "key 'team-a' made 60 requests in the last minute, its limit",
    ),
    "503": ("redis-unavailable", "Redis unavailable", "Redis is unreachable; retry later"),
}


def problem_example(status: str, path: str) -> dict[str, Any]:
    slug, title, detail = PROBLEM_DETAILS.get(status, ("internal-error", "Internal server error", "…"))
    return {
        "type": f"urn:neuronlens:problem:{slug}",
        "title": title,
        "status": int(status),
        "detail": detail,
        "instance": path,
        "request_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
