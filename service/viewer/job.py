"""The job page: what an explain job asked for and where it stands, kept current by polling its status."""

from __future__ import annotations

import json
from html import escape
from urllib.parse import quote

from service.contract import ExplanationRequest, JobStatus, ScanState
from service.reports.exemplar_links import exemplar_query
from service.viewer.html import layer_path, link, neuron_page_path, page, query_string

POLL_MS = 1000
"""How often the page asks `GET /v1/jobs/{id}` while the job is not finished or failed."""
NEURON_LINKS = 200
"""Neuron links listed on the page at most (the layer page lists them all)."""

POLL_SCRIPT = """
(function () {
  var box = document.getElementById("job"), url = box.dataset.statusUrl;
  function show(status) {
    document.getElementById("status").textContent = status.status;
    var done = status.progress.done, total = status.progress.total, scan = status.scan;
    document.getElementById("progress-text").textContent = done + " / " + total + " neurons";
    var fraction = total ? done / total : 0;
    if (status.status === "scanning" && scan && scan.passes_planned && scan.samples_total) {
      fraction = (scan.passes_done * scan.samples_total + scan.samples_done)
        / (scan.passes_planned * scan.samples_total);
    }
    document.getElementById("progress-bar").style.width = (100 * fraction) + "%";
    document.getElementById("scan-text").textContent = scanText(scan);
    var queued = status.queue_position === null ? "" : "position " + status.queue_position + " in its queue";
    document.getElementById("queue").textContent = queued;
    var error = status.error ? status.error.type + ": " + status.error.message : "";
    document.getElementById("error").textContent = error;
    var ended = ["finished", "failed", "cancelled"].indexOf(status.status) >= 0;
    document.getElementById("results").hidden = status.status !== "finished";
    return ended;
  }
  function scanText(scan) {
    if (!scan || !scan.passes_planned) { return ""; }
    var ended = scan.passes_done >= scan.passes_planned;
    var text = ended ? "scan: " + scan.passes_planned + " of " + scan.passes_planned + " passes done"
      : "scan: pass " + (scan.passes_done + 1) + " of " + scan.passes_planned + ", "
        + scan.samples_done + " / " + scan.samples_total + " samples";
    if (scan.shards > 1) { text += " (" + scan.shards_done + " of " + scan.shards + " shards done)"; }
    return text;
  }
  function poll() {
    fetch(url, {headers: {accept: "application/json"}}).then(function (r) { return r.json(); })
      .then(function (status) { if (!show(status)) { setTimeout(poll, POLL_INTERVAL); } })
      .catch(function () { setTimeout(poll, 5 * POLL_INTERVAL); });
  }
  if (box.dataset.ended !== "true") { setTimeout(poll, POLL_INTERVAL); }
})();
"""


def scan_text(scan: ScanState | None) -> str:
    """Where the scan stands, in words (the script's `scanText` writes the same)."""
    if scan is None or not scan.passes_planned:
        return ""
    if scan.passes_done >= scan.passes_planned:
        text = f"scan: {scan.passes_planned} of {scan.passes_planned} passes done"
    else:
        text = (
            f"scan: pass {scan.passes_done + 1} of {scan.passes_planned}, "
            f"{scan.samples_done} / {scan.samples_total} samples"
        )
    if scan.shards > 1:
        text += f" ({scan.shards_done} of {scan.shards} shards done)"
    return text


def _exports(job_id: str) -> str:
    """Links to the finished job's reports as tables (`GET /v1/jobs/{id}/reports`)."""
    base = f"/v1/jobs/{quote(job_id, safe='')}/reports"
    return (
        '<p id="exports">Download the reports: '
        f"{link(base + '?format=csv', 'CSV', id='export-csv')} · "
        f"{link(base + '?format=parquet', 'Parquet', id='export-parquet')} · "
        f"{link(base + '?format=ndjson&fields=full', 'whole reports (NDJSON)', id='export-ndjson')}</p>"
    )


def render_job_page(status: JobStatus, request: ExplanationRequest, variant: str) -> str:
    """The page of one explain job; the script keeps status and progress current until it ends."""
    query = query_string(exemplar_query(request, variant))
    neurons = request.neuron_list()
    progress = status.progress
    width = 100 * progress.done / progress.total if progress.total else 0
    ended = status.status in ("finished", "failed", "cancelled")
    layers = request.layer_list()
    shown = [(layer, n) for layer in layers for n in neurons][:NEURON_LINKS]
    links = " ".join(
        link(neuron_page_path(request.model, layer, n) + query, f"{layer}/{n}" if len(layers) > 1 else str(n))
        for layer, n in shown
    )
    hidden = len(layers) * len(neurons) - len(shown)
    more = f" … and {hidden} more on the layer pages" if hidden > 0 else ""
    error = f"{status.error.type}: {status.error.message}" if status.error else ""
    queue = f"position {status.queue_position} in its queue" if status.queue_position is not None else ""
    status_url = f"/v1/jobs/{status.job_id}?limit=1"
    layer = (
        link(layer_path(request.model, layers[0]) + query, f"layer {layers[0]}")
        if len(layers) == 1
        else "layers " + " ".join(link(layer_path(request.model, n) + query, str(n)) for n in layers)
    )
    per_layer = " per layer" if len(layers) > 1 else ""
    results_hidden = "" if status.status == "finished" else " hidden"
    body = (
        f'<div id="job" data-status-url="{escape(status_url)}" data-ended="{str(ended).lower()}">'
        f"<p>{escape(request.model)} · {layer} · {len(neurons)} neurons{per_layer} · "
        f"hook {escape(str(request.hook))} · "
        f"probe set {escape(str(request.dataset))} · explainer {escape(str(request.explainer))} · "
        f"simulator {escape(str(request.simulator))}</p>"
        f'<p>Status: <strong id="status">{escape(status.status)}</strong> <span id="queue" class="muted">'
        f'{escape(queue)}</span></p><div class="progress"><div id="progress-bar" style="width: {width:.1f}%">'
        f'</div></div><p id="progress-text">{progress.done} / {progress.total} neurons</p>'
        f'<p id="scan-text" class="muted">{escape(scan_text(status.scan))}</p>'
        f'<p id="error" style="color: #b00">{escape(error)}</p>'
        f'<div id="results"{results_hidden}><h2>Reports</h2><p id="report-links">{links}{more}</p>'
        f"{_exports(status.job_id)}</div>"
        f'<p class="muted">{link(status_url, "status JSON")} · created '
        f"{escape(str(status.created_at))}</p></div>"
    )
    script = POLL_SCRIPT.replace("POLL_INTERVAL", json.dumps(POLL_MS))
    return page(f"Job {status.job_id}", body, [("Home", "/"), ("jobs", None)], script=script)
