"""The neuron page of a neuron with no stored report: an HTML 404 that says what is missing and how to
make it (the CLI command and the API request), instead of the JSON problem a browser cannot act on."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from html import escape

from service.contract import ExplanationRequest
from service.viewer.html import layer_path, link, page, query_string


def explain_command(model: str, layer: int, neuron: int, query: Mapping[str, object]) -> str:
    """The `neuronlens explain` command that stores this neuron's report for the chosen variant."""
    words = ["neuronlens", "explain", "--model", model, "--layer", str(layer), "--neuron", str(neuron)]
    for name, value in query.items():
        if value is not None and name != "variant":
            words += [f"--{name}", str(value)]
    return shlex.join(words)


def explain_curl(base_url: str, model: str, layer: int, neuron: int, query: Mapping[str, object]) -> str:
    """The `POST /v1/explanations` request (as curl) that stores this neuron's report."""
    body: dict[str, object] = {"model": model, "layer": layer, "neurons": [neuron]}
    body.update({k: v for k, v in query.items() if v is not None and k != "variant"})
    return shlex.join(
        [
            "curl", "-X", "POST", f"{base_url.rstrip('/')}/v1/explanations",
            "-H", "content-type: application/json", "-d", json.dumps(body),
        ]
    )  # fmt: skip


def render_missing_report_page(
    request: ExplanationRequest, neuron: int, query: Mapping[str, object], base_url: str
) -> str:
    """The 404 page of ``neuron`` (``request``: the resolved lookup, hook and backends filled in)."""
    model, layer = request.model, request.only_layer()
    what = (
        f"No report for neuron {neuron} of layer {layer} of {model} yet (hook {request.hook}, probe set "
        f"{request.dataset}, explainer {request.explainer}, simulator {request.simulator})."
    )
    command = escape(explain_command(model, layer, neuron, query))
    curl = escape(explain_curl(base_url, model, layer, neuron, query))
    layer_link = link(layer_path(model, layer) + query_string(query), f"the stored neurons of layer {layer}")
    body = (
        f'<p id="missing">{escape(what)}</p>'
        f'<p>Explain it with <code id="explain-command">{command}</code></p>'
        f'<p>or through the API: <code id="explain-curl">{curl}</code></p>'
        f'<p class="muted">Then reload this page. See {layer_link} · {link("/", "home")}</p>'
    )
    crumbs: list[tuple[str, str | None]] = [
        ("Home", "/"),
        (model, None),
        (f"layer {layer}", layer_path(model, layer) + query_string(query)),
        (f"neuron {neuron}", None),
    ]
    return page(f"{model} layer {layer} neuron {neuron}: no report", body, crumbs)
