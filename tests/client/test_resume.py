"""Resilient sessions against the real emulator: GoAway, drops, both resume forms, fatal closes.

Sessions use today's default (gemini-3.8-live, AUDIO replies with output transcription) on the
emulator's bare URL, which serves Vertex AI's flavour: transparent resumption is offered there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from live_nb.client.reconnect import ReconnectPolicy
from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.exceptions import InvalidState, SessionLost
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig
from live_nb.protocol.events import Connected, Reconnecting, Resumed, SessionClosed
from live_nb.protocol.messages import (
    ClientContent,
    GoAway,
    RealtimeInput,
    ServerContent,
    SessionResumptionUpdate,
    UsageMetadata,
)

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-3.8-live"
OTHER_MODEL = "gemini-live-2.5-flash-native-audio"  # also served on Vertex AI
AUDIO = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
TRANSPARENT = SessionResumptionConfig(transparent=True)
SILENCE = b"\x00\x00" * 1600  # 100 ms of silence: counted, never a turn


def describe(message: Any) -> str:
    if isinstance(message, ClientContent):
        return "text:" + "|".join(t.text for t in message.turns)
    if isinstance(message, RealtimeInput) and message.audio is not None:
        return f"audio:{message.audio.data[:4].hex()}"
    return type(message).__name__


def chunk(i: int) -> bytes:
    return i.to_bytes(4, "big") + SILENCE[4:]


async def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.005)


async def collect_until(session: LiveSession, stop: Callable[[Any], bool], seconds: float = 10.0) -> list[Any]:
    items: list[Any] = []
    async with asyncio.timeout(seconds):
        async for item in session.receive():
            items.append(item)
            if stop(item):
                break
    return items


def is_usage(item: Any) -> bool:
    return isinstance(item, UsageMetadata)


def spoken(items: list[Any]) -> str:
    """The reply as text: its output transcription."""
    return "".join(
        i.output_transcription.text
        for i in items
        if isinstance(i, ServerContent) and i.output_transcription is not None
    )


async def turn(session: LiveSession, text: str) -> str:
    await session.send_text(text)
    return spoken(await collect_until(session, is_usage))


async def test_go_away_resumes_by_itself_and_replays_in_order(emulator: Emulator) -> None:
    model = LiveModel(MODEL, AUDIO, url=emulator.url)
    async with model.connect(session_resumption=TRANSPARENT) as s:
        assert "Turn 1." in await turn(s, "first")
        await wait_for(lambda: s.handle is not None and s.replay_depth == 0)
        sent = ["text:first"]
        for i in range(5):
            await s.send_audio(chunk(i))
            sent.append(f"audio:{chunk(i)[:4].hex()}")
        await emulator.go_away_now()
        items = await collect_until(s, lambda i: isinstance(i, Resumed))
        kinds = [type(i) for i in items]
        assert kinds.index(GoAway) < kinds.index(Reconnecting) < kinds.index(Connected) < kinds.index(Resumed)
        resumed = items[-1]
        assert resumed.state_restored and resumed.possibly_lost == 0
        assert resumed.replayed == 5  # the GoAway's fresh handle came before the audio was folded in
        assert s.reconnects == 1 and s.state == "active"
        reply = await turn(s, "what did I say first?")
        assert '"first"' in reply
        sent.append("text:what did I say first?")
        (sess,) = emulator.sessions.values()
        assert [describe(m) for m in sess.consumed] == sent


async def test_sends_during_the_reconnect_go_after_the_replay(emulator: Emulator) -> None:
    emulator.resume_grace = 0.5
    model = LiveModel(MODEL, AUDIO, url=emulator.url)
    async with model.connect(session_resumption=TRANSPARENT) as s:
        await turn(s, "zero")
        await wait_for(lambda: s.replay_depth == 0 and s.handle is not None)
        await s.send_audio(chunk(1))
        await emulator.drop_connections()
        # Keep sending while the session notices the drop and resumes.
        for i in range(2, 40):
            await s.send_audio(chunk(i))
            await asyncio.sleep(0.001)
        await wait_for(lambda: s.state == "active" and s.reconnects == 1)
        await s.send_text("last")
        await collect_until(s, is_usage)
        (sess,) = emulator.sessions.values()
        expected = ["text:zero", *[f"audio:{chunk(i)[:4].hex()}" for i in range(1, 40)], "text:last"]
        assert [describe(m) for m in sess.consumed] == expected


async def test_drop_without_transparent_mode_says_what_may_be_lost(emulator: Emulator) -> None:
    model = LiveModel(MODEL, AUDIO, url=emulator.url)
    async with model.connect(session_resumption=SessionResumptionConfig()) as s:
        await turn(s, "hello")
        await wait_for(lambda: s.handle is not None and s.resumable)
        for i in range(3):
            await s.send_audio(chunk(i))
        await emulator.drop_connections()
        items = await collect_until(s, lambda i: isinstance(i, Resumed))
        resumed = items[-1]
        assert resumed.state_restored and resumed.replayed == 0 and resumed.possibly_lost == 3
        assert any(isinstance(i, Reconnecting) and i.reason == "dropped" for i in items)


async def test_go_away_with_policy_off_is_reported_and_the_close_is_fatal(emulator: Emulator) -> None:
    model = LiveModel(MODEL, AUDIO, url=emulator.url, reconnect=ReconnectPolicy.off())
    s = await model.connect(session_resumption=SessionResumptionConfig())
    await turn(s, "hello")
    await emulator.go_away_now(time_left=0.3)
    await wait_for(lambda: s.state == "going_away")
    assert s.go_away_deadline is not None
    with pytest.raises(SessionLost, match="automatic resumption is off") as info:
        await collect_until(s, lambda i: False)
    assert info.value.code == 1011 and "Deadline expired" in info.value.reason
    assert s.state == "closed" and s.handle is not None  # the handle stays at hand for a manual resume
    with pytest.raises(SessionLost):
        await s.send_text("late")


async def test_connect_with_handle_restores_context(emulator: Emulator) -> None:
    model = LiveModel(MODEL, AUDIO, url=emulator.url)
    async with model.connect(session_resumption=SessionResumptionConfig()) as s:
        await turn(s, "remember the word kumquat")
        await wait_for(lambda: s.handle is not None and s.resumable)
        handle = s.handle
    assert handle is not None
    async with model.connect(session_resumption=SessionResumptionConfig(handle=handle)) as again:
        first = await collect_until(again, lambda i: isinstance(i, Connected))
        assert first[-1].resumed
        reply = await turn(again, "what did I say first?")
    assert "kumquat" in reply
    assert len(emulator.sessions) == 1


async def test_resume_session_on_the_same_object(emulator: Emulator) -> None:
    model = LiveModel(MODEL, AUDIO, url=emulator.url)
    async with model.connect(session_resumption=SessionResumptionConfig()) as a:
        await turn(a, "the secret is 42")
        await wait_for(lambda: a.handle is not None and a.resumable)
        handle = a.handle
    async with model.connect(session_resumption=SessionResumptionConfig()) as b:
        await turn(b, "an unrelated session")
        await b.resume_session(SessionResumptionConfig(handle=handle))
        assert b.handle == handle and b.reconnects == 1
        reply = await turn(b, "what did I say first?")
        assert "the secret is 42" in reply
        items = list(b.events)
        assert any(isinstance(e, Reconnecting) and e.reason == "manual" for _, e in items)


async def test_drop_while_the_emulator_restarts_resumes_with_backoff(tmp_path: Path) -> None:
    db = str(tmp_path / "live.db")
    first = Emulator(db_path=db, chunk_delay=0.001)
    await first.start()
    port = first.port
    policy = ReconnectPolicy(min_delay=0.05, max_delay=0.2, max_attempts=40)
    model = LiveModel(MODEL, AUDIO, url=first.url, reconnect=policy)
    second: Emulator | None = None
    try:
        s = await model.connect(session_resumption=TRANSPARENT)
        await turn(s, "before the restart")
        await wait_for(lambda: s.handle is not None and s.replay_depth == 0)
        await first.stop()
        await wait_for(lambda: s.state == "reconnecting")
        await s.send_text("sent while the server was down")
        await asyncio.sleep(0.3)
        second = Emulator(port=port, db_path=db, chunk_delay=0.001)
        await second.start()
        items = await collect_until(s, is_usage)
        attempts = [i.attempt for i in items if isinstance(i, Reconnecting)]
        assert max(attempts) >= 2  # it had to retry while the server was down
        resumed = next(i for i in items if isinstance(i, Resumed))
        assert resumed.state_restored and resumed.possibly_lost == 0
        reply = spoken(items)
        assert "sent while the server was down" in reply and "I hold 3 turns" in reply
        await s.close()
    finally:
        if second is not None:
            await second.stop()
        first.cleanup()


async def test_giving_up_after_max_attempts_is_session_lost(emulator: Emulator) -> None:
    policy = ReconnectPolicy(min_delay=0.01, max_delay=0.02, max_attempts=3)
    model = LiveModel(MODEL, AUDIO, url=emulator.url, reconnect=policy)
    s = await model.connect(session_resumption=SessionResumptionConfig())
    await emulator.stop()
    with pytest.raises(SessionLost, match="after 3 attempts"):
        await collect_until(s, lambda i: False)
    closed = [e for _, e in s.events if isinstance(e, SessionClosed)]
    assert closed and closed[-1].error and "3 attempts" in closed[-1].error


# Fatal resumes: clear words.


async def test_unknown_or_forged_handle_is_session_lost(emulator: Emulator) -> None:
    model = LiveModel(MODEL, AUDIO, url=emulator.url)
    with pytest.raises(SessionLost, match="does not know this resumption handle") as info:
        await model.connect(session_resumption=SessionResumptionConfig(handle="forged-handle"))
    assert info.value.code == 1008
    async with model.connect(session_resumption=SessionResumptionConfig()) as s:
        with pytest.raises(SessionLost, match="resumption handle"):
            await s.resume_session(SessionResumptionConfig(handle="c2Vzcy0wMDAwLjEuYmFk"))
        assert s.state == "closed"
        with pytest.raises(SessionLost):
            await s.send_text("after")


async def test_expired_handle_is_session_lost(tmp_path: Path) -> None:
    async with Emulator(retention=0.2, chunk_delay=0.001) as emu:
        model = LiveModel(MODEL, AUDIO, url=emu.url)
        async with model.connect(session_resumption=SessionResumptionConfig()) as s:
            await turn(s, "soon forgotten")
            await wait_for(lambda: s.handle is not None and s.resumable)
            handle = s.handle
        await asyncio.sleep(0.4)
        with pytest.raises(SessionLost, match="expired"):
            await model.connect(session_resumption=SessionResumptionConfig(handle=handle))


async def test_model_change_on_resume_is_session_lost(emulator: Emulator) -> None:
    async with LiveModel(MODEL, AUDIO, url=emulator.url).connect(
        session_resumption=SessionResumptionConfig()
    ) as s:
        await turn(s, "hi")
        await wait_for(lambda: s.handle is not None and s.resumable)
        handle = s.handle
    other = LiveModel(OTHER_MODEL, AUDIO, url=emulator.url)
    with pytest.raises(SessionLost, match="different model"):
        await other.connect(session_resumption=SessionResumptionConfig(handle=handle))


async def test_resume_on_a_closed_session_is_invalid_state(emulator: Emulator) -> None:
    s = await LiveModel(MODEL, AUDIO, url=emulator.url).connect()
    await s.close()
    with pytest.raises(InvalidState):
        await s.resume_session(SessionResumptionConfig(handle="h"))


async def test_go_away_waits_for_the_turn_in_flight(emulator: Emulator) -> None:
    emulator.chunk_delay = 0.01
    model = LiveModel(MODEL, AUDIO, url=emulator.url)
    async with model.connect(session_resumption=TRANSPARENT) as s:
        await s.send_text("a question with a long enough answer to stream for a while")
        await collect_until(s, lambda i: isinstance(i, ServerContent) and bool(i.audio))
        await emulator.go_away_now(time_left=5.0)
        items = await collect_until(s, lambda i: isinstance(i, Resumed))
        kinds = [type(i).__name__ for i in items]
        # The answer finished on the old connection; the move came after it and its fresh handle.
        assert kinds.index("UsageMetadata") < kinds.index("Reconnecting")
        assert any(isinstance(i, SessionResumptionUpdate) and i.resumable for i in items)
        assert items[-1].replayed == 0
        (sess,) = emulator.sessions.values()
        assert [t[0] for t in sess.context] == ["user", "model"]


async def test_replay_buffer_bound_drops_oldest_and_reports_possibly_lost() -> None:
    # Periodic updates off: only the turn's checkpoint confirms anything.
    async with Emulator(chunk_delay=0.001, resumption_update_interval=3600.0) as emu:
        frame_bytes = len(
            '{"realtimeInput":{"audio":{"data":"","mimeType":"audio/pcm;rate=16000"}}}'
        ) + 4 * ((len(SILENCE) + 2) // 3)
        model = LiveModel(MODEL, AUDIO, url=emu.url, max_replay_bytes=3 * frame_bytes)
        async with model.connect(session_resumption=TRANSPARENT) as s:
            await turn(s, "before the burst")
            await wait_for(lambda: s.handle is not None and s.replay_depth == 0)
            for i in range(10):
                await s.send_audio(chunk(i))
            assert s.replay_depth == 3 and s.replay_bytes <= 3 * frame_bytes
            await emu.drop_connections()
            items = await collect_until(s, lambda i: isinstance(i, Resumed))
            resumed = items[-1]
            assert (resumed.state_restored, resumed.replayed, resumed.possibly_lost) == (True, 3, 7)
            await wait_for(lambda: s.session_id is not None and len(emu.sessions[s.session_id].consumed) == 4)
            consumed = [describe(m) for m in emu.sessions[s.session_id or ""].consumed]
            # The snapshot behind the handle predates the burst; only the newest three came back.
            assert consumed == ["text:before the burst", *[f"audio:{chunk(i)[:4].hex()}" for i in (7, 8, 9)]]


async def test_drop_with_on_drop_off_is_session_lost(emulator: Emulator) -> None:
    policy = ReconnectPolicy(on_drop=False)
    s = await LiveModel(MODEL, AUDIO, url=emulator.url, reconnect=policy).connect(
        session_resumption=SessionResumptionConfig()
    )
    await emulator.drop_connections()
    with pytest.raises(SessionLost, match="dropped and automatic resumption is off"):
        await collect_until(s, lambda i: False)
    assert s.state == "closed"


async def test_connect_with_handle_waits_for_the_old_socket_to_close() -> None:
    async with Emulator(chunk_delay=0.001, resume_grace=0.05) as emu:
        model = LiveModel(MODEL, AUDIO, url=emu.url, reconnect=ReconnectPolicy(min_delay=0.05, max_delay=0.2))
        old = await model.connect(session_resumption=SessionResumptionConfig())
        await turn(old, "keep me")
        await wait_for(lambda: old.handle is not None and old.resumable)
        # A second client resumes while the first socket is still open (say, after a kernel restart).
        resuming = asyncio.ensure_future(model.connect(session_resumption=SessionResumptionConfig(handle=old.handle)))
        await asyncio.sleep(0.3)
        assert not resuming.done()
        assert any(code == 1011 for code, _ in emu.refused)  # refused at least once meanwhile
        await old.close()
        new = await asyncio.wait_for(resuming, 10)
        assert "keep me" in await turn(new, "what did I say first?")
        await new.close()
