"""The emulator over real sockets, with plain ``websockets`` as the client.

Covers the HTTP upgrade (paths, auth), every close code the emulator gives, VAD and barge-in from
real PCM, GoAway and the 1011 deadline under ``time_scale``, resumption handles (snapshot/restore,
forged, expired, after a restart, model change, old connection still open), the consumed log and
transparent indexes, frame types, and the fault injections.

Sessions use today's default model, gemini-3.8-live: replies are AUDIO and their text comes as
``outputTranscription`` (no current Live model answers in TEXT, models.md section 2). The default
path is the Developer API's; what only Vertex offers (transparent resumption, system-instruction
updates, contextUpdate) runs on the Vertex path, and the Developer API path refuses it with 1007.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from emulator_constants import GEMINI_PATH, TEST_CHUNK_DELAY, VERTEX_PATH
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from live_nb.emulator import Emulator
from live_nb.protocol.messages import ClientContent, ContextUpdate, RealtimeInput

pytestmark = pytest.mark.timeout(60)

MODEL = "models/gemini-3.8-live"
NATIVE_25 = "models/gemini-2.5-flash-native-audio-preview-12-2025"
KEY = {"x-goog-api-key": "test-key"}
Json = dict[str, Any]


@asynccontextmanager
async def connected(
    emu: Emulator, path: str = GEMINI_PATH, headers: dict[str, str] | None = None
) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(emu.url + path, additional_headers=KEY if headers is None else headers) as ws:
        yield ws


async def recv(ws: ClientConnection, timeout: float = 5.0) -> Json:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    data = json.loads(frame)
    assert isinstance(data, dict)
    return data


async def send(ws: ClientConnection, message: Json) -> None:
    await ws.send(json.dumps(message))


async def setup(ws: ClientConnection, model: str = MODEL, **fields: Any) -> Json:
    """Send a setup (AUDIO replies with output transcription unless told otherwise) and read setupComplete."""
    body: Json = {"model": model, "generationConfig": {"responseModalities": [fields.pop("modality", "AUDIO")]},
                  "outputAudioTranscription": {}}
    body.update(fields)
    await send(ws, {"setup": body})
    reply = await recv(ws)
    assert "setupComplete" in reply, reply
    return reply


async def until(ws: ClientConnection, done: Callable[[Json], bool], timeout: float = 10.0) -> list[Json]:
    """Messages up to and including the first one ``done`` accepts."""
    out: list[Json] = []
    deadline = time.monotonic() + timeout
    while True:
        message = await recv(ws, max(0.01, deadline - time.monotonic()))
        out.append(message)
        if done(message):
            return out


def turn_complete(m: Json) -> bool:
    return bool(m.get("serverContent", {}).get("turnComplete"))


def resumable_update(m: Json) -> bool:
    return bool(m.get("sessionResumptionUpdate", {}).get("resumable"))


async def ask(ws: ClientConnection, text: str, wait: Callable[[Json], bool] = turn_complete) -> list[Json]:
    await send(ws, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True}})
    return await until(ws, wait)


def text_of(messages: list[Json]) -> str:
    """The reply text a client reads: the output transcription (AUDIO replies carry no text parts)."""
    parts = [p for m in messages for p in m.get("serverContent", {}).get("modelTurn", {}).get("parts", [])]
    assert all("text" not in p for p in parts)
    return "".join(m.get("serverContent", {}).get("outputTranscription", {}).get("text", "") for m in messages)


async def close_of(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; return (code, reason) as the client saw them (1006: no close frame)."""
    with pytest.raises(ConnectionClosed) as closed:
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
    rcvd = closed.value.rcvd
    return (rcvd.code, rcvd.reason) if rcvd is not None else (1006, "")


def pcm(seconds: float, amplitude: float) -> bytes:
    t = np.arange(int(seconds * 16_000)) / 16_000
    return (np.sin(2 * math.pi * 330 * t) * amplitude).astype("<i2").tobytes()


def audio_message(data: bytes) -> Json:
    return {"realtimeInput": {"audio": {"data": base64.b64encode(data).decode(), "mimeType": "audio/pcm;rate=16000"}}}


async def stream_audio(ws: ClientConnection, data: bytes, chunk: int = 3200) -> None:
    for i in range(0, len(data), chunk):
        await send(ws, audio_message(data[i : i + chunk]))


# The HTTP upgrade: paths and credentials.


@pytest.mark.parametrize(
    "path",
    [
        GEMINI_PATH,
        "/" + GEMINI_PATH,  # the SDK's default base_url ends in "/"
        "/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent",
        "/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained",
        VERTEX_PATH,
        "/vertex-proxy",
        "/vertex/some/gateway",
        "/",
    ],
)
async def test_paths_accepted(emulator: Emulator, path: str) -> None:
    async with connected(emulator, path) as ws:
        await setup(ws)


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("", {"x-goog-api-key": "k"}),
        ("?key=k", {}),
        ("?access_token=auth_tokens/t", {}),
        ("", {"Authorization": "Bearer fake-oauth-token"}),
        ("", {"Authorization": "Token auth_tokens/t"}),
    ],
)
async def test_every_auth_form_accepted(emulator: Emulator, query: str, headers: dict[str, str]) -> None:
    async with connected(emulator, GEMINI_PATH + query, headers) as ws:
        await setup(ws)
    assert emulator.paths[-1] == (GEMINI_PATH, "gemini")  # the query (it may hold a key) is never kept


async def test_missing_credential_refused_at_upgrade(emulator: Emulator) -> None:
    with pytest.raises(InvalidStatus) as missing:
        async with connected(emulator, GEMINI_PATH, headers={}):
            pass
    assert missing.value.response.status_code == 401
    assert b"x-goog-api-key" in missing.value.response.body
    with pytest.raises(InvalidStatus) as empty:
        async with connected(emulator, GEMINI_PATH, headers={"x-goog-api-key": ""}):
            pass
    assert empty.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as unknown:
        async with connected(emulator, "/ws/not.the.live.api"):
            pass
    assert unknown.value.response.status_code == 404


# Close codes.


async def refused(emu: Emulator, setup_frame: str | Json, path: str = GEMINI_PATH) -> tuple[int, str]:
    async with connected(emu, path) as ws:
        await ws.send(setup_frame if isinstance(setup_frame, str) else json.dumps(setup_frame))
        return await close_of(ws)


async def test_setup_refusals(emulator: Emulator) -> None:
    code, reason = await refused(emulator, {"setup": {"model": "models/gemini-7-ultra"}})
    assert code == 1008 and reason.startswith("models/gemini-7-ultra is not found for API version v1beta, or is not")
    assert len(reason.encode()) <= 123  # cut like the service's reasons
    code, reason = await refused(
        emulator, {"setup": {"model": "publishers/google/models/nope"}}, path=VERTEX_PATH
    )
    assert code == 1008 and reason.startswith("Publisher Model `publishers/google/models/nope`")
    native = {"setup": {"model": NATIVE_25, "generationConfig": {"responseModalities": ["TEXT"]}}}
    assert await refused(emulator, native) == (1007, "Cannot extract voices from a non-audio request.")
    text = {"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["TEXT"]}}}
    assert await refused(emulator, text) == (
        1007, "The requested combination of response modalities (TEXT) is not supported by the model.")
    for dead in ("models/gemini-live-2.5-flash-preview", "models/gemini-2.0-flash-live-001"):  # shut down 2025-12-09
        code, reason = await refused(emulator, {"setup": {"model": dead}})
        assert code == 1008 and reason.startswith(f"{dead} is not found for API version v1beta")
    no_sliding = {"setup": {"model": MODEL, "contextWindowCompression": {"triggerTokens": "20000"}}}
    code, reason = await refused(emulator, no_sliding)
    assert code == 1007 and "slidingWindow" in reason
    bad_trigger = {"setup": {"model": MODEL, "context_window_compression": {"trigger_tokens": 100,
                                                                                  "sliding_window": {}}}}
    code, reason = await refused(emulator, bad_trigger)
    assert code == 1007 and "trigger_tokens=100" in reason and "5,000" in reason
    code, reason = await refused(emulator, "{not json")
    assert code == 1007 and "not valid JSON" in reason
    code, reason = await refused(emulator, {"clientContent": {"turns": [], "turnComplete": True}})
    assert code == 1007 and "first message must be setup" in reason


async def test_invalid_messages_close_1007(emulator: Emulator) -> None:
    async with connected(emulator) as ws:
        await setup(ws)
        await send(ws, {"realtimeInput": {"activityEnd": {}}})  # python-genai#1720: auto VAD is on
        code, reason = await close_of(ws)
    assert code == 1007 and "activityEnd needs automaticActivityDetection.disabled=true" in reason
    async with connected(emulator) as ws:
        await setup(ws, realtimeInputConfig={"automaticActivityDetection": {"disabled": True}})
        await send(ws, {"realtimeInput": {"audioStreamEnd": True}})
        code, reason = await close_of(ws)
    assert code == 1007 and "audioStreamEnd" in reason
    async with connected(emulator) as ws:
        await setup(ws)
        await send(ws, {"bogusMessage": {}})
        code, reason = await close_of(ws)
    assert code == 1007 and "unknown client message 'bogusMessage'" in reason


# Backend rules (models.md section 3): the Developer API path refuses what only Vertex offers.


def system_update(text: str) -> Json:
    return {"clientContent": {"turns": [{"role": "system", "parts": [{"text": text}]}], "turnComplete": False}}


CONTEXT_UPDATE: Json = {"contextUpdate": {"systemInstruction": {"parts": [{"text": "be kind"}]}}}


@pytest.mark.parametrize("path", [GEMINI_PATH, GEMINI_PATH + "Constrained"])
async def test_developer_api_path_refuses_vertex_features(emulator: Emulator, path: str) -> None:
    code, reason = await refused(emulator, {"setup": {"model": MODEL, "sessionResumption": {"transparent": True}}},
                                 path)
    assert code == 1007 and "transparent session resumption is not supported" in reason
    for message, words in ((system_update("be a pirate"), 'role "system" is not supported in clientContent'),
                           (CONTEXT_UPDATE, "contextUpdate is not supported")):
        async with connected(emulator, path) as ws:
            hello = await setup(ws, systemInstruction={"parts": [{"text": "be polite"}]})
            await send(ws, message)
            code, reason = await close_of(ws)
        assert code == 1007 and words in reason, reason
        state = emulator.sessions[hello["setupComplete"]["sessionId"]].state
        assert state.system_instruction == "be polite" and state.consumed_count == 0  # refused, not folded in


@pytest.mark.parametrize("path", [VERTEX_PATH, "/vertex/gateway", "/"])
async def test_vertex_path_and_bare_url_take_system_updates(emulator: Emulator, path: str) -> None:
    async with connected(emulator, path) as ws:
        hello = await setup(ws, systemInstruction={"parts": [{"text": "be polite"}]},
                            sessionResumption={"transparent": True})
        await send(ws, system_update("be a pirate"))
        pirate = text_of(await ask(ws, "what is your system instruction?"))
        await send(ws, CONTEXT_UPDATE)
        kind = text_of(await ask(ws, "and your instructions now?"))
    assert emulator.paths[-1][1] == "vertex"
    assert 'My system instruction is "be a pirate"' in pirate and 'My system instruction is "be kind"' in kind
    assert emulator.sessions[hello["setupComplete"]["sessionId"]].state.system_instruction == "be kind"


async def test_gemini_mode_bare_url_has_developer_api_rules() -> None:
    async with Emulator(mode="gemini", chunk_delay=0) as emu:
        code, reason = await refused(emu, {"setup": {"model": MODEL, "sessionResumption": {"transparent": True}}}, "/")
        assert code == 1007 and "transparent" in reason
        async with connected(emu, "/") as ws:
            await setup(ws)
            await send(ws, CONTEXT_UPDATE)
            assert (await close_of(ws))[0] == 1007
        async with connected(emu, VERTEX_PATH) as ws:  # the service's own paths keep their own flavour
            await setup(ws, sessionResumption={"transparent": True})
            await send(ws, CONTEXT_UPDATE)
            assert 'instruction "be kind"' in text_of(await ask(ws, "hi"))


async def test_context_window_exhausted_without_compression() -> None:
    async with Emulator(context_window=300, chunk_delay=0) as emu, connected(emu) as ws:
        await setup(ws)
        await ask(ws, "a" * 400)  # 100 tokens + the reply
        await send(ws, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "b" * 800}]}],
                                          "turnComplete": True}})
        code, reason = await close_of(ws)
    assert code == 1007 and reason.startswith("Context window exhausted")


# Streaming, frames, VAD and barge-in.


async def test_binary_frames_by_default_and_text_frames_option(emulator: Emulator) -> None:
    async with connected(emulator) as ws:
        await send(ws, {"setup": {"model": MODEL}})
        assert isinstance(await ws.recv(), bytes)
    async with Emulator(text_frames=True) as emu, connected(emu) as ws:
        await send(ws, {"setup": {"model": MODEL}})
        assert isinstance(await ws.recv(), str)


async def test_no_permessage_deflate_unless_asked(emulator: Emulator) -> None:
    async with connected(emulator) as ws:  # websockets offers deflate, as the SDK does
        assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers
    async with Emulator(compression=True) as emu, connected(emu) as ws:
        assert ws.response is not None and "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]


async def test_vad_turn_from_real_pcm_with_transcriptions(emulator: Emulator) -> None:
    async with connected(emulator) as ws:
        await setup(ws, model=NATIVE_25, inputAudioTranscription={})
        await stream_audio(ws, pcm(0.1, 0) + pcm(1.5, 6000) + pcm(1.0, 50))  # quiet, speech, near-silence
        messages = await until(ws, turn_complete)
    contents = [m["serverContent"] for m in messages if "serverContent" in m]
    # A steady tone holds no words: offline recognition says so (speech is on by default).
    assert contents[0]["inputTranscription"] == {
        "text": "[1.5 s of speech: offline recognition heard no words]", "finished": True}
    chunks = [base64.b64decode(p["inlineData"]["data"]) for c in contents for p in c.get("modelTurn", {}).get("parts", [])]
    # Voiced replies go out in chunks of at most 100 ms (engine.SPEECH_CHUNK_SECONDS; the tone's are 40 ms).
    assert all(len(c) <= 4800 for c in chunks) and sum(map(len, chunks)) > 48_000
    said = "".join(c["outputTranscription"]["text"] for c in contents if "outputTranscription" in c)
    assert said.startswith("Turn 1. You spoke to me [1.5 s of speech]. I heard nothing I could recognise.")
    assert contents[-2] == {"generationComplete": True}
    usage = messages[-1]["usageMetadata"]
    # (1.5 s of speech + the 0.8 s of silence that ends it) x 25: the 0.1 s before the speech is outside
    # the turn (2.5's default turn coverage, TURN_INCLUDES_ONLY_ACTIVITY).
    assert usage["promptTokensDetails"] == [{"modality": "AUDIO", "tokenCount": 58}]
    assert usage["responseTokensDetails"][0]["modality"] == "AUDIO"


async def test_manual_activity_turn(emulator: Emulator) -> None:
    async with connected(emulator) as ws:
        await setup(ws, realtimeInputConfig={"automaticActivityDetection": {"disabled": True}})
        await send(ws, {"realtimeInput": {"activityStart": {}}})
        await stream_audio(ws, pcm(0.6, 20))  # quiet audio still counts inside an activity
        await send(ws, {"realtimeInput": {"activityEnd": {}}})
        text = text_of(await until(ws, turn_complete))
    assert "You spoke to me [0.6 s of speech" in text


async def test_barge_in_interrupts_and_keeps_only_sent_words() -> None:
    async with Emulator(chunk_delay=0.05) as emu, connected(emu) as ws:
        hello = await setup(ws)
        session = emu.sessions[hello["setupComplete"]["sessionId"]]
        await send(ws, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "talk a while"}]}],
                                          "turnComplete": True}})
        first = await until(ws, lambda m: "outputTranscription" in m.get("serverContent", {}))
        await stream_audio(ws, pcm(0.2, 6000))
        rest = await until(ws, turn_complete)
        received = text_of(first + rest).split()
    flags = [m["serverContent"] for m in rest
             if "serverContent" in m and not {"modelTurn", "outputTranscription"} & set(m["serverContent"])]
    assert flags[0] == {"interrupted": True} and flags[1]["turnComplete"] is True
    assert not any(f.get("generationComplete") for f in flags)
    kept = [t for t in session.turns if t.role == "model"][-1].text.split()
    # History keeps the words whose sound went out: what the client read, plus at most the one word whose
    # audio chunk was sent just before the barge-in and whose transcription (the next frame) never was.
    assert received and kept[: len(received)] == received and len(kept) - len(received) <= 1
    assert not " ".join(kept).endswith("tokens.")  # cut mid-reply: the reply ends "... and N tokens."


# GoAway and the connection deadline.


async def test_go_away_then_deadline_1011_with_time_scale() -> None:
    # 600 s lifetime / 300 = 2 s; GoAway 60 s / 300 = 0.2 s before the end.
    async with Emulator(time_scale=300, chunk_delay=0) as emu, connected(emu) as ws:
        start = time.monotonic()
        await setup(ws)
        go_away = await recv(ws, timeout=5)
        at = time.monotonic() - start
        code, reason = await close_of(ws)
        closed_at = time.monotonic() - start
    assert go_away == {"goAway": {"timeLeft": "0.2s"}}
    assert 1.6 < at < 3.0  # generous upper bounds: the test machine is shared
    assert (code, reason) == (1011, "Deadline expired before operation could complete.")
    assert 0.15 < closed_at - at < 1.0


async def test_go_away_now_fault(emulator: Emulator) -> None:
    async with connected(emulator) as ws:
        await setup(ws, sessionResumption={})
        await ask(ws, "hi", wait=resumable_update)
        assert await emulator.go_away_now(time_left=0.3) == 1
        assert await recv(ws) == {"goAway": {"timeLeft": "0.3s"}}
        assert await close_of(ws) == (1011, "Deadline expired before operation could complete.")


async def test_drop_connections_sends_no_close_frame(emulator: Emulator) -> None:
    async with connected(emulator) as ws:
        hello = await setup(ws, sessionResumption={})
        sid = hello["setupComplete"]["sessionId"]
        assert await emulator.drop_connections(sid) == 1
        assert await close_of(ws) == (1006, "")
        assert not emulator.sessions[sid].open


# Resumption.


async def test_periodic_updates_and_resumable_false_while_generating() -> None:
    async with Emulator(time_scale=100, resumption_update_interval=10, chunk_delay=1.0) as emu, connected(emu) as ws:
        await setup(ws, sessionResumption={})
        await stream_audio(ws, pcm(0.3, 0))  # something consumed: a periodic update is due
        update = (await until(ws, lambda m: "sessionResumptionUpdate" in m, timeout=2))[-1]
        assert update["sessionResumptionUpdate"]["resumable"] is True
        await send(ws, {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "slow"}]}],
                                          "turnComplete": True}})
        # chunk_delay 1.0 / 100 = 10 ms per chunk (a reply is ~100 of them); the first update: not resumable now.
        updates = [m for m in await until(ws, turn_complete) if "sessionResumptionUpdate" in m]
        assert updates[0] == {"sessionResumptionUpdate": {"newHandle": "", "resumable": False}}
        after = await until(ws, lambda m: "sessionResumptionUpdate" in m)
        assert after[-1]["sessionResumptionUpdate"]["resumable"] is True


@pytest.mark.parametrize("path", [VERTEX_PATH, "/"])  # transparent resumption: Vertex (the bare URL's default)
async def test_handle_names_a_snapshot_and_resume_restores_it(emulator: Emulator, path: str) -> None:
    async with connected(emulator, path) as ws:
        hello = await setup(ws, sessionResumption={"transparent": True})
        sid = hello["setupComplete"]["sessionId"]
        first = (await ask(ws, "the owl is grey", wait=resumable_update))[-1]["sessionResumptionUpdate"]
        assert first["lastConsumedClientMessageIndex"] == "1"
        await ask(ws, "the cat is black", wait=resumable_update)
        session = emulator.sessions[sid]
        assert len(session.consumed) == 2 and len(session.turns) == 4
    handle = first["newHandle"]
    async with connected(emulator, path) as ws:
        again = await setup(ws, sessionResumption={"handle": handle, "transparent": True})
        assert again["setupComplete"]["sessionId"] == sid
        assert len(session.consumed) == 1 and len(session.turns) == 2  # the later turn is gone
        messages = await ask(ws, "what did I say first?", wait=resumable_update)
    text = text_of(messages)
    assert "Turn 2." in text and '"the owl is grey"' in text and "cat" not in text
    assert messages[-1]["sessionResumptionUpdate"]["lastConsumedClientMessageIndex"] == "1"  # per connection
    assert [m.turns[0].text for m in session.consumed if isinstance(m, ClientContent)] == [
        "the owl is grey", "what did I say first?"]


async def test_consumed_log_in_order_with_indexes(emulator: Emulator) -> None:
    async with connected(emulator, VERTEX_PATH) as ws:  # transparent indexes and contextUpdate: Vertex only
        hello = await setup(ws, sessionResumption={"transparent": True})
        await send(ws, {"client_content": {"turns": [{"role": "user", "parts": [{"text": "a"}]}], "turn_complete": False}})
        await send(ws, {"contextUpdate": {"systemInstruction": {"parts": [{"text": "be kind"}]}}})
        await send(ws, audio_message(pcm(0.1, 0)))
        await send(ws, {"realtime_input": {"text": "typed"}})  # a complete turn under automatic VAD
        messages = await until(ws, resumable_update)
    session = emulator.sessions[hello["setupComplete"]["sessionId"]]
    kinds = [type(m).__name__ for m in session.consumed]
    assert kinds == ["ClientContent", "ContextUpdate", "RealtimeInput", "RealtimeInput"]
    assert isinstance(session.consumed[1], ContextUpdate) and isinstance(session.consumed[3], RealtimeInput)
    assert messages[-1]["sessionResumptionUpdate"]["lastConsumedClientMessageIndex"] == "4"
    assert session.state.system_instruction == "be kind"


async def test_forged_and_foreign_handles_refused(emulator: Emulator, tmp_path: Path) -> None:
    async with connected(emulator) as ws:
        await send(ws, {"setup": {"model": MODEL, "sessionResumption": {"handle": "not-a-handle"}}})
        assert await close_of(ws) == (1008, "BidiGenerateContent session not found")
    async with Emulator(db_path=str(tmp_path / "other.db"), chunk_delay=0) as other, connected(other) as ws:
        await setup(ws, sessionResumption={})
        handle = (await ask(ws, "hi", wait=resumable_update))[-1]["sessionResumptionUpdate"]["newHandle"]
    tampered = handle[:-2] + ("A" if handle[-2] != "A" else "B") + handle[-1]
    for bad in (handle, tampered):  # a real handle of another database, and a tampered one
        async with connected(emulator) as ws:
            await send(ws, {"setup": {"model": MODEL, "sessionResumption": {"handle": bad}}})
            assert await close_of(ws) == (1008, "BidiGenerateContent session not found")


@pytest.mark.parametrize(("mode", "path", "scale", "hours"), [
    ("gemini", "/", 14_400, "2 h"),  # the bare URL serves the mode's flavour...
    ("vertex", "/", 172_800, "24 h"),
    ("vertex", GEMINI_PATH, 14_400, "2 h"),  # ...the service's own paths their own
    ("gemini", VERTEX_PATH, 172_800, "24 h"),
])
async def test_expired_handle_refused(mode: str, path: str, scale: float, hours: str) -> None:
    # Retention (2 h Developer API, 24 h Vertex) divided by the time scale = 0.5 s after the last connection ends.
    async with Emulator(mode=mode, time_scale=scale, connection_lifetime=1e9, go_away_before=60, chunk_delay=0,
                        resumption_update_interval=1e9) as emu:
        async with connected(emu, path) as ws:
            await setup(ws, sessionResumption={})
            handle = (await ask(ws, "hi", wait=resumable_update))[-1]["sessionResumptionUpdate"]["newHandle"]
        async with connected(emu, path) as ws:  # within retention: fine
            await setup(ws, sessionResumption={"handle": handle})
        await asyncio.sleep(1.0)
        async with connected(emu, path) as ws:
            await send(ws, {"setup": {"model": MODEL, "sessionResumption": {"handle": handle}}})
            code, reason = await close_of(ws)
    assert code == 1008 and "expired" in reason and hours in reason


async def test_restart_with_same_db_keeps_context(tmp_path: Path) -> None:
    db = str(tmp_path / "emulator.sqlite3")
    async with Emulator(db_path=db, chunk_delay=0) as emu, connected(emu) as ws:
        await setup(ws, sessionResumption={}, systemInstruction={"parts": [{"text": "You are Polly."}]})
        await ask(ws, "my secret word is marmalade", wait=resumable_update)
        handle = (await ask(ws, "second thing", wait=resumable_update))[-1]["sessionResumptionUpdate"]["newHandle"]
    async with Emulator(db_path=db, chunk_delay=0) as emu, connected(emu) as ws:
        assert emu.sessions == {}
        await setup(ws, sessionResumption={"handle": handle})
        text = text_of(await ask(ws, "what did I say first?"))
        session = next(iter(emu.sessions.values()))
    assert "Turn 3." in text and '"my secret word is marmalade"' in text and '"You are Polly."' in text
    assert session.consumed_offset == 2 and len(session.consumed) == 1


async def test_model_change_on_resume_refused(emulator: Emulator) -> None:
    async with connected(emulator) as ws:
        await setup(ws, sessionResumption={})
        handle = (await ask(ws, "hi", wait=resumable_update))[-1]["sessionResumptionUpdate"]["newHandle"]
    async with connected(emulator) as ws:
        await send(ws, {"setup": {"model": NATIVE_25, "sessionResumption": {"handle": handle}}})
        code, reason = await close_of(ws)
    assert code == 1007 and "model cannot change on resume" in reason
    assert len(reason.encode()) <= 123 and emulator.refused[-1][1].startswith(reason)  # cut to fit the frame
    assert emulator.refused[-1][1].endswith(
        "(session uses gemini-3.8-live, setup asks for gemini-2.5-flash-native-audio-preview-12-2025).")


async def test_resume_while_old_connection_open_refused() -> None:
    async with Emulator(resume_grace=0.1, chunk_delay=0) as emu, connected(emu) as old:
        await setup(old, sessionResumption={})
        handle = (await ask(old, "hi", wait=resumable_update))[-1]["sessionResumptionUpdate"]["newHandle"]
        async with connected(emu) as ws:
            await send(ws, {"setup": {"model": MODEL, "sessionResumption": {"handle": handle}}})
            code, reason = await close_of(ws)
        assert code == 1011 and "still open on another connection" in reason
        await old.close()  # close the old socket first, then resuming works
        async with connected(emu) as ws:
            await setup(ws, sessionResumption={"handle": handle})


async def test_resume_after_drop_with_replay_is_exactly_once(emulator: Emulator) -> None:
    async with connected(emulator, VERTEX_PATH) as ws:  # transparent resumption: Vertex only
        hello = await setup(ws, sessionResumption={"transparent": True})
        sid = hello["setupComplete"]["sessionId"]
        update = (await ask(ws, "one", wait=resumable_update))[-1]["sessionResumptionUpdate"]
        unacked = [{"clientContent": {"turns": [{"role": "user", "parts": [{"text": t}]}], "turnComplete": False}}
                   for t in ("two", "three")]
        for message in unacked:
            await send(ws, message)
        while len(emulator.sessions[sid].consumed) < 3:
            await asyncio.sleep(0.005)
        await emulator.drop_connections(sid)
    assert update["lastConsumedClientMessageIndex"] == "1"
    async with connected(emulator, VERTEX_PATH) as ws:
        await setup(ws, sessionResumption={"handle": update["newHandle"], "transparent": True})
        for message in unacked:  # replay everything after index 1
            await send(ws, message)
        await ask(ws, "four", wait=resumable_update)
    texts = [m.turns[0].text for m in emulator.sessions[sid].consumed if isinstance(m, ClientContent)]
    assert texts == ["one", "two", "three", "four"]
    assert [t.text for t in emulator.sessions[sid].turns if t.role == "user"] == ["one", "two", "three", "four"]


async def test_chunk_delay_paces_the_stream() -> None:
    async with Emulator(chunk_delay=0.01) as emu, connected(emu) as ws:
        await setup(ws)
        start = time.monotonic()
        messages = await ask(ws, "hello, please say something long enough")
        elapsed = time.monotonic() - start
    # Every content chunk (an audio chunk, or the transcription of the words it starts) is paced.
    chunks = sum(1 for m in messages if {"modelTurn", "outputTranscription"} & set(m.get("serverContent", {})))
    assert chunks >= 4 and elapsed >= 0.01 * (chunks - 1)
    assert TEST_CHUNK_DELAY < 0.01


async def test_consumed_limit_trims_the_log_but_keeps_the_count() -> None:
    async with Emulator(consumed_limit=40, chunk_delay=0) as emu, connected(emu) as ws:
        hello = await setup(ws)
        for i in range(200):
            await send(ws, audio_message(i.to_bytes(2, "big") * 100))
        await ask(ws, "count them")
        session = emu.sessions[hello["setupComplete"]["sessionId"]]
        assert session.consumed_total == 201 == session.state.consumed_count
        assert 40 <= len(session.consumed) <= 40 + 16
        last = session.consumed[-2]
        assert isinstance(last, RealtimeInput) and last.audio is not None
        assert last.audio.data[:2] == (199).to_bytes(2, "big")


async def test_credentials_never_logged(emulator: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {"x-goog-api-key": "SECRET-HEADER", "Authorization": "Bearer SECRET-BEARER"}
    async with connected(emulator, GEMINI_PATH + "?key=SECRET-QUERY&access_token=SECRET-TOKEN", headers) as ws:
        await setup(ws)
        await ask(ws, "hi")
    server_records = [r for r in caplog.records if r.name.startswith("live_nb.emulator")]
    assert any("GET" in r.getMessage() for r in server_records)  # the upgrade was logged...
    assert not [r.getMessage() for r in server_records if "SECRET" in r.getMessage()]  # ...without the secrets
    assert all("SECRET" not in path for path, _ in emulator.paths)


@pytest.mark.parametrize(("model", "resolution", "frame"), [
    (MODEL, None, 256), (MODEL, "MEDIA_RESOLUTION_LOW", 64), (NATIVE_25, None, 258)])
async def test_video_frames_and_legacy_media_chunks_are_counted(
    emulator: Emulator, model: str, resolution: str | None, frame: int
) -> None:
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0 not really a jpeg").decode()
    generation: Json = {"responseModalities": ["AUDIO"]}
    if resolution:
        generation["mediaResolution"] = resolution
    async with connected(emulator) as ws:
        hello = await setup(ws, model=model, generationConfig=generation,  # silence and video all count
                            realtimeInputConfig={"turnCoverage": "TURN_INCLUDES_ALL_INPUT"})
        await send(ws, {"realtimeInput": {"video": {"data": jpeg, "mimeType": "image/jpeg"}}})
        await send(ws, {"realtime_input": {"mediaChunks": [{"data": jpeg, "mime_type": "image/jpeg"},
                                                           {"data": base64.b64encode(pcm(0.4, 0)).decode(),
                                                            "mime_type": "audio/pcm"}]}})
        messages = await ask(ws, "what do you see?")
    details = {d["modality"]: d["tokenCount"] for d in messages[-1]["usageMetadata"]["promptTokensDetails"]}
    assert details == {"VIDEO": 2 * frame, "AUDIO": 10, "TEXT": 4}
    session = emulator.sessions[hello["setupComplete"]["sessionId"]]
    assert session.turns[0].text == "[0.4 s of audio without speech] [2 video frames]"
    assert session.turns[0].modalities == {"AUDIO": 10.0, "VIDEO": 2.0 * frame}
    assert '"[0.4 s of audio without speech] [2 video…"' in text_of(messages)
