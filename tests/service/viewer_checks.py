"""Checks of viewer pages shared by the browser tests: no dead links, the home page's weights markers, the
scatter's axes, and a saved page that works as a file."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import httpx

from service.contract import load_registry
from workers.models.availability import check_weights

SCATTER_TICKS = ["0", "2", "4", "6", "8", "10"]


def assert_no_dead_links(page: object, http: httpx.Client) -> None:
    """Every link of the page to the API's host answers something other than a JSON 404 (a link to a
    neuron without a report leads to an HTML page saying how to make it, or is not a link at all)."""
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")  # type: ignore[attr-defined]
    origin = urlsplit(page.url).netloc  # type: ignore[attr-defined]
    targets = sorted({urldefrag(href)[0] for href in hrefs if urlsplit(href).netloc == origin})
    assert targets, "the page has no links to check"
    dead = []
    for url in targets:
        response = http.get(url)
        if response.status_code == 404 and "json" in response.headers.get("content-type", ""):
            dead.append(url)
    assert not dead, f"links of {page.url} answer a JSON 404: {dead}"  # type: ignore[attr-defined]


def assert_weights_marked(page: object) -> None:
    """Each model's row says what this host's worker found of its weights (the worker ran here); a model
    whose weights are missing says so and how to add them."""
    missing = []
    for spec in load_registry().models:
        present, detail = check_weights(spec)
        row = page.locator(f'#models tr[id="model-{spec.id}"]')  # type: ignore[attr-defined]
        assert row.get_attribute("data-weights") == ("present" if present else "missing"), spec.id
        cell = row.locator("td.weights").inner_text()
        if present:
            assert "on the workers" in cell, (spec.id, cell)
        else:
            missing.append(spec.id)
            assert "weights missing" in cell and detail in cell, (spec.id, cell)
    assert missing, "every registered model's weights are on this host: the marker is not exercised"


def assert_scatter_axes(page: object) -> None:
    """The simulated-against-true scatter names both axes and labels their ticks."""
    scatter = page.locator("#simulated-vs-true svg")  # type: ignore[attr-defined]
    assert "true activation" in (scatter.locator("text.x-label").text_content() or "")
    assert "simulated activation" in (scatter.locator("text.y-label").text_content() or "")
    assert scatter.locator("text.x-tick").all_text_contents() == SCATTER_TICKS
    assert scatter.locator("text.y-tick").all_text_contents() == SCATTER_TICKS


def assert_works_offline(page: object, saved: Path) -> None:
    """The saved page opened as a file: every resource it loads is inline (data:), none fails, every image
    decodes, and it has no link (the API it came from is gone once the demo stops)."""
    requested: list[str] = []
    failed: list[str] = []
    page.on("request", lambda request: requested.append(request.url))  # type: ignore[attr-defined]
    page.on("requestfailed", lambda request: failed.append(request.url))  # type: ignore[attr-defined]
    page.goto(saved.as_uri())  # type: ignore[attr-defined]
    page.wait_for_load_state("load")  # type: ignore[attr-defined]
    assert not failed, failed
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
    assert page.locator("a[href]").count() == 0  # type: ignore[attr-defined]
    images = page.locator("img")  # type: ignore[attr-defined]
    assert images.count() > 0
    sources = images.evaluate_all("images => images.map(image => image.src)")
    assert all(src.startswith("data:image/") for src in sources)
    widths = images.evaluate_all("images => images.map(image => image.complete && image.naturalWidth)")
    assert all(width and width > 0 for width in widths), widths
    assert page.locator("#simulated-vs-true circle").count() > 0  # type: ignore[attr-defined]
