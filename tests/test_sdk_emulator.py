"""Google's own google-genai SDK (3.4.0, unmodified) as an independent client of the emulator.

Method A of live-protocol.md section 6: the emulator speaks TLS with a generated self-signed
certificate and the SDK is pointed at it with ``http_options`` only (no private attribute
patched). Every message below is parsed by the SDK's own pydantic types; a wire mistake in the
emulator would surface as a parse error, a missing field or a TypeError inside the SDK.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import struct
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from live_nb.emulator import Emulator

pytestmark = pytest.mark.timeout(60)

TEXT_MODEL = "gemini-live-2.5-flash-preview"
AUDIO_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


def make_client(emu: Emulator, api_key: str = "test-key", api_version: str = "v1beta", **kwargs: Any) -> genai.Client:
    assert emu.cert_path is not None
    ctx = ssl.create_default_context(cafile=emu.cert_path)
    return genai.Client(
        api_key=api_key,
        http_options={
            "base_url": f"https://127.0.0.1:{emu.port}",
            "api_version": api_version,
            "async_client_args": {"ssl": ctx},
        },
        **kwargs,
    )


async def collect_turn(session: Any) -> list[types.LiveServerMessage]:
    """Everything ``receive()`` yields for one turn (it stops after turnComplete)."""
    out = []
    async for message in session.receive():
        out.append(message)
    return out


def text_of(messages: list[types.LiveServerMessage]) -> str:
    return "".join(m.text or "" for m in messages if m.server_content and m.server_content.model_turn)


def tone(seconds: float, rate: int = 16_000, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    n = int(seconds * rate)
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))


def silence(seconds: float, rate: int = 16_000) -> bytes:
    return b"\x00\x00" * int(seconds * rate)


async def test_text_turn_streams_and_reports_usage(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    config = types.LiveConnectConfig(response_modalities=["TEXT"], system_instruction="You are a test.")
    async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
        assert session.session_id in emulator_tls.sessions
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "hello emulator"}]})
        messages = await collect_turn(session)
    chunks = [m for m in messages if m.server_content and m.server_content.model_turn]
    assert len(chunks) >= 3, "the reply must stream in several chunks"
    text = text_of(messages)
    assert text.startswith("Turn 1.") and '"hello emulator"' in text
    assert any(m.server_content and m.server_content.generation_complete for m in messages)
    last = messages[-1]
    assert last.server_content is not None and last.server_content.turn_complete
    usage = last.usage_metadata
    assert usage is not None
    # "You are a test." = 15 chars -> 4 tokens; "hello emulator" = 14 chars -> 4 tokens.
    assert usage.prompt_token_count == 8
    assert usage.response_token_count and usage.response_token_count > 10
    assert usage.total_token_count == usage.prompt_token_count + usage.response_token_count
    assert usage.prompt_tokens_details and usage.prompt_tokens_details[0].modality == types.MediaModality.TEXT
    assert usage.response_tokens_details and usage.response_tokens_details[0].token_count == usage.response_token_count


async def test_incremental_turns_then_question(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=TEXT_MODEL, config={"response_modalities": ["TEXT"]}) as session:
        await session.send_client_content(
            turns=[
                {"role": "user", "parts": [{"text": "my name is Ada and I like owls"}]},
                {"role": "model", "parts": [{"text": "nice to meet you Ada"}]},
            ],
            turn_complete=False,
        )
        await session.send_client_content(
            turns={"role": "user", "parts": [{"text": "what did I say first?"}]}, turn_complete=True
        )
        text = text_of(await collect_turn(session))
        sess = emulator_tls.sessions[session.session_id]
    assert "I hold 3 turns" in text
    assert '"my name is Ada and I like owls"' in text
    assert [role for role, _, _ in sess.context] == ["user", "model", "user", "model"]


async def test_system_instruction_updates(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    config = {"response_modalities": ["TEXT"], "system_instruction": "Be brief."}
    async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
        await session.send_client_content(
            turns={"role": "system", "parts": [{"text": "Speak like a pirate."}]}, turn_complete=False
        )
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "what is your system instruction?"}]})
        first = text_of(await collect_turn(session))
        assert hasattr(session, "send_context_update")
        await session.send_context_update(system_instruction="Answer in haiku.")
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "and now?"}]})
        second = text_of(await collect_turn(session))
    assert '"Speak like a pirate."' in first and "Be brief" not in first
    assert '"Answer in haiku."' in second


async def test_realtime_audio_turn_by_vad(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    config = {
        "response_modalities": ["AUDIO"],
        "input_audio_transcription": {},
        "output_audio_transcription": {},
    }
    async with client.aio.live.connect(model=AUDIO_MODEL, config=config) as session:
        speech = tone(1.0)
        for i in range(0, len(speech), 3200):
            await session.send_realtime_input(audio=types.Blob(data=speech[i : i + 3200], mime_type="audio/pcm;rate=16000"))
        quiet = silence(1.0)
        for i in range(0, len(quiet), 3200):
            await session.send_realtime_input(audio=types.Blob(data=quiet[i : i + 3200], mime_type="audio/pcm;rate=16000"))
        messages = await asyncio.wait_for(collect_turn(session), 20)
    heard = [m.server_content.input_transcription.text for m in messages
             if m.server_content and m.server_content.input_transcription]
    assert heard == ["[1.0 s of speech: the emulator cannot recognise words offline]"]
    audio = b"".join(m.data or b"" for m in messages if m.server_content and m.server_content.model_turn)
    assert len(audio) > 24_000 * 2  # more than a second of 24 kHz PCM16
    spoken = "".join(m.server_content.output_transcription.text for m in messages
                     if m.server_content and m.server_content.output_transcription)
    assert spoken.startswith("Turn 1. You spoke to me")
    usage = messages[-1].usage_metadata
    assert usage is not None
    by_modality = {d.modality: d.token_count for d in usage.prompt_tokens_details or []}
    # 1.0 s of speech + the 0.8 s of silence that ended the turn, at 25 tokens/s (the rest waits for the next turn).
    assert by_modality[types.MediaModality.AUDIO] == 45
    assert usage.response_tokens_details and usage.response_tokens_details[0].modality == types.MediaModality.AUDIO


async def test_tool_call_round_trip(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    get_time = types.FunctionDeclaration(
        name="get_time",
        description="current time",
        parameters=types.Schema(type=types.Type.OBJECT, properties={"tz": types.Schema(type=types.Type.STRING)}),
    )
    config = types.LiveConnectConfig(response_modalities=["TEXT"], tools=[types.Tool(function_declarations=[get_time])])
    async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "please get_time tz=UTC"}]})
        messages = []
        async for message in session.receive():
            messages.append(message)
            if message.tool_call:
                call = message.tool_call.function_calls[0]
                assert call.name == "get_time" and call.args == {"tz": "UTC"} and call.id
                await session.send_tool_response(
                    function_responses=[types.FunctionResponse(id=call.id, name=call.name, response={"result": "12:00"})]
                )
    assert any(m.tool_call for m in messages)
    assert 'get_time returned {"result": "12:00"}' in text_of(messages)


async def test_resumption_update_and_go_away_parsed(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    config = types.LiveConnectConfig(response_modalities=["TEXT"], session_resumption=types.SessionResumptionConfig())
    async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "remember the owl"}]})
        await collect_turn(session)
        update = await session._receive()  # the update follows turnComplete; receive() has stopped
        assert update.session_resumption_update is not None
        handle = update.session_resumption_update.new_handle
        assert handle and update.session_resumption_update.resumable
        await emulator_tls.go_away_now(time_left=30)
        go_away = await session._receive()
        assert go_away.go_away is not None and go_away.go_away.time_left == "30s"
    # Resume with the handle (the old connection is closed by now): the context came back.
    config = types.LiveConnectConfig(response_modalities=["TEXT"], session_resumption=types.SessionResumptionConfig(handle=handle))
    async with client.aio.live.connect(model=TEXT_MODEL, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "what did I say first?"}]})
        text = text_of(await collect_turn(session))
    assert '"remember the owl"' in text and "Turn 2." in text


async def test_vertex_path_with_api_key(emulator_tls: Emulator) -> None:
    assert emulator_tls.cert_path is not None
    ctx = ssl.create_default_context(cafile=emulator_tls.cert_path)
    client = genai.Client(
        vertexai=True,
        api_key="vertex-express-key",
        http_options={"base_url": f"https://127.0.0.1:{emulator_tls.port}", "async_client_args": {"ssl": ctx}},
    )
    # Transparent resumption is Vertex-only in the SDK: the index arrives and parses as an int.
    config = types.LiveConnectConfig(
        response_modalities=["TEXT"], session_resumption=types.SessionResumptionConfig(transparent=True)
    )
    async with client.aio.live.connect(model="gemini-live-2.5-flash", config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "hi vertex"}]})
        messages = await collect_turn(session)
        update = await session._receive()
        assert update.session_resumption_update is not None
        assert update.session_resumption_update.resumable is True
        assert update.session_resumption_update.last_consumed_client_message_index == 1
    assert '"hi vertex"' in text_of(messages)
    assert emulator_tls.paths[-1] == ("/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent", "vertex")
    usage = messages[-1].usage_metadata
    # Vertex spells candidatesTokenCount; the SDK maps it to response_token_count.
    assert usage is not None and usage.response_token_count and usage.response_token_count > 0


@pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning")
async def test_ephemeral_token_path(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls, api_key="auth_tokens/ephemeral-test", api_version="v1alpha")
    async with client.aio.live.connect(model=TEXT_MODEL, config={"response_modalities": ["TEXT"]}) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "hi ephemeral"}]})
        assert '"hi ephemeral"' in text_of(await collect_turn(session))
    assert emulator_tls.paths[-1][0].endswith("v1alpha.GenerativeService.BidiGenerateContentConstrained")


async def test_close_codes_surface_as_api_error(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    with pytest.raises(errors.APIError) as unknown:
        async with client.aio.live.connect(model="gemini-nonexistent", config={"response_modalities": ["TEXT"]}):
            pass
    assert unknown.value.code == 1008
    assert "models/gemini-nonexistent is not found for API version v1beta" in str(unknown.value)
    with pytest.raises(errors.APIError) as text_on_native:
        async with client.aio.live.connect(model=AUDIO_MODEL, config={"response_modalities": ["TEXT"]}):
            pass
    assert text_on_native.value.code == 1007
    assert "Cannot extract voices from a non-audio request." in str(text_on_native.value)
    with pytest.raises(errors.APIError) as bad_handle:
        config = types.LiveConnectConfig(
            response_modalities=["TEXT"], session_resumption=types.SessionResumptionConfig(handle="forged")
        )
        async with client.aio.live.connect(model=TEXT_MODEL, config=config):
            pass
    assert bad_handle.value.code == 1008 and "session not found" in str(bad_handle.value)


async def test_audio_stream_end_and_legacy_media_flush_a_turn(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=TEXT_MODEL, config={"response_modalities": ["TEXT"]}) as session:
        speech = tone(0.5)
        await session.send_realtime_input(media=types.Blob(data=speech, mime_type="audio/pcm;rate=16000"))
        await session.send_realtime_input(audio_stream_end=True)  # the mic paused: no silence needed
        messages = await asyncio.wait_for(collect_turn(session), 20)
    assert "You spoke to me [0.5 s of speech" in text_of(messages)
    usage = messages[-1].usage_metadata
    assert usage is not None and usage.prompt_token_count == 12  # 0.5 s x 25 tokens/s = 12.5, rounded
