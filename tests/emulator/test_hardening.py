"""The emulator against hostile and broken clients, its memory over many sessions, and who may reach it.

Raw ``websockets`` clients send what no SDK would: JSON nested 100,000 deep, a setup with a wrong
type in every field, bad base64, non-JSON, binary garbage, a 1 MB model name, a frame above the
server's ``max_size``. Each is answered with a close frame and a reason: 1007 "Request contains an
invalid argument: ..." for what cannot be read, 1008 for a model the catalogue lacks, and 1009 (sent
by websockets itself, before any parsing) for a frame above ``MAX_FRAME_BYTES``. Never 1011 with an
empty reason, never a traceback in the log, never a session left marked open in SQLite. A bug of
ours after parsing is the one case that logs a traceback; the client then hears 1011 "Internal error
encountered." and the session is still closed in the store.

Memory: closed sessions are released (a few recent ones stay readable in ``emu.sessions``), checked
in-process with weak references and tracemalloc, and as the RSS of an emulator subprocess.

Binding: a non-loopback host is refused without ``allow_remote``, and with it needs an API key,
checked at the HTTP upgrade (401 without, 403 with another). Nothing here binds beyond 127.0.0.1:
the remote path is exercised on loopback with ``is_loopback`` patched.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import gc
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
import tracemalloc
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import websockets
from emulator_constants import GEMINI_PATH, TEST_CHUNK_DELAY, VERTEX_PATH
from websockets.exceptions import ConnectionClosed, InvalidStatus

import live_nb.emulator.engine as engine_module
import live_nb.emulator.server as server_module
from live_nb.emulator import Emulator
from live_nb.emulator.cli import build_parser
from live_nb.emulator.routes import is_loopback
from live_nb.emulator.server import MAX_FRAME_BYTES
from live_nb.emulator.server_protocol import for_log
from live_nb.exceptions import ConfigError

pytestmark = pytest.mark.timeout(120)

MODEL = "models/gemini-3.8-live"
KEY = {"x-goog-api-key": "test-key"}
INVALID = "Request contains an invalid argument"
Json = dict[str, Any]

PCM = base64.b64encode(bytes(3200)).decode()  # 100 ms of 16 kHz silence
BASE_SETUP: Json = {
    "model": MODEL,
    "generationConfig": {
        "responseModalities": ["AUDIO"],
        "temperature": 0.5,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 200,
        "seed": 7,
        "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}, "languageCode": "en-US"},
        "mediaResolution": "MEDIA_RESOLUTION_LOW",
    },
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
    "tools": [{"functionDeclarations": [{"name": "lookup", "description": "find a thing"}]}],
    "contextWindowCompression": {"triggerTokens": 10000, "slidingWindow": {"targetTokens": 5000}},
    "inputAudioTranscription": {},
    "outputAudioTranscription": {},
    "realtimeInputConfig": {
        "automaticActivityDetection": {"disabled": False, "silenceDurationMs": 500, "prefixPaddingMs": 20},
        "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
        "turnCoverage": "TURN_INCLUDES_ONLY_ACTIVITY",
    },
    "sessionResumption": {},
}
"""A setup using most fields, accepted as it is on the Developer API path (checked below)."""

WRONG_VALUES: list[Any] = [12345, -1, 1e308, "wrong", "", True, [1, "a"], [[[]]], {"x": {"y": 1}}, {}]
"""Values of every JSON type but null (proto3 JSON reads null as "unset")."""

BASE_MESSAGES: list[Json] = [
    {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hello"}]}], "turnComplete": True}},
    {"realtimeInput": {"audio": {"data": PCM, "mimeType": "audio/pcm;rate=16000"}}},
    {"realtimeInput": {"mediaChunks": [{"data": PCM, "mimeType": "audio/pcm;rate=16000"}]}},
    {"realtimeInput": {"video": {"data": base64.b64encode(b"\xff\xd8\xff").decode(), "mimeType": "image/jpeg"}}},
    {"realtimeInput": {"text": "hello"}},
    {"realtimeInput": {"audioStreamEnd": True}},
    {"toolResponse": {"functionResponses": [{"id": "call-1", "name": "lookup", "response": {"output": 1}}]}},
]


# Helpers.


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON value (object keys, and the first item of each array)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from paths(child, (*prefix, key))
    elif isinstance(value, list) and value:
        yield (*prefix, 0)
        yield from paths(value[0], (*prefix, 0))


def replaced(value: Json, path: tuple[Any, ...], new: Any) -> Json:
    out = copy.deepcopy(value)
    node: Any = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = new
    return out


def same_type(a: Any, b: Any) -> bool:
    kinds = (bool, (int, float), str, list, dict)
    return any(isinstance(a, kind) and isinstance(b, kind) for kind in kinds) and (
        isinstance(a, bool) == isinstance(b, bool)
    )


def wrong_type_cases(base: Json) -> list[tuple[tuple[Any, ...], Any]]:
    return [(path, value) for path in paths(base) for value in WRONG_VALUES if not same_type(get(base, path), value)]


def get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


async def close_of(
    emu: Emulator, frames: list[str | bytes], path: str = GEMINI_PATH, timeout: float = 10.0
) -> tuple[int | None, str]:
    """Send ``frames`` on a fresh connection and read until the server closes: its (code, reason).

    A ``setupComplete`` (or any reply) is read past; (None, "") means the server never closed.
    """
    ws = await websockets.connect(emu.url + path, additional_headers=KEY, max_size=None)
    deadline = time.monotonic() + timeout
    try:
        for frame in frames:
            await ws.send(frame)
        while time.monotonic() < deadline:
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd is not None else (None, "")
    except asyncio.TimeoutError:
        pass
    finally:
        # The client's own teardown can trip on a transport the server already cut (after a 1009
        # in the middle of a 16 MB send); that is websockets' client, not what is tested here.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)
        with contextlib.suppress(Exception):
            ws.transport.abort()
    return None, ""


async def setup_then(emu: Emulator, setup: Json, *messages: str | bytes) -> tuple[int | None, str]:
    return await close_of(emu, [json.dumps({"setup": setup}), *messages])


def open_rows(emu: Emulator) -> int:
    """Sessions the emulator's SQLite file marks open (read with a connection of our own)."""
    assert emu.db_path is not None
    db = sqlite3.connect(emu.db_path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM sessions WHERE open_connections > 0").fetchone()[0])
    finally:
        db.close()


async def settled(emu: Emulator, timeout: float = 5.0) -> None:
    """Wait until no session is open, in memory or in the store (the server's cleanup runs after our close)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if open_rows(emu) == 0 and not any(s.open for s in emu.sessions.values()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"sessions left open: {open_rows(emu)} in the store, {emu.sessions}")


def assert_quiet(caplog: pytest.LogCaptureFixture, limit: int = 1000) -> None:
    """No traceback, no error, and no log line longer than ``limit`` characters (wire values are excerpted)."""
    for record in caplog.records:
        text = record.getMessage()
        assert record.exc_info is None, (record.name, text[:300])
        assert record.levelno < logging.ERROR, (record.name, text[:300])
        assert "Traceback" not in text and "handler failed" not in text, text[:300]
        assert len(text) <= limit, (record.name, text[:200], len(text))
        assert "\n" not in text, text[:300]


@pytest.fixture
async def emu(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Emulator]:
    caplog.set_level(logging.DEBUG, logger="live_nb")
    caplog.set_level(logging.INFO)
    async with Emulator(host="127.0.0.1", port=0, chunk_delay=TEST_CHUNK_DELAY, mode="gemini") as emulator:  # stops and cleans up on exit
        yield emulator


# Malformed and oversized input.


async def test_base_setup_and_messages_are_accepted(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    """The starting points of the wrong-type cases are valid, so each case tests only its one change."""
    code, reason = await setup_then(emu, BASE_SETUP, "nope")
    assert (code, reason) == (1007, f"{INVALID}: frame is not valid JSON: 'nope'")
    for message in BASE_MESSAGES:
        code, reason = await setup_then(emu, BASE_SETUP, json.dumps(message), "nope")
        assert code == 1007 and "not valid JSON: 'nope'" in reason, (message, code, reason)
    await settled(emu)
    assert_quiet(caplog)


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"setup":' * 100_000 + "{}" + "}" * 100_000,
        '{"setup": {"model": "' + MODEL + '", "tools": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        '{"setup": {"model": "' + MODEL + '", "tools": [' + '{"a":' * 500 + "1" + "}" * 500 + "]}}",
    ],
    ids=["array", "object", "in-tools", "500-in-tools"],
)
async def test_deep_nesting_is_1007(emu: Emulator, caplog: pytest.LogCaptureFixture, frame: str) -> None:
    code, reason = await close_of(emu, [frame])
    assert code == 1007 and reason.startswith(INVALID) and "nested too deeply" in reason, (code, reason)
    # After setup too: the fast audio path's json.loads meets it first there.
    code, reason = await setup_then(emu, BASE_SETUP, frame)
    assert code == 1007 and reason.startswith(INVALID) and "nested too deeply" in reason, (code, reason)
    await settled(emu)
    assert not emu.sessions or all(not s.open for s in emu.sessions.values())
    assert_quiet(caplog)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        (("model",), 5, "setup.model"),
        (("generationConfig",), [], "generationConfig"),
        (("generationConfig", "responseModalities"), "AUDIO", "responseModalities"),
        (("contextWindowCompression", "triggerTokens"), {}, "triggerTokens"),
        (("realtimeInputConfig", "automaticActivityDetection", "silenceDurationMs"), "soon", "wrong type or value"),
        (("realtimeInputConfig", "automaticActivityDetection"), "on", "wrong type or value"),
        (("sessionResumption",), [], "sessionResumption"),
        (("sessionResumption", "handle"), 7, "handle"),
    ],
)
async def test_named_wrong_types_in_setup_are_1007(
    emu: Emulator, caplog: pytest.LogCaptureFixture, field: tuple[str, ...], value: Any, words: str
) -> None:
    code, reason = await setup_then(emu, replaced(BASE_SETUP, field, value))
    assert code == 1007 and reason.startswith(INVALID) and words in reason, (code, reason)
    await settled(emu)
    assert emu.sessions == {}  # refused before the session existed: nothing kept in memory
    assert open_rows(emu) == 0
    assert_quiet(caplog)


async def test_every_setup_field_with_every_wrong_type(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    """Each field of a full setup, replaced by a value of each other JSON type: accepted or 1007/1008, never 1011."""
    cases = wrong_type_cases(BASE_SETUP)
    assert len(cases) > 200
    outcomes: dict[int | None, int] = {}
    for field, value in cases:
        # "nope" after the setup: an accepted setup is then closed 1007 for it, so every case ends quickly.
        code, reason = await setup_then(emu, replaced(BASE_SETUP, field, value), "nope")
        assert code in (1007, 1008) and reason, (field, value, code, reason)
        if code == 1007:
            assert reason.startswith(INVALID), (field, value, reason)
        outcomes[code] = outcomes.get(code, 0) + 1
    await settled(emu)
    assert all(code != 1011 for code, _ in emu.refused)
    assert outcomes.get(1007, 0) > 100
    assert_quiet(caplog)


async def test_every_message_field_with_every_wrong_type(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    """The same for each client message after setup (clientContent, realtimeInput, toolResponse)."""
    count = 0
    for base in BASE_MESSAGES:
        for field, value in wrong_type_cases(base):
            message = json.dumps(replaced(base, field, value))
            code, reason = await setup_then(emu, BASE_SETUP, message, "nope")
            assert code in (1007, 1008) and reason, (field, value, code, reason)
            count += 1
    assert count > 100
    await settled(emu)
    assert all(code != 1011 for code, _ in emu.refused)
    assert_quiet(caplog)


@pytest.mark.parametrize(
    "frame",
    [
        json.dumps({"realtimeInput": {"audio": {"data": "!!!not base64!!!", "mimeType": "audio/pcm;rate=16000"}}}),
        json.dumps({"realtimeInput": {"audio": {"data": "QUJD=extra", "mimeType": "audio/pcm;rate=16000"}}}),
        json.dumps({"realtimeInput": {"video": {"data": "%%%%", "mimeType": "image/jpeg"}}}),
        json.dumps({"realtimeInput": {"mediaChunks": [{"data": "@", "mimeType": "audio/pcm"}]}}),
    ],
    ids=["audio", "trailing", "video", "media-chunks"],
)
async def test_invalid_base64_is_1007(emu: Emulator, caplog: pytest.LogCaptureFixture, frame: str) -> None:
    code, reason = await setup_then(emu, BASE_SETUP, frame)
    assert code == 1007 and reason.startswith(INVALID) and "base64" in reason, (code, reason)
    await settled(emu)
    assert_quiet(caplog)


@pytest.mark.parametrize(
    "frame",
    ["nope", "", "{", "null", "[]", '"setup"', "{}", '{"setup": {}, "clientContent": {}}', '{"unknown": {}}',
     b"\xff\xfe\x00\x01garbage\x80\x81", bytes(range(256)), b"\x00" * 1000],
    ids=["word", "empty", "brace", "null", "list", "string", "empty-object", "two-keys", "unknown",
         "garbage", "all-bytes", "zeros"],
)
async def test_non_json_and_garbage_are_1007(
    emu: Emulator, caplog: pytest.LogCaptureFixture, frame: str | bytes
) -> None:
    for frames in ([frame], [json.dumps({"setup": BASE_SETUP}), frame]):
        code, reason = await close_of(emu, frames)
        assert code == 1007 and reason.startswith(INVALID), (frames[-1][:20], code, reason)
    await settled(emu)
    assert_quiet(caplog)


async def test_megabyte_model_name_is_1007_and_never_logged_whole(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    name = "models/" + "m" * 2**20
    code, reason = await setup_then(emu, {**BASE_SETUP, "model": name})
    assert code == 1007 and reason.startswith(f"{INVALID}: setup.model is too long"), (code, reason)
    assert len(reason.encode()) <= 123
    assert emu.refused[-1][0] == 1007 and len(emu.refused[-1][1]) < 5000
    # A long-ish unknown name (below the limit) is the catalogue's 1008, its log line still excerpted.
    code, reason = await setup_then(emu, {**BASE_SETUP, "model": "models/" + "x" * 500})
    assert code == 1008 and reason
    # A newline in a wire value cannot forge a log line.
    code, reason = await setup_then(emu, {**BASE_SETUP, "model": "models/nope\nERROR forged line"})
    assert code == 1008
    await settled(emu)
    assert all("m" * 200 not in record.getMessage() for record in caplog.records)
    assert_quiet(caplog, limit=600)


async def test_long_unknown_path_is_logged_short(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(emu.url + "/" + "p" * 6000, additional_headers=KEY):
            pass
    assert info.value.response.status_code == 404
    assert any("refused unknown path" in r.getMessage() for r in caplog.records)
    assert_quiet(caplog, limit=300)


async def test_frame_above_max_size_is_1009_without_traceback(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """websockets itself closes 1009 before parsing; the emulator records it and logs no traceback."""
    big = "x" * (MAX_FRAME_BYTES + 1)
    for frames in ([big], [json.dumps({"setup": BASE_SETUP}), big]):
        code, reason = await close_of(emu, list(frames), timeout=30)
        assert code == 1009 and "exceeds limit" in reason, (code, reason)
        deadline = time.monotonic() + 15
        while not (emu.refused and emu.refused[-1] == (1009, reason)) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert emu.refused[-1] == (1009, reason)
        emu.refused.clear()
    await settled(emu)
    assert_quiet(caplog)


async def test_a_bug_after_parsing_is_1011_logged_and_cleaned_up(
    emu: Emulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the parsing boundary an exception is ours: traceback logged, 1011 "Internal error encountered."."""

    def broken(self: Any, message: Any) -> Any:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(engine_module.ServerEngine, "receive", broken)
    code, reason = await setup_then(emu, BASE_SETUP, json.dumps(BASE_MESSAGES[0]))
    assert (code, reason) == (1011, "Internal error encountered.")
    await settled(emu)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None and "internal error in session" in errors[0].getMessage()
    assert not any("handler failed" in r.getMessage() for r in caplog.records)  # websockets saw nothing escape


async def test_a_bug_at_setup_is_1011_and_leaves_nothing_open(
    emu: Emulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(engine_module.ServerEngine, "start", broken)
    code, reason = await setup_then(emu, BASE_SETUP)
    assert (code, reason) == (1011, "Internal error encountered.")
    await settled(emu)
    assert [r.levelno for r in caplog.records if r.exc_info is not None] == [logging.ERROR]


# Memory.


async def one_session(emu: Emulator, frames: int, size: int, setup: Json | None = None) -> str:
    """A session that streams ``frames`` audio chunks of ``size`` bytes, then closes; returns its id."""
    chunk = json.dumps({"realtimeInput": {"audio": {"data": base64.b64encode(bytes(size)).decode(),
                                                    "mimeType": "audio/pcm;rate=16000"}}})
    async with websockets.connect(emu.url + GEMINI_PATH, additional_headers=KEY, max_size=None) as ws:
        await ws.send(json.dumps({"setup": setup or {"model": MODEL}}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        session_id = str(reply["setupComplete"]["sessionId"])
        for _ in range(frames):
            await ws.send(chunk)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        session = emu.sessions.get(session_id)
        if session is None or (not session.open and session.consumed_total == frames):
            break
        await asyncio.sleep(0.01)
    return session_id


async def test_closed_sessions_are_released_and_resume_reloads_them() -> None:
    async with Emulator(chunk_delay=0, keep_closed=2, keep_closed_bytes=64 * 2**20, mode="gemini") as emu:
        ids = [await one_session(emu, frames=2, size=3200) for _ in range(5)]
        assert list(emu.sessions) == ids[-2:]  # the two most recently closed stay readable
        assert [len(emu.sessions[i].consumed) for i in ids[-2:]] == [2, 2]
        refs = [weakref.ref(s) for s in emu.sessions.values()]
        await one_session(emu, frames=1, size=3200)
        await one_session(emu, frames=1, size=3200)
        gc.collect()
        assert all(ref() is None for ref in refs)  # released, not merely unlisted

        # A released session resumes from its SQLite snapshot, as after a restart.
        async with websockets.connect(emu.url + GEMINI_PATH, additional_headers=KEY) as ws:
            await ws.send(json.dumps({"setup": {"model": MODEL, "sessionResumption": {}}}))
            session_id = json.loads(await ws.recv())["setupComplete"]["sessionId"]
            await ws.send(json.dumps(BASE_MESSAGES[0]))
            handle = None
            while handle is None:
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                handle = (message.get("sessionResumptionUpdate") or {}).get("newHandle") or None
        for _ in range(3):
            await one_session(emu, frames=1, size=3200)
        assert session_id not in emu.sessions
        async with websockets.connect(emu.url + GEMINI_PATH, additional_headers=KEY) as ws:
            await ws.send(json.dumps({"setup": {"model": MODEL, "sessionResumption": {"handle": handle}}}))
            assert json.loads(await ws.recv())["setupComplete"]["sessionId"] == session_id
            resumed = emu.sessions[session_id]
            assert resumed.resumes == 1 and resumed.consumed == [] and resumed.consumed_total >= 1
            assert any(role == "user" for role, _, _ in resumed.context)  # the context came back from SQLite


async def test_closed_session_bytes_are_bounded_in_process() -> None:
    """Eight sessions of 1 MB frames: the Python heap keeps at most ``keep_closed_bytes`` of them."""
    budget = 3 * 2**20
    async with Emulator(chunk_delay=0, keep_closed_bytes=budget, mode="gemini") as emu:
        await one_session(emu, frames=2, size=2**20)  # warm-up
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(8):
                await one_session(emu, frames=4, size=2**20)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        kept = sum(s.payload_bytes() for s in emu.sessions.values())
        assert kept <= budget
        assert after - before < budget + 2**20, (before, after)  # 8 x 4 MB were received


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
async def test_rss_stays_bounded_over_many_sessions_of_megabyte_frames() -> None:
    """An emulator process (the CLI, default settings) over sessions of 12 x 1 MB audio frames.

    Before the fix every session stayed in memory with its consumed log: RSS grew ~13 MB a session
    (+105 MB after 8, +212 MB after 16). Now the growth levels off: the allocator's high-water mark
    for one session's burst plus the recently closed sessions kept (``--keep-closed-mb``, 16 MiB).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "live_nb.emulator", "--port", "0", "--chunk-delay", "0", "--log-level", "WARNING",
         "--mode", "gemini"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        url = None
        while url is None:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert line, "the emulator exited"
            match = re.search(r"listening on (ws://\S+)", line)
            url = match.group(1) if match else None
        frame = json.dumps({"realtimeInput": {"audio": {"data": base64.b64encode(bytes(2**20)).decode(),
                                                        "mimeType": "audio/pcm;rate=16000"}}})

        async def session() -> None:
            async with websockets.connect(url + GEMINI_PATH, additional_headers=KEY, max_size=None) as ws:
                await ws.send(json.dumps({"setup": {"model": MODEL}}))
                await asyncio.wait_for(ws.recv(), 10)
                for _ in range(12):
                    await ws.send(frame)
                await asyncio.sleep(0.1)

        for _ in range(3):
            await session()  # warm-up: imports, and the heap's high-water mark for one session
        await asyncio.sleep(0.3)
        start = _rss_mb(proc.pid)
        for _ in range(8):
            await session()
        await asyncio.sleep(0.3)
        after_8 = _rss_mb(proc.pid)
        for _ in range(8):
            await session()
        await asyncio.sleep(0.3)
        after_16 = _rss_mb(proc.pid)
        print(f"emulator RSS: {start:.1f} MB, after 8 sessions {after_8:.1f} MB, after 16 {after_16:.1f} MB")
        # 16 sessions x 12 MB were received; keeping them would be ~200 MB.
        assert after_16 - start < 120, (start, after_8, after_16)
        assert after_16 - after_8 < 60, (start, after_8, after_16)  # the second 8 add (about) nothing
    finally:
        proc.terminate()
        proc.wait(10)


# Who may connect.


def test_non_loopback_host_is_refused_without_allow_remote() -> None:
    for host in ("0.0.0.0", "::", "", "192.168.1.10", "example.com"):
        with pytest.raises(ConfigError, match="loopback"):
            Emulator(host=host)
    with pytest.raises(ConfigError, match="api_key"):
        Emulator(host="0.0.0.0", allow_remote=True)
    with pytest.raises(ConfigError, match="api_key"):
        Emulator(host="0.0.0.0", allow_remote=True, api_key="  ")
    Emulator(host="0.0.0.0", allow_remote=True, api_key="s3cret")  # allowed (not started here)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost", "[::1]"):
        assert is_loopback(host)
        Emulator(host=host)
    assert not is_loopback("0.0.0.0") and not is_loopback(None)


async def expect_status(url: str, headers: dict[str, str] | None, status: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(url, additional_headers=headers):
            pass
    assert info.value.response.status_code == status


async def test_remote_mode_needs_the_key_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The remote path on loopback (``is_loopback`` patched): a loud warning, then only the key gets in."""
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(server_module, "is_loopback", lambda host: False)
    with pytest.raises(ConfigError):
        Emulator(host="127.0.0.1")
    secret = "the-only-key-1234"
    async with Emulator(host="127.0.0.1", allow_remote=True, api_key=secret, mode="gemini", chunk_delay=0) as emu:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("reachable from other machines" in w for w in warnings), warnings
        url = emu.url + GEMINI_PATH
        await expect_status(url, None, 401)
        await expect_status(url, {"x-goog-api-key": "another-key"}, 403)
        await expect_status(url + "?key=another-key", None, 403)
        await expect_status(url, {"Authorization": "Bearer another-key"}, 403)
        for headers, query in (({"x-goog-api-key": secret}, ""), (None, f"?key={secret}"),
                               ({"Authorization": f"Bearer {secret}"}, ""), (None, f"?access_token={secret}")):
            async with websockets.connect(url + query, additional_headers=headers) as ws:
                await ws.send(json.dumps({"setup": {"model": MODEL}}))
                assert "setupComplete" in json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert secret not in repr(emu) and secret not in emu.url
    assert all(secret not in r.getMessage() for r in caplog.records)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "live_nb.emulator", "--port", "0", *args],
        capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})},
    )


def test_cli_refuses_a_remote_host_without_allow_remote_and_a_key() -> None:
    out = run_cli("--host", "0.0.0.0")
    assert out.returncode == 2 and "--allow-remote" in out.stderr and "listening" not in out.stdout
    out = run_cli("--host", "0.0.0.0", "--allow-remote")
    assert out.returncode == 2 and "--api-key-env" in out.stderr
    env = {k: v for k, v in os.environ.items() if k != "LIVE_NB_TEST_UNSET_KEY"}
    out = subprocess.run(
        [sys.executable, "-m", "live_nb.emulator", "--port", "0", "--host", "0.0.0.0", "--allow-remote",
         "--api-key-env", "LIVE_NB_TEST_UNSET_KEY"], capture_output=True, text=True, timeout=30, env=env,
    )
    assert out.returncode == 2 and "LIVE_NB_TEST_UNSET_KEY" in out.stderr and "unset or empty" in out.stderr
    assert not any(action.dest == "api_key" for action in build_parser()._actions)  # no key on the command line


async def test_cli_api_key_env_is_checked_at_the_upgrade(tmp_path: Any) -> None:
    secret = "cli-key-5678"
    proc = subprocess.Popen(
        [sys.executable, "-m", "live_nb.emulator", "--port", "0", "--chunk-delay", "0", "--log-level", "INFO",
         "--api-key-env", "LIVE_NB_TEST_KEY", "--db", str(tmp_path / "emu.sqlite3")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "LIVE_NB_TEST_KEY": secret},
    )
    try:
        assert proc.stdout is not None
        url = None
        lines = []
        while url is None:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert line, "the emulator exited"
            lines.append(line)
            match = re.search(r"listening on (ws://\S+)", line)
            url = match.group(1) if match else None
        await expect_status(url + VERTEX_PATH, None, 401)
        await expect_status(url + VERTEX_PATH, {"x-goog-api-key": "nope"}, 403)
        async with websockets.connect(url + VERTEX_PATH, additional_headers={"x-goog-api-key": secret}) as ws:
            await ws.send(json.dumps({"setup": {"model": MODEL}}))
            assert "setupComplete" in json.loads(await asyncio.wait_for(ws.recv(), 5))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert secret not in err and all(secret not in line for line in lines)


def test_for_log_cuts_and_escapes() -> None:
    assert for_log("short") == "short"
    assert for_log("a\nb\x00c") == "a\\nb\\x00c"
    long = for_log("m" * 2**20)
    assert len(long) < 200 and long.endswith(f"({2**20} characters)")
