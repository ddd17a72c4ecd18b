"""Fault injection: a loopback TCP proxy cuts the connection at seeded random points (and the
emulator sends GoAways) while the client streams audio and text turns in transparent mode.

What must hold (issue 3): every client message consumed exactly once and in order, every turn
answered, and the emulator's context afterwards equal to that of an uninterrupted run of the same
script. The second test drives barge-ins (typed and spoken), manual activity signals and tool calls
(answered, and cancelled by a barge-in) with seeded cuts inside each exchange, and compares the
context itself with a clean run's (engine.py Rule 5: a checkpoint never claims a message its
snapshot lacks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
from collections.abc import Callable
from typing import Any

import pytest

from live_nb.client.reconnect import ReconnectPolicy
from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig
from live_nb.protocol.content import FunctionCall, FunctionResponse
from live_nb.protocol.events import Resumed
from live_nb.protocol.messages import (
    ClientContent,
    RealtimeInput,
    ServerContent,
    ToolCall,
    ToolCallCancellation,
    ToolResponse,
)
from live_nb.protocol.tool_calls import ToolCallTracker

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
    # Tone replies (speech=False): voicing a reply costs 0.15-0.25 s of wall time on these cores,
    # longer than most gaps between cuts, so under load few turns would finish inside the time limit.
    # This file is about delivery (exactly once, in order); speech under barge-in is tested with
    # google-genai in tests/emulator/test_sdk.py.
    return Emulator(chunk_delay=0.0, resumption_update_interval=0.02, resume_grace=1.0, speech=False)


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


# Barge-in, manual activity and tool calls across drops: exactly once on the CONTEXT.
#
# The consumed log alone cannot see the loss this guards against: a checkpoint whose index covered a
# message its snapshot lacked (the interruption's, made while the interrupting message was being
# handled) truncated the log to a count that still held the message, while the restored context did
# not, and the client, told the message was consumed, dropped it from its replay buffer and reported
# Resumed(state_restored=True, replayed=0, possibly_lost=0). So these runs compare the emulator's
# context with a clean run's.

# BLOCKING: the model waits on the call, and a barge-in cancels it (3.8's default is NON_BLOCKING,
# tested across drops by test_non_blocking_calls_across_drops_are_answered_once below).
TOOLS = [{"functionDeclarations": [
    {"name": "get_time", "behavior": "BLOCKING", "parameters": {"type": "OBJECT", "properties": {"tz": {}}}},
]}]
MANUAL = {"automaticActivityDetection": {"disabled": True}}
ROUNDS = 16
SPEECH_WAVE = b"".join(
    int(8000 * math.sin(2 * math.pi * 440 * i / 16_000)).to_bytes(2, "little", signed=True) for i in range(1600)
)


def speech(n: int) -> bytes:
    """100 ms of a loud tone (speech to the emulator's VAD) carrying ``n`` in its first four samples."""
    return audio(n)[:8] + SPEECH_WAVE[8:]


def describe_any(message: Any) -> str:
    """A client message, recognisably (tool responses by result, activity signals by name)."""
    if isinstance(message, ToolResponse):
        return "tool:" + "|".join(json.dumps(dict(r.response), sort_keys=True) for r in message.function_responses)
    if isinstance(message, RealtimeInput) and message.activity_start:
        return "activityStart"
    if isinstance(message, RealtimeInput) and message.activity_end:
        return "activityEnd"
    return describe(message)


class Watcher:
    """Reads the session: reply chunks, complete answers (their transcription), tool calls, resumes."""

    def __init__(self) -> None:
        self.chunks = 0
        self.interrupted = 0
        self.complete: list[str] = []
        self.calls: dict[str, FunctionCall] = {}
        self.resumes: list[Resumed] = []
        self._partial: list[str] = []

    async def run(self, session: LiveSession) -> None:
        async for item in session.receive():
            if isinstance(item, Resumed):
                self.resumes.append(item)
                self._partial.clear()
            elif isinstance(item, ToolCall):
                for call in item.function_calls:
                    assert call.id is not None
                    self.calls[call.id] = call
            elif isinstance(item, ServerContent):
                if item.model_turn is not None:
                    self.chunks += 1
                if item.output_transcription is not None:
                    self._partial.append(item.output_transcription.text)
                if item.interrupted:
                    self.interrupted += 1
                if item.turn_complete:
                    self.complete.append("".join(self._partial))
                    self._partial.clear()

    def call_for(self, tz: str) -> str | None:
        return next((i for i, c in self.calls.items() if dict(c.args).get("tz") == tz), None)


def round_script(rng: random.Random, manual: bool) -> list[tuple[str, int]]:
    """The rounds of a run: (kind, speech chunks). Seeded, so the clean run plays the same one."""
    kinds = ["text", "voice", "tool", "cancel"]
    return [(kinds[r % 4] if r < 4 else rng.choice(kinds), rng.randint(2, 6)) for r in range(ROUNDS)]


class Player:
    """Plays rounds on a session; with ``rng`` it cuts the proxy at seeded points of each round."""

    def __init__(self, session: LiveSession, watcher: Watcher, manual: bool,
                 proxy: CuttingProxy | None = None, rng: random.Random | None = None) -> None:
        self.session = session
        self.watcher = watcher
        self.manual = manual
        self.proxy = proxy
        self.rng = rng
        self.sent: list[str] = []  # what the client sent, in order (the expected consumed log)
        self.barged: list[str] = []  # requests a barge-in interrupts (their replies depend on timing)
        self.audio_n = 0

    async def maybe_cut(self, chance: float = 0.5) -> None:
        """Perhaps cut: at once, a moment later, or after a few more reply chunks (seeded)."""
        if self.rng is None or self.proxy is None or self.rng.random() >= chance:
            return
        how = self.rng.random()
        if how < 0.3:
            await asyncio.sleep(self.rng.uniform(0, 0.004))
        elif how < 0.7:
            mark, more = self.watcher.chunks, self.rng.randint(1, 25)
            with contextlib.suppress(TimeoutError):
                await wait_for(lambda: self.watcher.chunks >= mark + more, 0.3)
        self.proxy.cut()

    async def text(self, text: str) -> None:
        await self.session.send_text(text)
        self.sent.append(f"text:{text}")

    async def speak(self, chunks: int) -> None:
        """A spoken turn's audio: manual VAD frames it with activityStart/End; automatic VAD hears the
        tone start (a barge-in when a reply streams) and 0.8 s of silence end it."""
        if self.manual:
            await self.session.send_activity_start()
            self.sent.append("activityStart")
        for _ in range(chunks):
            await self.session.send_audio(speech(self.audio_n))
            self.sent.append(f"audio:{self.audio_n}")
            self.audio_n += 1
        await self.maybe_cut(0.3)
        if self.manual:
            await self.session.send_activity_end()
            self.sent.append("activityEnd")
        else:
            for _ in range(8):
                await self.session.send_audio(audio(self.audio_n))
                self.sent.append(f"audio:{self.audio_n}")
                self.audio_n += 1

    async def answered(self, marker: str, r: int, start: int) -> None:
        try:
            await wait_for(lambda: any(marker in a for a in self.watcher.complete[start:]), 8.0)
            # A clean point before the next round: the handle covers everything sent.
            await wait_for(lambda: self.session.state == "active" and self.session.replay_depth == 0
                           and self.session.resumable, 8.0)
        except TimeoutError:
            raise AssertionError(
                f"round {r}: no answer with {marker!r} (lost? resumes said {self.watcher.resumes})"
            ) from None

    async def reply_started(self, mark: int) -> None:
        await wait_for(lambda: self.watcher.chunks > mark, 8.0)

    async def play(self, r: int, kind: str, chunks: int) -> None:
        watcher, start = self.watcher, len(self.watcher.complete)
        if kind in ("text", "voice"):
            # A reply starts; a second turn (typed, or spoken) barges in while it streams.
            mark = watcher.chunks
            await self.text(f"a{r} tell me something")
            self.barged.append(f"a{r}")
            await self.maybe_cut()
            await self.reply_started(mark)
            if kind == "text":
                await self.text(f"b{r} barge in")
                marker = f'You asked: "b{r}'
            else:
                await self.speak(chunks)
                marker = f"You spoke to me [{chunks / 10:.1f} s of speech"
            await self.maybe_cut(0.8)
            await self.answered(marker, r, start)
        elif kind == "tool":
            # A function call, answered; the answer's reply streams.
            await self.text(f"c{r} get_time tz=R{r}")
            await self.maybe_cut()
            await wait_for(lambda: watcher.call_for(f"R{r}") is not None, 8.0)
            call_id = watcher.call_for(f"R{r}")
            await self.maybe_cut()
            await self.session.send_tool_response(FunctionResponse("get_time", {"time": f"T{r}"}, id=call_id))
            self.sent.append("tool:" + json.dumps({"time": f"T{r}"}))
            await self.maybe_cut(0.8)
            await self.answered(f'get_time returned {{"time": "T{r}"}}', r, start)
        else:
            # A function call cancelled by a barge-in (typed in some rounds, spoken in others).
            await self.text(f"d{r} get_time tz=D{r}")
            await self.maybe_cut()
            await wait_for(lambda: watcher.call_for(f"D{r}") is not None, 8.0)
            if r % 2:
                await self.text(f"x{r} never mind")
                marker = f'You asked: "x{r} never mind"'
            else:
                await self.speak(chunks)
                marker = f"You spoke to me [{chunks / 10:.1f} s of speech"
            await self.maybe_cut(0.8)
            await self.answered(marker, r, start)


_HEAD = re.compile(
    r'^Turn \d+\. (You asked: "[^"]*"|You spoke to me \[[^\]]*\]|The tool answered: get_time returned \{[^}]*\})'
)


def canonical(context: list[tuple[str, str, float]], barged: list[str]) -> list[tuple[str, str, float | None]]:
    """The context with what barge-in timing decides left out: every user turn, function call and
    function result exactly; a model reply as its head ("Turn k. You asked: ..."), except replies to
    requests a barge-in interrupts (how much of them was spoken, or whether any was, depends on when
    the barge-in arrived, in a clean run too)."""
    out: list[tuple[str, str, float | None]] = []
    for role, text, tokens in context:
        if role != "model" or text.startswith("[call "):
            out.append((role, text, round(tokens, 6)))
            continue
        head = _HEAD.match(text)
        if head and not any(f'You asked: "{b} ' in head.group(0) for b in barged):
            out.append(("model", head.group(0), None))
    return out


async def play_run(manual: bool, seed: int, faults: bool) -> tuple[list[str], list[Any], Watcher, Player, int]:
    """One session of ROUNDS rounds (with seeded cuts when ``faults``): (consumed log, canonical
    context, watcher, player, cuts)."""
    script = round_script(random.Random(seed), manual)
    config = LiveGenerationConfig(
        response_modalities=["AUDIO"], output_audio_transcription=True, tools=TOOLS,
        realtime_input_config=MANUAL if manual else None,
    )
    policy = ReconnectPolicy(min_delay=0.002, max_delay=0.05, max_attempts=100, go_away_wait=0.5)
    # Paced at 1 ms a chunk a reply lasts ~0.15 s: long enough for a barge-in to land mid-stream.
    async with Emulator(chunk_delay=0.001, resumption_update_interval=0.02, resume_grace=1.0) as emu:
        proxy = CuttingProxy(emu.port)
        await proxy.start()
        model = LiveModel(MODEL, config, url=proxy.url if faults else emu.url, reconnect=policy)
        session = await model.connect(session_resumption=SessionResumptionConfig(transparent=True))
        watcher = Watcher()
        reader = asyncio.create_task(watcher.run(session))
        player = Player(session, watcher, manual, proxy if faults else None,
                        random.Random(seed + 1) if faults else None)
        try:
            for r, (kind, chunks) in enumerate(script):
                await player.play(r, kind, chunks)
        finally:
            await session.close()
            await reader
            await proxy.stop()
        assert session.session_id is not None
        sess = emu.sessions[session.session_id]
        consumed = [describe_any(m) for m in sess.consumed]
        context = canonical(sess.context, player.barged)
    return consumed, context, watcher, player, proxy.cuts


@pytest.mark.parametrize("manual", [True, False], ids=["manual activity", "automatic VAD"])
async def test_barge_ins_and_tool_calls_across_drops_keep_the_context_exactly_once(manual: bool) -> None:
    seed = SEED + int(manual)
    consumed, context, watcher, player, cuts = await play_run(manual, seed, faults=True)
    clean_consumed, clean_context, clean_watcher, _, _ = await play_run(manual, seed, faults=False)
    lost = sum(r.possibly_lost for r in watcher.resumes)
    assert cuts >= 12 and len(watcher.resumes) >= 12, (cuts, watcher.resumes)
    assert watcher.interrupted >= ROUNDS // 2 and clean_watcher.interrupted >= ROUNDS // 2
    assert len(watcher.calls) >= 2
    # Exactly once on the consumed log...
    assert consumed == player.sent == clean_consumed
    # ...and on the context: no turn lost or doubled, or the loss said so in Resumed.possibly_lost.
    assert lost == 0, watcher.resumes
    assert context == clean_context
    user_turns = [text for role, text, _ in context if role == "user"]
    for b in ("b", "x"):
        for r in range(ROUNDS):
            assert user_turns.count(f"{b}{r} " + ("barge in" if b == "b" else "never mind")) <= 1
    print(f"\n{'manual' if manual else 'automatic'}: {cuts} cuts, {len(watcher.resumes)} resumes, "
          f"{watcher.interrupted} interruptions, {len(watcher.calls)} tool calls, {len(context)} turns")


# NON_BLOCKING calls across drops: answered once, executed once (issue 13).
#
# The client's side of the contract is ToolCallTracker (protocol/tool_calls.py): a call asked again
# with an id it is running is not run again; one it answered is answered again from memory. The
# emulator's side: a checkpoint made while a NON_BLOCKING call runs keeps it (SessionState.calls) and
# a resume asks for it again with the same id; a result consumed before the checkpoint is not asked
# for again; a second answer to a call no longer pending is ignored, so the model answers once.

NB_TOOLS = [{"functionDeclarations": [{"name": "get_time", "parameters": {"type": "OBJECT", "properties": {"tz": {}}}}]}]
NB_ROUNDS = 14
SCHEDULINGS = (None, "WHEN_IDLE", "INTERRUPT", "SILENT")


class ToolDesk:
    """A manual answer loop on a tracker: runs each call once (when the test releases it), answers
    with the call's id, re-sends stored answers when the server asks again, and reads the replies."""

    def __init__(self, session: LiveSession, schedulings: dict[str, str | None], interim: set[str]) -> None:
        self.session = session
        self.tracker = ToolCallTracker()
        self.schedulings = schedulings  # tz -> scheduling of its result
        self.interim = interim  # tzs whose function sends an interim result first
        self.executions: dict[str, int] = {}  # call id -> times the function ran
        self.ids: dict[str, set[str]] = {}  # tz -> call ids seen for it
        self.release: dict[str, asyncio.Event] = {}
        self.asked_again = 0
        self.resent = 0
        self.complete: list[str] = []
        self.resumes: list[Resumed] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self._partial: list[str] = []

    def gate(self, tz: str) -> asyncio.Event:
        return self.release.setdefault(tz, asyncio.Event())

    async def run(self) -> None:
        async for item in self.session.receive():
            if isinstance(item, Resumed):
                self.resumes.append(item)
                self._partial.clear()
            elif isinstance(item, ToolCall):
                for call in item.function_calls:
                    assert call.id is not None
                    self.ids.setdefault(str(dict(call.args)["tz"]), set()).add(call.id)
                    self.asked_again += call.id in self.executions
                plan = self.tracker.on_tool_call(item)
                self.resent += len(plan.resend)
                for call in plan.run:
                    assert call.id is not None
                    self.executions[call.id] = self.executions.get(call.id, 0) + 1
                    task = asyncio.create_task(self._function(call))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                await self._flush()
            elif isinstance(item, ToolCallCancellation):
                self.tracker.on_cancellation(item)
            elif isinstance(item, ServerContent):
                if item.output_transcription is not None:
                    self._partial.append(item.output_transcription.text)
                if item.turn_complete:
                    self.complete.append("".join(self._partial))
                    self._partial.clear()

    async def _function(self, call: FunctionCall) -> None:
        tz = str(dict(call.args)["tz"])
        await self.gate(tz).wait()
        if tz in self.interim:
            self.tracker.respond(FunctionResponse("get_time", {"progress": f"half {tz}"}, id=call.id,
                                                  will_continue=True))
            await self._flush()
        self.tracker.respond(FunctionResponse("get_time", {"time": f"T{tz}"}, id=call.id,
                                              scheduling=self.schedulings[tz]))
        await self._flush()

    async def _flush(self) -> None:
        out = self.tracker.take_outgoing()
        if out is not None:
            await self.session.send_tool_response(list(out.function_responses))


async def test_non_blocking_calls_across_drops_are_answered_once() -> None:
    """gemini-3.8-live's default NON_BLOCKING calls, with the proxy cut while the request is in flight,
    while the call is pending (the model talks on, the function has not returned), right after the
    result was sent (in flight), and while the answer streams; results scheduled WHEN_IDLE (also by
    default), INTERRUPT and SILENT, some after an interim result. Every call runs once, its result
    enters the model's context once, and every non-SILENT result is answered once."""
    rng = random.Random(SEED + 13)
    config = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True, tools=NB_TOOLS)
    policy = ReconnectPolicy(min_delay=0.002, max_delay=0.05, max_attempts=100, go_away_wait=0.5)
    tzs = [f"R{r}" for r in range(NB_ROUNDS)]
    schedulings = {tz: SCHEDULINGS[r % 4] for r, tz in enumerate(tzs)}
    interim = {tz for r, tz in enumerate(tzs) if r % 3 == 1}
    async with Emulator(chunk_delay=0.001, resumption_update_interval=0.02, resume_grace=1.0) as emu:
        proxy = CuttingProxy(emu.port)
        await proxy.start()
        session = await LiveModel(MODEL, config, url=proxy.url, reconnect=policy).connect(
            session_resumption=SessionResumptionConfig(transparent=True)
        )
        desk = ToolDesk(session, schedulings, interim)
        reader = asyncio.create_task(desk.run())

        def folded(tz: str) -> int:
            sess = emu.sessions.get(session.session_id or "")
            marker = f'[get_time returned {{"time": "T{tz}"}}]'
            return 0 if sess is None else sum(t.text == marker for t in sess.turns)

        phases: dict[str, int] = {}

        async def maybe_cut(chance: float, phase: str) -> None:
            if rng.random() < chance:
                await asyncio.sleep(rng.uniform(0, 0.01))
                if proxy.cut():
                    phases[phase] = phases.get(phase, 0) + 1

        try:
            for r, tz in enumerate(tzs):
                start = len(desk.complete)
                await session.send_text(f"c{r} get_time tz={tz}")
                await maybe_cut(0.4, "request")  # the request in flight
                await wait_for(lambda tz=tz: tz in desk.ids, 10.0)
                await maybe_cut(0.6, "pending")  # the call pending: the model talks on, the function has not returned
                desk.gate(tz).set()
                await maybe_cut(0.6, "result")  # the result in flight
                if schedulings[tz] == "SILENT":
                    await wait_for(lambda tz=tz: folded(tz) >= 1, 10.0)
                else:
                    marker = f'get_time returned {{"time": "T{tz}"}}'
                    await maybe_cut(0.3, "answer")  # the answer streaming
                    await wait_for(lambda m=marker, s=start: any(m in a for a in desk.complete[s:]), 10.0)
                await wait_for(lambda: session.state == "active" and session.replay_depth == 0
                               and session.resumable, 10.0)
        finally:
            await session.close()
            await reader
            await proxy.stop()
        assert session.session_id is not None
        sess = emu.sessions[session.session_id]
        turns = [t.text for t in sess.turns]
        pending, owed = dict(sess.state.calls), list(sess.state.owed)
    cuts = proxy.cuts
    # Every call was asked with one id, and its function ran once, whatever the server asked again.
    assert sorted(desk.ids) == sorted(tzs)
    assert all(len(ids) == 1 for ids in desk.ids.values()), desk.ids
    assert sorted(desk.executions) == sorted(i for ids in desk.ids.values() for i in ids)
    assert set(desk.executions.values()) == {1}, desk.executions
    # Each result entered the model's context once; each non-SILENT one was answered once.
    for tz in tzs:
        result = json.dumps({"time": f"T{tz}"})
        assert turns.count(f"[get_time returned {result}]") == 1, (tz, turns)
        answers = [t for t in turns if f"The tool answered: get_time returned {result}" in t]
        assert len(answers) == (0 if schedulings[tz] == "SILENT" else 1), (tz, answers)
        if tz in interim:
            assert turns.count(f'[get_time interim result {json.dumps({"progress": f"half {tz}"})}]') == 1
            assert not answers or "after 1 interim result" in answers[0]
    assert not pending and not owed
    assert sum(r.possibly_lost for r in desk.resumes) == 0, desk.resumes
    assert len(desk.resumes) >= NB_ROUNDS // 2 and phases.get("pending", 0) >= 3 and phases.get("result", 0) >= 3, (
        phases, desk.resumes)
    assert desk.asked_again >= 1 and desk.resent >= 1  # the contract was exercised, not just survived
    print(f"\nNON_BLOCKING calls: {cuts} cuts ({phases}), {len(desk.resumes)} resumes, {desk.asked_again} calls "
          f"asked again, {desk.resent} answers re-sent from the tracker, {len(desk.executions)} executions")
