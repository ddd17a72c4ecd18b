"""Kernel side of mic/camera streaming and reply playback (live_nb/widgets/media.py).

Layers, as in the module: the sans-I/O pieces (sequence gaps, VAD, levels) with plain numbers;
then the widgets' message path (``Widget._handle_msg``, exactly what a browser custom message
reaches) feeding a real ``LiveSession`` against the real emulator, checked in the emulator's
consumed log. What the widget sends to the browser is read from a recording comm (the
``DummyComm`` pattern of ipywidgets' own tests); the browser half is tests/browser/test_media.py.

Sessions are today's default (gemini-3.8-live, AUDIO replies with output transcription) on the
emulator's Developer API path, where ``audioStreamEnd`` (what the mic sends after a pause under
automatic activity detection) exists; on a Vertex AI path the mic sends none and the service's own
voice activity detection ends the turn (tested below too).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import numpy as np
import pytest
from emulator_constants import VERTEX_PATH

from live_nb import LiveGenerationConfig, LiveModel, SessionResumptionConfig
from live_nb.emulator import Emulator
from live_nb.exceptions import InvalidState, MediaError
from live_nb.protocol.messages import RealtimeInput
from live_nb.widgets import media
from live_nb.widgets.media import (
    AudioPlayer,
    MediaFeed,
    MediaStreamer,
    SequenceTracker,
    VadSettings,
    VoiceActivityDetector,
    pcm16_level,
    start_media,
    stop_media,
)

MODEL = "gemini-3.8-live"
NATIVE_25 = "gemini-2.5-flash-native-audio-preview-12-2025"  # a fixed 258 tokens a frame
KEY = "test-key-not-a-real-one"
CHUNK = 3200  # 100 ms of 16 kHz PCM16
MS = 0.001


def speech_like(seconds: float, amplitude: float = 0.3, rate: int = 16_000) -> bytes:
    """A voiced, syllable-modulated tone: loud enough for both VADs, like speech in level."""
    t = np.arange(int(rate * seconds)) / rate
    x = amplitude * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return (x * 32767).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(16_000 * seconds) * 2)


def chunks(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK)]


def custom(widget: Any, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
    """Deliver a custom message the way a browser's ``model.send`` arrives at the widget."""
    widget._handle_msg(
        {"content": {"data": {"method": "custom", "content": content}}, "buffers": [memoryview(b) for b in buffers or []]}
    )


def browser_update(widget: Any, state: dict[str, Any]) -> None:
    """Deliver a state update the way the browser's ``model.save_changes()`` arrives."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []})


def record(widget: Any) -> list[tuple[dict[str, Any], list[bytes]]]:
    """Record the custom messages the widget sends to the browser (ipywidgets' DummyComm pattern)."""
    sent: list[tuple[dict[str, Any], list[bytes]]] = []
    original = widget.comm.publish_msg

    def publish_msg(msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any) -> None:
        if data and data.get("method") == "custom":
            sent.append((data["content"], [bytes(b) for b in buffers or []]))
        original(msg_type, data=data, metadata=metadata, buffers=buffers, **keys)

    widget.comm.publish_msg = publish_msg
    return sent


def realtime(emu_session: Any) -> list[RealtimeInput]:
    return [m for m in emu_session.consumed if isinstance(m, RealtimeInput)]


async def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(20 * MS)
    raise AssertionError(f"timed out waiting for {what}")


async def connect(emulator: Emulator, model_name: str = MODEL, vertex: bool = False, **config: Any) -> Any:
    """A session on the Developer API path (or, with ``vertex``, on the Vertex AI path)."""
    generation = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True, **config)
    if vertex:
        model = LiveModel(model_name, generation, url=emulator.url + VERTEX_PATH)
    else:
        model = LiveModel(model_name, generation, backend="gemini", url=emulator.url, api_key=KEY)
    return await model.connect(session_resumption=SessionResumptionConfig())


# ---------------------------------------------------------------------------------------------
# Sans-I/O pieces.


def test_sequence_tracker_releases_in_order_and_puts_swapped_chunks_back() -> None:
    tracker = SequenceTracker(hold=3)
    assert [tracker.receive(s, "a", s) for s in (0, 1)] == [[0], [1]]
    # 3 arrives before 2 (ipykernel can swap comm messages): it waits, then both go, in order.
    assert tracker.receive(3, "a", 3) == []
    assert tracker.held == 1
    assert tracker.receive(2, "a", 2) == [2, 3]
    assert (tracker.received, tracker.reordered, tracker.gaps, tracker.missing) == (4, 1, 0, 0)
    assert tracker.receive(3, "a", 3) == []  # a repeat
    assert tracker.duplicates == 1


def test_sequence_tracker_declares_a_chunk_lost_after_hold_and_drops_the_straggler() -> None:
    tracker = SequenceTracker(hold=3)
    tracker.receive(0, "a", 0)
    assert [tracker.receive(s, "a", s) for s in (2, 3, 4)] == [[], [], []]
    assert tracker.receive(5, "a", 5) == [2, 3, 4, 5]  # a fourth early chunk: 1 is lost
    assert (tracker.gaps, tracker.missing, list(tracker.recent_gaps)) == (1, 1, [("a", 1, 2)])
    assert tracker.receive(1, "a", 1) == []  # too late now
    assert tracker.duplicates == 1
    # A pause flushes what waits; a new capture epoch starts from 0 again.
    assert tracker.receive(7, "a", 7) == []
    assert tracker.flush() == [7]
    assert (tracker.gaps, tracker.missing) == (2, 2)
    assert tracker.receive(0, "b", "b0") == ["b0"]
    # A new epoch whose first chunk never came: its successors wait, then the hole is counted.
    for s in (1, 2, 3):
        tracker.receive(s, "c", s)
    assert tracker.receive(4, "c", 4) == [1, 2, 3, 4]
    assert (tracker.gaps, tracker.missing, tracker.received) == (3, 3, 11)


def test_vad_opens_on_speech_and_closes_after_the_silence_limit() -> None:
    vad = VoiceActivityDetector(VadSettings(threshold=0.02, silence_seconds=1.0, min_speech_seconds=0.2))
    assert vad.process(0.0, 0.1) is None
    assert vad.process(0.5, 0.1) is None  # 100 ms: below min_speech_seconds (a click)
    assert vad.process(0.0, 0.1) is None
    assert [vad.process(0.5, 0.1) for _ in range(2)] == [None, "speech_start"]
    signals = [vad.process(0.001, 0.1) for _ in range(10)]
    assert signals == [None] * 9 + ["speech_end"]
    assert not vad.speaking
    # Speech resuming inside the silence limit keeps the turn open.
    vad.process(0.5, 0.1), vad.process(0.5, 0.1)
    assert [vad.process(0.0, 0.1) for _ in range(5)] == [None] * 5
    assert vad.process(0.5, 0.1) is None and vad.speaking
    assert vad.reset() == "speech_end" and vad.reset() is None


def test_vad_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        VadSettings(threshold=0)
    with pytest.raises(ValueError):
        VadSettings(silence_seconds=0)


def test_pcm16_level() -> None:
    assert pcm16_level(b"") == 0.0
    assert pcm16_level(silence(0.1)) == 0.0
    square = np.array([32767, -32768] * 800, dtype="<i2").tobytes()
    assert pcm16_level(square) == pytest.approx(1.0, abs=1e-4)
    t = np.arange(1600) / 16_000
    sine = (0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
    assert pcm16_level(sine) == pytest.approx(0.5 / math.sqrt(2), rel=1e-3)
    assert pcm16_level(memoryview(sine)) == pcm16_level(sine)


# ---------------------------------------------------------------------------------------------
# Feeding a real session through the widget's message path.


async def stream_from_thread(streamer: MediaStreamer, pcm: bytes, epoch: str = "e1", first_seq: int = 0,
                             pace: float = 0.0, skip: frozenset[int] = frozenset()) -> int:
    """Deliver ``pcm`` as browser chunks from another thread (as the kernel's on_msg runs)."""

    def run() -> int:
        seq = first_seq
        for chunk in chunks(pcm):
            if seq not in skip:
                custom(streamer, {"type": "audio", "seq": seq, "epoch": epoch, "rate": 16000}, [chunk])
            seq += 1
            if pace:
                time.sleep(pace)
        return seq

    return await asyncio.to_thread(run)


@pytest.mark.timeout(60)
async def test_spoken_turn_reaches_the_emulator_and_the_reply_goes_to_the_browser(emulator: Emulator) -> None:
    session = await connect(emulator)
    streamer = MediaStreamer(session, label="t")
    sent = record(streamer)
    try:
        pcm = speech_like(1.5) + silence(1.3)
        n = await stream_from_thread(streamer, pcm)
        assert streamer.feed is not None
        await asyncio.wrap_future(streamer.feed.drain())
        emu = next(iter(emulator.sessions.values()))
        await wait_until(lambda: any(c.get("type") == "turn_complete" for c, _ in sent), what="the reply")
        inputs = realtime(emu)
        audio = [m.audio.data for m in inputs if m.audio is not None]
        # Every chunk arrived, in order, byte for byte.
        assert len(audio) == n == 28
        assert b"".join(audio) == pcm
        # Automatic VAD: one audioStreamEnd after ~1 s of silence that followed the speech.
        ends = [i for i, m in enumerate(inputs) if m.audio_stream_end]
        assert len(ends) == 1
        assert 15 + 9 <= ends[0] <= 15 + 11
        assert not any(m.activity_start or m.activity_end for m in inputs)
        # The emulator heard 1.5 s of speech, ended its turn after its own silence limit, and
        # charged 25 tokens per second of the audio in that turn (2.5 per 100 ms chunk).
        user = emu.turns[0]
        assert user.role == "user" and "1.5 s of speech" in user.text
        heard = 15 + round(emulator.settings.silence_seconds / 0.1)
        assert user.modalities["AUDIO"] == pytest.approx(heard * 2.5)
        # The reply went to the browser as 24 kHz PCM in binary buffers, numbered, with a transcript.
        plays = [(c, b) for c, b in sent if c["type"] == "play"]
        assert plays and all(c["rate"] == 24000 and len(b[0]) > 0 for c, b in plays)
        assert [c["seq"] for c, _ in plays] == list(range(len(plays)))
        assert streamer.reply_samples_sent == sum(len(b[0]) // 2 for _, b in plays)
        assert "Turn 1." in streamer.transcript
        streamer._publish(force=True)
        assert (streamer.chunks_received, streamer.gaps, streamer.missing_chunks) == (28, 0, 0)
    finally:
        streamer.close()
        await session.close()


@pytest.mark.timeout(60)
async def test_on_vertex_a_mic_pause_sends_no_audio_stream_end_and_the_service_vad_ends_the_turn(
    emulator: Emulator,
) -> None:
    session = await connect(emulator, vertex=True)
    streamer = MediaStreamer(session, label="v")
    sent = record(streamer)
    try:
        assert not session.offers_audio_stream_end
        pcm = speech_like(1.5) + silence(1.3)
        n = await stream_from_thread(streamer, pcm)
        assert streamer.feed is not None
        await asyncio.wrap_future(streamer.feed.drain())
        await wait_until(lambda: any(c.get("type") == "turn_complete" for c, _ in sent), what="the reply")
        emu = next(iter(emulator.sessions.values()))
        inputs = realtime(emu)
        assert b"".join(m.audio.data for m in inputs if m.audio is not None) == pcm and len(inputs) == n
        assert not any(m.audio_stream_end for m in inputs)  # Vertex AI has no audioStreamEnd
        assert list(streamer.feed.errors) == [] and emulator.refused == []
        assert emu.turns[0].role == "user" and "1.5 s of speech" in emu.turns[0].text
        assert "Turn 1." in streamer.transcript
        assert emulator.paths[-1][1] == "vertex"
    finally:
        streamer.close()
        await session.close()


@pytest.mark.timeout(60)
async def test_manual_activity_brackets_speech_and_never_sends_audio_stream_end(emulator: Emulator) -> None:
    session = await connect(emulator, realtime_input_config={"automaticActivityDetection": {"disabled": True}})
    streamer = MediaStreamer(session)
    sent = record(streamer)
    try:
        assert streamer.feed is not None and streamer.feed.manual_activity
        await stream_from_thread(streamer, silence(0.3) + speech_like(1.0) + silence(1.2))
        await asyncio.wrap_future(streamer.feed.drain())
        emu = next(iter(emulator.sessions.values()))
        await wait_until(lambda: any(c.get("type") == "turn_complete" for c, _ in sent), what="the reply")
        inputs = realtime(emu)
        kinds = ["start" if m.activity_start else "end" if m.activity_end else "stream_end" if m.audio_stream_end
                 else "audio" for m in inputs]
        assert kinds.count("start") == 1 and kinds.count("end") == 1 and "stream_end" not in kinds
        start, end = kinds.index("start"), kinds.index("end")
        assert start == 3  # right before the first loud chunk
        assert end == 3 + 1 + 10 + 10  # after 10 speech chunks and 1 s of silence
        assert emulator.refused == [] and session.state != "closed"
        assert streamer.feed.signals_sent == ["activity_start", "activity_end"]
    finally:
        streamer.close()
        await session.close()


@pytest.mark.timeout(60)
async def test_gaps_are_counted_and_swapped_or_repeated_chunks_reach_the_session_once_in_order(
    emulator: Emulator,
) -> None:
    session = await connect(emulator)
    streamer = MediaStreamer(session)
    try:
        pcm = b"".join(np.full(1600, i + 1, dtype="<i2").tobytes() for i in range(20))  # distinct chunks
        order = [0, 1, 3, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 8, 15, 16, 16, 17, 18, 19]
        # 2 and 3 swapped: put back. 8 comes after 5 later chunks: declared lost, then dropped.

        def run() -> None:
            for seq in order:
                custom(streamer, {"type": "audio", "seq": seq, "epoch": "e"}, [pcm[seq * CHUNK:(seq + 1) * CHUNK]])

        await asyncio.to_thread(run)
        assert streamer.feed is not None
        await asyncio.wrap_future(streamer.feed.drain())
        streamer._publish(force=True)
        assert (streamer.chunks_received, streamer.gaps, streamer.missing_chunks) == (19, 1, 1)
        stats = streamer.feed.stats()
        assert stats.duplicates == 2 and stats.reordered == 7  # 3, and 9..14 waited
        emu = next(iter(emulator.sessions.values()))
        audio = [m.audio.data for m in realtime(emu) if m.audio is not None]
        expected = [pcm[i * CHUNK:(i + 1) * CHUNK] for i in range(20) if i != 8]
        assert audio == expected
    finally:
        streamer.close()
        await session.close()


@pytest.mark.timeout(60)
async def test_video_frames_and_the_token_rate(emulator: Emulator) -> None:
    # 2.5 native audio: a frame costs 258 tokens there, the rate the streamer's own count uses.
    session = await connect(emulator, NATIVE_25)
    streamer = MediaStreamer(session, video=True)
    try:
        jpeg = b"\xff\xd8\xff\xe0" + bytes(9000) + b"\xff\xd9"
        start = time.monotonic()

        def run() -> None:
            for i in range(20):  # 2 s of audio with a frame each second
                custom(streamer, {"type": "audio", "seq": i, "epoch": "a"}, [silence(0.1)])
                if i % 10 == 0:
                    custom(streamer, {"type": "video", "seq": i // 10, "epoch": "v", "width": 640, "height": 480},
                           [jpeg])
                time.sleep(0.1)

        await asyncio.to_thread(run)
        assert streamer.feed is not None
        await asyncio.wrap_future(streamer.feed.drain())
        emu = next(iter(emulator.sessions.values()))
        frames = [m.video.data for m in realtime(emu) if m.video is not None]
        assert frames == [jpeg, jpeg]
        streamer._publish(force=True)
        assert streamer.frames_received == 2 and streamer.audio_on and streamer.video_on
        # 2 s of audio (50 tokens) + 2 frames (516 tokens) over the 5 s window.
        assert streamer.token_rate == pytest.approx((50 + 2 * 258) / 5, abs=0.5)
        assert time.monotonic() - start < 5
        # The session's own context estimate counted the same: 50 audio + 516 video tokens.
        assert session.ledger.estimated == pytest.approx(50 + 2 * 258, abs=1)
    finally:
        streamer.close()
        await session.close()


@pytest.mark.timeout(90)
async def test_nothing_is_lost_across_a_go_away_while_streaming(emulator: Emulator) -> None:
    session = await connect(emulator)
    streamer = MediaStreamer(session)
    try:
        pcm = b"".join(
            (np.full(1600, i % 50, dtype="<i2")).tobytes() for i in range(40)
        )  # 4 s, every chunk distinct and below the VAD threshold

        async def go_away_midway() -> None:
            await asyncio.sleep(1.5)
            await emulator.go_away_now(time_left=0.5)

        mover = asyncio.create_task(go_away_midway())
        n = await stream_from_thread(streamer, pcm, pace=0.1)
        await mover
        assert streamer.feed is not None
        await asyncio.wrap_future(streamer.feed.drain())
        await wait_until(lambda: session.reconnects >= 1 and session.state == "active", 20, "the resume")
        await wait_until(
            lambda: sum(
                len([m for m in realtime(s) if m.audio is not None]) for s in emulator.sessions.values()
            ) >= n,
            20,
            "every chunk consumed",
        )
        # One emulator session (resumed, not new) consumed every chunk exactly once, in order.
        assert len(emulator.sessions) == 1
        emu = next(iter(emulator.sessions.values()))
        audio = [m.audio.data for m in realtime(emu) if m.audio is not None]
        assert b"".join(audio) == pcm
        assert list(streamer.feed.errors) == []
    finally:
        streamer.close()
        await session.close()


# ---------------------------------------------------------------------------------------------
# Errors, mute, and the entry points the magics call.


@pytest.mark.timeout(60)
async def test_muted_audio_is_not_sent_and_mute_closes_the_turn(emulator: Emulator) -> None:
    session = await connect(emulator)
    streamer = MediaStreamer(session)
    try:
        await stream_from_thread(streamer, speech_like(0.5))
        browser_update(streamer, {"muted": True})
        custom(streamer, {"type": "audio_end"})
        await stream_from_thread(streamer, speech_like(0.5), first_seq=5)
        assert streamer.feed is not None
        await asyncio.wrap_future(streamer.feed.drain())
        emu = next(iter(emulator.sessions.values()))
        inputs = realtime(emu)
        assert len([m for m in inputs if m.audio is not None]) == 5
        assert inputs[-1].audio_stream_end
    finally:
        streamer.close()
        await session.close()


@pytest.mark.timeout(60)
async def test_a_closed_session_is_reported_in_the_widget(emulator: Emulator) -> None:
    session = await connect(emulator)
    streamer = MediaStreamer(session)
    try:
        await session.close()
        await stream_from_thread(streamer, silence(0.2))
        assert streamer.feed is not None
        await asyncio.wrap_future(streamer.feed.drain())
        assert len(streamer.feed.errors) == 2
        assert all(isinstance(e, InvalidState) for e in streamer.feed.errors)
        assert streamer.error_kind == "session" and "refused media" in streamer.error
        assert not streamer.audio and not streamer.video  # capture turned off: the mic light goes out
        with pytest.raises(MediaError) as info:
            streamer.raise_for_error()
        assert info.value.kind == "session"
        with pytest.raises(InvalidState):
            start_media(session)
    finally:
        streamer.close()


def test_browser_errors_become_media_errors() -> None:
    player = AudioPlayer()
    player.raise_for_error()  # nothing wrong yet
    browser_update(player, {"error": "Permission to use the microphone or camera was refused.",
                            "error_kind": "permission"})
    with pytest.raises(MediaError) as info:
        player.raise_for_error()
    assert info.value.kind == "permission" and "refused" in str(info.value)
    player.close()


def test_feed_refuses_pushes_after_close() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        feed = MediaFeed(object(), loop=loop, manual_activity=False)
        feed.close()
        with pytest.raises(InvalidState):
            feed.push_audio(silence(0.1))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(2)
        loop.close()


@pytest.mark.timeout(60)
async def test_start_and_stop_media_keep_one_streamer_per_session(emulator: Emulator) -> None:
    session = await connect(emulator)
    try:
        mic = start_media(session, audio=True, video=False)  # what `%live mic on` calls
        assert (mic.audio, mic.video) == (True, False)
        cam = start_media(session, audio=False, video=True)  # `%live camera on`: leaves the mic alone
        assert cam is mic and (mic.audio, mic.video) == (True, True)
        assert stop_media(session, audio=True, video=False) is mic  # `%live mic off`
        assert (mic.audio, mic.video) == (False, True)
        mic.muted = True
        assert start_media(session, audio=True) is mic and mic.audio and not mic.muted
        assert mic in list(media.streamers())
        assert stop_media(object()) is None
        mic.close()
        fresh = start_media(session)
        assert fresh is not mic  # a closed widget is replaced
        # The notebook's stream(session, camera) is start_media(session, audio=True, video=True, source=camera).
        assert start_media(session, audio=True, video=True) is fresh and (fresh.audio, fresh.video) == (True, True)
        assert fresh.session is session and fresh.feed is not None and fresh.feed.session is session
    finally:
        for s in list(media.streamers()):
            s.close()
        await session.close()
