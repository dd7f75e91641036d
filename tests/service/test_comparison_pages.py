"""The comparison pages in a real browser (headless system Chromium driven by Playwright) against the real
API and RQ workers: a comparison of the planted BERT with its changed checkpoint shows its verdict counts
and a layer table sorted by score drop; a compared neuron's page shows the base's explanation with its
score on each side and both sides' top exemplars side by side; no link is dead and no request leaves
loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from service.contract.comparisons import ComparisonStatus
from service.http.app import create_app
from service.settings import Settings
from tests.service.comparisons_helpers import (
    BASE,
    CHANGES,
    TARGET,
    comparison_registry,
    use_comparison_registry,
)
from tests.service.helpers import run_workers, serve
from tests.service.test_viewer_browser import CHROMIUM, CHROMIUM_ARGS, LOOPBACK, TIMEOUT_MS, sync_api
from tests.service.viewer_checks import assert_no_dead_links
from workers.models.changed_checkpoint import DIGIT_NEURON

pytestmark = pytest.mark.timeout(300)
NEURONS = sorted({DIGIT_NEURON, 3, 20, 31, 32, 50, 70, 71})
"""Unchanged, rescaled (20, 50), changed (31, 32, the re-planted digit neuron) and dead (70, 71)."""


@pytest.fixture()
def compared(
    tmp_path: Path, settings: Settings, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, ComparisonStatus]]:
    """A finished comparison of layer 0's NEURONS behind a live API; (its URL, its status)."""
    registry = comparison_registry(tmp_path / "checkpoints")
    api_settings = use_comparison_registry(monkeypatch, registry, settings)
    body = {"base": BASE, "target": TARGET, "layers": [0], "neurons": NEURONS}
    with serve(create_app(api_settings)) as url, httpx.Client(timeout=60) as http:
        answer = http.post(f"{url}/v1/comparisons", json=body)
        assert answer.status_code == 202, answer.text
        run_workers(redis_conn, api_settings)
        status = ComparisonStatus.model_validate(http.get(url + answer.headers["Location"]).json())
        assert status.status == "finished", status.error
        yield url, status


@pytest.fixture()
def browser_page() -> Iterator[tuple[object, list[str]]]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        try:
            yield page, requested
        finally:
            browser.close()


def _sample_ids(page: object, side: str) -> list[int]:
    texts = page.locator(f"#{side} .exemplar > div > div.muted").all_inner_texts()  # type: ignore[attr-defined]
    return [int(re.search(r"sample (\d+)", text).group(1)) for text in texts]  # type: ignore[union-attr]


def test_the_comparison_pages_in_a_browser(
    compared: tuple[str, ComparisonStatus], browser_page: tuple[object, list[str]]
) -> None:
    url, status = compared
    page, requested = browser_page
    found = {item.neuron: item for item in status.comparisons or []}
    page.goto(f"{url}/view/comparisons/{status.comparison_id}")  # type: ignore[attr-defined]
    assert page.locator("#status").inner_text() == "finished"  # type: ignore[attr-defined]
    for verdict in ("unchanged", "rescaled", "changed", "dead"):
        count = page.locator(f"#count-{verdict}").inner_text()  # type: ignore[attr-defined]
        assert count.split()[-1] == str(status.verdicts.get(verdict, 0)), (verdict, count)
    rows = page.locator("table.layer-table tr[data-neuron]")  # type: ignore[attr-defined]
    shown = [int(n) for n in rows.evaluate_all("rows => rows.map(r => r.dataset.neuron)")]
    assert sorted(shown) == NEURONS
    drops = [found[n].score_drop for n in shown if found[n].score_drop is not None]
    assert drops == sorted(drops, reverse=True) and drops, "the table is sorted by score drop"
    assert {found[n].verdict for n in CHANGES.dead if n in found} == {"dead"}
    with httpx.Client(timeout=60) as http:
        assert_no_dead_links(page, http)

        page.click(f'table.layer-table tr[data-neuron="{DIGIT_NEURON}"] a')  # type: ignore[attr-defined]
        page.wait_for_selector("#base-exemplars")  # type: ignore[attr-defined]
        digits = found[DIGIT_NEURON]
        assert page.locator("#base-explanation").inner_text() == digits.base_explanation  # type: ignore[attr-defined]
        assert page.locator("#score-base").inner_text() == f"{digits.base_score:.3g}"  # type: ignore[attr-defined]
        assert page.locator("#score-target").inner_text() == f"{digits.base_score_on_target:.3g}"  # type: ignore[attr-defined]
        base_ids, target_ids = _sample_ids(page, "base-exemplars"), _sample_ids(page, "target-exemplars")
        assert base_ids == digits.base_top_ids[: len(base_ids)] and len(base_ids) == 5
        assert target_ids == digits.target_top_ids[: len(target_ids)] and len(target_ids) == 5
        assert base_ids != target_ids, "a changed neuron's two sides respond to other samples"
        side_by_side = page.evaluate(  # type: ignore[attr-defined]
            "() => [document.getElementById('base-exemplars').getBoundingClientRect().left,"
            " document.getElementById('target-exemplars').getBoundingClientRect().left]"
        )
        assert side_by_side[1] > side_by_side[0] + 300, side_by_side
        assert page.locator("#target-exemplars .tokens span").count() > 0  # type: ignore[attr-defined]
        assert_no_dead_links(page, http)
        page.click("text=base report")  # type: ignore[attr-defined]
        page.wait_for_load_state("load")  # type: ignore[attr-defined]
        assert f"/v1/neurons/{BASE}/0/{DIGIT_NEURON}/page" in page.url  # type: ignore[attr-defined]
        missing = http.get(f"{url}/view/comparisons/{status.comparison_id}/0/99")
        assert missing.status_code == 404
    assert {urlsplit(u).hostname for u in requested} <= LOOPBACK
