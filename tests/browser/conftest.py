"""Fixtures for browser tests: a real JupyterLab and headless Debian Chromium (see harness.py)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import (
    LabPage,
    LabServer,
    chromium_available,
    launch_context,
    start_lab,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip browser tests, with the reason, where Chromium or Playwright is missing."""
    if chromium_available():
        return
    skip = pytest.mark.skip(reason="needs /usr/bin/chromium and the playwright package")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def lab_env() -> dict[str, str]:
    """Extra environment for the server and its kernels; override it in a test module."""
    return {}


@pytest.fixture
def lab(tmp_path: Path, lab_env: dict[str, str]) -> Iterator[LabServer]:
    """A JupyterLab server rooted in a fresh ``tmp_path / "nb"``, stopped after the test."""
    server = start_lab(tmp_path / "nb", env=lab_env)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)


@pytest.fixture
def browser_context() -> Iterator[Any]:
    """A persistent Chromium context in a fresh user-data dir (sync Playwright API)."""
    from playwright.sync_api import sync_playwright

    user_data_dir = Path(tempfile.mkdtemp(prefix="live-nb-chromium-"))
    with sync_playwright() as playwright:
        context = launch_context(playwright, user_data_dir)
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(user_data_dir, ignore_errors=True)


@pytest.fixture
def page(lab: LabServer, browser_context: Any, request: pytest.FixtureRequest) -> Iterator[LabPage]:
    """A ``LabPage`` on ``lab``; on failure a screenshot named after the test lands in test-artifacts/."""
    tab = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    tab.set_default_timeout(30_000)
    lab_page = LabPage(lab, tab)
    yield lab_page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        lab_page.screenshot(f"failed-{request.node.name}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item so ``page`` can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
