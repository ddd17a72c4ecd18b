"""A hostile server: bad times, reconnect storms, floods, huge handles, deep JSON, leaked keys.

Each case runs a tiny websockets server of our own on 127.0.0.1 (not the emulator: the emulator
plays by the rules) that answers ``setup`` with ``setupComplete`` and then misbehaves in one way.
Every case asserts a bounded, clear outcome: what the user sees, how many connections the server
got (counted server-side), how much memory the client kept.

The sans-I/O parts (``ClientProtocol``'s GoAway clamp and progress count, ``AttemptBudget``,
``BoundedLog``) are tested first, without a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import pathlib
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed as WsConnectionClosed

from live_nb.client.reconnect import AttemptBudget, ReconnectPolicy
from live_nb.client.session import (
    EVENTS_LIMIT,
    RECEIVE_QUEUE_BYTES,
    TRANSCRIPT_LIMIT,
    TURN_CHARS_LIMIT,
    BoundedLog,
    LiveModel,
    LiveSession,
)
from live_nb.exceptions import ConfigError, RemoteProtocolError, SessionLost
from live_nb.protocol.client_protocol import MAX_HANDLE_CHARS, ClientProtocol
from live_nb.protocol.config import CONNECTION_LIFETIME_SECONDS, LiveGenerationConfig, SessionResumptionConfig
from live_nb.protocol.events import Reconnecting, SessionClosed
from live_nb.protocol.messages import GoAway, ServerContent, parse_server_frame

MS = 0.001
MODEL = "gemini-3.8-live"
KEY = "fake-api-key-hostile-0123456789abcdef"
"""A key-shaped credential: it must never appear in anything the user sees."""
SETUP_COMPLETE = '{"setupComplete": {"sessionId": "hostile"}}'
FAST = ReconnectPolicy(min_delay=20 * MS, max_delay=200 * MS, max_attempts=8)
"""Small delays and budget so a storm ends within about a second."""

Behaviour = Callable[[ServerConnection, int], Awaitable[None]]


class HostileServer:
    """A websockets server on 127.0.0.1 that answers setup, then runs ``behave(ws, n)``.

    ``n`` is the connection's number (1 for the first). ``starts`` holds each connection's
    ``time.monotonic()``, so tests can count connections per window.
    """

    def __init__(self, behave: Behaviour, complete_setup: bool = True) -> None:
        self.behave = behave
        self.complete_setup = complete_setup
        self.starts: list[float] = []
        self._server: Any = None

    @property
    def connections(self) -> int:
        return len(self.starts)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def per_window(self, seconds: float) -> int:
        """The most connections that started within any window of ``seconds``."""
        best, first = 0, 0
        for last, t in enumerate(self.starts):
            while t - self.starts[first] > seconds:
                first += 1
            best = max(best, last - first + 1)
        return best

    async def __aenter__(self) -> HostileServer:
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        self.starts.append(time.monotonic())
        n = len(self.starts)
        with contextlib.suppress(WsConnectionClosed):
            await ws.recv()  # setup
            if self.complete_setup:
                await ws.send(SETUP_COMPLETE)
            await self.behave(ws, n)


async def hold(ws: ServerConnection, n: int) -> None:
    """Keep the connection open until the client leaves."""
    await ws.wait_closed()


def model_for(server: HostileServer, policy: ReconnectPolicy = FAST) -> LiveModel:
    config = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
    return LiveModel(MODEL, config, backend="emulator", url=server.url, api_key=KEY, reconnect=policy)


async def drain(session: LiveSession, seconds: float) -> tuple[list[Any], BaseException | None]:
    """Everything ``receive()`` yields within ``seconds``, and the error it ended with."""
    items: list[Any] = []
    error: BaseException | None = None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            try:
                async for item in session.receive():
                    items.append(item)
            except (SessionLost, RemoteProtocolError) as exc:
                error = exc
    return items, error


async def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(5 * MS)


async def assert_loop_healthy() -> None:
    """Timers still fire on time and the loop's timer heap holds only finite deadlines."""
    loop = asyncio.get_running_loop()
    scheduled = getattr(loop, "_scheduled", [])
    assert all(math.isfinite(handle.when()) for handle in scheduled), "a non-finite timer is on the loop"
    fired = loop.create_future()
    start = loop.time()
    loop.call_later(10 * MS, fired.set_result, None)
    async with asyncio.timeout(1.0):
        await fired
    assert loop.time() - start < 0.5


def parser_refuses(frame: str) -> bool:
    try:
        parse_server_frame(frame)
    except RemoteProtocolError:
        return True
    return False


# Sans-I/O: the protocol never hands on a non-finite, negative or absurd time.


@pytest.mark.parametrize(
    ("time_left", "expected"),
    [
        (math.nan, 0.0),
        (math.inf, CONNECTION_LIFETIME_SECONDS),
        (-math.inf, 0.0),
        (-5.0, 0.0),
        (1e300, CONNECTION_LIFETIME_SECONDS),
        (86_400.0, CONNECTION_LIFETIME_SECONDS),
        (50.0, 50.0),
        (0.0, 0.0),
    ],
)
def test_protocol_clamps_a_go_away_built_in_code(time_left: float, expected: float) -> None:
    proto = ClientProtocol("models/" + MODEL, LiveGenerationConfig())
    proto.send_setup()
    proto.data_to_send()
    proto.receive(SETUP_COMPLETE, 1000.0)
    # What a parser without bounds would hand over: the GoAway reaches _process unchecked.
    proto._process(GoAway(time_left=time_left), 1000.0)
    assert proto.go_away_time_left == expected
    assert proto.go_away_deadline == 1000.0 + expected
    assert proto.state.public_name == "going_away"


def test_protocol_clamps_a_go_away_that_passes_the_parser() -> None:
    # A day is a valid Duration for the parser, but no connection lives that long.
    proto = ClientProtocol("models/" + MODEL, LiveGenerationConfig())
    proto.send_setup()
    proto.receive(SETUP_COMPLETE, 0.0)
    (message,) = proto.receive('{"goAway": {"timeLeft": "86400s"}}', 10.0)
    assert isinstance(message, GoAway) and message.time_left == CONNECTION_LIFETIME_SECONDS
    assert proto.go_away_clamped_from == 86_400.0
    assert proto.go_away_deadline == 10.0 + CONNECTION_LIFETIME_SECONDS


def test_protocol_counts_progress_and_refuses_huge_handles() -> None:
    proto = ClientProtocol("models/" + MODEL, LiveGenerationConfig(), SessionResumptionConfig(transparent=True))
    proto.send_setup()
    proto.receive(SETUP_COMPLETE, 0.0)
    proto.send_content("hi")
    assert proto.progress == 0
    update = {"sessionResumptionUpdate": {"newHandle": "h1", "resumable": True, "lastConsumedClientMessageIndex": 1}}
    proto.receive(json.dumps(update), 0.0)
    assert proto.progress == 2  # a new handle and a newer consumed index
    proto.receive(json.dumps(update), 0.0)
    assert proto.progress == 2  # the same again is no progress
    proto.receive('{"serverContent": {"turnComplete": true}}', 0.0)
    assert proto.progress == 3
    huge = {"sessionResumptionUpdate": {"newHandle": "x" * (MAX_HANDLE_CHARS + 1), "resumable": True}}
    with pytest.raises(RemoteProtocolError, match="newHandle is 65,537 characters"):
        proto.receive(json.dumps(huge), 0.0)
    assert proto.handle == "h1"


# Sans-I/O: the attempt budget.


def test_budget_counts_connections_that_got_nowhere_and_paces_them() -> None:
    budget = AttemptBudget(ReconnectPolicy(max_attempts=3), rng=random.Random(1))
    delays = []
    budget.connection_ended(progressed=False, lived=0.01, went_away=True)
    while not budget.exhausted:
        delays.append(budget.next_delay())
        budget.attempt_started()
        budget.connection_ended(progressed=False, lived=0.01, went_away=True)
    assert len(delays) == 3
    assert delays[0] == 0.0 and 0 < delays[1] < delays[2]
    assert budget.explanation() == "the server ended 4 connections in a row before any progress; giving up"


def test_budget_progress_resets_it_but_an_early_go_away_keeps_pacing() -> None:
    budget = AttemptBudget(ReconnectPolicy(max_attempts=3), rng=random.Random(1))
    first = [budget.next_delay() for _ in range(3)]
    for _ in range(2):
        budget.attempt_started()
    budget.connection_ended(progressed=True, lived=0.01, went_away=True)  # new handle, then GoAway at once
    assert not budget.exhausted and budget.used == 0
    assert budget.next_delay() > first[-1]  # still paced
    budget.connection_ended(progressed=True, lived=0.01, went_away=False)  # progress, then a drop
    assert budget.next_delay() == 0.0  # the delays start again
    budget.connection_ended(progressed=False, lived=60.0, went_away=True)  # idle, but stayed up a minute
    assert budget.next_delay() == 0.0 and budget.ended == 0


def test_budget_failed_attempts_keep_the_old_words() -> None:
    budget = AttemptBudget(ReconnectPolicy(max_attempts=3))
    budget.connection_ended(progressed=True, lived=100.0, went_away=False)
    while not budget.exhausted:
        budget.attempt_started()
        budget.attempt_failed()
    assert budget.explanation() == "could not resume the session after 3 attempts"


def test_policy_refuses_non_finite_times() -> None:
    for bad in (
        {"min_delay": math.nan},
        {"max_delay": math.inf},
        {"initial_delay": -1.0},
        {"stable_after": math.nan},
        {"factor": math.nan},
        {"go_away_wait": math.nan},
    ):
        with pytest.raises(ConfigError):
            ReconnectPolicy(**bad)


# Sans-I/O: the bounded logs.


def test_bounded_log_keeps_the_newest_and_counts_the_rest() -> None:
    log: BoundedLog[int] = BoundedLog(100)
    for i in range(1000):
        log.append(i)
    assert len(log) <= 100 and log[-1] == 999
    assert log.dropped + len(log) == 1000
    assert log[0] == log.dropped  # entry i was appended as number dropped + i
    assert log[-3:] == [997, 998, 999] and isinstance(log[:2], list)
    sized: BoundedLog[str] = BoundedLog(10_000, max_size=1000, sizeof=len)
    for _ in range(100):
        sized.append("x" * 100)
    assert sized.size <= 1000 and sum(map(len, sized)) == sized.size
    sized.append("y" * 5000)  # bigger than the bound alone: kept, alone
    assert list(sized) == ["y" * 5000]


# Over the wire: GoAway times.

GO_AWAY_TIMES = [
    "NaN",
    "Infinity",
    "-Infinity",
    "-5",
    "1e300",
    "86400",
    '"-5s"',
    '"1e300s"',
    '"99999999999999999999999s"',
    '"86400s"',
    '"3600.5s"',
]


@pytest.mark.parametrize("raw", GO_AWAY_TIMES)
async def test_go_away_with_a_bad_time_left(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    frame = '{"goAway": {"timeLeft": RAW}}'.replace("RAW", raw)

    async def behave(ws: ServerConnection, n: int) -> None:
        if n == 1:
            # A resumable handle first: the client is at a clean point and may move at once.
            await ws.send(json.dumps({"sessionResumptionUpdate": {"newHandle": "h1", "resumable": True}}))
            await ws.send(frame)
        await ws.wait_closed()

    caplog.set_level(logging.WARNING, logger="live_nb")
    async with HostileServer(behave) as server:
        session = await model_for(server).connect(session_resumption=SessionResumptionConfig())
        if parser_refuses(frame):
            # The parser refuses it: the session ends at once, naming the field.
            _, error = await drain(session, 5.0)
            assert isinstance(error, RemoteProtocolError), error
            assert "goAway.timeLeft" in str(error)
            assert session.closed and session.go_away_deadline is None
        else:
            # It gets through the parser (a day at most): the client clamps it to a connection's life.
            await wait_for(lambda: server.connections == 2)
            await wait_for(lambda: session.state == "active")
            go_away = next(item for _, item in session.events if isinstance(item, GoAway))
            assert go_away.time_left == CONNECTION_LIFETIME_SECONDS
            assert "using 600 s" in caplog.text
            await session.close()
        await assert_loop_healthy()
    assert server.connections <= 2


async def test_go_away_nan_built_in_code_never_reaches_a_timer() -> None:
    # Defence in depth below the protocol: the session's own GoAway wait refuses NaN and inf too.
    async with HostileServer(hold) as server:
        session = await model_for(server).connect()
        for bad in (math.nan, math.inf, -1.0):
            await asyncio.wait_for(session._go_away(bad), 1.0)  # not GOING_AWAY: returns at once
        await assert_loop_healthy()
        await session.close()


# Over the wire: reconnect storms.


async def go_away_at_once(ws: ServerConnection, n: int) -> None:
    await ws.send('{"goAway": {}}')
    await ws.wait_closed()


async def handle_and_go_away_at_once(ws: ServerConnection, n: int) -> None:
    update = {"sessionResumptionUpdate": {"newHandle": f"h{n}", "resumable": True}}
    await ws.send(json.dumps(update))
    await ws.send('{"goAway": {"timeLeft": "0s"}}')
    await ws.wait_closed()


async def close_1011_at_once(ws: ServerConnection, n: int) -> None:
    await asyncio.sleep(10 * MS)
    await ws.close(1011, f"internal error (key {KEY})")


@pytest.mark.parametrize("behave", [go_away_at_once, close_1011_at_once], ids=["go_away", "close_1011"])
async def test_storm_ends_by_itself_with_session_lost(behave: Behaviour) -> None:
    async with HostileServer(behave) as server:
        session = await model_for(server, FAST).connect(session_resumption=SessionResumptionConfig())
        items, error = await drain(session, 10.0)
    assert isinstance(error, SessionLost)
    # The first connection and max_attempts more, each ended before any progress.
    assert server.connections == 1 + FAST.max_attempts
    assert str(error).startswith("the server ended 9 connections in a row before any progress; giving up")
    assert KEY not in str(error) and KEY not in repr(items)
    delays = [i.delay for i in items if isinstance(i, Reconnecting)]
    assert delays[0] == 0.0 and all(d >= 0.8 * FAST.min_delay for d in delays[1:])
    assert isinstance(items[-1], SessionClosed) and items[-1].error == str(error)


async def test_a_go_away_in_the_setup_complete_frame_is_not_lost() -> None:
    # setupComplete and goAway in one frame: the GoAway arrives while the move that opened the
    # connection is still finishing; it must still be acted on (then the storm rules apply).
    async def behave(ws: ServerConnection, n: int) -> None:
        await ws.send('{"setupComplete": {}, "goAway": {}}')
        await ws.wait_closed()

    async with HostileServer(behave, complete_setup=False) as server:
        session = await model_for(server, FAST).connect(session_resumption=SessionResumptionConfig())
        _, error = await drain(session, 10.0)
    assert isinstance(error, SessionLost) and "before any progress; giving up" in str(error)
    assert server.connections == 1 + FAST.max_attempts


@pytest.mark.slow
async def test_storms_with_the_default_policy_stay_under_ten_connections_per_ten_seconds() -> None:
    """Before: ~9,000 connections in 10 s for a GoAway at once; a 1011 at once was retried forever."""
    behaviours = [go_away_at_once, handle_and_go_away_at_once, close_1011_at_once]
    async with contextlib.AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(HostileServer(b)) for b in behaviours]
        sessions = [await model_for(s, ReconnectPolicy()).connect(SessionResumptionConfig()) for s in servers]
        await asyncio.sleep(10.0)
        for session in sessions:
            await session.close()
    for server in servers:
        # Backoff 0, 0.05, 0.1, ... 3.2, 6.4 s (+-20%): 9 connections in the first 10 s, plus the first.
        assert 5 <= server.connections <= 11, (server.behave.__name__, server.connections)
        assert server.per_window(10.0) <= 11


async def test_a_session_that_makes_progress_is_not_given_up() -> None:
    # A GoAway right after setup, but each connection brings a fresh handle: paced, never given up.
    async with HostileServer(handle_and_go_away_at_once) as server:
        session = await model_for(server, ReconnectPolicy(min_delay=5 * MS, max_delay=20 * MS, max_attempts=3)).connect(
            SessionResumptionConfig()
        )
        await wait_for(lambda: session.reconnects >= 11)  # far past max_attempts=3
        assert not session.closed
        await session.close()
    assert server.connections >= 12


# Over the wire: a flood.

FLOOD = 400_000

FLOOD_SERVER = pathlib.Path(__file__).parents[1] / "flood_server.py"
"""The flood server runs in its own process: its memory is not the client's, and it sends on the other core."""


def rss() -> int:
    """This process's resident memory in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS read from /proc")
async def test_a_flood_keeps_memory_bounded() -> None:
    """400k small serverContent messages: bounded logs, a bounded queue, a bounded reply.

    Nobody iterates ``receive()`` (the magics only listen), so its queue is full throughout. The
    limit, 64 MB of RSS growth, is the sum of the bounds with room for the allocator: the receive
    queue (16 MiB estimated, about 24 MB real for small messages), events (10,000 entries, about
    5 MB), the transcript (10,000 entries, about 3 MB), one reply (100,000 characters) and
    websockets' buffers. Measured: about 15 MB. Before the bounds the same flood grew it by 90-230 MB.
    """
    seen = 0
    ended = asyncio.Event()

    def listen(item: Any) -> None:
        nonlocal seen
        seen += 1
        if isinstance(item, ServerContent) and item.output_transcription and item.output_transcription.text == "END":
            ended.set()

    server = await asyncio.create_subprocess_exec(
        sys.executable, str(FLOOD_SERVER), str(FLOOD), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int(await asyncio.wait_for(server.stdout.readline(), 30))
        config = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
        model = LiveModel(MODEL, config, backend="emulator", url=f"ws://127.0.0.1:{port}", reconnect=FAST)
        gc.collect()
        before = rss()
        session = await model.connect(SessionResumptionConfig())
        session.add_listener(listen)
        async with asyncio.timeout(240):
            await ended.wait()
        gc.collect()
        grown = rss() - before
        print(f"\nflood: {seen:,} items, RSS +{grown / 1e6:.1f} MB; dropped {session.dropped_events:,} events, "
              f"{session.dropped_transcript:,} transcript entries, {session.dropped_text:,} characters, "
              f"{session.dropped_received:,} queued items")
        assert seen >= FLOOD
        assert grown < 64e6
        assert len(session.events) <= EVENTS_LIMIT and session.dropped_events > 0
        assert len(session.transcript) <= TRANSCRIPT_LIMIT and session.dropped_transcript > 0
        assert session._queue_bytes <= RECEIVE_QUEUE_BYTES and session.dropped_received > 0
        # The long reply scrolled out of the transcript; what was cut from it is still counted.
        assert session.dropped_text == FLOOD // 2 * len("word ") - TURN_CHARS_LIMIT
        assert session.transcript[-1][2].endswith("END")
        await session.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            server.kill()
        await server.wait()


async def test_a_long_reply_is_cut_and_says_so() -> None:
    async def behave(ws: ServerConnection, n: int) -> None:
        chunk = json.dumps({"serverContent": {"outputTranscription": {"text": "z" * 10_000}}})
        for _ in range(30):
            await ws.send(chunk)
        await ws.send('{"serverContent": {"turnComplete": true}}')
        await ws.wait_closed()

    async with HostileServer(behave) as server:
        session = await model_for(server).connect()
        await wait_for(lambda: len(session.transcript) == 1)
        (_, role, text) = session.transcript[0]
        assert role == "model" and text.startswith("z" * TURN_CHARS_LIMIT)
        assert text.endswith("[200,000 more characters not kept]")
        assert session.dropped_text == 200_000
        await session.close()


# Over the wire: huge handles, deep JSON.


async def test_a_huge_resumption_handle_ends_the_session_clearly() -> None:
    async def behave(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps({"sessionResumptionUpdate": {"newHandle": "x" * 1_000_000, "resumable": True}}))
        await ws.wait_closed()

    async with HostileServer(behave) as server:
        session = await model_for(server).connect(SessionResumptionConfig())
        _, error = await drain(session, 5.0)
    assert isinstance(error, RemoteProtocolError)
    assert "newHandle is 1,000,000 characters long; live_nb accepts handles up to 65,536" in str(error)
    assert len(str(error)) < 1000
    assert session.handle is None and server.connections == 1


@pytest.mark.parametrize("depth", [150, 100_000])
async def test_deeply_nested_json_ends_the_session_clearly(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    frame = '{"toolCall": {"functionCalls": [{"name": "f", "args": {"a": NESTED}}]}}'.replace("NESTED", nested)

    async def behave(ws: ServerConnection, n: int) -> None:
        await ws.send(frame)
        await ws.wait_closed()

    async with HostileServer(behave) as server:
        session = await model_for(server).connect()
        _, error = await drain(session, 5.0)
    assert isinstance(error, RemoteProtocolError)
    assert "nest" in str(error) and len(str(error)) < 1000
    assert server.connections == 1


async def test_nesting_within_bounds_is_fine() -> None:
    nested = "[" * 20 + "]" * 20
    frame = '{"toolCall": {"functionCalls": [{"name": "f", "id": "1", "args": {"a": NESTED}}]}}'.replace("NESTED", nested)

    async def behave(ws: ServerConnection, n: int) -> None:
        await ws.send(frame)
        await ws.wait_closed()

    async with HostileServer(behave) as server:
        session = await model_for(server).connect()
        await wait_for(lambda: any(role == "tool call" for _, role, _ in session.transcript))
        assert not session.closed
        await session.close()


# Over the wire: a close reason carrying the key.


async def test_a_close_reason_with_the_key_is_redacted_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    async def behave(ws: ServerConnection, n: int) -> None:
        await ws.close(1008, f"API key {KEY} is not valid")

    caplog.set_level(logging.DEBUG, logger="live_nb")
    async with HostileServer(behave) as server:
        session = await model_for(server).connect()
        _, error = await drain(session, 5.0)
    assert isinstance(error, SessionLost)
    assert "<redacted>" in str(error) and KEY not in str(error)
    assert KEY not in repr(list(session.events)) and KEY not in caplog.text


async def test_a_close_reason_with_the_key_during_setup_is_redacted() -> None:
    async def behave(ws: ServerConnection, n: int) -> None:
        await ws.close(1008, f"API key {KEY} is not valid")

    async with HostileServer(behave, complete_setup=False) as server:
        with pytest.raises(SessionLost) as caught:
            await model_for(server).connect()
    assert "<redacted>" in str(caught.value) and KEY not in str(caught.value)
    assert KEY not in caught.value.reason


async def test_a_frame_echoing_the_key_is_redacted_in_the_error() -> None:
    async def behave(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps({"serverContent": {"turnComplete": KEY}}))
        await ws.wait_closed()

    async with HostileServer(behave) as server:
        session = await model_for(server).connect()
        _, error = await drain(session, 5.0)
    assert isinstance(error, RemoteProtocolError) and KEY not in str(error)


# The bench's flood runs in a subprocess too: a smoke check that the script still starts.


def test_memory_bench_has_a_quick_mode() -> None:
    bench = pathlib.Path(__file__).parents[2] / "bench" / "memory.py"
    out = subprocess.run([sys.executable, str(bench), "--quick"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "client" in out.stdout and "emulator" in out.stdout
