"""The dashboard's tools panel and saved picture, fed by a real session whose tool loop runs notebook functions.

A real emulator, a real ``LiveModel(tools=[...])``: the model calls the functions, the client's tool
loop runs them and records ``ToolRun`` events; the dashboard's feed reads them from
``session.events``. What the functions return (and the model's arguments) is untrusted text: it
reaches the panel's traits as plain strings and the saved SVG escaped.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.protocol.events import ToolRun
from live_nb.protocol.tools import tool_from_callable
from live_nb.widgets._feed import SessionFeed
from live_nb.widgets.dashboard import Dashboard, ToolsPanel
from live_nb.widgets.static import tool_line

HOSTILE = "<img src=x onerror=alert(1)>"


def get_weather(city: str) -> dict[str, object]:
    """The current weather in a city.

    Args:
        city: the city's name.
    """
    return {"note": HOSTILE, "city": city}


def broken(city: str) -> str:
    """Always fails."""
    raise ValueError(f"no data for {city}")


async def ask(session: LiveSession, text: str) -> None:
    await session.send_text(text)
    async with asyncio.timeout(15):
        await session.answer_done()


async def test_the_tools_panel_lists_each_call_with_status_duration_and_result_as_text(emulator: Emulator) -> None:
    tools = [get_weather, tool_from_callable(broken, behavior="BLOCKING")]
    async with LiveModel("gemini-3.8-live", url=emulator.url, tools=tools).connect() as session:
        dash = Dashboard(session, start=False)
        panel = ToolsPanel()
        feed = SessionFeed(session, tool_runs=1)
        try:
            await ask(session, "Weather? get_weather city=Paris")
            await ask(session, "And this? broken city=Oslo")
            dash.sampler.tick()
            runs = dash.tools.runs
            assert [(r["name"], r["status"]) for r in runs] == [("get_weather", "returned"), ("broken", "failed")]
            weather, failure = runs
            assert weather["args"] == '{"city": "Paris"}' and HOSTILE in weather["result"]
            assert weather["behavior"] == "NON_BLOCKING" and weather["seconds"] >= 0
            assert failure["behavior"] == "BLOCKING" and "ValueError: no data for Oslo" in failure["result"]
            # Each call's row keeps the time it started; one row per call, not per event.
            events = [e for _, e in session.events if isinstance(e, ToolRun)]
            assert len(events) == 4 and len(runs) == 2
            # A second sample with nothing new sends nothing.
            frame = dash.feed.sample()
            assert frame.tools is None
            # The feed keeps the newest calls only.
            frame = feed.sample()
            assert frame.tools is not None and [r["name"] for r in frame.tools] == ["broken"]
            panel.apply(frame)
            assert [r["name"] for r in panel.runs] == ["broken"]

            svg = dash.to_svg()
            root = ET.fromstring(svg)  # well-formed: the hostile text is escaped, not markup
            assert not [e for e in root.iter() if e.tag.endswith("img") or e.tag.endswith("script")]
            texts = ["".join(e.itertext()) for e in root.iter() if e.tag.endswith("text")]
            assert any(t.startswith('tool get_weather({"city": "Paris"}) returned in ') for t in texts), texts
            assert any(t.startswith("tool broken(") and "failed" in t and "ValueError" in t for t in texts), texts
            assert any(HOSTILE in t for t in texts)
            bundle = dash._repr_mimebundle_()
            assert "text/html" not in bundle and "image/svg+xml" in bundle
        finally:
            dash.close()
            panel.close()


def test_a_running_call_reads_as_running_in_the_saved_picture() -> None:
    line = tool_line({"name": "slow", "args": '{"s": 2}', "status": "running", "seconds": 0.0, "result": ""})
    assert line == 'tool slow({"s": 2}) running'
    done = tool_line({"name": "slow", "args": "{}", "status": "timed_out", "seconds": 2.0, "result": "x" * 100})
    assert done.startswith("tool slow({}) timed_out in 2.00 s: ") and done.endswith("…")
