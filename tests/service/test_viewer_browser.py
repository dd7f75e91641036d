"""The viewer in a real browser: headless Chromium (Debian's `chromium` package, never a downloaded build)
driven by Playwright against the real API, a real RQ worker and Redis. tiny-llava-planted layer 2 is
explained (the planted neurons and a few neighbours); the job page follows it live; the layer page lists the
planted neurons with the types the registry gives them and sorts; a neuron's page shows its histogram,
legend, random exemplars (images loaded) and working prev/next links; `/schema` renders; and no request of
the browser leaves loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from service.app import create_app
from service.contract import NeuronListing, NeuronReport, load_registry
from service.settings import Settings
from tests.service.helpers import run_workers, serve

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
    expect(page.locator("#results a")).to_have_count(len(NEURONS))  # type: ignore[attr-defined]

    # home: the models and the job, linked
    page.goto(f"{stack}/")  # type: ignore[attr-defined]
    expect(page.locator(f"#model-{MODEL}")).to_be_visible()  # type: ignore[attr-defined]
    expect(page.locator(f'#jobs a[href="/view/jobs/{job_id}"]')).to_be_visible()  # type: ignore[attr-defined]

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
    page.screenshot(path=str(tmp_path / "layer.png"), full_page=True)  # type: ignore[attr-defined]

    # sorting by score (descending after two clicks) follows the scores the JSON listing gives
    listing = NeuronListing.model_validate(
        http.get(f"/v1/neurons/{MODEL}/{LAYER}", params={"limit": 100}).json()
    )
    by_score = sorted(listing.neurons, key=lambda row: row.correlation or -2.0, reverse=True)
    score_header = page.locator("#neurons th", has_text="score")  # type: ignore[attr-defined]
    score_header.click()
    score_header.click()
    assert _neuron_links(page) == [str(row.neuron) for row in by_score]

    # a neuron's page: histogram, legend, random exemplars with their images, unshaded beside shaded
    page.locator('#neurons tr[data-neuron="42"] td:first-child a').click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/v1/neurons/{MODEL}/{LAYER}/42/page")  # type: ignore[attr-defined]
    expect(page.locator("#activation-histogram svg rect")).not_to_have_count(0)  # type: ignore[attr-defined]
    expect(page.locator("#simulated-vs-true circle")).not_to_have_count(0)  # type: ignore[attr-defined]
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

    # prev/next go to the neighbouring stored neurons; the JSON link serves the report
    page.locator("#prev-neuron").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/v1/neurons/{MODEL}/{LAYER}/41/page")  # type: ignore[attr-defined]
    page.locator("#next-neuron").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/v1/neurons/{MODEL}/{LAYER}/42/page")  # type: ignore[attr-defined]
    page.locator("#next-neuron").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{stack}/v1/neurons/{MODEL}/{LAYER}/43/page")  # type: ignore[attr-defined]
    json_href = page.locator("#json-link").get_attribute("href")  # type: ignore[attr-defined]
    assert http.get(json_href).json()["neuron"] == 43

    # the API docs page renders from the packaged Swagger UI files
    page.goto(f"{stack}/schema")  # type: ignore[attr-defined]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("NeuronLens")  # type: ignore[attr-defined]
    expect(
        page.locator(".opblock-summary-path", has_text="/v1/neurons/{model}/{layer}").first
    ).to_be_visible()  # type: ignore[attr-defined]

    assert requested
    outside = sorted({url for url in requested if urlsplit(url).hostname not in LOOPBACK})
    assert not outside, f"the viewer requested other hosts: {outside}"


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
