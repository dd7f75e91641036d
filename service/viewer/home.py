"""The home page: the served models (with their planted neurons and layer links) and recent explain jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

import redis
from rq.job import Job
from rq.queue import Queue
from rq.registry import DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from service.contract import ExplanationRequest, JobMeta, JobStatus, ModelSpec, RedisKeys, Registry
from service.contract.objects import ObjectStore
from service.estimates.model_weights import ModelWeights
from service.jobs.record import read_record
from service.jobs.state import job_status
from service.reports.exemplar_links import exemplar_query
from service.viewer.html import layer_path, link, neuron_page_path, page, query_string, type_badge

RECENT_JOBS = 30
"""Explain jobs the home page lists, newest first."""
IDS_PER_REGISTRY = 200
"""Job ids read from the queue and from each RQ registry before sorting by creation time."""


@dataclass(frozen=True)
class RecentJob:
    job_id: str
    request: ExplanationRequest
    variant: str
    state: JobStatus


def recent_jobs(
    connection: redis.Redis, keys: RedisKeys, queue: Queue, store: ObjectStore, limit: int = RECENT_JOBS
) -> list[RecentJob]:
    """The newest requests whose explain parts are still recorded (queued, deferred, running, finished or
    failed), each with the state of the whole request."""
    ids: set[str] = set(queue.get_job_ids(0, IDS_PER_REGISTRY - 1))
    for registry_class in (StartedJobRegistry, DeferredJobRegistry, FinishedJobRegistry, FailedJobRegistry):
        registry = registry_class(queue=queue)
        ids.update(registry.get_job_ids(0, IDS_PER_REGISTRY - 1))
    jobs = [job for job in Job.fetch_many(sorted(ids), connection, serializer=queue.serializer) if job]
    epoch = datetime.min.replace(tzinfo=UTC)
    jobs.sort(key=lambda job: job.created_at or epoch, reverse=True)
    groups: list[str] = []
    for job in jobs:
        group = JobMeta.from_meta(job.meta).group
        if group is not None and group not in groups:
            groups.append(group)
    found = []
    for group in groups[:limit]:
        record = read_record(connection, keys, group)
        status = job_status(connection, keys, store, group, limit=1) if record is not None else None
        if record is not None and status is not None:
            found.append(RecentJob(group, record.request, record.variant, status))
    return found


def _planted_html(models: Sequence[ModelSpec], stored: Mapping[tuple[str, int, int], bool]) -> str:
    """The planted neurons, linked to their pages where a report (default options) is stored."""
    rows = "".join(
        f"<tr><td>{escape(model.id)}</td>"
        f'<td class="num">{link(layer_path(model.id, p.layer), str(p.layer))}</td>'
        f'<td class="num">{_planted_neuron(model.id, p.layer, p.neuron, stored)}</td>'
        f"<td>{type_badge(p.type)}</td><td>{escape(p.concept)}</td></tr>"
        for model in models
        for p in model.planted or []
    )
    if not rows:
        return ""
    return (
        '<h2>Planted neurons</h2><p class="muted">Neurons edited to respond to known inputs: the answers '
        "the pipeline should find. One not explained yet is not linked: explain it with "
        "<code>neuronlens explain --model MODEL --layer LAYER --neuron NEURON</code>.</p>"
        '<table id="planted"><thead><tr><th>model</th><th class="num">layer'
        '</th><th class="num">neuron</th><th>type</th><th>fires on</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _planted_neuron(model: str, layer: int, neuron: int, stored: Mapping[tuple[str, int, int], bool]) -> str:
    if stored.get((model, layer, neuron), False):
        return link(neuron_page_path(model, layer, neuron), str(neuron))
    return f'{neuron} <span class="muted">(not explained yet)</span>'


def _weights_html(model: ModelSpec, weights: ModelWeights | None) -> str:
    """The weights cell: on the workers, missing (and how to add them), or not known."""
    if weights is None or weights.state == "unknown":
        return '<span class="muted">no worker has checked yet</span>'
    hosts = ", ".join(check.host for check in weights.checks)
    if weights.state == "present":
        return f'<span title="checked by workers on {escape(hosts)}">on the workers</span>'
    return (
        f'<span class="badge missing-weights">weights missing</span> <span class="muted">on every worker '
        f"host that checked ({escape(hosts)}); its layers cannot be scanned until they are added. "
        f"{escape(weights.detail)}</span>"
    )


def _models_html(models: Sequence[ModelSpec], weights: Mapping[str, ModelWeights]) -> str:
    rows = []
    for model in models:
        state = weights[model.id].state if model.id in weights else "unknown"
        layers = " ".join(link(layer_path(model.id, layer), str(layer)) for layer in range(model.layers))
        if state == "missing":
            layers = f'<span class="muted">stored reports only: {layers}</span>'
        rows.append(
            f'<tr id="model-{escape(model.id)}" data-weights="{state}"><td><strong>{escape(model.id)}'
            f'</strong><div class="muted">{escape(model.description)}</div></td>'
            f"<td>{escape(model.modality)}</td>"
            f'<td class="num">{model.neurons_per_layer}</td><td class="layers">{layers}</td>'
            f"<td>{escape(', '.join(h.id for h in model.hook_points))}</td>"
            f"<td>{escape(', '.join(model.datasets))}</td>"
            f'<td class="weights">{_weights_html(model, weights.get(model.id))}</td></tr>'
        )
    return (
        '<table id="models"><thead><tr><th>model</th><th>modality</th><th class="num">neurons / layer</th>'
        "<th>layers</th><th>hook points</th><th>probe sets</th><th>weights (as the workers report)</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "–"


def _jobs_html(jobs: Sequence[RecentJob]) -> str:
    if not jobs:
        return '<p class="muted">No explain jobs recorded yet.</p>'
    rows = []
    for job in jobs:
        request, state = job.request, job.state
        neurons = request.neuron_list()
        shown = ", ".join(str(n) for n in neurons[:6]) + (f", … ({len(neurons)})" if len(neurons) > 6 else "")
        query = query_string(exemplar_query(request, job.variant))
        layers = request.layer_list()
        layer = (
            link(layer_path(request.model, layers[0]) + query, f"layer {layers[0]}")
            if len(layers) == 1
            else "layers " + " ".join(link(layer_path(request.model, n) + query, str(n)) for n in layers)
        )
        error = f" — {escape(state.error.type)}" if state.error else ""
        rows.append(
            f"<tr><td>{link(f'/view/jobs/{job.job_id}', job.job_id)}</td>"
            f"<td>{escape(request.model)} {layer}</td><td>{escape(shown)}</td>"
            f"<td>{escape(state.status)}{error}</td>"
            f'<td class="num">{state.progress.done}/{state.progress.total}</td>'
            f"<td>{_time(state.created_at)}</td></tr>"
        )
    return (
        '<table id="jobs"><thead><tr><th>job</th><th>model and layer</th><th>neurons</th><th>status</th>'
        f'<th class="num">done</th><th>created</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def render_home_page(
    registry: Registry,
    jobs: Sequence[RecentJob],
    weights: Mapping[str, ModelWeights],
    planted_stored: Mapping[tuple[str, int, int], bool],
) -> str:
    """The home page; ``weights``: the workers' weights checks per model; ``planted_stored``: which
    planted neurons (model, layer, neuron) have a stored report of default options."""
    body = (
        "<p>Neuron explanation as a service. Browse a layer's stored neurons, open a neuron's report, or "
        f"follow a job. API: {link('/schema', 'API docs')} · {link('/v1/models', 'models (JSON)')}.</p>"
        f"<h2>Models</h2>{_models_html(registry.models, weights)}"
        f"{_planted_html(registry.models, planted_stored)}"
        f"<h2>Recent jobs</h2>{_jobs_html(jobs)}"
    )
    return page("NeuronLens", body)
