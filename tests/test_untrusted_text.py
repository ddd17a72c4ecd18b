"""Untrusted text never becomes markup in the widgets or the pictures saved with a notebook (no browser).

Model replies, input and output transcriptions, user text echoed back, tool calls, close reasons
and titles all reach the dashboard. Here hostile payloads go through the widgets' Python side
(traits, display bundles) and through the static SVG written into the .ipynb, and come out as
text: every SVG parses as XML, holds only the elements the chart draws (no ``<img>``, ``<script>``,
``<a>``, ``<foreignObject>``), no event-handler or link attribute, and still shows each payload as
its literal text. A scan of the front-end sources keeps HTML sinks (``innerHTML`` and friends) out.

The browser half (tests/browser/test_untrusted_text_browser.py) proves the same in a real JupyterLab.
"""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import comm
import pytest

from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.protocol.config import LiveGenerationConfig
from live_nb.protocol.messages import ServerContent, ToolCall
from live_nb.widgets import ConnectionPanel, ContextChart, Dashboard, MediaPanel, TranscriptPanel, UsagePanel
from live_nb.widgets._feed import FeedFrame
from live_nb.widgets.static import StaticChart, render_chart_svg, render_dashboard_svg, xml_attr, xml_text

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gemini-3.8-live"
AUDIO = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)

PAYLOADS = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=1</script>",
    '"><svg onload=window.__pwned=1>',
    "'><svg/onload=window.__pwned=1>",
    '<a href="javascript:window.__pwned=1">click</a>',
    "javascript:window.__pwned=1",
    "[x](javascript:alert(1)) **bold** <b id=lnb-pwn-marker>B</b>",
    "<foreignObject><iframe srcdoc='<script>window.__pwned=1</script>'></iframe></foreignObject>",
    "<!-- c --> <![CDATA[ ]]> ]]> &amp; &lt;b&gt; &#60;img&#62;",
    '<?xml-stylesheet href="javascript:1"?><!DOCTYPE x [<!ENTITY e "pwn">]>&e;',
]
"""Markup, attribute break-outs, javascript: links, Markdown, entities and XML declarations."""

CONTROL = "bell\x07 nul\x00 esc\x1b vt\x0b noncharacter\ufffe end"
"""Characters XML 1.0 cannot hold: they must not make the saved picture unreadable."""

TOOL_ARG = "<svg/onload=window.__pwned=1>"
"""A tool call argument (the emulator reads ``q=VALUE`` words from the text naming the function)."""

SVG_ELEMENTS = {"svg", "rect", "text", "line", "path", "g", "title"}
HTML_SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment|DOMParser|srcdoc"
    r"|dangerouslySetInnerHTML|\.html\(|new Function|eval\("
)


@pytest.fixture(autouse=True)
def recording_comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Widgets open comms; record what they would send instead of needing a kernel."""
    made: list[Any] = []

    class Recorder:
        kernel = "recording"

        def __init__(self, **kwargs: Any) -> None:
            self.comm_id = kwargs.get("comm_id") or f"rec-{id(self)}"
            self.messages: list[Any] = []
            made.append(self)

        def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
            self.messages.append(data)

        def on_msg(self, callback: Any) -> None:
            pass

        def on_close(self, callback: Any) -> None:
            pass

        def open(self, *args: Any, **kwargs: Any) -> None:
            pass

        def close(self, *args: Any, **kwargs: Any) -> None:
            pass

    monkeypatch.setattr(comm, "create_comm", lambda **kwargs: Recorder(**kwargs))
    yield made


# --- helpers ------------------------------------------------------------------------------------


def shown(text: str) -> str:
    """What a text looks like once XML has carried it (characters XML cannot hold become U+FFFD)."""
    return re.sub("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "\ufffd", text)


def assert_inert_svg(svg: str, expected_texts: Iterable[str] = ()) -> ET.Element:
    """Parse ``svg`` and check it is only the chart's own drawing, with each expected text as text.

    Returns:
        The parsed root element.
    """
    root = ET.fromstring(svg)  # malformed XML (an unescaped payload, a control character) raises here
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        assert tag in SVG_ELEMENTS, f"unexpected element <{tag}> in the saved picture"
        for name, value in element.attrib.items():
            local = name.rsplit("}", 1)[-1].lower()
            assert not local.startswith("on"), f"event handler attribute {name}={value!r}"
            assert local not in {"href", "src", "style", "srcdoc"}, f"attribute {name}={value!r}"
            assert "javascript:" not in value.lower(), f"{name}={value!r}"
    # Every tag in the raw text is one the chart draws: nothing was smuggled in as markup.
    for tag in re.findall(r"<\s*/?\s*([A-Za-z!?][^\s/>]*)", svg):
        assert tag in SVG_ELEMENTS, f"raw markup <{tag}> in the saved picture"
    assert "<!" not in svg and "<?" not in svg
    text = "\n".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for expected in expected_texts:
        assert shown(expected) in text, f"{expected!r} is not shown as text"
    return root


def frame(
    *,
    turns: tuple[dict[str, Any], ...] | None = None,
    markers: tuple[dict[str, Any], ...] = (),
    connection: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
    media: dict[str, Any] | None = None,
) -> FeedFrame:
    """A hand-made sample, as ``SessionFeed.sample()`` would return it."""
    return FeedFrame(
        now=5.0,
        origin=1_700_000_000.0,
        points=((1.0, 120, None, 0), (4.0, 300, 280, 1)),  # type: ignore[arg-type]
        head=[5.0, 320, None, 0],
        compressions=(),
        window=128_000,
        trigger=None,
        target=None,
        forecast={"rate": 10.0, "to_trigger": None, "to_window": None},
        connection=connection or {},
        usage=usage or {},
        turns=turns,
        markers=markers,
        media=media or {},
    )


def hostile_turns() -> tuple[dict[str, Any], ...]:
    roles = ["user", "model", "user (heard)", "tool call"]
    return tuple({"t": float(i), "role": roles[i % len(roles)], "text": p} for i, p in enumerate(PAYLOADS))


# --- the static SVG saved in notebooks ----------------------------------------------------------


@pytest.mark.parametrize("payload", [*PAYLOADS, CONTROL])
def test_chart_svg_shows_a_hostile_title_and_marker_label_as_text(payload: str) -> None:
    chart = StaticChart(
        points=[[0.0, 100, None, 0], [4.0, 900, 880, 1]],
        compressions=[{"t": 4.0, "before": 900, "after": 300, "by": payload}],
        markers=[{"t": 2.0, "kind": payload, "label": f"reconnect ({payload})"}],
        head=[6.0, 400, None, 0],
        title=payload,
    )
    svg = render_chart_svg(chart)
    assert_inert_svg(svg, [payload, f"reconnect ({payload})"])


def test_dashboard_svg_shows_every_field_as_text() -> None:
    payload = PAYLOADS[0]
    connection = {
        "backend": payload,
        "model": PAYLOADS[2],
        "state": PAYLOADS[1],
        "reconnects": 1,
        "resumable": True,
        "handle": PAYLOADS[3][:13],
        "last_consumed_index": PAYLOADS[4],
        "replay_depth": 0,
    }
    usage = {
        "input_by_modality": {PAYLOADS[5]: 10},
        "output_by_modality": {"TEXT": 4},
        "prompt_tokens": 14,
        "response_tokens": 4,
        "total_tokens": 18,
    }
    media = {
        "present": True,
        "mic": PAYLOADS[6],
        "camera": PAYLOADS[0],
        "token_rate": 25.0,
        "chunks_received": 1,
        "frames_received": 0,
        "gaps": 0,
    }
    turns = [*hostile_turns(), {"t": 9.0, "role": PAYLOADS[1], "text": CONTROL}]
    chart = StaticChart(points=[], compressions=[], title=PAYLOADS[7])
    svg = render_dashboard_svg(chart, connection, usage, turns[-4:], media=media)
    expected = [payload, PAYLOADS[1], PAYLOADS[2], PAYLOADS[3][:13], PAYLOADS[4], PAYLOADS[5].lower(), PAYLOADS[7]]
    expected += [PAYLOADS[6], f"{PAYLOADS[1]}: {CONTROL}"]
    expected += [f"{t['role']}: {t['text']}" for t in turns[-4:-1]]
    assert_inert_svg(svg, expected)


def test_xml_escaping_helpers_leave_no_markup_and_no_unreadable_character() -> None:
    for payload in [*PAYLOADS, CONTROL]:
        text = xml_text(payload)
        attr = xml_attr(payload)
        assert "<" not in text and "<" not in attr and '"' not in attr and "'" not in attr
        # Both round-trip through an XML parser to the literal payload (invalid characters replaced).
        element = ET.fromstring(f"<t a=\"{attr}\" b='{attr}'>{text}</t>")
        assert element.text == shown(payload)
        assert element.get("a") == element.get("b") == shown(payload)


# --- the widgets' Python side -------------------------------------------------------------------


def bundle_data(widget: Any) -> dict[str, Any]:
    bundle = widget._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert isinstance(data, dict)
    return data


def test_widgets_carry_hostile_text_as_plain_strings_and_display_no_html() -> None:
    """Traits keep the payload verbatim (the JS sets it as textContent); bundles hold no HTML or Markdown."""
    turns = hostile_turns()
    markers = tuple({"t": 1.0 + i, "kind": p, "label": f"reconnect ({p})"} for i, p in enumerate(PAYLOADS[:3]))
    connection = {"backend": PAYLOADS[0], "model": PAYLOADS[1], "state": PAYLOADS[2], "handle": PAYLOADS[3]}
    usage = {"input_by_modality": {PAYLOADS[4]: 3}, "reports": 0}
    media = {"present": True, "mic": PAYLOADS[5], "camera": PAYLOADS[6], "error": PAYLOADS[7]}
    sample = frame(turns=turns, markers=markers, connection=connection, usage=usage, media=media)

    chart = ContextChart(title=PAYLOADS[8])
    transcript, conn, usage_panel, media_panel = TranscriptPanel(), ConnectionPanel(), UsagePanel(), MediaPanel()
    try:
        for widget in (chart, transcript, conn, usage_panel, media_panel):
            widget.apply(sample)
        chart.checkpoint()

        assert [t["text"] for t in transcript.turns] == PAYLOADS
        assert (conn.backend, conn.model, conn.state, conn.handle) == tuple(PAYLOADS[:4])
        assert usage_panel.input_by_modality == {PAYLOADS[4]: 3}
        assert (media_panel.mic, media_panel.camera, media_panel.error) == tuple(PAYLOADS[5:8])
        assert [m["label"] for m in chart.markers] == [m["label"] for m in markers]

        for widget in (chart, transcript, conn, usage_panel, media_panel):
            data = bundle_data(widget)
            assert not {"text/html", "text/markdown", "application/javascript"} & set(data), sorted(data)
        svg = bundle_data(chart)["image/svg+xml"]
        assert_inert_svg(svg, [PAYLOADS[8], *(m["label"] for m in markers)])
    finally:
        for widget in (chart, transcript, conn, usage_panel, media_panel):
            widget.close()


async def receive_reply(session: LiveSession, timeout: float = 15.0) -> None:
    """Drain the session until a turn completes, answering any tool call with a hostile result."""
    async with asyncio.timeout(timeout):
        async for item in session.receive():
            if isinstance(item, ToolCall):
                for call in item.function_calls:
                    await session.send_tool_response(
                        [{"id": call.id, "name": call.name, "response": {"result": PAYLOADS[1]}}]
                    )
            elif isinstance(item, ServerContent) and item.turn_complete:
                return


async def test_a_real_session_reply_reaches_the_dashboard_as_text(emulator: Emulator) -> None:
    """User text, the model's output transcription (quoting it) and a tool call travel as text end to end."""
    tools = [
        {
            "functionDeclarations": [
                {
                    "name": "lookup",
                    "description": "look something up",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                    "behavior": "BLOCKING",  # the model waits for the result, so one turn carries the answer
                }
            ]
        }
    ]
    config = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True, tools=tools)
    question = f"{PAYLOADS[0]} {PAYLOADS[6]}"
    async with LiveModel(MODEL, config, url=emulator.url).connect() as session:
        await session.send_text(question)
        await receive_reply(session)
        await session.send_text(f"lookup q={TOOL_ARG}")
        await receive_reply(session)
        dash = Dashboard(session, start=False)
        try:
            dash.sampler.tick()
            texts = [(t["role"], t["text"]) for t in dash.transcript.turns]
            assert ("user", question) in texts
            model_replies = [text for role, text in texts if role == "model"]
            assert any(PAYLOADS[0] in text for text in model_replies), texts  # the reply quotes the question
            assert any(role == "tool call" and TOOL_ARG in text for role, text in texts), texts
            assert any(PAYLOADS[1] in text for text in model_replies), texts  # the tool's result, quoted back

            data = bundle_data(dash)
            assert not {"text/html", "text/markdown", "application/javascript"} & set(data), sorted(data)
            # The picture shows the latest four turns: the first reply (quoting the question), the
            # tool call and the reply quoting the tool's result.
            assert_inert_svg(
                data["image/svg+xml"], [PAYLOADS[0], f"tool call: lookup({{'q': '{TOOL_ARG}'}})", PAYLOADS[1]]
            )
        finally:
            dash.close()


# --- the front-end sources ----------------------------------------------------------------------


def front_end_sources() -> list[Path]:
    widgets = sorted((ROOT / "live_nb" / "widgets").glob("*.js"))
    extension = sorted((ROOT / "labextension" / "src").glob("*.ts"))
    assert widgets and extension
    return widgets + extension


@pytest.mark.parametrize("path", front_end_sources(), ids=lambda p: p.name)
def test_front_end_sources_use_no_html_sink(path: Path) -> None:
    """DOM text goes in as textContent/attributes; no string is ever parsed as HTML."""
    code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith(("//", "*")))
    found = HTML_SINKS.findall(code)
    assert not found, f"{path.name} uses {found}"


@pytest.mark.parametrize("path", sorted((ROOT / "live_nb" / "widgets").glob("*.py")), ids=lambda p: p.name)
def test_widget_modules_emit_no_html_or_markdown_bundle(path: Path) -> None:
    code = path.read_text()
    for sink in ("text/html", "text/markdown", "_repr_html_", "_repr_markdown_", "widgets.HTML", "Markdown("):
        assert sink not in code, f"{path.name} mentions {sink}"
