"""The viewer in a real browser: headless Chromium (Debian's `chromium` package, never a downloaded build)
driven by Playwright against the real API, a real RQ worker and Redis. tiny-llava-planted layer 2 is
explained (the planted neurons and a few neighbours); the job page follows it live; the home page marks the
models whose weights the worker lacks; the layer page lists the planted neurons with the types the registry
gives them and sorts; a neuron's page shows its histogram, axes, legend, random exemplars (images loaded)
and working prev/next links; its saved copy works as a file; `/schema` renders; no link of a page leads to a
JSON 404; and no request of the browser leaves loopback. A text model's layer page (stored reports, more
than one page) shows statistics of the whole layer and only the text columns; the job page follows a scan's
samples and links the exports once finished."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from service.contract import ExplanationRequest, NeuronListing, NeuronReport, load_registry
from service.estimates.validate import resolve_request
from service.http.app import create_app
from service.reports.listing import request_report_keys
from service.settings import Settings
from service.viewer.saved_page import save_page
from tests.service.helpers import build_report, run_workers, serve
from tests.service.viewer_checks import (
    assert_no_dead_links,
    assert_scatter_axes,
    assert_weights_marked,
    assert_works_offline,
)
from workers.process import progress as worker_progress
from workers.process.report_writer import ReportObjects, store_report
from workers.scan.passes import ScanProgress

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MODEL, LAYER = "tiny-llava-planted", 2
PLANTED = {p.neuron: p.type for p in load_registry().model(MODEL).planted or [] if p.layer == LAYER}
NEURONS = sorted({*PLANTED, 10, 12, 41, 43, 201})
"""The planted neurons (11, 42, 99, 200) and neighbours, so prev/next have somewhere to go."""
LOOPBACK = {"127.0.0.1", "localhost"}
TIMEOUT_MS = 30_000

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture()
def stack(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The API over real HTTP; workers (run in this process when a test calls them) read the same store."""
    for name, value in {
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture()
def browser_page(tmp_path: Path) -> Iterator[tuple[object, list[str]]]:
    """A page of the system Chromium, and every URL it requested."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        try:
            yield page, requested
        finally:
            browser.close()


def _neuron_links(page: object) -> list[str]:
    """The neuron column of the layer table, top to bottom."""
    return page.locator("#neurons tbody tr td:first-child a").all_inner_texts()  # type: ignore[attr-defined]


def test_viewer_pages_in_a_browser(
    stack: str,
    browser_page: tuple[object, list[str]],
    redis_conn: redis.Redis,
    settings: Settings,
    tmp_path: Path,
) -> None:
    page, requested = browser_page
    expect = sync_api.expect
    http = httpx.Client(base_url=stack, timeout=60)
    accepted = http.post("/v1/explanations", json={"model": MODEL, "layer": LAYER, "neurons": NEURONS})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]

    # the job page shows the job queued, then follows it to the end by polling its status
    page.goto(f"{stack}/view/jobs/{job_id}")  # type: ignore[attr-defined]
    expect(page.locator("#status")).to_have_text("queued")  # type: ignore[attr-defined]
    expect(page.locator("#results")).to_be_hidden()  # type: ignore[attr-defined]
    run_workers(redis_conn, settings)  # meanwhile the page keeps polling (the browser is its own process)
    expect(page.locator("#status")).to_have_text("finished")  # type: ignore[attr-defined]
    expect(page.locator("#progress-text")).to_have_text(f"{len(NEURONS)} / {len(NEURONS)} neurons")  # type: ignore[attr-defined]
    expect(page.locator("#report-links a")).to_have_count(len(NEURONS))  # type: ignore[attr-defined]
    assert_no_dead_links(page, http)

    # home: the models and the job, linked; each model marked with what the worker found of its weights
    page.goto(f"{stack}/")  # type: ignore[attr-defined]
    expect(page.locator(f"#model-{MODEL}")).to_be_visible()  # type: ignore[attr-defined]
    expect(page.locator(f'#jobs a[href="/view/jobs/{job_id}"]')).to_be_visible()  # type: ignore[attr-defined]
    assert_weights_marked(page)
    assert_no_dead_links(page, http)

    # the layer page lists every explained neuron; the planted ones with the registry's types
    page.locator(f"#model-{MODEL} a", has_text=str(LAYER)).first.click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/view/{MODEL}/{LAYER}")  # type: ignore[attr-defined]
    assert _neuron_links(page) == [str(n) for n in NEURONS]
    marked = page.locator("#neurons tbody tr", has_text="planted")  # type: ignore[attr-defined]
    assert [int(n) for n in marked.evaluate_all("rows => rows.map(row => row.dataset.neuron)")] == sorted(
        PLANTED
    )
    for neuron, neuron_type in PLANTED.items():
        row = page.locator(f'#neurons tr[data-neuron="{neuron}"]')  # type: ignore[attr-defined]
        expect(row.locator("td").nth(1)).to_have_text(neuron_type)
    expect(page.locator("#score-histogram svg rect")).not_to_have_count(0)  # type: ignore[attr-defined]
    expect(page.locator("#type-distribution")).to_contain_text("multimodal")  # type: ignore[attr-defined]
    # a vision-language model: all four type-evidence columns
    headers = page.locator("#neurons th").all_inner_texts()  # type: ignore[attr-defined]
    assert {"p_visual", "p_text", "p_multimodal", "p_unknown"} <= {h.strip(" ▲▼") for h in headers}
    page.screenshot(path=str(tmp_path / "layer.png"), full_page=True)  # type: ignore[attr-defined]
    assert_no_dead_links(page, http)

    # sorting by score (descending after two clicks) follows the scores the JSON listing gives
    listing = NeuronListing.model_validate(
        http.get(f"/v1/neurons/{MODEL}/{LAYER}", params={"limit": 100}).json()
    )
    by_score = sorted(listing.neurons, key=lambda row: row.correlation or -2.0, reverse=True)
    score_header = page.locator('#neurons th[data-sort="score"]')  # type: ignore[attr-defined]
    score_header.locator("a").click()
    expect(score_header).to_have_attribute("data-order", "asc")
    score_header.locator("a").click()
    expect(score_header).to_have_attribute("data-order", "desc")
    assert _neuron_links(page) == [str(row.neuron) for row in by_score]

    # a neuron's page: histogram, legend, random exemplars with their images, unshaded beside shaded
    page.locator('#neurons tr[data-neuron="42"] td:first-child a').click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/v1/neurons/{MODEL}/{LAYER}/42/page")  # type: ignore[attr-defined]
    expect(page.locator("#activation-histogram svg rect")).not_to_have_count(0)  # type: ignore[attr-defined]
    expect(page.locator("#simulated-vs-true circle")).not_to_have_count(0)  # type: ignore[attr-defined]
    assert_scatter_axes(page)
    # a vision-language report: its tokens include image patches, and the caption says so
    expect(page.locator("#activation-histogram figcaption")).to_contain_text("image patches included")  # type: ignore[attr-defined]
    expect(page.locator("#legend")).to_contain_text("token shading")
    # the colour scale's 10 is the report's normalisation scale (a quantile by default), not its global max
    shown = NeuronReport.model_validate(http.get(f"/v1/neurons/{MODEL}/{LAYER}/42").json())
    assert shown.normalisation is not None
    expect(page.locator("#legend")).to_contain_text(f"10 (raw {shown.normalisation.scale:.4g})")  # type: ignore[attr-defined]
    expect(page.locator("#legend")).to_contain_text("image shading")  # type: ignore[attr-defined]
    randoms = page.locator("#random-exemplars .exemplar")  # type: ignore[attr-defined]
    expect(randoms).not_to_have_count(0)
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    images = page.locator("#random-exemplars img, #top-exemplars img")  # type: ignore[attr-defined]
    widths = images.evaluate_all("images => images.map(image => image.naturalWidth)")
    assert widths and all(width > 0 for width in widths), widths
    expect(page.locator('#top-exemplars img[alt="exemplar image, unshaded"]')).not_to_have_count(0)  # type: ignore[attr-defined]
    token = page.locator("#top-exemplars .tokens span[title]").first  # type: ignore[attr-defined]
    assert "raw " in (token.get_attribute("title") or "") and "normalised" in (
        token.get_attribute("title") or ""
    )
    page.screenshot(path=str(tmp_path / "neuron.png"))  # type: ignore[attr-defined]
    assert_no_dead_links(page, http)

    # the page saved as a file (what `neuronlens demo` keeps) works under file://: images inlined, no links
    saved = tmp_path / "saved-report.html"
    saved.write_text(save_page(f"{stack}/v1/neurons/{MODEL}/{LAYER}/42/page", http), encoding="utf-8")
    assert_works_offline(page, saved)
    page.goto(f"{stack}/v1/neurons/{MODEL}/{LAYER}/42/page")  # type: ignore[attr-defined]

    # prev/next go to the neighbouring stored neurons; the JSON link serves the report
    page.locator("#prev-neuron").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/v1/neurons/{MODEL}/{LAYER}/41/page")  # type: ignore[attr-defined]
    page.locator("#next-neuron").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/v1/neurons/{MODEL}/{LAYER}/42/page")  # type: ignore[attr-defined]
    page.locator("#next-neuron").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/v1/neurons/{MODEL}/{LAYER}/43/page")  # type: ignore[attr-defined]
    json_href = page.locator("#json-link").get_attribute("href")  # type: ignore[attr-defined]
    assert http.get(json_href).json()["neuron"] == 43
    # no report of neuron 43 in layers 1 and 3: not linked, said in words
    expect(page.locator("#layer-prev")).to_have_text(f"layer {LAYER - 1}: neuron 43 not explained")  # type: ignore[attr-defined]
    expect(page.locator("a#layer-next")).to_have_count(0)  # type: ignore[attr-defined]
    assert_no_dead_links(page, http)

    # the API docs page renders from the packaged Swagger UI files
    page.goto(f"{stack}/schema")  # type: ignore[attr-defined]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("NeuronLens")  # type: ignore[attr-defined]
    expect(
        page.locator(".opblock-summary-path", has_text="/v1/neurons/{model}/{layer}").first
    ).to_be_visible()  # type: ignore[attr-defined]

    assert requested
    outside = sorted(
        {
            url
            for url in requested
            if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname not in LOOPBACK
        }
    )
    assert not outside, f"the viewer requested other hosts: {outside}"


TEXT_MODEL, TEXT_LAYER = "minilm-l6", 1
TEXT_SCORES: dict[int, float | None] = {3: 0.1, 5: -0.2, 8: 0.3, 13: 0.95, 21: None, 34: 0.5, 55: 0.7}
"""Stored reports of a text layer: more than one page of 3 rows, the best scores past the first page."""
UNKNOWN = {21, 55}


def _store_text_layer(conn: redis.Redis, settings: Settings) -> None:
    """TEXT_SCORES as stored reports (as an explain worker stores them), types text except UNKNOWN."""
    request = ExplanationRequest(model=TEXT_MODEL, layer=TEXT_LAYER, neurons=sorted(TEXT_SCORES))
    resolved = resolve_request(load_registry(), request, max_neurons=4096, settings=settings)
    objects = ReportObjects(settings.artifact_url)
    for neuron, key in zip(resolved.request.neuron_list(), request_report_keys(resolved), strict=True):
        report = build_report(
            TEXT_MODEL, resolved.model.revision, TEXT_LAYER, neuron, str(resolved.request.hook),
            str(resolved.request.dataset),
        )  # fmt: skip
        simulation = report.simulation.model_copy(update={"correlation": TEXT_SCORES[neuron]})
        kind = "unknown" if neuron in UNKNOWN else "text"
        report = report.model_copy(update={"simulation": simulation, "neuron_type": kind})
        store_report(conn, settings.redis_keys, objects, key, resolved.variant, report, None)


def _rows(page: object) -> list[int]:
    return [int(n) for n in _neuron_links(page)]


def test_text_layer_page_covers_the_whole_layer(
    stack: str, browser_page: tuple[object, list[str]], redis_conn: redis.Redis, settings: Settings
) -> None:
    page, _ = browser_page
    expect = sync_api.expect
    http = httpx.Client(base_url=stack, timeout=60)
    _store_text_layer(redis_conn, settings)
    page.goto(f"{stack}/view/{TEXT_MODEL}/{TEXT_LAYER}?limit=3")  # type: ignore[attr-defined]

    # statistics over all 7 stored neurons, though the table shows 3
    assert _rows(page) == [3, 5, 8]
    expect(page.locator("#page-position")).to_have_text("rows 1–3 of 7")  # type: ignore[attr-defined]
    types = page.locator("#type-distribution tbody tr")  # type: ignore[attr-defined]
    assert types.evaluate_all("rows => rows.map(row => row.dataset.type)") == ["text", "unknown"]
    expect(types.nth(0).locator("td").nth(1)).to_have_text("5")
    expect(types.nth(1).locator("td").nth(1)).to_have_text("2")
    expect(page.locator("#type-distribution figcaption")).to_contain_text("all 7 neurons")  # type: ignore[attr-defined]
    histogram = page.locator("#score-histogram")  # type: ignore[attr-defined]
    expect(histogram.locator("figcaption")).to_contain_text("6 defined of 7 neurons")
    expect(histogram.locator("figcaption")).to_contain_text("1 with an undefined score")
    tips = histogram.locator("svg rect title").all_text_contents()
    assert sum(int(tip.split(": ")[1].split(" in ")[0]) for tip in tips) == 6

    # a text model: p_text only, no visual / multimodal / unknown columns
    headers = [h.strip(" ▲▼") for h in page.locator("#neurons th").all_inner_texts()]  # type: ignore[attr-defined]
    assert "p_text" in headers
    assert not {"p_visual", "p_multimodal", "p_unknown"} & set(headers), headers
    assert_no_dead_links(page, http)

    # sorting covers the whole layer: by score, descending, the best are on later index pages
    score_header = page.locator('#neurons th[data-sort="score"]')  # type: ignore[attr-defined]
    score_header.locator("a").click()
    expect(score_header).to_have_attribute("data-order", "asc")
    score_header.locator("a").click()
    expect(score_header).to_have_attribute("data-order", "desc")
    assert _rows(page) == [13, 55, 34]
    page.locator("#next-page").click()  # type: ignore[attr-defined]
    expect(page.locator("#page-position")).to_have_text("rows 4–6 of 7")  # type: ignore[attr-defined]
    assert _rows(page) == [8, 3, 5]
    page.locator("#next-page").click()  # type: ignore[attr-defined]
    expect(page.locator("#page-position")).to_have_text("rows 7–7 of 7")  # type: ignore[attr-defined]
    assert _rows(page) == [21]  # the undefined score last
    expect(page.locator("#next-page")).to_have_count(0)  # type: ignore[attr-defined]
    page.locator("#previous-page").click()  # type: ignore[attr-defined]
    expect(page.locator("#page-position")).to_have_text("rows 4–6 of 7")  # type: ignore[attr-defined]
    assert_no_dead_links(page, http)

    # a text report's page: no image patches in its caption
    page.locator('#neurons tr[data-neuron="8"] td:first-child a').click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/v1/neurons/{TEXT_MODEL}/{TEXT_LAYER}/8/page")  # type: ignore[attr-defined]
    caption = page.locator("#activation-histogram figcaption")  # type: ignore[attr-defined]
    expect(caption).to_contain_text("Raw activation per token over")
    expect(caption).not_to_contain_text("image patches")
    assert_no_dead_links(page, http)

    # a neuron without a report: an HTML 404 saying what is missing and how to make it
    response = page.goto(f"{stack}/v1/neurons/{TEXT_MODEL}/{TEXT_LAYER}/7/page")  # type: ignore[attr-defined]
    assert response.status == 404 and response.headers["content-type"].startswith("text/html")
    expect(page.locator("#missing")).to_contain_text(  # type: ignore[attr-defined]
        f"No report for neuron 7 of layer {TEXT_LAYER} of {TEXT_MODEL} yet"
    )
    command = f"neuronlens explain --model {TEXT_MODEL} --layer {TEXT_LAYER} --neuron 7"
    expect(page.locator("#explain-command")).to_have_text(command)  # type: ignore[attr-defined]
    expect(page.locator("#explain-curl")).to_contain_text(f"{stack}/v1/explanations")  # type: ignore[attr-defined]
    assert_no_dead_links(page, http)


SCAN_CHECKPOINTS = 2
"""Mid-pass scan states the worker holds until the job page has shown each."""


def test_job_page_follows_the_scan_and_links_exports(
    stack: str, redis_conn: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan the session has not stored yet (its own seed) runs in this thread; at SCAN_CHECKPOINTS
    mid-pass states the worker waits until the job page, in a browser driven from another thread, shows
    that state's samples, so the page is seen moving without a slow or large scan."""
    monkeypatch.setenv("NEURONLENS_PROGRESS_INTERVAL_S", "0")  # every batch reaches the job's meta
    reached: queue.Queue[tuple[int, int]] = queue.Queue()
    proceed = threading.Event()
    remaining = [SCAN_CHECKPOINTS]
    on_scan = worker_progress.JobProgress.on_scan

    def held_on_scan(self: worker_progress.JobProgress, state: ScanProgress) -> None:
        on_scan(self, state)
        if remaining[0] and 0 < state.samples_done < state.samples_total:
            remaining[0] -= 1
            proceed.clear()
            reached.put((state.samples_done, state.samples_total))
            assert proceed.wait(120), "the job page did not show the scan's samples"

    monkeypatch.setattr(worker_progress.JobProgress, "on_scan", held_on_scan)
    http = httpx.Client(base_url=stack, timeout=60)
    neurons = [11, 12]
    body = {"model": MODEL, "layer": 1, "neurons": neurons, "options": {"seed": 7331}}
    accepted = http.post("/v1/explanations", json=body)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    shown: list[str] = []
    exports: dict[str, str] = {}
    errors: list[BaseException] = []

    def watch() -> None:
        try:
            _watch_job_page(f"{stack}/view/jobs/{job_id}", reached, proceed, shown, exports)
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
            proceed.set()

    watcher = threading.Thread(target=watch, name="job-page-browser")
    watcher.start()
    run_workers(redis_conn, settings)
    watcher.join(timeout=300)
    assert not watcher.is_alive()
    if errors:
        raise errors[0]
    assert len(shown) == SCAN_CHECKPOINTS and len(set(shown)) == SCAN_CHECKPOINTS, shown
    assert all("samples" in text for text in shown)
    csv_export = http.get(exports["csv"])
    assert csv_export.status_code == 200 and csv_export.headers["content-type"].startswith("text/csv")
    assert len(csv_export.text.strip().splitlines()) == 1 + len(neurons)
    parquet_export = http.get(exports["parquet"])
    assert parquet_export.status_code == 200 and parquet_export.content.startswith(b"PAR1")


def _watch_job_page(
    url: str,
    reached: queue.Queue[tuple[int, int]],
    proceed: threading.Event,
    shown: list[str],
    exports: dict[str, str],
) -> None:
    """Open the job page; at each checkpoint the worker reached, wait until the page shows its samples;
    then wait for the end and read the export links."""
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            for _ in range(SCAN_CHECKPOINTS):
                samples, total = reached.get(timeout=300)
                expect(page.locator("#scan-text")).to_contain_text(
                    f"{samples} / {total} samples", timeout=TIMEOUT_MS
                )
                shown.append(page.locator("#scan-text").inner_text())
                proceed.set()
            expect(page.locator("#status")).to_have_text("finished", timeout=300_000)
            for fmt in ("csv", "parquet"):
                link = page.locator(f"#export-{fmt}")
                expect(link).to_be_visible()
                exports[fmt] = link.evaluate("a => a.href")
        finally:
            browser.close()


def test_reports_made_with_non_default_options_wear_a_badge(
    stack: str, browser_page: tuple[object, list[str]], redis_conn: redis.Redis, settings: Settings
) -> None:
    """A job with `text_threshold` 2.5: its job page links to neuron pages of that report variant, which
    (and whose layer page) show the options; its exemplar images load; the default report shows none."""
    page, _ = browser_page
    expect = sync_api.expect
    http = httpx.Client(base_url=stack, timeout=60)
    # 13 has no default report (nor default images): its page can only show the variant's own images
    request = {"model": MODEL, "layer": LAYER, "neurons": [13, 14]}
    assert http.post("/v1/explanations", json={**request, "neurons": [14]}).status_code == 202
    changed = http.post("/v1/explanations", json={**request, "options": {"text_threshold": 2.5}})
    assert changed.status_code == 202, changed.text
    run_workers(redis_conn, settings)

    page.goto(f"{stack}/view/jobs/{changed.json()['job_id']}")  # type: ignore[attr-defined]
    expect(page.locator("#status")).to_have_text("finished")  # type: ignore[attr-defined]
    page.locator("#results a", has_text="13").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/v1/neurons/{MODEL}/{LAYER}/13/page?*")  # type: ignore[attr-defined]
    expect(page.locator("#non-default-options")).to_contain_text("non-default options text_threshold=2.5")  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    widths = page.locator("#top-exemplars img").evaluate_all("images => images.map(i => i.naturalWidth)")  # type: ignore[attr-defined]
    assert widths and all(width > 0 for width in widths), widths  # image links name the variant

    page.locator("#layer-link").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/view/{MODEL}/{LAYER}?*")  # type: ignore[attr-defined]
    expect(page.locator("#non-default-options")).to_contain_text("text_threshold=2.5")  # type: ignore[attr-defined]
    assert _neuron_links(page) == ["13", "14"]

    page.goto(f"{stack}/v1/neurons/{MODEL}/{LAYER}/14/page")  # type: ignore[attr-defined]
    expect(page.locator("h2", has_text="Type")).to_be_visible()  # type: ignore[attr-defined]
    expect(page.locator("#non-default-options")).to_have_count(0)  # type: ignore[attr-defined]
