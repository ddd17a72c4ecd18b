"""LiveModel / LiveSession against the real in-process emulator over real sockets.

Today's models answer in AUDIO only; the reply's text arrives as ``outputTranscription``, which is
what these tests read (``reply_text``). ``emulator.url`` serves the emulator's default flavour,
Vertex AI's (transparent resumption, system-instruction updates, ``contextUpdate``); the Developer
API's rules are reached through its service path (``backend="gemini"``) or ``Emulator(mode="gemini")``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import socket
import struct
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from emulator_constants import TEST_CHUNK_DELAY, VERTEX_PATH
from google.genai import types as genai_types

from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.exceptions import (
    ConfigError,
    ConnectError,
    CredentialsError,
    InvalidState,
    LocalProtocolError,
    RemoteProtocolError,
    SessionLost,
    UnsupportedOnBackend,
)
from live_nb.protocol import catalogue
from live_nb.protocol.client_protocol import ClientProtocol
from live_nb.protocol.config import (
    ContextWindowCompressionConfig,
    HistoryConfig,
    LiveGenerationConfig,
    SessionResumptionConfig,
    SlidingWindow,
)
from live_nb.protocol.content import Content, FunctionResponse, Part
from live_nb.protocol.events import Connected, SessionClosed
from live_nb.protocol.messages import (
    ClientContent,
    ContextUpdate,
    RealtimeInput,
    ServerContent,
    SessionResumptionUpdate,
    ToolCall,
    UnknownMessage,
    UsageMetadata,
)

pytestmark = pytest.mark.timeout(30)

MODEL = "gemini-3.8-live"
NATIVE_25 = "gemini-2.5-flash-native-audio-preview-12-2025"
PREVIEW_31 = "gemini-3.1-flash-live-preview"
SHUT_DOWN = ["gemini-live-2.5-flash-preview", "gemini-2.0-flash-live-001"]
AUDIO = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
TEXT = LiveGenerationConfig(response_modalities=["TEXT"])
SECRET = "fake-api-key-test-secret-never-shown"
TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": "get_time",
                "description": "the time in a zone",
                "parameters": {"type": "OBJECT", "properties": {"tz": {"type": "STRING"}}},
            }
        ]
    }
]


async def until_turn_complete(session: LiveSession) -> list[Any]:
    """Collect items up to and including the usage that rides with the next turnComplete."""
    items: list[Any] = []
    async with asyncio.timeout(10):
        async for item in session.receive():
            items.append(item)
            if isinstance(item, UsageMetadata):  # the emulator sends usage with every turnComplete
                return items
    return items


async def whole_answer(session: LiveSession, seconds: float = 10.0) -> list[Any]:
    """Items from now until the model's whole answer is over (``answer_done``), seen by a listener."""
    items: list[Any] = []
    remove = session.add_listener(items.append)
    try:
        async with asyncio.timeout(seconds):
            await session.answer_done()
    finally:
        remove()
    return items


def reply_text(items: list[Any]) -> str:
    """The reply as text: its output transcription (today's models answer in audio)."""
    return "".join(
        i.output_transcription.text
        for i in items
        if isinstance(i, ServerContent) and i.output_transcription is not None
    )


def tone(seconds: float, amplitude: int = 8000, rate: int = 16_000) -> bytes:
    n = int(seconds * rate)
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n)))


async def ask(session: LiveSession, text: str) -> str:
    await session.send_text(text)
    return reply_text(await until_turn_complete(session))


@pytest.fixture
async def session(emulator: Emulator) -> AsyncIterator[LiveSession]:
    model = LiveModel(url=emulator.url)  # gemini-3.8-live, AUDIO with output transcription
    async with model.connect(session_resumption=SessionResumptionConfig()) as s:
        yield s


@pytest.fixture
async def emulator_gemini() -> AsyncIterator[Emulator]:
    """An emulator whose bare URL serves the Developer API's rules."""
    async with Emulator(host="127.0.0.1", port=0, chunk_delay=TEST_CHUNK_DELAY, mode="gemini") as emu:  # stops and cleans up on exit
        yield emu


# Happy paths.


async def test_default_model_is_38_live_with_audio_and_output_transcription(emulator: Emulator) -> None:
    model = LiveModel(url=emulator.url)
    assert model.model_name == MODEL == catalogue.DEFAULT_MODEL
    assert model.generation_config.response_modality == "AUDIO"
    assert model.generation_config.output_audio_transcription
    assert model.flavor is None  # the bare URL: the emulator's mode decides (Vertex by default)


async def test_text_turn_and_receive_spans_the_whole_session(session: LiveSession, emulator: Emulator) -> None:
    assert session.state == "active"
    assert session.model == f"models/{MODEL}"
    assert session.backend == "emulator"
    await session.send_content("What is the capital of France?")
    first = await until_turn_complete(session)
    assert isinstance(first[0], Connected)
    assert 'You asked: "What is the capital of France?"' in reply_text(first)
    assert b"".join(i.audio for i in first if isinstance(i, ServerContent))  # the reply itself is audio
    # The same receive() keeps going after turnComplete: a second turn arrives through it.
    await session.send_text("And a second question?")
    second = await until_turn_complete(session)
    assert "Turn 2." in reply_text(second)
    (emu_session,) = emulator.sessions.values()
    assert [t[0] for t in emu_session.context] == ["user", "model", "user", "model"]
    roles = [role for _, role, _ in session.transcript]
    assert roles == ["user", "model", "user", "model"]
    # The transcription became the model's line of the transcript, whole.
    assert session.transcript[1][2] == reply_text(first)
    assert session.ledger.output_by_modality["AUDIO"] > 0


async def test_incremental_content_builds_context_before_asking(session: LiveSession, emulator: Emulator) -> None:
    await session.send_content(
        [
            "My name is Ada.",
            {"role": "model", "parts": [{"text": "Nice to meet you, Ada."}]},
            Content(role="user", parts=(Part(text="I like engines."),)),
        ],
        turn_complete=False,
    )
    await session.send_content("What did I say first?", turn_complete=True)
    items = await until_turn_complete(session)
    text = reply_text(items)
    assert "My name is Ada." in text
    (emu_session,) = emulator.sessions.values()
    assert emu_session.context[0][:2] == ("user", "My name is Ada.")


async def test_system_instruction_update_on_the_vertex_flavour(session: LiveSession, emulator: Emulator) -> None:
    await session.update_system_instruction("You are a pirate.")
    await session.send_text("hello")
    await until_turn_complete(session)
    (emu_session,) = emulator.sessions.values()
    assert emu_session.context[0][:2] == ("system", "You are a pirate.")
    assert session.ledger.system_tokens > 0


async def test_system_instruction_update_on_gemini_backend_is_refused_clearly(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # websockets would log every handshake header at DEBUG
    model = LiveModel(backend="gemini", url=emulator.url, api_key=SECRET)
    async with model.connect() as s:
        with pytest.raises(UnsupportedOnBackend, match="Vertex"):
            await s.update_system_instruction("new rules")
        await s.send_text("still works over the gemini path")
        assert "Turn 1." in reply_text(await until_turn_complete(s))
    assert emulator.refused == []  # refused before anything was sent
    client_logs = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server"))
    assert SECRET not in client_logs
    assert "live_nb" in " ".join({r.name for r in caplog.records})  # logging was on and captured


async def test_system_instruction_update_on_the_gemini_flavour_emulator_is_refused_on_the_wire(
    emulator_gemini: Emulator,
) -> None:
    # The bare URL does not tell the client the flavour: the emulator refuses, as the service does.
    s = await LiveModel(url=emulator_gemini.url).connect()
    await s.update_system_instruction("new rules")
    with pytest.raises(SessionLost, match="rejected the setup or a message as invalid") as info:
        await until_turn_complete(s)
    assert info.value.code == 1007 and 'role "system" is not supported' in info.value.reason
    assert s.state == "closed"


async def test_audio_in_and_audio_out_with_transcription(emulator: Emulator) -> None:
    # audioStreamEnd is a Developer API message: the Gemini path.
    model = LiveModel(backend="gemini", url=emulator.url, api_key=SECRET)
    async with model.connect() as s:
        assert s.offers_audio_stream_end
        speech = tone(1.0)
        for i in range(0, len(speech), 3200):
            await s.send_audio(speech[i : i + 3200])
        await s.send_audio_stream_end()
        items = await until_turn_complete(s)
    audio = b"".join(i.audio for i in items if isinstance(i, ServerContent))
    assert len(audio) > 0 and len(audio) % 2 == 0
    assert "You spoke to me" in reply_text(items)
    usage = next(i for i in items if isinstance(i, UsageMetadata))
    assert usage.prompt_tokens_by_modality().get("AUDIO", 0) == pytest.approx(25, abs=3)
    assert s.ledger.input_by_modality["AUDIO"] == pytest.approx(25.0)
    assert s.ledger.output_by_modality["AUDIO"] > 0
    assert s.transcript[-1][1] == "model" and "You spoke to me" in s.transcript[-1][2]


@pytest.mark.parametrize(
    ("model_name", "resolution", "frame_tokens", "backend"),
    [
        (MODEL, None, 256, "emulator"),
        (MODEL, "MEDIA_RESOLUTION_LOW", 64, "emulator"),
        (NATIVE_25, None, 258, "gemini"),  # 2.5: a fixed 258 a frame (and a Developer API model)
    ],
)
async def test_video_frame_is_counted_at_the_models_rate(
    emulator: Emulator, model_name: str, resolution: str | None, frame_tokens: int, backend: str
) -> None:
    # 3.x turns take all video by default; 2.5's take only what came during activity, so there the
    # frame (sent without speech) joins the turn only with TURN_INCLUDES_ALL_INPUT.
    coverage = {"turnCoverage": "TURN_INCLUDES_ALL_INPUT"} if model_name == NATIVE_25 else None
    config = LiveGenerationConfig(
        response_modalities=["AUDIO"], output_audio_transcription=True, media_resolution=resolution,
        realtime_input_config=coverage,
    )
    model = LiveModel(model_name, config, backend=backend, url=emulator.url, api_key=SECRET)
    async with model.connect() as s:
        assert s.frame_tokens == frame_tokens
        await s.send_video(b"\xff\xd8\xff\xe0fake-jpeg")
        await s.send_text("what do you see?")
        items = await until_turn_complete(s)
    usage = next(i for i in items if isinstance(i, UsageMetadata))
    assert usage.prompt_tokens_by_modality().get("VIDEO") == frame_tokens
    assert s.ledger.input_by_modality["VIDEO"] == frame_tokens


async def test_tool_call_round_trip(emulator: Emulator) -> None:
    config = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True, tools=TOOLS)
    async with LiveModel(generation_config=config, url=emulator.url).connect() as s:
        await s.send_text("please call get_time tz=UTC")
        call = None
        async with asyncio.timeout(10):
            async for item in s.receive():
                if isinstance(item, ToolCall):
                    call = item.function_calls[0]
                    break
        assert call is not None and call.name == "get_time" and dict(call.args) == {"tz": "UTC"}
        await s.send_tool_response(FunctionResponse(name=call.name, response={"time": "12:00"}, id=call.id))
        # 3.8 calls NON_BLOCKING: the model may still be speaking its filler; the result's reply
        # is the turn after it, so wait for the whole answer, not the next turnComplete.
        items = await whole_answer(s)
    assert 'get_time returned {"time": "12:00"}' in reply_text(items)


async def test_usage_metadata_reaches_the_ledger(session: LiveSession) -> None:
    await session.send_text("count my tokens please")
    items = await until_turn_complete(session)
    usage = next(i for i in items if isinstance(i, UsageMetadata))
    assert usage.prompt_token_count and usage.response_token_count
    assert usage.prompt_tokens_by_modality()["TEXT"] == usage.prompt_token_count
    assert [d.modality for d in usage.response_tokens_details] == ["AUDIO"]
    assert session.ledger.usage[-1].prompt_tokens == usage.prompt_token_count
    assert session.ledger.last_reported == usage.total_token_count


async def test_observable_state_listeners_and_events(emulator: Emulator) -> None:
    model = LiveModel(url=emulator.url)
    seen: list[Any] = []
    async with model.connect(session_resumption=SessionResumptionConfig(transparent=True)) as s:
        remove = s.add_listener(seen.append)
        s.add_listener(lambda item: 1 / 0)  # a broken listener is logged, never breaks the session
        await s.send_text("hi")
        items = await until_turn_complete(s)
        async with asyncio.timeout(5):
            while not s.handle:
                await asyncio.sleep(0.01)
        assert s.resumable and s.last_consumed_index == 1 and s.replay_depth == 0
        assert s.connection_started is not None and s.reconnects == 0 and s.go_away_deadline is None
        remove()
        await s.send_text("again")
        await until_turn_complete(s)
    assert isinstance(items[0], Connected)  # queued before the listener was added
    assert seen[: len(items) - 1] == items[1:]
    assert len(seen) < len(items) + 3  # removed: nothing from the second turn (bar a stray update)
    assert s.state == "closed"
    assert any(isinstance(e, Connected) for _, e in s.events)
    assert any(isinstance(e, SessionResumptionUpdate) for _, e in s.events)
    assert isinstance(s.events[-1][1], SessionClosed)


async def test_await_connect_and_close_ends_receive(emulator: Emulator) -> None:
    s = await LiveModel(url=emulator.url).connect()
    collected: list[Any] = []

    async def consume() -> None:
        async for item in s.receive():
            collected.append(item)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await s.close()
    await asyncio.wait_for(task, 5)  # receive() finished without error
    assert isinstance(collected[-1], SessionClosed) and collected[-1].error is None
    await s.close()  # idempotent


async def test_pings_never_time_out(session: LiveSession) -> None:
    ws = session._ws
    assert ws is not None
    assert ws.ping_interval == 30.0 and ws.ping_timeout is None


@pytest.mark.parametrize("text_frames", [False, True])
async def test_empty_frames_from_38_do_not_disturb_the_client(text_frames: bool) -> None:
    async with Emulator(chunk_delay=0.0, text_frames=text_frames) as emu, LiveModel(url=emu.url).connect() as s:
        raw: list[bytes] = []
        handle_frame = s._handle_frame

        def spy(frame: bytes) -> None:
            raw.append(frame)
            handle_frame(frame)

        s._handle_frame = spy  # type: ignore[method-assign]
        delivered: list[Any] = []
        s.add_listener(delivered.append)
        first = reply_text(await until_turn_complete(await _asked(s, "hello there")))
        second = reply_text(await until_turn_complete(await _asked(s, "and again")))
        assert s.state == "active"
    empties = [f for f in raw if f == b"{}"]
    assert len(empties) >= 4, "gemini-3.8-live sends {} between content messages"
    # Nothing reached the user for them: no unknown message, no empty reply chunk, no error.
    assert not any(isinstance(i, UnknownMessage) for i in delivered)
    for item in delivered:
        if isinstance(item, ServerContent):
            assert item.model_turn or item.output_transcription or item.turn_complete or item.generation_complete
    assert 'You asked: "hello there"' in first and 'You asked: "and again"' in second
    assert [role for _, role, _ in s.transcript] == ["user", "model", "user", "model"]
    assert [text for _, role, text in s.transcript if role == "model"] == [first, second]
    assert isinstance(s.events[-1][1], SessionClosed) and s.events[-1][1].error is None


# The model catalogue's rules, in the client: refused before anything is sent.


@pytest.mark.parametrize("dead", SHUT_DOWN)
def test_shut_down_model_is_a_config_error_naming_its_replacement(emulator: Emulator, dead: str) -> None:
    with pytest.raises(ConfigError, match=r"shut down on 2025-12-09; use gemini-3\.8-live") as info:
        LiveModel(dead, url=emulator.url)
    assert info.value.field == "model"
    # Any spelling, any backend, any config: the model is gone.
    with pytest.raises(ConfigError, match=r"use gemini-3\.8-live"):
        LiveModel(f"models/{dead}", TEXT, backend="gemini", url=emulator.url, api_key=SECRET)
    assert emulator.sessions == {} and emulator.refused == []


@pytest.mark.parametrize("dead", SHUT_DOWN)
async def test_the_replacement_a_shut_down_model_names_works(emulator: Emulator, dead: str) -> None:
    with pytest.raises(ConfigError) as info:
        LiveModel(dead, url=emulator.url)
    match = re.search(r"use (\S+)$", str(info.value))
    assert match is not None
    replacement = match.group(1)
    assert replacement == catalogue.lookup(dead).replacement  # type: ignore[union-attr]
    async with LiveModel(replacement, url=emulator.url).connect() as s:
        assert 'You asked: "hello from the future"' in await ask(s, "hello from the future")
    assert s.transcript[-1][1] == "model"
    assert emulator.refused == []


@pytest.mark.parametrize("model_name", [MODEL, PREVIEW_31, NATIVE_25])
def test_text_replies_are_a_config_error_pointing_at_output_transcription(
    emulator: Emulator, model_name: str
) -> None:
    with pytest.raises(ConfigError, match="output_audio_transcription=True") as info:
        LiveModel(model_name, TEXT, backend="gemini", url=emulator.url, api_key=SECRET)
    assert info.value.field == "response_modalities" and info.value.value == ["TEXT"]
    assert f"{model_name} answers in AUDIO only" in str(info.value)
    assert emulator.sessions == {} and emulator.refused == []


async def test_unknown_model_warns_once_and_is_tried(emulator: Emulator) -> None:
    name = f"gemini-99-live-{uuid.uuid4().hex[:8]}"  # unique: the warning is once per process
    with pytest.warns(UserWarning, match=f"does not know the model '{name}'; trying it anyway") as record:
        model = LiveModel(name, url=emulator.url)
    assert len([w for w in record if name in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second LiveModel with it warns no more
        again = LiveModel(f"models/{name}", url=emulator.url)
    # Tried: the setup goes out, and the emulator refuses it as the service does (1008).
    for m in (model, again):
        with pytest.raises(SessionLost, match="does not serve this model") as info:
            await m.connect()
        assert info.value.code == 1008 and f"{name}" in info.value.reason
    assert [code for code, _ in emulator.refused] == [1008, 1008]


async def test_preview_31_takes_client_content_as_initial_history_then_realtime_text(emulator: Emulator) -> None:
    config = LiveGenerationConfig(
        response_modalities=["AUDIO"],
        output_audio_transcription=True,
        history_config=HistoryConfig(initial_history_in_client_content=True),
    )
    model = LiveModel(PREVIEW_31, config, backend="gemini", url=emulator.url, api_key=SECRET)
    async with model.connect() as s:
        # Initial history: clientContent, before any realtime input.
        await s.send_content(
            ["My name is Ada.", {"role": "model", "parts": [{"text": "Hello, Ada."}]}], turn_complete=False
        )
        # Then the conversation goes as realtime text.
        await s.send_realtime_text("What did I say first?")
        first = reply_text(await until_turn_complete(s))
        assert 'You asked: "What did I say first?"' in first and '"My name is Ada."' in first
        # clientContent now would close the session (1007): refused before it is sent.
        with pytest.raises(LocalProtocolError, match="send_realtime_text"):
            await s.send_text("a late clientContent")
        with pytest.raises(LocalProtocolError, match="initial history"):
            await s.send_content("more history", turn_complete=False)
        # The session is fine, and realtime text still works end to end.
        await s.send_realtime_text("Are you still there?")
        second = reply_text(await until_turn_complete(s))
        assert "Turn 2." in second and 'You asked: "Are you still there?"' in second
    assert emulator.refused == []
    (emu_session,) = emulator.sessions.values()
    assert [type(m) for m in emu_session.consumed] == [ClientContent, RealtimeInput, RealtimeInput]
    assert [t[0] for t in emu_session.context] == ["user", "model", "user", "model", "user", "model"]
    assert [role for _, role, _ in s.transcript] == ["user", "model", "user", "model", "user", "model"]


async def test_preview_31_without_history_config_refuses_client_content_at_once(emulator: Emulator) -> None:
    model = LiveModel(PREVIEW_31, backend="gemini", url=emulator.url, api_key=SECRET)
    async with model.connect() as s:
        with pytest.raises(LocalProtocolError, match="initialHistoryInClientContent"):
            await s.send_content("history?", turn_complete=False)
        await s.send_realtime_text("hello")
        assert "Turn 1." in reply_text(await until_turn_complete(s))
    assert emulator.refused == []


@pytest.mark.parametrize("path", [VERTEX_PATH, "/vertex"])
async def test_audio_stream_end_is_unsupported_on_a_vertex_flavour_url(emulator: Emulator, path: str) -> None:
    model = LiveModel(url=emulator.url + path)
    assert model.flavor == "vertex"
    async with model.connect() as s:
        assert not s.offers_audio_stream_end
        await s.send_audio(tone(0.2, amplitude=0))
        with pytest.raises(UnsupportedOnBackend, match="Vertex AI ends a turn by its own voice activity"):
            await s.send_audio_stream_end()
        assert "Turn 1." in await ask(s, "still here")
    (emu_session,) = emulator.sessions.values()
    assert not any(isinstance(m, RealtimeInput) and m.audio_stream_end for m in emu_session.consumed)
    assert emulator.paths[-1][1] == "vertex"


async def test_update_context_on_the_vertex_flavour(session: LiveSession, emulator: Emulator) -> None:
    with pytest.raises(LocalProtocolError, match="system_instruction, tools, or both"):
        await session.update_context()
    await session.update_context(system_instruction="You keep a lighthouse.", tools=TOOLS)
    reply = await ask(session, "What is your system instruction?")
    assert 'My system instruction is "You keep a lighthouse."' in reply
    (emu_session,) = emulator.sessions.values()
    assert emu_session.state.system_instruction == "You keep a lighthouse."
    assert emu_session.state.tools == TOOLS
    assert any(isinstance(m, ContextUpdate) for m in emu_session.consumed)
    assert session.ledger.system_tokens > 0
    # The new tools are in force: naming one makes a call.
    await session.send_text("call get_time tz=UTC")
    async with asyncio.timeout(10):
        async for item in session.receive():
            if isinstance(item, ToolCall):
                assert item.function_calls[0].name == "get_time"
                break


async def test_update_context_is_refused_on_the_developer_api(emulator_gemini: Emulator) -> None:
    # Its service path: the client knows the rules and refuses before sending.
    model = LiveModel(backend="gemini", url=emulator_gemini.url, api_key=SECRET)
    async with model.connect() as s:
        with pytest.raises(UnsupportedOnBackend, match=r"contextUpdate .* is a Vertex AI feature"):
            await s.update_context(system_instruction="new rules")
        assert "Turn 1." in await ask(s, "still working")
    assert emulator_gemini.refused == []
    # The bare URL of Emulator(mode="gemini"): the emulator refuses on the wire, as the service does.
    s = await LiveModel(url=emulator_gemini.url).connect()
    await s.update_context(system_instruction="new rules")
    with pytest.raises(SessionLost, match="rejected the setup or a message as invalid") as info:
        await until_turn_complete(s)
    assert info.value.code == 1007 and "contextUpdate is not supported" in info.value.reason
    assert emulator_gemini.refused == [(1007, info.value.reason)]
    with pytest.raises(SessionLost):
        await s.send_text("after")


async def test_transparent_resumption_is_refused_on_the_developer_api(
    emulator: Emulator, emulator_gemini: Emulator
) -> None:
    transparent = SessionResumptionConfig(transparent=True)
    with pytest.raises(UnsupportedOnBackend, match="Vertex"):
        LiveModel(backend="gemini", url=emulator.url, api_key=SECRET).connect(session_resumption=transparent)
    assert emulator.refused == []
    with pytest.raises(SessionLost, match="invalid") as info:
        await LiveModel(url=emulator_gemini.url).connect(session_resumption=transparent)
    assert info.value.code == 1007 and "transparent session resumption is not supported" in info.value.reason
    # Plain resumption (handles) is fine there.
    async with LiveModel(url=emulator_gemini.url).connect(session_resumption=SessionResumptionConfig()) as s:
        assert "Turn 1." in await ask(s, "hello")


# Errors.


def test_config_errors_come_before_anything_is_sent(emulator: Emulator) -> None:
    with pytest.raises(ConfigError, match="trigger_tokens"):
        LiveGenerationConfig(context_window_compression=ContextWindowCompressionConfig(trigger_tokens=10))
    with pytest.raises(ConfigError, match="target_tokens"):
        ContextWindowCompressionConfig(trigger_tokens=10_000, sliding_window=SlidingWindow(target_tokens=20_000))
    with pytest.raises(ConfigError, match="response_modalities"):
        LiveGenerationConfig(response_modalities=["TEXT", "AUDIO"])
    with pytest.raises(ConfigError, match="url"):
        LiveModel(backend="emulator", url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="backend"):
        LiveModel(backend="nope", url=emulator.url)
    with pytest.raises(ConfigError, match="generation_config"):
        LiveModel(MODEL, {"response_modalities": ["AUDIO"]}, url=emulator.url)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedOnBackend, match="Vertex"):
        LiveModel(backend="gemini", url=emulator.url, api_key=SECRET).connect(
            session_resumption=SessionResumptionConfig(transparent=True)
        )
    assert emulator.sessions == {} and emulator.refused == []


def test_default_backend_follows_what_is_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "LIVE_NB_EMULATOR_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"LIVE_NB_EMULATOR_URL.*GEMINI_API_KEY"):
        LiveModel()
    assert LiveModel(url="ws://127.0.0.1:1").backend == "emulator"
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    model = LiveModel()
    assert model.backend == "gemini" and model.model_name == MODEL and SECRET not in repr(model)
    monkeypatch.setenv("LIVE_NB_EMULATOR_URL", "ws://127.0.0.1:1")
    assert LiveModel().backend == "emulator"


def test_gemini_backend_without_key_is_a_credentials_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CredentialsError):
        LiveModel(backend="gemini")


async def test_bad_turns_are_a_local_protocol_error(session: LiveSession) -> None:
    with pytest.raises(LocalProtocolError):
        await session.send_content(42)  # type: ignore[arg-type]


async def test_sending_after_close_is_invalid_state(session: LiveSession) -> None:
    await session.close()
    for send in (session.send_text("late"), session.send_audio(b"\0\0"), session.send_video(b"x")):
        with pytest.raises(InvalidState, match="session is closed"):
            await send


async def test_refused_connection_names_the_url_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = LiveModel(backend="gemini", url=f"ws://127.0.0.1:{port}", api_key=SECRET)
    with pytest.raises(ConnectError) as info:
        await model.connect()
    message = str(info.value)
    assert f"ws://127.0.0.1:{port}/ws/google.ai.generativelanguage.v1beta" in message
    for text in (message, repr(info.value), repr(model), caplog.text):
        assert SECRET not in text


async def test_a_model_not_served_on_the_flavour_is_session_lost_with_clear_words(emulator: Emulator) -> None:
    # gemini-3.1-flash-live-preview is a Developer API model; the bare URL serves Vertex AI's flavour.
    with pytest.raises(SessionLost, match="does not serve this model") as info:
        await LiveModel(PREVIEW_31, url=emulator.url).connect()
    assert info.value.code == 1008 and "Publisher Model" in info.value.reason
    # On a Vertex path the client knows it before sending.
    with pytest.raises(ConfigError, match="not served on Vertex AI"):
        LiveModel(PREVIEW_31, url=emulator.url + VERTEX_PATH)


async def test_malformed_server_frame_closes_the_session_cleanly() -> None:
    async def broken_server(ws: Any) -> None:
        await ws.recv()
        await ws.send(json.dumps({"setupComplete": {}}))
        await ws.recv()
        await ws.send(b'{"serverContent": {"modelTurn": {"parts": "not-a-list"}}}')
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        closes.append(ws.close_code)

    closes: list[int | None] = []
    async with websockets.serve(broken_server, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        s = await LiveModel(url=f"ws://127.0.0.1:{port}").connect()
        await s.send_text("hello")
        with pytest.raises(RemoteProtocolError) as info:
            async with asyncio.timeout(5):
                async for _ in s.receive():
                    pass
        assert info.value.excerpt.startswith('{"serverContent": {"modelTurn"')  # the frame itself
        assert "parts must be a JSON array" in str(info.value) and "not-a-list" in str(info.value)
        assert s.state == "closed"
        with pytest.raises(RemoteProtocolError):
            await s.send_text("after")
        async with asyncio.timeout(5):
            while not closes:
                await asyncio.sleep(0.01)
    assert closes == [1007]


# Our wire JSON against google-genai's own types (the oracle).


def test_every_message_kind_we_send_validates_against_google_genai() -> None:
    config = LiveGenerationConfig(
        response_modalities=["AUDIO"],
        system_instruction="be brief",
        context_window_compression=ContextWindowCompressionConfig(
            trigger_tokens=20_000, sliding_window=SlidingWindow(target_tokens=10_000)
        ),
        tools=TOOLS,
        input_audio_transcription=True,
        output_audio_transcription=True,
        temperature=0.3,
        media_resolution="MEDIA_RESOLUTION_LOW",
    )
    proto = ClientProtocol(f"models/{MODEL}", config, SessionResumptionConfig(handle="h", transparent=True))
    proto.send_setup()
    from live_nb.protocol.messages import SetupComplete, encode_server_frame

    proto.receive(encode_server_frame(SetupComplete()), now=0.0)
    proto.send_content(["a", {"role": "model", "parts": [{"text": "b"}]}], turn_complete=False)
    proto.send_content(Content(role="system", parts=(Part(text="new sys"),)), turn_complete=False)
    proto.send_content("q")
    proto.send_audio(b"\x01\x02" * 100)
    proto.send_video(b"\xff\xd8jpeg")
    proto.send_realtime_text("typed")
    proto.send_activity_start()
    proto.send_activity_end()
    proto.send_audio_stream_end()
    proto.send_tool_response([FunctionResponse("get_time", {"result": "12:00"}, id="fc-1", will_continue=False)])
    proto.send_context_update(Content(role="user", parts=(Part(text="updated"),)))
    frames = proto.data_to_send()
    assert len(frames) == 12
    kinds = set()
    for frame in frames:
        message = genai_types.LiveClientMessage.model_validate_json(frame)
        kinds.add(next(k for k, v in message.model_dump(exclude_none=True).items() if v is not None))
    assert kinds == {"setup", "client_content", "realtime_input", "tool_response"} | (
        {"context_update"} if hasattr(genai_types.LiveClientMessage, "model_fields")
        and "context_update" in genai_types.LiveClientMessage.model_fields else set()
    )
    setup = genai_types.LiveClientMessage.model_validate_json(frames[0]).setup
    assert setup is not None and setup.generation_config is not None
    assert setup.generation_config.response_modalities == [genai_types.Modality.AUDIO]
    assert setup.output_audio_transcription is not None
    audio = genai_types.LiveClientMessage.model_validate_json(frames[4])
    assert audio.realtime_input is not None and audio.realtime_input.audio is not None
    assert audio.realtime_input.audio.data == b"\x01\x02" * 100


# Other backends' paths and auth forms, against the emulator (it accepts them as the service does).


async def test_vertex_gateway_path_allows_system_update_and_reads_candidates_usage(emulator: Emulator) -> None:
    model = LiveModel(
        backend="vertex", url=emulator.url + "/vertex-gateway", api_key=SECRET,
        project="my-project", location="us-central1",
    )
    assert model.resolver.model == f"projects/my-project/locations/us-central1/publishers/google/models/{MODEL}"
    assert model.flavor == "vertex"
    async with model.connect(session_resumption=SessionResumptionConfig(transparent=True)) as s:
        await s.update_system_instruction("Answer like a sailor.")
        items = await until_turn_complete(await _asked(s, "hello vertex"))
        usage = next(i for i in items if isinstance(i, UsageMetadata))
        assert usage.response_token_count  # Vertex spells it candidatesTokenCount on the wire
        assert "Turn 1." in reply_text(items)
        with pytest.raises(UnsupportedOnBackend):
            await s.send_audio_stream_end()
        for text in (repr(s), s.url, repr(s.events), repr(model)):
            assert SECRET not in text
    (emu_session,) = emulator.sessions.values()
    assert emu_session.context[0][:2] == ("system", "Answer like a sailor.")


async def test_ephemeral_token_reaches_the_constrained_endpoint(emulator: Emulator) -> None:
    token = "auth_tokens/ephemeral-secret-123"
    model = LiveModel(backend="gemini", url=emulator.url, api_key=token)
    assert model.url.endswith("v1alpha.GenerativeService.BidiGenerateContentConstrained")
    async with model.connect() as s:
        items = await until_turn_complete(await _asked(s, "hello with a token"))
        assert "Turn 1." in reply_text(items)
        assert token not in repr(s) and token not in s.url


async def _asked(session: LiveSession, text: str) -> LiveSession:
    await session.send_text(text)
    return session
