"""API fixtures: the app served over real HTTP on loopback, against the per-test real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest

from service.contract import load_registry
from service.http.app import create_app
from service.settings import Settings
from tests.service.dictionary_helpers import latents_api  # noqa: F401  (a fixture: the dictionary tests')
from tests.service.helpers import serve
from workers.process.report_writer import ReportObjects


@pytest.fixture()
def start_api() -> Callable[[Settings], AbstractContextManager[str]]:
    """Start an extra API server for given settings: ``with start_api(settings) as url: ...``."""
    return lambda settings: serve(create_app(settings))


@pytest.fixture()
def api_url(settings: Settings) -> Iterator[str]:
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture()
def http(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=30) as client:
        yield client


@pytest.fixture()
def report_objects(settings: Settings) -> ReportObjects:
    """The report objects of the test's artifact store, written as an explain worker writes them."""
    return ReportObjects(settings.artifact_url)


@pytest.fixture()
def minilm_revision() -> str:
    return load_registry().model("minilm-l6").revision
