"""The sans-I/O media feed (widgets/media_feed.py), the bridge's one token count, and the streamer registry."""

from __future__ import annotations

import asyncio
import math
import struct

import pytest

from live_nb.client.session import LiveModel
from live_nb.emulator import Emulator
from live_nb.protocol.tokens import AUDIO_TOKENS_PER_SECOND
from live_nb.widgets import streamers
from live_nb.widgets.media_bridge import MediaFeed
from live_nb.widgets.media_feed import (
    MediaIntake,
    SendAudio,
    SendSignal,
    SendVideo,
    TokenWindow,
    VadSettings,
)

CHUNK = 3200  # 100 ms of 16 kHz PCM16


def tone(seconds: float, amplitude: float) -> bytes:
    n = int(16_000 * seconds)
    return struct.pack(f"<{n}h", *(int(amplitude * 32767 * math.sin(2 * math.pi * 220 * i / 16_000)) for i in range(n)))


def kinds(items: list[object]) -> list[str]:
    out = []
    for item in items:
        if isinstance(item, SendSignal):
            out.append(item.kind)
        else:
            out.append("audio" if isinstance(item, SendAudio) else "video" if isinstance(item, SendVideo) else "?")
    return out


def test_automatic_activity_sends_audio_then_audio_stream_end_after_the_pause() -> None:
    intake = MediaIntake(VadSettings(silence_seconds=0.3), manual_activity=False)
    speech, quiet = tone(0.1, 0.3), bytes(CHUNK)
    items = []
    for seq, chunk in enumerate([speech, speech, quiet, quiet, quiet, quiet]):
        items += intake.push_audio(chunk, seq, "e")
    assert kinds(items) == ["audio"] * 5 + ["audio_stream_end", "audio"]
    assert [i.pcm for i in items if isinstance(i, SendAudio)] == [speech, speech, quiet, quiet, quiet, quiet]
    assert intake.audio_seconds == pytest.approx(0.6) and intake.audio_seq.received == 6


def test_manual_activity_brackets_speech_and_end_audio_closes_an_open_turn() -> None:
    intake = MediaIntake(VadSettings(), manual_activity=True)
    items = intake.push_audio(tone(0.1, 0.3), 0, "e")
    assert kinds(items) == ["activity_start", "audio"] and intake.vad.speaking
    assert kinds(intake.end_audio()) == ["activity_end"]
    assert intake.end_audio() == []  # nothing open any more


def test_swapped_and_lost_chunks_come_out_in_order_and_end_audio_releases_the_held_ones() -> None:
    intake = MediaIntake()
    chunks = [bytes([i]) * CHUNK for i in range(6)]
    assert intake.push_audio(chunks[1], 1, "e") == []  # waits for 0
    assert [i.pcm for i in intake.push_audio(chunks[0], 0, "e") if isinstance(i, SendAudio)] == chunks[:2]
    assert intake.push_audio(chunks[4], 4, "e") == []  # 2 and 3 never come
    released = intake.end_audio()
    assert [i.pcm for i in released if isinstance(i, SendAudio)] == [chunks[4]]
    assert (intake.audio_seq.gaps, intake.audio_seq.missing) == (1, 2)
    assert intake.push_audio(chunks[2], 2, "e") == []  # a straggler after its gap was declared
    assert intake.audio_seq.duplicates == 1


def test_video_frames_numbered_or_not() -> None:
    intake = MediaIntake()
    assert intake.push_video(b"a") == [SendVideo(b"a")]
    assert intake.push_video(b"c", 1, "v") == []
    assert intake.push_video(b"b", 0, "v") == [SendVideo(b"b"), SendVideo(b"c")]
    assert intake.video_seq.received == 3


def test_token_window_adds_what_it_is_told_over_its_span() -> None:
    window = TokenWindow(span=5.0)
    for t in range(10):
        window.add(2.5, 100.0 + t * 0.1)  # a second of audio, 25 tokens
    assert window.rate(101.0) == pytest.approx(25 / 5)
    assert window.rate(105.85) == pytest.approx(2.5 / 5)  # only the newest is younger than 5 s
    assert window.rate(120.0) == 0.0


@pytest.mark.timeout(60)
async def test_the_bridge_counts_the_tokens_the_session_counted_once(emulator: Emulator) -> None:
    async with LiveModel(url=emulator.url).connect() as session:
        feed = MediaFeed(session, manual_activity=False)
        try:
            before = session.ledger.input_by_modality.get("AUDIO", 0.0)
            for seq in range(20):
                feed.push_audio(bytes(CHUNK), seq, "e")
            await asyncio.wrap_future(feed.drain())
            counted = session.ledger.input_by_modality["AUDIO"] - before
            assert counted == pytest.approx(2 * AUDIO_TOKENS_PER_SECOND)
            assert feed.token_rate() == pytest.approx(counted / 5)  # the same count, spread over 5 s
            stats = feed.stats()
            assert (stats.chunks_received, stats.chunks_sent, stats.backlog, stats.errors) == (20, 20, 0, 0)
        finally:
            feed.close()


def test_the_streamer_registry_is_keyed_by_the_session_itself() -> None:
    class Session:
        pass

    class Streamer:
        comm = object()

    session, other, streamer = Session(), Session(), Streamer()
    streamers.register(session, streamer)
    try:
        assert streamers.lookup(session) is streamer and streamers.lookup(other) is None
        assert streamer in streamers.all_streamers()
        unhashable: list[int] = []
        streamers.register(unhashable, streamer)  # not weakly referable: kept by id
        assert streamers.lookup(unhashable) is streamer
        streamers.forget(unhashable)
        assert streamers.lookup(unhashable) is None
    finally:
        streamers.forget(session)
    assert streamers.lookup(session) is None
