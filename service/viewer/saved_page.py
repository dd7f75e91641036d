"""A neuron's page saved as a file (`neuronlens demo`): the report page with no links to the API, which
stops with the demo's stack, and its exemplar images inlined as data: URIs, so it works under `file://`."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from html import escape
from urllib.parse import urljoin

import httpx

from service.contract import Exemplar, NeuronReport
from service.viewer.html import page
from service.viewer.neuron import report_body, report_title


def _inlined(exemplars: list[Exemplar], images: Mapping[str, str]) -> tuple[list[Exemplar], int]:
    """``exemplars`` with image links replaced by the data: URIs ``images`` has for them, or dropped; and
    how many images were dropped."""
    dropped = 0
    result = []
    for exemplar in exemplars:
        update: dict[str, str | None] = {}
        for name in ("image_url", "original_image_url"):
            url = getattr(exemplar, name)
            if url is not None:
                update[name] = images.get(url)
                dropped += update[name] is None
        result.append(exemplar.model_copy(update=update) if update else exemplar)
    return result, dropped


def render_saved_report_page(report: NeuronReport, images: Mapping[str, str], source: str) -> str:
    """The page of one report as a file that works offline (`file://`): no links to the API (they would
    die with the stack), every image inlined from ``images`` (image URL → data: URI) or left out with a
    note. ``source`` is the live page's URL, shown as text."""
    exemplars, dropped_top = _inlined(report.exemplars, images)
    randoms, dropped_random = (
        _inlined(report.random_exemplars, images) if report.random_exemplars is not None else (None, 0)
    )
    saved = report.model_copy(update={"exemplars": exemplars, "random_exemplars": randoms})
    dropped = dropped_top + dropped_random
    missing = f" {dropped} exemplar images could not be saved and are left out." if dropped else ""
    note = (
        '<p class="muted" id="saved-note">A saved copy of the live page <code>'
        f"{escape(source)}</code>: it works offline, so it has no links to the viewer (the layer, the "
        f"neighbouring neurons); `neuronlens demo --serve` keeps the stack and its viewer up.{missing}</p>"
    )
    crumbs: list[tuple[str, str | None]] = [
        (report.model, None),
        (f"layer {report.layer}", None),
        (f"neuron {report.neuron}", None),
    ]
    return page(report_title(saved), report_body(saved, note), crumbs)


def save_page(page_url: str, http: httpx.Client) -> str:
    """The saved form of the live neuron page at ``page_url`` (`…/{neuron}/page`, a running API): its
    report read as JSON, each exemplar image fetched and inlined; an image that cannot be fetched is left
    out with a note. Raises httpx.HTTPError when the report cannot be read."""
    report_url = page_url.removesuffix("/page")
    report = NeuronReport.model_validate_json(http.get(report_url).raise_for_status().content)
    images: dict[str, str] = {}
    for exemplar in [*report.exemplars, *(report.random_exemplars or [])]:
        for url in (exemplar.image_url, exemplar.original_image_url):
            if url is None or url in images:
                continue
            try:
                response = http.get(urljoin(page_url, url)).raise_for_status()
            except httpx.HTTPError:
                continue
            kind = response.headers.get("content-type", "image/png").split(";")[0]
            images[url] = f"data:{kind};base64,{base64.b64encode(response.content).decode()}"
    return render_saved_report_page(report, images, page_url)
