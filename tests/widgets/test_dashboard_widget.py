"""Dashboard widgets after scripted sessions against the real emulator (no browser).

The widgets' comms are replaced by a recorder (ipywidgets' DummyComm pattern, style.md rule 14),
so every message the kernel would send to the browser is seen: trait updates and the chart's
custom delta messages. Sessions are real ``LiveSession``s over real sockets to the in-process
emulator, sampled by the real ``Sampler`` task on the test's event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import struct
import time
from collections.abc import Iterator
from typing import Any

import comm
import pytest

from live_nb.client.reconnect import ReconnectPolicy
from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.protocol.config import (
    ContextWindowCompressionConfig,
    LiveGenerationConfig,
    SessionResumptionConfig,
    SlidingWindow,
)
from live_nb.protocol.messages import UsageMetadata
from live_nb.widgets import ConnectionPanel, ContextChart, Dashboard
from live_nb.widgets._feed import KIND_COMPRESSION, KIND_REPORTED, Series, SessionFeed
from live_nb.widgets.static import plot_context

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-3.8-live"
NATIVE_25 = "gemini-2.5-flash-native-audio-preview-12-2025"  # where 2.5's fixed 258 tokens a frame matter
AUDIO = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)


class RecordingComm:
    """Stands in for the kernel's comm: records what would go to the browser, and its size."""

    kernel = "recording"

    def __init__(self, **kwargs: Any) -> None:
        self.comm_id = kwargs.get("comm_id") or f"rec-{id(self)}"
        self.opened = kwargs
        self.messages: list[dict[str, Any]] = []
        self.nbytes = 0
        self._on_msg: Any = None

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        self.messages.append(data)
        self.nbytes += len(json.dumps(data))

    def on_msg(self, callback: Any) -> None:
        self._on_msg = callback

    def on_close(self, callback: Any) -> None:
        pass

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass

    def receive(self, content: dict[str, Any]) -> None:
        """Deliver a custom message from the 'browser' to the widget."""
        self._on_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})

    def deltas(self) -> list[dict[str, Any]]:
        return [m["content"] for m in self.messages if m.get("method") == "custom"]

    def updates(self) -> list[dict[str, Any]]:
        return [m["state"] for m in self.messages if m.get("method") == "update"]


@pytest.fixture(autouse=True)
def recording_comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
    made: list[RecordingComm] = []

    def create_comm(**kwargs: Any) -> RecordingComm:
        c = RecordingComm(**kwargs)
        made.append(c)
        return c

    monkeypatch.setattr(comm, "create_comm", create_comm)
    yield made


def tone(seconds: float, rate: int = 16_000, amplitude: int = 0) -> bytes:
    """PCM16 mono; silence by default so the emulator's VAD does not start a reply."""
    n = int(seconds * rate)
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n)))


async def stream_audio(session: LiveSession, seconds: float, chunk: float = 0.1, pace: float = 0.05) -> None:
    pcm = tone(chunk)
    for _ in range(round(seconds / chunk)):
        await session.send_audio(pcm)
        await asyncio.sleep(pace)


async def until_usage(session: LiveSession, timeout: float = 10.0) -> UsageMetadata:
    async with asyncio.timeout(timeout):
        async for item in session.receive():
            if isinstance(item, UsageMetadata):
                return item
    raise AssertionError("no usage")


async def settle(dashboard: Dashboard | ContextChart | ConnectionPanel, seconds: float = 0.6) -> None:
    """Let the sampler (4 Hz) pick up the latest state."""
    await asyncio.sleep(seconds)


def comm_of(widget: Any) -> RecordingComm:
    assert isinstance(widget.comm, RecordingComm)
    return widget.comm


# --- the line climbs, as appended deltas ----------------------------------------------------


async def test_line_climbs_with_streamed_audio_as_appended_deltas(emulator: Emulator) -> None:
    async with LiveModel(MODEL, AUDIO, url=emulator.url).connect() as session:
        dash = Dashboard(session)
        try:
            rec = comm_of(dash.chart)
            t0 = time.monotonic()
            await stream_audio(session, 3.0)  # 30 chunks of 100 ms in ~1.5 s
            await settle(dash, 1.3)
            elapsed = time.monotonic() - t0
            deltas = rec.deltas()
        finally:
            dash.close()

    # The line climbed at the audio rate: 3 s of audio is 75 tokens.
    heads = [d["head"][1] for d in deltas]
    assert heads == sorted(heads), "the line only climbs while audio streams"
    assert heads[-1] == pytest.approx(75, abs=1)
    assert session.ledger.input_by_modality["AUDIO"] == pytest.approx(75)
    # Deltas append: every point's time is later than every point sent before it.
    times = [p[0] for d in deltas for p in d["points"]]
    assert times == sorted(times) and len(times) == len(set(times))
    assert sum(len(d["points"]) for d in deltas) >= 3
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    # Throttled: at most 4 samples a second (+1 for the first at construction).
    assert len(deltas) <= 4 * elapsed + 2
    # The usage panel saw the audio, in whole tokens (it updates at most once a second).
    assert dash.usage.input_by_modality == {"AUDIO": 75}
    assert dash.connection.backend == "emulator" and dash.connection.state == "active"


async def test_checkpoint_puts_a_bounded_copy_in_the_traits_and_a_resync_refreshes_it(emulator: Emulator) -> None:
    async with LiveModel(MODEL, AUDIO, url=emulator.url).connect() as s:
        chart = ContextChart(s, checkpoint_interval=3600)
        try:
            rec = comm_of(chart)
            await stream_audio(s, 2.0)
            await settle(chart)
            # No checkpoint yet (interval 1 h): the series travelled only as deltas.
            assert chart.series == [] and chart.seq == 0
            sent_points = [p for d in rec.deltas() for p in d["points"]]
            # A new view asks for a resync: the traits now hold everything the deltas carried.
            rec.receive({"type": "resync"})
            assert chart.seq == rec.deltas()[-1]["seq"]
            assert chart.series[-len(sent_points) :] == sent_points
            assert chart.head[1] == pytest.approx(50, abs=1)
            update = rec.updates()[-1]
            assert set(update) >= {"series", "head", "seq"}
        finally:
            chart.close()


# --- compression --------------------------------------------------------------------------


async def test_compression_drop_is_recorded_and_sent(emulator: Emulator) -> None:
    emulator.chunk_delay = 0.0  # audio replies are a hundred-odd chunks; pacing adds nothing here
    config = LiveGenerationConfig(
        response_modalities=["AUDIO"],
        output_audio_transcription=True,
        context_window_compression=ContextWindowCompressionConfig(
            trigger_tokens=5_000, sliding_window=SlidingWindow(target_tokens=2_000)
        ),
    )
    async with LiveModel(MODEL, config, url=emulator.url).connect() as s:
        dash = Dashboard(s)
        try:
            rec = comm_of(dash.chart)
            prompts = []
            for i in range(4):  # ~2,000 tokens a turn: the third or fourth turn starts above 5k
                await s.send_text(f"turn {i}: " + "lorem ipsum dolor sit amet " * 300)
                prompts.append((await until_usage(s)).prompt_token_count)
                await settle(dash, 0.3)
            await settle(dash)
            dash.snapshot()
        finally:
            dash.close()

    assert any(b < a for a, b in itertools.pairwise(prompts)), f"server never compressed: {prompts}"
    # The ledger saw the drop, and so did the widget: as a delta, and in the saved traits.
    assert s.ledger.compressions
    sent = [c for d in rec.deltas() for _, c in d["compressions"]]
    assert sent and all(c["before"] > c["after"] for c in sent)
    assert dash.chart.compressions and dash.chart.compressions[-1]["before"] > dash.chart.compressions[-1]["after"]
    assert dash.chart.compressions[-1]["after"] <= 5_000
    assert dash.chart.trigger == 5_000 and dash.chart.target == 2_000
    # Server counts are separate points (diamonds), distinguishable from our estimate.
    kinds = {p[3] for p in dash.chart.series}
    assert KIND_REPORTED in kinds
    assert any(p[2] is not None for p in dash.chart.series if p[3] == KIND_REPORTED)
    # The usage panel shows the server's last prompt count, after the drop.
    assert dash.usage.prompt_tokens == prompts[-1]
    assert dash.usage.reports == len(prompts)
    # The static picture shows it too.
    svg = dash.to_svg()
    assert "trigger 5k" in svg and "target 2k" in svg and "compression" in svg
    assert "\u2212" in svg  # the drop label ("-3.2k")


# --- GoAway -------------------------------------------------------------------------------


async def test_go_away_deadline_is_set_and_marked(emulator: Emulator) -> None:
    model = LiveModel(MODEL, AUDIO, url=emulator.url, reconnect=ReconnectPolicy(on_go_away=False))
    async with model.connect(session_resumption=SessionResumptionConfig()) as s:
        panel = ConnectionPanel(s, connection_limit=600)
        chart = ContextChart(s)
        try:
            assert panel.go_away_deadline is None
            before = time.time()
            await emulator.go_away_now(time_left=30)
            async with asyncio.timeout(5):
                while s.go_away_deadline is None:
                    await asyncio.sleep(0.02)
            await settle(panel)
            assert panel.go_away_deadline == pytest.approx(before + 30, abs=2)
            assert panel.state == s.state
            # The browser counts down from the deadline; the kernel sent it once, with its clock.
            assert abs(panel.kernel_time - time.time()) < 5
            updates = [u for u in comm_of(panel).updates() if "go_away_deadline" in u]
            assert len(updates) == 1
            await settle(panel, 1.0)
            assert len([u for u in comm_of(panel).updates() if "go_away_deadline" in u]) == 1
            assert any(m["kind"] == "go_away" for d in comm_of(chart).deltas() for m in d["markers"])
        finally:
            panel.close()
            chart.close()


async def test_reconnect_after_go_away_shows_in_panel_and_chart(emulator: Emulator) -> None:
    model = LiveModel(MODEL, AUDIO, url=emulator.url)
    async with model.connect(session_resumption=SessionResumptionConfig()) as s:
        await s.send_text("hello")
        await until_usage(s)
        dash = Dashboard(s)
        try:
            first_started = dash.connection.connection_started
            await emulator.go_away_now(time_left=5)
            async with asyncio.timeout(10):
                while s.reconnects < 1 or s.state != "active":
                    await asyncio.sleep(0.05)
            await settle(dash)
            assert dash.connection.reconnects == 1
            assert dash.connection.connection_started > first_started
            assert dash.connection.go_away_deadline is None  # the new connection has none yet
            assert dash.connection.handle == s.handle and dash.connection.handle
            kinds = [m["kind"] for m in dash.chart._markers]
            assert "go_away" in kinds and "reconnecting" in kinds and "resumed" in kinds
            assert dash.transcript.turns[-1]["role"] == "model"
            assert 'You asked: "hello"' in dash.transcript.turns[-1]["text"]  # the output transcription
        finally:
            dash.close()
    # Closing the dashboard detached its listener from the session.
    assert not s._listeners


# --- bounds and the static rendering ------------------------------------------------------


def test_series_stays_bounded_over_an_hour_and_keeps_exact_points() -> None:
    series = Series(limit=600)
    # An hour at the ledger's 0.25 s resolution, a server count every 30 s, a drop every 10 min.
    for i in range(4 * 3600):
        t = i / 4
        kind = KIND_COMPRESSION if i % 2400 == 2399 else KIND_REPORTED if i % 120 == 119 else 0
        series.extend([[t, float(i % 2400), float(i % 2400) if kind == KIND_REPORTED else None, kind]])
        assert len(series.points) <= 600
    kept = {p[3] for p in series.points}
    assert kept == {0, KIND_REPORTED, KIND_COMPRESSION}
    assert sum(p[3] == KIND_COMPRESSION for p in series.points) == 6  # every drop survives
    assert [p[0] for p in series.points] == sorted(p[0] for p in series.points)
    assert series.points[-1][0] == pytest.approx(3599.75)  # the recent end is at full resolution
    assert len(json.dumps(series.points)) < 40_000


async def test_static_svg_and_plot_context_show_the_session(emulator: Emulator) -> None:
    async with LiveModel(MODEL, AUDIO, url=emulator.url).connect() as s:
        await stream_audio(s, 1.0, pace=0.02)
        dash = Dashboard(s, start=False)
        bundle = dash._repr_mimebundle_()
        chart = ContextChart(s)
        chart_data, _metadata = chart._repr_mimebundle_()
        chart.close()
        assert "application/vnd.jupyter.widget-view+json" in chart_data
        assert chart_data["image/svg+xml"].startswith("<svg") and "Context window" in chart_data["image/svg+xml"]
        fig = plot_context(s)
        dash.close()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    svg = bundle["image/svg+xml"]
    assert svg.startswith("<svg") and "Context window" in svg and "emulator" in svg
    assert "tokens in: audio 25" in svg
    line = fig.axes[0].get_lines()[0]
    assert max(line.get_ydata()) == pytest.approx(25, abs=1)
    import matplotlib.pyplot as plt

    plt.close(fig)


async def test_feed_reports_each_point_once(emulator: Emulator) -> None:
    async with LiveModel(MODEL, AUDIO, url=emulator.url).connect() as s:
        feed = SessionFeed(s)
        seen: list[float] = []
        for _ in range(6):
            await stream_audio(s, 0.5, pace=0.06)
            frame = feed.sample()
            seen += [p[0] for p in frame.points]
        final = feed.sample(time.time() + 1)
        assert final.points == ()  # nothing new: nothing re-sent
        assert len(seen) == len(set(seen))
        assert final.head[1] == pytest.approx(75, abs=1)
        # Every ledger point but a last, still-mergeable estimate went out exactly once.
        assert len(seen) >= len(s.ledger.points) - 1


# --- in a real kernel: deltas while idle, and the saved picture refreshed by display id -----

KERNEL_SETUP = r"""
import asyncio, json, time
from live_nb import _loop
from live_nb.client.session import LiveModel
from live_nb.emulator import Emulator
from live_nb.protocol.config import LiveGenerationConfig
from live_nb.widgets import Dashboard

async def _start():
    emu = Emulator(chunk_delay=0.005)
    await emu.start()
    s = await LiveModel("gemini-3.8-live", LiveGenerationConfig(response_modalities=["AUDIO"],
                        output_audio_transcription=True), url=emu.url).connect()
    return emu, s

async def _stream(seconds):
    for _ in range(int(seconds * 10)):
        await session.send_audio(bytes(3200))
        await asyncio.sleep(0.1)

emu, session = _loop.block(_loop.submit(_start()))
dash = Dashboard(session, auto_snapshot=None)
display(dash)
print("CHART=" + dash.chart.model_id)
"""


@pytest.mark.kernel
def test_in_a_kernel_deltas_flow_while_idle_and_snapshot_updates_the_saved_picture() -> None:
    import queue

    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")

    def run(code: str) -> list[dict[str, Any]]:
        msg_id = kc.execute(code)
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            seen.append(msg)
            if msg["msg_type"] == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                return seen
        raise AssertionError(f"cell did not finish: {code[:60]}")

    try:
        setup = run(KERNEL_SETUP)
        shown = next(m for m in setup if m["msg_type"] == "display_data")
        display_id = shown["content"]["transient"]["display_id"]
        data = shown["content"]["data"]
        assert "application/vnd.jupyter.widget-view+json" in data and data["image/svg+xml"].startswith("<svg")
        chart_id = (
            next(m["content"]["text"] for m in setup if m["msg_type"] == "stream" and "CHART=" in m["content"]["text"])
            .split("CHART=")[1]
            .strip()
        )

        # Start streaming in the background; the kernel then sits idle while the sampler sends.
        run("feeder = _loop.submit(_stream(3.0))")
        deltas = []
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            try:
                msg = kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            content = msg["content"]
            is_chart = msg["msg_type"] == "comm_msg" and content["comm_id"] == chart_id
            if is_chart and content["data"].get("method") == "custom":
                deltas.append(content["data"]["content"])
        assert 6 <= len(deltas) <= 14, len(deltas)  # ~4 a second, never more
        heads = [d["head"][1] for d in deltas]
        assert heads == sorted(heads) and heads[-1] > heads[0]

        # snapshot() re-renders the saved picture under the same display id.
        after = run("_loop.block(feeder); svg = dash.snapshot()")
        update = next(m for m in after if m["msg_type"] == "update_display_data")
        assert update["content"]["transient"]["display_id"] == display_id
        new_svg = update["content"]["data"]["image/svg+xml"]
        assert new_svg != data["image/svg+xml"] and "tokens in: audio 7" in new_svg
        # When the session closes, the sampler's last frame refreshes the saved picture by itself.
        run("_loop.block(_loop.submit(session.close()))")
        closed_svg = None
        end = time.monotonic() + 5
        while closed_svg is None and time.monotonic() < end:
            try:
                msg = kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["msg_type"] == "update_display_data" and "state closed" in msg["content"]["data"]["image/svg+xml"]:
                closed_svg = msg["content"]["data"]["image/svg+xml"]
        assert closed_svg is not None and msg["content"]["transient"]["display_id"] == display_id
        errors = run("print('ERRORS=', len(dash.sampler.errors))")
        assert any("ERRORS= 0" in m["content"].get("text", "") for m in errors if m["msg_type"] == "stream")
        run("_loop.block(_loop.submit(emu.stop())); dash.close()")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_an_hour_of_audio_keeps_traits_svg_and_messages_bounded() -> None:
    """A simulated hour (the ledger is real, its clock is scripted): nothing grows without bound.

    A real session cannot run for an hour in a test, so the ledger is driven at the rates a
    streaming microphone gives (a 100 ms chunk = 2.5 tokens) with a usage report every 30 s, and
    the chart is sampled at 4 Hz, as the Sampler would.
    """
    from types import SimpleNamespace

    from live_nb.protocol.ledger import ContextLedger

    ledger = ContextLedger(
        compression=ContextWindowCompressionConfig(trigger_tokens=20_000, sliding_window=SlidingWindow(10_000))
    )
    start = 1_700_000_000.0
    session = SimpleNamespace(ledger=ledger, state="active", connection_started=start, transcript=[], events=[])
    chart = ContextChart(max_points=600, checkpoint_interval=1e9)  # checkpoints scripted below
    feed = SessionFeed(session)
    rec = comm_of(chart)
    for i in range(36_000):  # one hour of 100 ms chunks
        now = start + i * 0.1
        ledger.record_input("AUDIO", 2.5, now)
        if i % 300 == 299:  # a question and a usage report every 30 s
            ledger.record_output("AUDIO", 40, now)
            ledger.record_usage(UsageMetadata(prompt_token_count=round(ledger.estimated), response_token_count=40), now)
        if i % 10 == 0 and ledger.estimated > 0:
            ledger.record_input("AUDIO", 0.0, now)  # a new user turn starts after the reply
        if i % 3 == 0:  # the sampler at ~4 Hz
            chart.apply(feed.sample(now))
        if i % 300 == 0:  # a checkpoint every 30 s (checkpoint_interval's default)
            chart.checkpoint()
    assert len(ledger.compressions) >= 4
    assert len(chart.series) <= 600 and len(json.dumps(chart.series)) < 20_000
    assert len(chart.compressions) == len(ledger.compressions)  # every drop kept
    svg = chart.to_svg()
    assert len(svg) < 60_000
    deltas = rec.deltas()
    assert len(deltas) <= 36_000 / 3 + 1  # never more than one per sample
    assert max(len(json.dumps(d)) for d in deltas) < 1_000  # each delta is small
    chart.close()


# --- the streaming panel: what the mic/camera streamer sends and what it costs ---------------


def synced_state(rec: RecordingComm) -> dict[str, Any]:
    """The widget state the browser holds: the opening state, then every update, in order."""
    state = dict(rec.opened.get("data", {}).get("state", {}))
    for update in rec.updates():
        state.update(update)
    return state


async def test_streaming_panel_shows_the_mic_and_its_token_rate_and_not_streaming_without_one(
    emulator: Emulator,
) -> None:
    from live_nb.widgets.media import start_media, stop_media

    async with LiveModel(MODEL, AUDIO, url=emulator.url).connect() as session:
        dash = Dashboard(session)
        rec = comm_of(dash.media)
        streamer = None
        try:
            # No streamer for this session: the panel says so, and so does the saved picture.
            await settle(dash)
            before = synced_state(rec)
            assert before["present"] is False and before["streaming"] is False
            assert (before["mic"], before["camera"], before["token_rate"]) == ("off", "off", 0.0)
            assert "streaming: not streaming" in dash.to_svg()

            # %live mic on: start_media makes the session's streamer; chunks then arrive the way a
            # browser's custom messages do (another thread, 100 ms of 16 kHz PCM16 every 100 ms).
            streamer = start_media(session, audio=True, video=False)
            pcm = tone(0.1)
            t0 = time.monotonic()

            def browser() -> None:
                for seq in range(70):  # 7 s in real time
                    streamer._handle_msg(
                        {
                            "content": {
                                "data": {
                                    "method": "custom",
                                    "content": {"type": "audio", "seq": seq, "epoch": "e1", "rate": 16000},
                                }
                            },
                            "buffers": [memoryview(pcm)],
                        }
                    )
                    time.sleep(max(0.0, t0 + (seq + 1) * 0.1 - time.monotonic()))

            sending = asyncio.ensure_future(asyncio.to_thread(browser))
            await asyncio.sleep(6.5)  # past the 5 s the rate is measured over
            during = synced_state(rec)
            updates_during = len(rec.updates())
            elapsed = time.monotonic() - t0
            await sending
            assert streamer.feed is not None
            await asyncio.wrap_future(streamer.feed.drain())

            assert during["present"] is True and during["streaming"] is True
            assert (during["mic"], during["camera"]) == ("on", "off")
            assert during["token_rate"] == pytest.approx(25, abs=2.5)  # the streamer's own measurement
            assert during["nominal_rate"] == 25.0
            assert 45 <= during["chunks_received"] <= 66 and during["gaps"] == 0
            assert during["frames_received"] == 0
            # No message per chunk: ~65 chunks, at most one update a second plus the switches.
            assert updates_during <= elapsed + 4
            # The session really received it: 7 s of audio is 175 tokens in its context estimate.
            assert session.ledger.input_by_modality["AUDIO"] == pytest.approx(175, abs=1)

            # Once chunks stop arriving, the mic is no longer "on" and streaming costs nothing,
            # though the streamer still wants audio (a closed tab sends no switch). Quiet, the
            # sampler runs once a second: 1.5 s without a new chunk is seen within 3 s.
            await settle(dash, 3.0)
            stalled = synced_state(rec)
            assert (stalled["mic"], stalled["streaming"], stalled["token_rate"]) == ("waiting", False, 0.0)
            assert stalled["chunks_received"] == 70

            # %live mic off: the switch is sent at the next sample.
            stop_media(session)
            await settle(dash)
            after = synced_state(rec)
            assert (after["present"], after["mic"], after["token_rate"]) == (True, "off", 0.0)
            assert "streaming: mic off · camera off · 0 tokens/s · 70 chunks, 0 frames, 0 gaps" in dash.to_svg()
        finally:
            dash.close()
            if streamer is not None:
                streamer.close()


async def test_streaming_panel_alone_shows_a_given_camera_streamer_and_a_muted_mic(emulator: Emulator) -> None:
    from live_nb.widgets import MediaPanel
    from live_nb.widgets.media import MediaStreamer

    # 2.5's fixed 258 tokens a frame: the streamer's nominal rate counts at that rate (widgets/_feed.py).
    # 2.5 native audio is a Developer API model: its service path.
    model = LiveModel(NATIVE_25, AUDIO, backend="gemini", url=emulator.url, api_key="test-key-not-real")
    async with model.connect() as session:
        # A streamer made directly (not by start_media) is shown when it is passed in.
        streamer = MediaStreamer(session, audio=True, muted=True, video=True)
        panel = MediaPanel(session, media=streamer)
        rec = comm_of(panel)
        try:
            jpeg = b"\xff\xd8\xff\xe0" + bytes(4000) + b"\xff\xd9"

            def browser() -> None:
                for seq in range(3):  # 1 fps
                    streamer._handle_msg(
                        {
                            "content": {
                                "data": {
                                    "method": "custom",
                                    "content": {
                                        "type": "video",
                                        "seq": seq,
                                        "epoch": "v1",
                                        "width": 640,
                                        "height": 480,
                                    },
                                }
                            },
                            "buffers": [memoryview(jpeg)],
                        }
                    )
                    time.sleep(1.0)

            await asyncio.to_thread(browser)
            await settle(panel, 1.2)
            state = synced_state(rec)
            assert (state["mic"], state["camera"], state["streaming"]) == ("muted", "on", True)
            assert state["frames_received"] == 3 and state["chunks_received"] == 0 and state["gaps"] == 0
            assert state["nominal_rate"] == 258.0  # one frame a second at 258 tokens each
            assert state["token_rate"] == pytest.approx(3 * 258 / 5, abs=1)  # measured: 3 frames in 5 s
            assert session.ledger.input_by_modality["VIDEO"] == pytest.approx(3 * 258)
        finally:
            panel.close()
            streamer.close()


def test_feed_keeps_reporting_markers_and_turns_once_the_session_logs_are_full() -> None:
    """session.events and session.transcript are bounded logs that let their oldest entries go; the
    dashboard feed counts what was appended, so new markers and turns keep coming when they are full."""
    from types import SimpleNamespace

    from live_nb.client.session import BoundedLog
    from live_nb.protocol.events import Reconnecting
    from live_nb.protocol.ledger import ContextLedger
    from live_nb.widgets._feed import SessionFeed

    session = SimpleNamespace(events=BoundedLog(8), transcript=BoundedLog(8), connection_started=1000.0,
                              ledger=ContextLedger())
    feed = SessionFeed(session)
    seen = 0
    for i in range(40):
        session.events.append((1000.0 + i, Reconnecting("dropped", i + 1, 0.0)))
        session.transcript.append((1000.0 + i, "model", f"reply {i}"))
        frame = feed.sample(now=1000.0 + i)
        seen += len(frame.markers)
        assert frame.markers and frame.markers[-1]["label"] == "reconnect (dropped)"
        assert frame.turns is not None and frame.turns[-1]["text"] == f"reply {i}"
    assert seen == 40 and session.events.dropped > 0 and session.transcript.dropped > 0
