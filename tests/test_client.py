"""LiveModel / LiveSession against the real in-process emulator over real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
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
    UnsupportedOnBackend,
)
from live_nb.protocol.config import (
    ContextWindowCompressionConfig,
    LiveGenerationConfig,
    SessionResumptionConfig,
    SlidingWindow,
)
from live_nb.protocol.events import Connected, SessionClosed
from live_nb.protocol.messages import (
    Content,
    FunctionResponse,
    Part,
    ServerContent,
    SessionResumptionUpdate,
    ToolCall,
    UsageMetadata,
)
from live_nb.protocol.state import ClientProtocol

pytestmark = pytest.mark.timeout(30)

TEXT_MODEL = "gemini-live-2.5-flash-preview"
AUDIO_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
TEXT = LiveGenerationConfig(response_modalities=["TEXT"])
SECRET = "AIzaSy-test-secret-never-shown"
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
    """Collect items up to and including the next turnComplete (and the usage riding with it)."""
    items: list[Any] = []
    async with asyncio.timeout(10):
        async for item in session.receive():
            items.append(item)
            if isinstance(item, UsageMetadata):
                return items
            if isinstance(item, ServerContent) and item.turn_complete and not _usage_follows(item):
                return items
    return items


def _usage_follows(item: ServerContent) -> bool:
    return True  # the emulator sends usage with every turnComplete (live-protocol.md section 3)


def reply_text(items: list[Any]) -> str:
    return "".join(i.text for i in items if isinstance(i, ServerContent))


def tone(seconds: float, amplitude: int = 8000, rate: int = 16_000) -> bytes:
    n = int(seconds * rate)
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n)))


@pytest.fixture
async def session(emulator: Emulator) -> AsyncIterator[LiveSession]:
    model = LiveModel(TEXT_MODEL, TEXT, url=emulator.url)
    async with model.connect(session_resumption=SessionResumptionConfig()) as s:
        yield s


# Happy paths.


async def test_text_turn_and_receive_spans_the_whole_session(session: LiveSession, emulator: Emulator) -> None:
    assert session.state == "active"
    assert session.model == f"models/{TEXT_MODEL}"
    assert session.backend == "emulator"
    await session.send_content("What is the capital of France?")
    first = await until_turn_complete(session)
    assert isinstance(first[0], Connected)
    assert 'You asked: "What is the capital of France?"' in reply_text(first)
    # The same receive() keeps going after turnComplete: a second turn arrives through it.
    await session.send_text("And a second question?")
    second = await until_turn_complete(session)
    assert "Turn 2." in reply_text(second)
    (emu_session,) = emulator.sessions.values()
    assert [t[0] for t in emu_session.context] == ["user", "model", "user", "model"]
    roles = [role for _, role, _ in session.transcript]
    assert roles == ["user", "model", "user", "model"]


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


async def test_system_instruction_update_on_emulator(session: LiveSession, emulator: Emulator) -> None:
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
    model = LiveModel(TEXT_MODEL, TEXT, backend="gemini", url=emulator.url, api_key=SECRET)
    async with model.connect() as s:
        with pytest.raises(UnsupportedOnBackend, match="Vertex"):
            await s.update_system_instruction("new rules")
        await s.send_text("still works over the gemini path")
        assert "Turn 1." in reply_text(await until_turn_complete(s))
    client_logs = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server"))
    assert SECRET not in client_logs
    assert "live_nb" in " ".join({r.name for r in caplog.records})  # logging was on and captured


async def test_audio_in_and_audio_out_with_transcription(emulator: Emulator) -> None:
    config = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
    model = LiveModel(AUDIO_MODEL, config, url=emulator.url)
    async with model.connect() as s:
        speech = tone(1.0)
        for i in range(0, len(speech), 3200):
            await s.send_audio(speech[i : i + 3200])
        await s.send_audio_stream_end()
        items = await until_turn_complete(s)
    audio = b"".join(i.audio for i in items if isinstance(i, ServerContent))
    assert len(audio) > 0 and len(audio) % 2 == 0
    spoken = "".join(
        i.output_transcription.text for i in items if isinstance(i, ServerContent) and i.output_transcription
    )
    assert "You spoke to me" in spoken
    usage = next(i for i in items if isinstance(i, UsageMetadata))
    assert usage.prompt_tokens_by_modality().get("AUDIO", 0) == pytest.approx(25, abs=3)
    assert s.ledger.input_by_modality["AUDIO"] == pytest.approx(25.0)
    assert s.ledger.output_by_modality["AUDIO"] > 0


async def test_video_frame_is_counted(emulator: Emulator) -> None:
    async with LiveModel(TEXT_MODEL, TEXT, url=emulator.url).connect() as s:
        await s.send_video(b"\xff\xd8\xff\xe0fake-jpeg")
        await s.send_text("what do you see?")
        items = await until_turn_complete(s)
    usage = next(i for i in items if isinstance(i, UsageMetadata))
    assert usage.prompt_tokens_by_modality().get("VIDEO") == 258


async def test_tool_call_round_trip(emulator: Emulator) -> None:
    config = LiveGenerationConfig(response_modalities=["TEXT"], tools=TOOLS)
    async with LiveModel(TEXT_MODEL, config, url=emulator.url).connect() as s:
        await s.send_text("please call get_time tz=UTC")
        call = None
        async with asyncio.timeout(10):
            async for item in s.receive():
                if isinstance(item, ToolCall):
                    call = item.function_calls[0]
                    break
        assert call is not None and call.name == "get_time" and dict(call.args) == {"tz": "UTC"}
        await s.send_tool_response(FunctionResponse(name=call.name, response={"time": "12:00"}, id=call.id))
        items = await until_turn_complete(s)
    assert 'get_time returned {"time": "12:00"}' in reply_text(items)


async def test_usage_metadata_reaches_the_ledger(session: LiveSession) -> None:
    await session.send_text("count my tokens please")
    items = await until_turn_complete(session)
    usage = next(i for i in items if isinstance(i, UsageMetadata))
    assert usage.prompt_token_count and usage.response_token_count
    assert usage.prompt_tokens_by_modality()["TEXT"] == usage.prompt_token_count
    assert session.ledger.usage[-1].prompt_tokens == usage.prompt_token_count
    assert session.ledger.last_reported == usage.total_token_count


async def test_observable_state_listeners_and_events(emulator: Emulator) -> None:
    model = LiveModel(TEXT_MODEL, TEXT, url=emulator.url)
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
    s = await LiveModel(TEXT_MODEL, TEXT, url=emulator.url).connect()
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


# Errors.


def test_config_errors_come_before_anything_is_sent(emulator: Emulator) -> None:
    with pytest.raises(ConfigError, match="trigger_tokens"):
        LiveGenerationConfig(context_window_compression=ContextWindowCompressionConfig(trigger_tokens=10))
    with pytest.raises(ConfigError, match="target_tokens"):
        ContextWindowCompressionConfig(trigger_tokens=10_000, sliding_window=SlidingWindow(target_tokens=20_000))
    with pytest.raises(ConfigError, match="response_modalities"):
        LiveGenerationConfig(response_modalities=["TEXT", "AUDIO"])
    with pytest.raises(ConfigError, match="url"):
        LiveModel(TEXT_MODEL, TEXT, backend="emulator", url="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="backend"):
        LiveModel(TEXT_MODEL, TEXT, backend="nope", url=emulator.url)
    with pytest.raises(ConfigError, match="generation_config"):
        LiveModel(TEXT_MODEL, {"response_modalities": ["TEXT"]}, url=emulator.url)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedOnBackend, match="Vertex"):
        LiveModel(TEXT_MODEL, TEXT, backend="gemini", url=emulator.url, api_key=SECRET).connect(
            session_resumption=SessionResumptionConfig(transparent=True)
        )
    assert emulator.sessions == {} and emulator.refused == []


def test_default_backend_follows_what_is_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "LIVE_NB_EMULATOR_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"LIVE_NB_EMULATOR_URL.*GEMINI_API_KEY"):
        LiveModel(TEXT_MODEL, TEXT)
    assert LiveModel(TEXT_MODEL, TEXT, url="ws://127.0.0.1:1").backend == "emulator"
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    model = LiveModel(TEXT_MODEL, TEXT)
    assert model.backend == "gemini" and SECRET not in repr(model)
    monkeypatch.setenv("LIVE_NB_EMULATOR_URL", "ws://127.0.0.1:1")
    assert LiveModel(TEXT_MODEL, TEXT).backend == "emulator"


def test_gemini_backend_without_key_is_a_credentials_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CredentialsError):
        LiveModel(TEXT_MODEL, TEXT, backend="gemini")


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
    model = LiveModel(TEXT_MODEL, TEXT, backend="gemini", url=f"ws://127.0.0.1:{port}", api_key=SECRET)
    with pytest.raises(ConnectError) as info:
        await model.connect()
    message = str(info.value)
    assert f"ws://127.0.0.1:{port}/ws/google.ai.generativelanguage.v1beta" in message
    for text in (message, repr(info.value), repr(model), caplog.text):
        assert SECRET not in text


async def test_unknown_model_is_session_lost_with_clear_words(emulator: Emulator) -> None:
    from live_nb.exceptions import SessionLost

    with pytest.raises(SessionLost, match="does not serve this model"):
        await LiveModel("gemini-nonexistent", TEXT, url=emulator.url).connect()


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
        s = await LiveModel(TEXT_MODEL, TEXT, url=f"ws://127.0.0.1:{port}").connect()
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
        response_modalities=["TEXT"],
        system_instruction="be brief",
        context_window_compression=ContextWindowCompressionConfig(
            trigger_tokens=20_000, sliding_window=SlidingWindow(target_tokens=10_000)
        ),
        tools=TOOLS,
        input_audio_transcription=True,
        output_audio_transcription=True,
        temperature=0.3,
    )
    proto = ClientProtocol("models/m", config, SessionResumptionConfig(handle="h", transparent=True))
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
    audio = genai_types.LiveClientMessage.model_validate_json(frames[4])
    assert audio.realtime_input is not None and audio.realtime_input.audio is not None
    assert audio.realtime_input.audio.data == b"\x01\x02" * 100


# Other backends' paths and auth forms, against the emulator (it accepts them as the service does).


async def test_vertex_gateway_path_allows_system_update_and_reads_candidates_usage(emulator: Emulator) -> None:
    model = LiveModel(
        TEXT_MODEL, TEXT, backend="vertex", url=emulator.url + "/vertex-gateway", api_key=SECRET,
        project="my-project", location="us-central1",
    )
    assert model.resolver.model == f"projects/my-project/locations/us-central1/publishers/google/models/{TEXT_MODEL}"
    async with model.connect(session_resumption=SessionResumptionConfig(transparent=True)) as s:
        await s.update_system_instruction("Answer like a sailor.")
        items = await until_turn_complete(await _asked(s, "hello vertex"))
        usage = next(i for i in items if isinstance(i, UsageMetadata))
        assert usage.response_token_count  # Vertex spells it candidatesTokenCount on the wire
        for text in (repr(s), s.url, repr(s.events), repr(model)):
            assert SECRET not in text
    (emu_session,) = emulator.sessions.values()
    assert emu_session.context[0][:2] == ("system", "Answer like a sailor.")


async def test_ephemeral_token_reaches_the_constrained_endpoint(emulator: Emulator) -> None:
    token = "auth_tokens/ephemeral-secret-123"
    model = LiveModel(TEXT_MODEL, TEXT, backend="gemini", url=emulator.url, api_key=token)
    assert model.url.endswith("v1alpha.GenerativeService.BidiGenerateContentConstrained")
    async with model.connect() as s:
        items = await until_turn_complete(await _asked(s, "hello with a token"))
        assert "Turn 1." in reply_text(items)
        assert token not in repr(s) and token not in s.url


async def _asked(session: LiveSession, text: str) -> LiveSession:
    await session.send_text(text)
    return session
