"""Fault injection: a loopback TCP proxy cuts the connection at seeded random points (and the
emulator sends GoAways) while the client streams audio and text turns in transparent mode.

What must hold (issue 3): every client message consumed exactly once and in order, every turn
answered, and the emulator's context afterwards equal to that of an uninterrupted run of the same
script.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

import pytest

from live_nb.client.reconnect import ReconnectPolicy
from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig
from live_nb.protocol.events import Resumed
from live_nb.protocol.messages import ClientContent, RealtimeInput, ServerContent

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

SEED = 20260521
MIN_CUTS = 100
MODEL = "gemini-3.8-live"
CONFIG = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
SILENCE = b"\x00\x00" * 1600


class CuttingProxy:
    """A loopback TCP proxy that can cut every connection through it (abort both sides, no close frame)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.cuts = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def cut(self) -> bool:
        """Abort every live connection; True when at least one was cut."""
        pairs = list(self.pairs)
        for a, b in pairs:
            a.transport.abort()
            b.transport.abort()
        self.pairs.clear()
        if pairs:
            self.cuts += 1
        return bool(pairs)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, up_writer)
        self.pairs.add(pair)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.pairs.discard(pair)


def audio(n: int) -> bytes:
    """100 ms of near-silence carrying ``n`` in its first four samples (6 bits each: RMS stays ~0,
    so the emulator's VAD never hears speech and no turn starts by itself)."""
    head = b"".join(((n >> (6 * k)) & 63).to_bytes(2, "little") for k in range(4))
    return head + SILENCE[8:]


def audio_number(data: bytes) -> int:
    return sum(int.from_bytes(data[2 * k : 2 * k + 2], "little") << (6 * k) for k in range(4))


def describe(message: Any) -> str:
    if isinstance(message, ClientContent):
        return "text:" + "|".join(t.text for t in message.turns)
    if isinstance(message, RealtimeInput) and message.audio is not None:
        return f"audio:{audio_number(message.audio.data)}"
    return type(message).__name__


async def wait_for(predicate: Callable[[], bool], seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.002)


class Answers:
    """Collects complete model answers from receive(); a partial answer cut by a move is dropped."""

    def __init__(self) -> None:
        self.complete: list[str] = []
        self._partial: list[str] = []

    async def run(self, session: LiveSession) -> None:
        async for item in session.receive():
            if isinstance(item, Resumed):
                self._partial.clear()
            elif isinstance(item, ServerContent):
                if item.output_transcription is not None:  # the reply's text (the reply itself is audio)
                    self._partial.append(item.output_transcription.text)
                if item.turn_complete:
                    self.complete.append("".join(self._partial))
                    self._partial.clear()


async def run_script(session: LiveSession, script: list[tuple[str, Any]]) -> None:
    """Play a recorded script (no faults): the reference run."""
    for kind, value in script:
        if kind == "audio":
            await session.send_audio(audio(value))
        else:
            await wait_for(lambda: session.replay_depth == 0)
            await session.send_text(value)
            await wait_for(lambda: session.replay_depth == 0)


def emulator() -> Emulator:
    # Frequent periodic updates (every 20 ms) so the replay buffer is trimmed between turns too.
    # No pacing: an audio reply is over a hundred chunks (40 ms of audio each, plus transcription),
    # and paced at 1 ms a chunk it would outlast the 3-60 ms between cuts, so no turn would finish.
    return Emulator(chunk_delay=0.0, resumption_update_interval=0.02, resume_grace=1.0)


async def test_cuts_and_go_aways_lose_and_duplicate_nothing() -> None:
    rng = random.Random(SEED)
    policy = ReconnectPolicy(min_delay=0.002, max_delay=0.05, max_attempts=100, go_away_wait=0.5)
    script: list[tuple[str, Any]] = []
    async with emulator() as emu:
        proxy = CuttingProxy(emu.port)
        await proxy.start()
        model = LiveModel(MODEL, CONFIG, url=proxy.url, reconnect=policy)
        session = await model.connect(session_resumption=SessionResumptionConfig(transparent=True))
        answers = Answers()
        reader = asyncio.create_task(answers.run(session))
        go_aways = 0
        done = asyncio.Event()

        async def chaos() -> None:
            nonlocal go_aways
            while not done.is_set():
                await asyncio.sleep(rng.uniform(0.003, 0.06))
                if rng.random() < 0.1:
                    with contextlib.suppress(Exception):  # the connection may be closing right now
                        go_aways += await emu.go_away_now(time_left=rng.uniform(0.05, 0.3))
                else:
                    proxy.cut()

        chaos_task = asyncio.create_task(chaos())
        n_audio = 0
        n_turns = 0
        try:
            async with asyncio.timeout(90):
                while proxy.cuts < MIN_CUTS or n_turns < 10:
                    for _ in range(rng.randint(5, 30)):
                        await session.send_audio(audio(n_audio))
                        script.append(("audio", n_audio))
                        n_audio += 1
                        await asyncio.sleep(rng.uniform(0, 0.003))
                    text = f"turn-{n_turns} please answer"
                    await wait_for(lambda: session.replay_depth == 0)
                    await session.send_text(text)
                    script.append(("text", text))
                    n_turns += 1
                    await wait_for(lambda: session.replay_depth == 0)
        finally:
            done.set()
            await chaos_task
        await wait_for(lambda: session.state == "active" and session.replay_depth == 0)
        await session.close()
        await reader
        await proxy.stop()
        # A cut before the first handle arrived makes the client start a fresh session (and say so:
        # Resumed.state_restored=False); transparent replay then rebuilds it from the buffer.
        assert session.session_id is not None
        sess = emu.sessions[session.session_id]
        consumed = [describe(m) for m in sess.consumed]
        faulty_context = [(role, text, round(tokens, 6)) for role, text, tokens in sess.context]
        reconnects = session.reconnects

    expected = [f"audio:{v}" if kind == "audio" else f"text:{v}" for kind, v in script]
    assert proxy.cuts >= MIN_CUTS
    assert reconnects >= MIN_CUTS
    # Exactly once, in order.
    assert consumed == expected
    # Every turn answered.
    for i in range(n_turns):
        assert any(f'You asked: "turn-{i} please answer"' in a for a in answers.complete), i

    # The same script without faults gives the same context.
    async with emulator() as emu:
        model = LiveModel(MODEL, CONFIG, url=emu.url)
        async with model.connect(session_resumption=SessionResumptionConfig(transparent=True)) as clean:
            await run_script(clean, script)
        (sess,) = emu.sessions.values()
        clean_context = [(role, text, round(tokens, 6)) for role, text, tokens in sess.context]
        assert [describe(m) for m in sess.consumed] == expected
    assert faulty_context == clean_context
    print(f"\nfault injection: {proxy.cuts} cuts, {go_aways} GoAways, {reconnects} resumes, "
          f"{n_audio} audio chunks, {n_turns} turns")
