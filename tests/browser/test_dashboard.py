"""The dashboard in a real JupyterLab, headless Chromium, light and dark themes.

The test runs the teaching notebook (notebooks/dashboard.ipynb) as a user would, with "Run All",
and watches the page while it runs: the chart renders, its line climbs, a compression drop
appears, the GoAway countdown runs down in the browser, and the page looks right in both
themes. The widgets expose the numbers behind the picture as data attributes on their elements
(``data-head``, ``data-compressions``, ``data-remaining``...), which is what is read here.

Screenshots: test-artifacts/dashboard-light.png, dashboard-dark.png (the dashboard element) and
dashboard-page-*.png (the whole page).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from harness import ARTIFACTS, LabPage, LabServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "dashboard.ipynb"

_STATE_JS = """() => {
  const chart = document.querySelector('.lnb-dashboard .lnb-chart');
  const conn = document.querySelector('.lnb-dashboard .lnb-connection');
  const usage = document.querySelector('.lnb-dashboard .lnb-usage');
  const turns = document.querySelector('.lnb-dashboard .lnb-transcript');
  const media = document.querySelector('.lnb-dashboard .lnb-media');
  if (!chart || !conn) return null;
  const goaway = conn.querySelector('.lnb-v-goaway');
  const style = getComputedStyle(chart);
  const line = chart.querySelector('path.lnb-line');
  return {
    points: Number(chart.dataset.points || 0),
    head: Number(chart.dataset.head || 0),
    compressions: Number(chart.dataset.compressions || 0),
    arrows: chart.querySelectorAll('.lnb-compression').length,
    diamonds: chart.querySelectorAll('.lnb-reported path').length,
    limits: [...chart.querySelectorAll('.lnb-limit text')].map(t => t.textContent),
    stats: chart.querySelector('.lnb-stats').textContent,
    remaining: goaway ? goaway.dataset.remaining : null,
    goawayText: goaway ? goaway.textContent : null,
    state: conn.dataset.state,
    handle: conn.querySelector('.lnb-handle').textContent,
    age: conn.querySelector('.lnb-age-text').textContent,
    estimated: usage ? usage.dataset.estimated : null,
    turns: turns ? Number(turns.dataset.turns || 0) : 0,
    mic: media ? media.dataset.mic : null,
    mediaText: media ? media.textContent : null,
    background: style.backgroundColor,
    color: style.color,
    lineColor: line ? getComputedStyle(line).stroke : null,
  };
}"""


def state(lp: LabPage) -> dict[str, Any] | None:
    result: dict[str, Any] | None = lp.evaluate(_STATE_JS)
    return result


def shoot(lp: LabPage, name: str) -> Path:
    """Screenshot the dashboard element (and the page) into test-artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    element = lp.page.locator(".lnb-dashboard").first
    element.scroll_into_view_if_needed()
    element.screenshot(path=str(path))
    lp.screenshot(name.replace("dashboard-", "dashboard-page-"))
    return path


def luminance(css_rgb: str) -> float:
    parts = [float(x) for x in css_rgb[css_rgb.index("(") + 1 : css_rgb.index(")")].split(",")[:3]]
    return (0.2126 * parts[0] + 0.7152 * parts[1] + 0.0722 * parts[2]) / 255


def countdown_runs(lp: LabPage, timeout: float) -> tuple[float, float]:
    """Wait for a GoAway countdown and read it twice, a second apart; returns both readings."""
    first = lp.wait_for(
        "the GoAway countdown",
        lambda: (s := state(lp)) and s["remaining"] and float(s["remaining"]) > 2.5 and float(s["remaining"]),
        timeout=timeout,
        interval=0.1,
    )
    time.sleep(1.0)
    s = state(lp)
    assert s is not None and s["remaining"], f"the countdown vanished: {s}"
    second = float(s["remaining"])
    assert "closing in" in s["goawayText"]
    return float(first), second


def test_dashboard_renders_climbs_compresses_and_counts_down_in_both_themes(lab: LabServer, page: LabPage) -> None:
    shutil.copy(NOTEBOOK, lab.root_dir / "dashboard.ipynb")
    page.open_notebook("dashboard.ipynb")
    page.set_theme("light")
    # Run up to the stand-in microphone (setup, dashboard, feeder) and then leave the kernel idle:
    # the dashboard must keep updating with no cell running.
    for index in (1, 3, 5):
        page.run_cell(index)
    page._panel_call("panel.content.activeCellIndex = 3; panel.content.scrollToItem(3);")
    page.page.locator(".lnb-dashboard").first.scroll_into_view_if_needed()

    # The dashboard renders, with the limits drawn.
    first = page.wait_for("the dashboard to render", lambda: (s := state(page)) and s["points"] >= 0 and s, 60)
    assert "trigger 5k" in first["limits"] and "target 2k" in first["limits"]
    # The stand-in microphone calls send_audio itself, with no mic/camera streamer: the
    # streaming panel says so (tests/widgets/test_dashboard_widget.py checks it with a streamer).
    assert first["mic"] == "none" and "not streaming" in first["mediaText"], first

    # The line climbs (the stand-in streams ~500 tokens a second).
    page.wait_for("the line to start climbing", lambda: (s := state(page)) and s["head"] > 300, 30)
    a = state(page)
    time.sleep(1.5)
    b = state(page)
    assert a is not None and b is not None
    assert b["head"] > a["head"] or b["compressions"] > a["compressions"], (a, b)
    assert b["points"] >= a["points"]

    # A compression drop appears: an arrow on the chart, counted in the header.
    page.wait_for("a compression arrow", lambda: (s := state(page)) and s["arrows"] >= 1 and s, 40)

    # The GoAway countdown runs in the browser.
    r1, r2 = countdown_runs(page, timeout=30)
    assert 0.5 <= r1 - r2 <= 1.6, f"countdown went {r1} -> {r2} in 1 s"
    light = state(page)
    assert light is not None
    assert light["state"] in ("active", "going_away") and light["handle"] not in ("", "\u2013")
    assert luminance(light["background"]) > 0.8 and luminance(light["color"]) < 0.4
    shoot(page, "dashboard-light")

    # The handle is shown shortened; the copy button copies all of it.
    page.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url.rstrip("/"))
    full = page.evaluate("() => document.querySelector('.lnb-dashboard .lnb-handle').title")
    assert len(full) > len(light["handle"]) and light["handle"].startswith(full[:6])
    page.page.locator(".lnb-dashboard .lnb-copy").first.click()
    page.wait_for(
        "the copy button to confirm",
        lambda: page.evaluate("() => document.querySelector('.lnb-dashboard .lnb-copy').textContent") == "Copied",
        5,
        0.05,
    )
    copied = page.evaluate("async () => await navigator.clipboard.readText()")
    now_shown = page.evaluate("() => document.querySelector('.lnb-dashboard .lnb-handle').title")
    assert copied in (full, now_shown), (copied, full, now_shown)  # a newer handle may arrive meanwhile

    # Dark theme: the same dashboard, re-coloured from the theme's variables.
    page.set_theme("dark")
    time.sleep(0.5)
    dark = state(page)
    assert dark is not None
    assert luminance(dark["background"]) < 0.3 and luminance(dark["color"]) > 0.6, dark
    assert dark["lineColor"] != light["lineColor"]  # the lighter blue of the dark palette
    # The next connection's GoAway counts down in the dark theme too, and the line kept going.
    page.wait_for("the session to move on", lambda: (s := state(page)) and not s["remaining"], 20, 0.1)
    r3, r4 = countdown_runs(page, timeout=40)
    assert 0.5 <= r3 - r4 <= 1.6
    after = state(page)
    assert after is not None and after["compressions"] >= 2 and after["turns"] >= 1
    shoot(page, "dashboard-dark")

    # A page reload (after saving) rebuilds the chart from the kernel: the saved traits plus a
    # resync checkpoint, so nothing streamed before the reload is missing.
    before = state(page)
    assert before is not None
    page.save()
    page.open_notebook("dashboard.ipynb")
    page._panel_call("panel.content.activeCellIndex = 3; panel.content.scrollToItem(3);")
    restored = page.wait_for(
        "the dashboard after a reload",
        lambda: (s := state(page)) and s["points"] >= before["points"] and s,
        30,
    )
    assert restored["compressions"] >= before["compressions"] and restored["handle"] not in ("", "\u2013")
    shoot(page, "dashboard-dark-reloaded")

    # The rest of the notebook runs cleanly, and its checks printed what the dashboard showed.
    for index in range(6, 17):
        page.run_cell(index, timeout=90)
    text = "\n".join(page.outputs())
    assert "Error" not in text and "Traceback" not in text, text[-2000:]
    assert "compressions so far:" in text and "reconnects:" in text
    errors = [line for line in page.console if "lnb" in line or "live_nb" in line or "anywidget" in line]
    assert not [e for e in errors if e.startswith(("error", "pageerror"))], errors
    page.set_theme("light")
