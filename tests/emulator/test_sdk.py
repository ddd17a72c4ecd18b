"""Google's own google-genai SDK (3.4.0, unmodified) as an independent client of the emulator, on today's models.

Method A of live-protocol.md section 6: the emulator speaks TLS with a generated self-signed
certificate and the SDK is pointed at it with ``http_options`` only (no private attribute
patched). Every server message is parsed by the SDK's own pydantic types; a wire mistake in the
emulator would surface as a parse error, a missing field or a TypeError inside the SDK.

The models and their rules come from ``live_nb.protocol.catalogue`` (models.md), and every test
that is about a model runs for each usable catalogue model on each backend that serves it:

* the Developer API path: ``genai.Client(api_key=..., http_options={"base_url": "https://127.0.0.1:PORT",
  "api_version": "v1beta"})``, which dials ``/ws/google.ai.generativelanguage.v1beta.GenerativeService.
  BidiGenerateContent`` and names the model ``models/X``;
* the Vertex path: ``genai.Client(vertexai=True, api_key=..., http_options={"base_url": ...})``
  (express mode: an API key and no project), which dials ``{base_url}/ws/google.cloud.aiplatform.
  v1beta1.LlmBidiService/BidiGenerateContent`` and names the model ``publishers/google/models/X``.
  Without an API key, project or location the SDK instead dials ``base_url`` verbatim and keeps the
  model name as given (gateway mode, ``test_gateway_path``).

Refusals are checked as the SDK surfaces them: ``google.genai.errors.APIError`` with ``.code`` the
close code and the service's reason in the message (from ``connect()`` for a setup refusal, from
the next receive for a message refused mid-session).
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from emulator_constants import GEMINI_PATH, VERTEX_PATH
from google import genai
from google.genai import errors, types
from speech_fixtures import NOTEBOOK as NOTEBOOK_SENTENCE
from speech_fixtures import WEATHER as WEATHER_SENTENCE
from speech_fixtures import heard_rendering, share_heard

from live_nb.emulator import Emulator, speech
from live_nb.emulator.responder import CHECKING, THINKING
from live_nb.emulator.server import SPEECH_OFF
from live_nb.protocol import catalogue
from live_nb.protocol.catalogue import ModelInfo

pytestmark = pytest.mark.timeout(60)

BACKENDS = ("gemini", "vertex")
USABLE = [info for info in catalogue.CATALOGUE if info.usable]
SHUT_DOWN = [info for info in catalogue.CATALOGUE if not info.usable]
SERVED = [pytest.param(info, backend, id=f"{info.id}@{backend}") for info in USABLE for backend in info.backends]
NOT_SERVED = [
    pytest.param(info, backend, id=f"{info.id}@{backend}")
    for info in catalogue.CATALOGUE
    for backend in BACKENDS
    if backend not in info.backends
]
DEFAULT = catalogue.lookup(catalogue.DEFAULT_MODEL)
assert DEFAULT is not None and set(DEFAULT.backends) == set(BACKENDS)
EXTENDED = catalogue.lookup("gemini-3.8-live-extended-thinking")
HISTORY_ONLY = catalogue.lookup("gemini-3.1-flash-live-preview")
assert EXTENDED is not None and HISTORY_ONLY is not None
INVALID = "Request contains an invalid argument"


def make_client(
    emu: Emulator,
    backend: str = "gemini",
    api_key: str = "test-key",
    api_version: str | None = None,
    ssl_from_env: bool = False,
) -> genai.Client:
    """A google-genai client for the emulator on the Developer API path or the Vertex (express) path.

    ``ssl_from_env``: trust the emulator's cert through ``SSL_CERT_FILE`` (set by the caller before
    this call: the SDK reads it when the client is built) instead of ``async_client_args``.
    """
    assert emu.cert_path is not None
    http_options: dict[str, Any] = {"base_url": f"https://127.0.0.1:{emu.port}"}
    if not ssl_from_env:
        http_options["async_client_args"] = {"ssl": ssl.create_default_context(cafile=emu.cert_path)}
    if backend == "vertex":
        if api_version:
            http_options["api_version"] = api_version
        return genai.Client(vertexai=True, api_key=api_key, http_options=http_options)
    http_options["api_version"] = api_version or "v1beta"
    return genai.Client(api_key=api_key, http_options=http_options)


def audio_config(info: ModelInfo, **extra: Any) -> dict[str, Any]:
    """The smallest config the model accepts: AUDIO with the reply as text, plus what the model requires."""
    config: dict[str, Any] = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}}
    if info.thinking == "level_required":
        config["thinking_config"] = {"thinking_level": info.thinking_levels[0]}
    config.update(extra)
    return config


async def say(session: Any, info: ModelInfo, text: str) -> None:
    """One typed user turn, the way the model takes it (3.1: realtime text; the others: clientContent)."""
    if info.client_content == "initial_history":
        await session.send_realtime_input(text=text)
    else:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": text}]})


async def collect_turn(session: Any) -> list[types.LiveServerMessage]:
    """Everything ``receive()`` yields for one interaction (it stops at turnComplete, or IDLE)."""
    out = []
    async for message in session.receive():
        out.append(message)
    return out


def spoken_text(messages: list[types.LiveServerMessage]) -> str:
    return "".join(
        m.server_content.output_transcription.text or ""
        for m in messages
        if m.server_content and m.server_content.output_transcription
    )


def audio_of(messages: list[types.LiveServerMessage]) -> bytes:
    return b"".join(m.data or b"" for m in messages if m.server_content and m.server_content.model_turn)


def is_empty(message: types.LiveServerMessage) -> bool:
    """A ``{}`` frame as the SDK hands it over: a LiveServerMessage with every field unset."""
    return not message.model_dump(exclude_none=True)


def tone(seconds: float, rate: int = 16_000, freq: float = 440.0, amplitude: int = 8000) -> bytes:
    n = int(seconds * rate)
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))


def silence(seconds: float, rate: int = 16_000) -> bytes:
    return b"\x00\x00" * int(seconds * rate)


async def send_pcm(session: Any, pcm: bytes, chunk: int = 3200) -> None:
    for i in range(0, len(pcm), chunk):
        await session.send_realtime_input(audio=types.Blob(data=pcm[i : i + chunk], mime_type="audio/pcm;rate=16000"))


async def refused_at_setup(client: genai.Client, model: str, config: Any) -> errors.APIError:
    with pytest.raises(errors.APIError) as caught:
        async with client.aio.live.connect(model=model, config=config):
            pass
    return caught.value


async def refused_next(session: Any) -> errors.APIError:
    """The close a message just sent earned, as the SDK's next receive raises it."""
    with pytest.raises(errors.APIError) as caught:
        await asyncio.wait_for(collect_turn(session), 10)
    return caught.value


# 1. The allowed path: AUDIO with output transcription, per model and backend.


@pytest.mark.parametrize(("info", "backend"), SERVED)
async def test_allowed_path_answers_in_audio_with_transcription(
    emulator_tls: Emulator, info: ModelInfo, backend: str
) -> None:
    client = make_client(emulator_tls, backend)
    async with client.aio.live.connect(model=info.id, config=audio_config(info)) as session:
        assert session.setup_complete is not None and session.session_id in emulator_tls.sessions
        await say(session, info, "hello emulator")
        messages = await asyncio.wait_for(collect_turn(session), 20)
    assert emulator_tls.paths[-1] == (GEMINI_PATH if backend == "gemini" else VERTEX_PATH, backend)
    assert emulator_tls.sessions[session.session_id].model == info.id
    audio = audio_of(messages)
    assert len(audio) > 24_000  # more than half a second of 24 kHz PCM16
    parts = [p for m in messages if m.server_content and m.server_content.model_turn
             for p in m.server_content.model_turn.parts or []]
    assert parts and all(p.inline_data and p.inline_data.mime_type == "audio/pcm;rate=24000" for p in parts)
    assert not any(p.text for p in parts), "an AUDIO reply carries no text parts: the text is the transcription"
    text = spoken_text(messages)
    # Extended thinking thinks aloud first: a filler turn (IN_PROGRESS), then the answer (IDLE).
    filler = f"{THINKING} " if info.interaction_status else ""
    assert text.startswith(f"{filler}Turn 1.") and '"hello emulator"' in text
    assert any(m.server_content and m.server_content.generation_complete for m in messages)
    last = messages[-1]
    assert last.server_content is not None and last.server_content.turn_complete
    usage = last.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == 4  # "hello emulator": 14 chars -> 4 tokens (a filler reports the same prompt)
    assert usage.response_token_count and usage.response_token_count > 10
    assert usage.total_token_count == usage.prompt_token_count + usage.response_token_count
    assert usage.prompt_tokens_details and usage.prompt_tokens_details[0].modality == types.MediaModality.TEXT
    assert usage.response_tokens_details and usage.response_tokens_details[0].modality == types.MediaModality.AUDIO
    # gemini-3.x sends {} frames between content messages: the SDK hands them over as empty
    # messages, and receive() carries on past them to turnComplete.
    empties = [m for m in messages if is_empty(m)]
    assert bool(empties) == info.empty_frames


async def test_extended_thinking_fillers_then_idle(emulator_tls: Emulator) -> None:
    assert EXTENDED.interaction_status
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=EXTENDED.id, config=audio_config(EXTENDED)) as session:
        await say(session, EXTENDED, "think hard about owls")
        messages = await asyncio.wait_for(collect_turn(session), 20)
    statuses = [m.server_content.interaction_status for m in messages
                if m.server_content and m.server_content.interaction_status]
    # receive() runs past the fillers' turnComplete (IN_PROGRESS) and stops at IDLE.
    assert types.InteractionStatus.IN_PROGRESS in statuses
    assert statuses[-1] == types.InteractionStatus.IDLE


# 2. Refusals, per model and backend, each with the close code and reason models.md gives.


def _thinking_level(info: ModelInfo) -> tuple[int, str] | None:
    if info.thinking in ("none", "budget"):
        return 1007, "Thinking level is not supported for this model."
    return None  # level / level_required models take LOW


def _thinking_missing(info: ModelInfo) -> tuple[int, str] | None:
    return (1007, "Thinking level must be specified for this model.") if info.thinking == "level_required" else None


def _thinking_minimal(info: ModelInfo) -> tuple[int, str] | None:
    if info.thinking in ("none", "budget"):
        return 1007, "Thinking level is not supported for this model."
    if "MINIMAL" not in info.thinking_levels:
        return 1007, "Thinking level MINIMAL is not supported for this model."
    return None


def _affective(info: ModelInfo) -> tuple[int, str] | None:
    if info.affective_dialog == "refused":
        return 1007, f"{INVALID}: enableAffectiveDialog is not supported for this model."
    return None


def _proactive_off(info: ModelInfo) -> tuple[int, str] | None:
    if info.proactive_audio == "always":
        return 1007, f"{INVALID}: proactive audio cannot be turned off for this model."
    if info.proactive_audio == "refused":
        return 1007, f"{INVALID}: proactivity is not supported for this model."
    return None


def _blocking(info: ModelInfo) -> tuple[int, str] | None:
    if not info.blocking_allowed:
        return 1007, "BLOCKING function calls are not supported for this model"
    return None


def _non_blocking(info: ModelInfo) -> tuple[int, str] | None:
    if not info.non_blocking_allowed:
        return 1007, f"{INVALID}: NON_BLOCKING function calls are not supported for this model."
    return None


def _function(behavior: str) -> dict[str, Any]:
    return {"function_declarations": [{"name": "get_time", "description": "current time", "behavior": behavior}]}


SETUP_RULES: dict[str, tuple[Callable[[ModelInfo], dict[str, Any]], Callable[[ModelInfo], tuple[int, str] | None]]] = {
    "thinking_level_LOW": (
        lambda info: {**audio_config(info), "thinking_config": {"thinking_level": "LOW"}}, _thinking_level),
    "thinking_level_missing": (
        lambda info: {**audio_config(info), "thinking_config": None}, _thinking_missing),
    "thinking_level_MINIMAL": (
        lambda info: {**audio_config(info), "thinking_config": {"thinking_level": "MINIMAL"}}, _thinking_minimal),
    "affective_dialog": (lambda info: audio_config(info, enable_affective_dialog=True), _affective),
    "proactive_audio_false": (lambda info: audio_config(info, proactivity={"proactive_audio": False}), _proactive_off),
    "function_BLOCKING": (lambda info: audio_config(info, tools=[_function("BLOCKING")]), _blocking),
    "function_NON_BLOCKING": (lambda info: audio_config(info, tools=[_function("NON_BLOCKING")]), _non_blocking),
}


@pytest.mark.parametrize(("info", "backend"), SERVED)
async def test_text_modality_refused_with_the_models_reason(emulator_tls: Emulator, info: ModelInfo, backend: str) -> None:
    assert "TEXT" not in info.response_modalities
    client = make_client(emulator_tls, backend)
    error = await refused_at_setup(client, info.id, {"response_modalities": ["TEXT"]})
    assert error.code == 1007
    assert info.text_refusal in str(error)


@pytest.mark.parametrize("rule", list(SETUP_RULES))
@pytest.mark.parametrize(("info", "backend"), SERVED)
async def test_setup_rule(emulator_tls: Emulator, info: ModelInfo, backend: str, rule: str) -> None:
    """Each setup rule on each model: refused with its code and reason where models.md says so, else accepted."""
    build, expect = SETUP_RULES[rule]
    config = {k: v for k, v in build(info).items() if v is not None}
    client = make_client(emulator_tls, backend)
    expected = expect(info)
    if expected is None:
        async with client.aio.live.connect(model=info.id, config=config) as session:
            assert session.setup_complete is not None
        return
    error = await refused_at_setup(client, info.id, config)
    assert (error.code, expected[1] in str(error)) == (expected[0], True), str(error)


@pytest.mark.parametrize("info", SHUT_DOWN, ids=lambda info: info.id)
async def test_shut_down_models_are_not_found(emulator_tls: Emulator, info: ModelInfo) -> None:
    client = make_client(emulator_tls)
    error = await refused_at_setup(client, info.id, {"response_modalities": ["AUDIO"]})
    assert error.code == 1008
    assert f"models/{info.id} is not found for API version v1beta, or is not supported for bidiGenerateContent" in (
        str(error)
    )
    # Even with the config they once took (TEXT): the model is gone before any rule is read.
    error = await refused_at_setup(client, info.id, {"response_modalities": ["TEXT"]})
    assert error.code == 1008 and "is not found for API version v1beta" in str(error)


@pytest.mark.parametrize(("info", "backend"), NOT_SERVED)
async def test_models_not_served_on_a_backend_are_not_found(
    emulator_tls: Emulator, info: ModelInfo, backend: str
) -> None:
    client = make_client(emulator_tls, backend)
    error = await refused_at_setup(client, info.id, {"response_modalities": ["AUDIO"]})
    assert error.code == 1008
    if backend == "vertex":
        assert f"Publisher Model `publishers/google/models/{info.id}` was not found" in str(error)
    else:
        assert f"models/{info.id} is not found for API version v1beta" in str(error)


async def test_unknown_model_and_forged_handle(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    error = await refused_at_setup(client, "gemini-nonexistent", audio_config(DEFAULT))
    assert error.code == 1008 and "models/gemini-nonexistent is not found for API version v1beta" in str(error)
    config = types.LiveConnectConfig(
        response_modalities=["AUDIO"], session_resumption=types.SessionResumptionConfig(handle="forged")
    )
    error = await refused_at_setup(client, DEFAULT.id, config)
    assert error.code == 1008 and "session not found" in str(error)


# 3. Message rules mid-session.


async def test_history_only_model_takes_client_content_only_as_initial_history(emulator_tls: Emulator) -> None:
    info = HISTORY_ONLY
    client = make_client(emulator_tls)
    # Without historyConfig, clientContent is refused even as the first message.
    async with client.aio.live.connect(model=info.id, config=audio_config(info)) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "hi"}]})
        error = await refused_next(session)
    assert error.code == 1007 and "clientContent is only accepted as initial history" in str(error)
    # With it: history first (accepted, no reply), then realtime text (a reply), then clientContent -> 1007.
    config = audio_config(info, history_config={"initial_history_in_client_content": True})
    async with client.aio.live.connect(model=info.id, config=config) as session:
        await session.send_client_content(
            turns=[
                {"role": "user", "parts": [{"text": "my name is Ada and I like owls"}]},
                {"role": "model", "parts": [{"text": "nice to meet you Ada"}]},
            ],
            turn_complete=True,
        )
        await session.send_realtime_input(text="what did I say first?")
        messages = await asyncio.wait_for(collect_turn(session), 20)
        text = spoken_text(messages)
        assert text.startswith("Turn 1.") and '"my name is Ada and I like owls"' in text
        state = emulator_tls.sessions[session.session_id]
        assert [role for role, _, _ in state.context] == ["user", "model", "user", "model"]
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "one more"}]})
        error = await refused_next(session)
    assert error.code == 1007 and "clientContent is only accepted as initial history" in str(error)


@pytest.mark.parametrize(
    ("info", "backend"), [p for p in SERVED if p.values[0].client_content == "any"]  # type: ignore[union-attr]
)
async def test_system_instruction_update(emulator_tls: Emulator, info: ModelInfo, backend: str) -> None:
    """``role: "system"`` turns and contextUpdate: Vertex only; the Developer API closes 1007."""
    client = make_client(emulator_tls, backend)
    config = audio_config(info, system_instruction="Be brief.")
    async with client.aio.live.connect(model=info.id, config=config) as session:
        await session.send_client_content(
            turns={"role": "system", "parts": [{"text": "Speak like a pirate."}]}, turn_complete=False
        )
        if backend == "gemini":
            error = await refused_next(session)
            assert error.code == 1007 and 'role "system" is not supported in clientContent' in str(error)
            return
        await say(session, info, "what is your system instruction?")
        first = spoken_text(await asyncio.wait_for(collect_turn(session), 20))
        await session.send_context_update(system_instruction="Answer in haiku.")
        await say(session, info, "and now, what is your system instruction?")
        second = spoken_text(await asyncio.wait_for(collect_turn(session), 20))
    assert '"Speak like a pirate."' in first and "Be brief" not in first
    assert '"Answer in haiku."' in second


async def test_context_update_refused_on_the_developer_api(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=DEFAULT.id, config=audio_config(DEFAULT)) as session:
        await session.send_context_update(system_instruction="Answer in haiku.")
        error = await refused_next(session)
    assert error.code == 1007 and "contextUpdate is not supported" in str(error)


# 4. Conversation features on today's models.


@pytest.mark.parametrize("backend", BACKENDS)
async def test_incremental_turns_then_question(emulator_tls: Emulator, backend: str) -> None:
    client = make_client(emulator_tls, backend)
    async with client.aio.live.connect(model=DEFAULT.id, config=audio_config(DEFAULT)) as session:
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
        text = spoken_text(await asyncio.wait_for(collect_turn(session), 20))
        state = emulator_tls.sessions[session.session_id]
    assert "I hold 3 turns" in text
    assert '"my name is Ada and I like owls"' in text
    assert [role for role, _, _ in state.context] == ["user", "model", "user", "model"]


@pytest.mark.parametrize(("info", "backend"), SERVED)
async def test_realtime_audio_turn_by_vad(emulator_tls: Emulator, info: ModelInfo, backend: str) -> None:
    client = make_client(emulator_tls, backend)
    async with client.aio.live.connect(model=info.id, config=audio_config(info, input_audio_transcription={})) as session:
        await send_pcm(session, tone(1.0))
        await send_pcm(session, silence(1.0))
        messages = await asyncio.wait_for(collect_turn(session), 20)
    heard = [m.server_content.input_transcription.text for m in messages
             if m.server_content and m.server_content.input_transcription]
    # A steady tone holds no words: offline recognition says so, once, as the turn's finished transcription.
    assert heard == ["[1.0 s of speech: offline recognition heard no words]"]
    assert len(audio_of(messages)) > 24_000 * 2  # more than a second of 24 kHz PCM16
    filler = f"{THINKING} " if info.interaction_status else ""
    assert spoken_text(messages).startswith(
        f"{filler}Turn 1. You spoke to me [1.0 s of speech]. I heard nothing I could recognise.")
    usage = messages[-1].usage_metadata
    assert usage is not None
    by_modality = {d.modality: d.token_count for d in usage.prompt_tokens_details or []}
    # 1.0 s of speech + the 0.8 s of silence that ended the turn, at 25 tokens/s (the rest waits for the next turn).
    assert by_modality[types.MediaModality.AUDIO] == 45
    assert usage.response_tokens_details and usage.response_tokens_details[0].modality == types.MediaModality.AUDIO


async def test_audio_stream_end_and_legacy_media_flush_a_turn(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=DEFAULT.id, config=audio_config(DEFAULT)) as session:
        await session.send_realtime_input(media=types.Blob(data=tone(0.5), mime_type="audio/pcm;rate=16000"))
        await session.send_realtime_input(audio_stream_end=True)  # the mic paused: no silence needed
        messages = await asyncio.wait_for(collect_turn(session), 20)
    assert "You spoke to me [0.5 s of speech" in spoken_text(messages)
    usage = messages[-1].usage_metadata
    assert usage is not None and usage.prompt_token_count == 12  # 0.5 s x 25 tokens/s = 12.5, rounded


async def test_audio_stream_end_on_vertex_is_not_refused_by_send_realtime_input(emulator_tls: Emulator) -> None:
    """models.md says the SDK raises for audioStreamEnd on Vertex: in 3.4.0 only ``send_context_update``'s
    converter (``_LiveClientMessage_to_vertex``) would; ``send_realtime_input`` puts it on the wire."""
    client = make_client(emulator_tls, "vertex")
    async with client.aio.live.connect(model=DEFAULT.id, config=audio_config(DEFAULT)) as session:
        await session.send_realtime_input(audio_stream_end=True)
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "still here?"}]})
        await asyncio.wait_for(collect_turn(session), 20)
        consumed = emulator_tls.sessions[session.session_id].consumed
    assert getattr(consumed[0], "audio_stream_end", None) is True


def _tool_config(info: ModelInfo) -> dict[str, Any]:
    get_time = types.FunctionDeclaration(
        name="get_time",
        description="current time",
        parameters=types.Schema(type=types.Type.OBJECT, properties={"tz": types.Schema(type=types.Type.STRING)}),
    )
    return audio_config(info, tools=[types.Tool(function_declarations=[get_time])])


def keeps_talking(info: ModelInfo) -> bool:
    """The model speaks on while a call runs and answers the result in a turn of its own (plain
    NON_BLOCKING: receive() stops at the first turn's turnComplete; extended thinking's filler ends
    IN_PROGRESS, so receive() runs on to the answer's IDLE)."""
    return info.function_behavior == "NON_BLOCKING" and not info.interaction_status


@pytest.mark.parametrize(("info", "backend"), SERVED)
async def test_tool_call_round_trip(emulator_tls: Emulator, info: ModelInfo, backend: str) -> None:
    client = make_client(emulator_tls, backend)
    async with client.aio.live.connect(model=info.id, config=_tool_config(info)) as session:
        await say(session, info, "please get_time tz=UTC")
        messages = []
        async for message in session.receive():
            messages.append(message)
            if message.tool_call:
                call = message.tool_call.function_calls[0]
                assert call.name == "get_time" and call.args == {"tz": "UTC"} and call.id
                await session.send_tool_response(
                    function_responses=[types.FunctionResponse(id=call.id, name=call.name, response={"result": "12:00"})]
                )
        if keeps_talking(info):
            assert spoken_text(messages).strip() == CHECKING  # the first turn: what it said while the call ran
            messages += await asyncio.wait_for(collect_turn(session), 20)
    assert any(m.tool_call for m in messages)
    assert 'get_time returned {"result": "12:00"}' in spoken_text(messages)


@pytest.mark.parametrize("info", [i for i in USABLE if "gemini" in i.backends], ids=lambda info: info.id)
async def test_tool_response_scheduling(emulator_tls: Emulator, info: ModelInfo) -> None:
    """``scheduling`` on a tool response: taken where the model takes it, else 1007 (models.md)."""
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=info.id, config=_tool_config(info)) as session:
        await say(session, info, "please get_time tz=UTC")
        first = await asyncio.wait_for(session._receive(), 10)
        assert first.tool_call is not None
        call = first.tool_call.function_calls[0]
        await session.send_tool_response(function_responses=[types.FunctionResponse(
            id=call.id, name=call.name, response={"result": "12:00"},
            scheduling=types.FunctionResponseScheduling.WHEN_IDLE)])
        if info.response_scheduling:
            messages = await asyncio.wait_for(collect_turn(session), 20)
            if keeps_talking(info):
                messages += await asyncio.wait_for(collect_turn(session), 20)
            assert 'get_time returned {"result": "12:00"}' in spoken_text(messages)
            return
        error = await refused_next(session)
    assert error.code == 1007 and "scheduling is not supported for this model" in str(error)


# 3. Function calls as today's models make them (models.md section 2), through the SDK.


def _weather_config(info: ModelInfo, behavior: str | None = None) -> dict[str, Any]:
    decl: dict[str, Any] = {
        "name": "get_weather", "description": "the weather in a city",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
    }
    if behavior is not None:
        decl["behavior"] = behavior
    return audio_config(info, tools=[{"function_declarations": [decl]}])


WEATHER = {"city": "Paris", "temp_c": 21}
WEATHER_SAID = 'get_weather returned {"city": "Paris", "temp_c": 21}'


def turn_completes(messages: list[types.LiveServerMessage]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.server_content and m.server_content.turn_complete]


async def receive_until(session: Any, done: Callable[[list[types.LiveServerMessage]], bool],
                        seconds: float = 20) -> list[types.LiveServerMessage]:
    """Messages (past any number of turnCompletes) until ``done`` says so."""
    out: list[types.LiveServerMessage] = []
    async with asyncio.timeout(seconds):
        while not done(out):
            out.append(await session._receive())
    return out


async def ask_weather(session: Any) -> types.FunctionCall:
    await session.send_client_content(turns={"role": "user", "parts": [{"text": "get_weather city=Paris please"}]})
    first = await asyncio.wait_for(session._receive(), 10)
    assert first.tool_call is not None and first.tool_call.function_calls
    (call,) = first.tool_call.function_calls
    assert call.id and call.name == "get_weather" and call.args == {"city": "Paris"}
    return call


def weather_response(call: types.FunctionCall, scheduling: str | None = None, **extra: Any) -> types.FunctionResponse:
    return types.FunctionResponse(id=call.id, name=call.name, response=WEATHER, scheduling=scheduling, **extra)


async def test_non_blocking_by_default_on_38_the_model_keeps_talking(emulator_tls: Emulator) -> None:
    """No response sent yet: the model speaks on after the toolCall (audio and its transcription) and
    ends its turn; a response with no scheduling (WHEN_IDLE) then gets an answer at once."""
    assert DEFAULT.function_behavior == "NON_BLOCKING"
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=DEFAULT.id, config=_weather_config(DEFAULT)) as session:
        call = await ask_weather(session)
        talk = await asyncio.wait_for(collect_turn(session), 20)
        assert len(audio_of(talk)) > 24_000 and spoken_text(talk).strip() == CHECKING
        assert talk[-1].server_content is not None and talk[-1].server_content.turn_complete
        assert not any(m.server_content and m.server_content.interrupted for m in talk)
        await session.send_tool_response(function_responses=[weather_response(call)])
        answer = await asyncio.wait_for(collect_turn(session), 20)
    assert WEATHER_SAID in spoken_text(answer) and len(audio_of(answer)) > 24_000


@pytest.fixture
async def slow_emulator() -> AsyncIterator[Emulator]:
    """Replies paced at 20 ms a chunk: the filler lasts about half a second, so a response sent on
    the toolCall surely arrives while the model still speaks."""
    async with Emulator(tls=True, chunk_delay=0.02) as emu:
        yield emu


async def test_when_idle_result_is_spoken_after_the_current_turn(slow_emulator: Emulator) -> None:
    client = make_client(slow_emulator)
    async with client.aio.live.connect(model=DEFAULT.id, config=_weather_config(DEFAULT)) as session:
        call = await ask_weather(session)
        await session.send_tool_response(function_responses=[weather_response(call, "WHEN_IDLE")])
        messages = await receive_until(session, lambda out: len(turn_completes(out)) == 2)
    first_end, _ = turn_completes(messages)
    said_first = spoken_text(messages[: first_end + 1])
    assert said_first.strip() == CHECKING  # the turn in progress ran to its end, not cut
    assert not any(m.server_content and m.server_content.interrupted for m in messages)
    assert WEATHER_SAID in spoken_text(messages[first_end + 1 :])


async def test_silent_result_starts_no_new_turn(slow_emulator: Emulator) -> None:
    client = make_client(slow_emulator)
    async with client.aio.live.connect(model=DEFAULT.id, config=_weather_config(DEFAULT)) as session:
        call = await ask_weather(session)
        await session.send_tool_response(function_responses=[weather_response(call, "SILENT")])
        talk = await asyncio.wait_for(collect_turn(session), 20)
        assert spoken_text(talk).strip() == CHECKING
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(session._receive(), 1.0)  # nothing more: the result was folded in silently
        context = slow_emulator.sessions[session.session_id].context
    assert ("user", '[get_weather returned {"city": "Paris", "temp_c": 21}]') in [(r, t) for r, t, _ in context]
    assert not any(role == "model" and WEATHER_SAID in text for role, text, _ in context)


async def test_interrupt_result_cuts_the_reply_and_is_answered_at_once(slow_emulator: Emulator) -> None:
    client = make_client(slow_emulator)
    async with client.aio.live.connect(model=DEFAULT.id, config=_weather_config(DEFAULT)) as session:
        call = await ask_weather(session)
        await session.send_tool_response(function_responses=[weather_response(call, "INTERRUPT")])
        cut = await asyncio.wait_for(collect_turn(session), 20)
        answer = await asyncio.wait_for(collect_turn(session), 20)
    assert any(m.server_content and m.server_content.interrupted for m in cut)
    assert not any(m.server_content and m.server_content.generation_complete for m in cut)
    assert len(spoken_text(cut)) < len(CHECKING)  # the filler was cut short
    assert WEATHER_SAID in spoken_text(answer)


@pytest.mark.parametrize("how", ["clientContent", "realtime text"])
async def test_new_input_cancels_a_blocking_call_on_38(emulator_tls: Emulator, how: str) -> None:
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=DEFAULT.id, config=_weather_config(DEFAULT, "BLOCKING")) as session:
        call = await ask_weather(session)
        if how == "clientContent":
            await session.send_client_content(turns={"role": "user", "parts": [{"text": "never mind"}]})
        else:
            await session.send_realtime_input(text="never mind")
        messages = await receive_until(session, lambda out: len(turn_completes(out)) == 2)
        with pytest.raises(TimeoutError):  # the cancelled call's answer is never asked for again
            await asyncio.wait_for(session._receive(), 0.5)
    assert messages[0].tool_call_cancellation is not None
    assert messages[0].tool_call_cancellation.ids == [call.id]
    assert 'You asked: "never mind"' in spoken_text(messages)


async def test_a_blocking_call_waits_for_its_response(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=DEFAULT.id, config=_weather_config(DEFAULT, "BLOCKING")) as session:
        call = await ask_weather(session)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(session._receive(), 0.5)  # the model waits, silent
        await session.send_tool_response(function_responses=[weather_response(call)])
        answer = await asyncio.wait_for(collect_turn(session), 20)
    assert spoken_text(answer).startswith("Turn 1. The tool answered: " + WEATHER_SAID)


async def test_interim_results_keep_the_call_open_and_parts_are_counted(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=DEFAULT.id, config=_weather_config(DEFAULT)) as session:
        call = await ask_weather(session)
        await asyncio.wait_for(collect_turn(session), 20)  # the model's "let me check"
        interim = types.FunctionResponse(id=call.id, name=call.name, response={"progress": "half"}, will_continue=True)
        await session.send_tool_response(function_responses=[interim])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(session._receive(), 0.5)  # an interim result starts no turn
        image = types.FunctionResponsePart(inline_data=types.FunctionResponseBlob(mime_type="image/png", data=b"png"))
        await session.send_tool_response(function_responses=[weather_response(call, parts=[image])])
        answer = await asyncio.wait_for(collect_turn(session), 20)
        sess = emulator_tls.sessions[session.session_id]
    assert WEATHER_SAID + " with 1 part, after 1 interim result" in spoken_text(answer)
    assert sess.state.response_parts == 1 and not sess.state.calls


async def test_unknown_call_id_is_ignored_quietly(emulator_tls: Emulator) -> None:
    """Undocumented (live-protocol.md, models.md): the emulator ignores an answer to no call."""
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=DEFAULT.id, config=_weather_config(DEFAULT)) as session:
        await session.send_tool_response(function_responses=[
            types.FunctionResponse(id="fc-99", name="get_weather", response=WEATHER)])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(session._receive(), 0.5)
        await say(session, DEFAULT, "still there?")
        assert 'You asked: "still there?"' in spoken_text(await asyncio.wait_for(collect_turn(session), 20))


async def test_extended_thinking_fillers_while_a_call_runs(emulator_tls: Emulator) -> None:
    """Extended thinking: the call, a filler ending IN_PROGRESS while it runs, the answer ending IDLE;
    receive() runs across the filler's turnComplete to the IDLE."""
    client = make_client(emulator_tls)
    async with client.aio.live.connect(model=EXTENDED.id, config=_weather_config(EXTENDED)) as session:
        call = await ask_weather(session)
        filler = await receive_until(session, lambda out: bool(turn_completes(out)))
        await session.send_tool_response(function_responses=[weather_response(call)])
        answer = await asyncio.wait_for(collect_turn(session), 20)
    assert spoken_text(filler).strip() == CHECKING and len(audio_of(filler)) > 24_000
    end = filler[-1].server_content
    assert end is not None and end.interaction_status == types.InteractionStatus.IN_PROGRESS
    statuses = [m.server_content.interaction_status for m in answer
                if m.server_content and m.server_content.interaction_status]
    assert WEATHER_SAID in spoken_text(answer) and statuses[-1] == types.InteractionStatus.IDLE


async def test_extended_thinking_refuses_blocking_and_scheduling(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    error = await refused_at_setup(client, EXTENDED.id, _weather_config(EXTENDED, "BLOCKING"))
    assert error.code == 1007 and "BLOCKING function calls are not supported for this model" in str(error)
    async with client.aio.live.connect(model=EXTENDED.id, config=_weather_config(EXTENDED)) as session:
        call = await ask_weather(session)
        await session.send_tool_response(function_responses=[weather_response(call, "SILENT")])
        error = await refused_next(session)
    assert error.code == 1007 and "scheduling is not supported for this model" in str(error)


async def test_resumption_update_and_go_away_parsed(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls)
    config = types.LiveConnectConfig(
        **audio_config(DEFAULT), session_resumption=types.SessionResumptionConfig()
    )
    async with client.aio.live.connect(model=DEFAULT.id, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "remember the owl"}]})
        await asyncio.wait_for(collect_turn(session), 20)
        update = await session._receive()  # the update follows turnComplete; receive() has stopped
        while is_empty(update):  # a {} frame may come first on 3.x
            update = await session._receive()
        assert update.session_resumption_update is not None
        handle = update.session_resumption_update.new_handle
        assert handle and update.session_resumption_update.resumable
        await emulator_tls.go_away_now(time_left=30)
        go_away = await session._receive()
        assert go_away.go_away is not None and go_away.go_away.time_left == "30s"
    # Resume with the handle (the old connection is closed by now): the context came back.
    config = types.LiveConnectConfig(
        **audio_config(DEFAULT), session_resumption=types.SessionResumptionConfig(handle=handle)
    )
    async with client.aio.live.connect(model=DEFAULT.id, config=config) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "what did I say first?"}]})
        text = spoken_text(await asyncio.wait_for(collect_turn(session), 20))
    assert '"remember the owl"' in text and "Turn 2." in text


@pytest.mark.parametrize(("info", "backend"), SERVED)
async def test_transparent_resumption(emulator_tls: Emulator, info: ModelInfo, backend: str) -> None:
    """Vertex: the index arrives and parses as an int. Developer API: the SDK itself refuses it."""
    client = make_client(emulator_tls, backend)
    config = types.LiveConnectConfig(
        **audio_config(info), session_resumption=types.SessionResumptionConfig(transparent=True)
    )
    if backend == "gemini":
        with pytest.raises(ValueError, match="transparent parameter is only supported in Gemini Enterprise"):
            async with client.aio.live.connect(model=info.id, config=config):
                pass
        return
    async with client.aio.live.connect(model=info.id, config=config) as session:
        await say(session, info, "hi vertex")
        messages = await asyncio.wait_for(collect_turn(session), 20)
        update = await session._receive()
        while is_empty(update):
            update = await session._receive()
        assert update.session_resumption_update is not None
        assert update.session_resumption_update.resumable is True
        assert update.session_resumption_update.last_consumed_client_message_index == 1
        handle = update.session_resumption_update.new_handle
    assert '"hi vertex"' in spoken_text(messages)
    usage = messages[-1].usage_metadata
    # Vertex spells candidatesTokenCount; the SDK maps it to response_token_count.
    assert usage is not None and usage.response_token_count and usage.response_token_count > 0
    config = types.LiveConnectConfig(
        **audio_config(info), session_resumption=types.SessionResumptionConfig(handle=handle, transparent=True)
    )
    async with client.aio.live.connect(model=info.id, config=config) as session:
        await say(session, info, "what did I say first?")
        assert '"hi vertex"' in spoken_text(await asyncio.wait_for(collect_turn(session), 20))


# 5. Other ways in: SSL_CERT_FILE, ephemeral tokens, an API gateway.


@pytest.mark.parametrize("backend", BACKENDS)
async def test_ssl_cert_file_from_the_environment(
    emulator_tls: Emulator, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert emulator_tls.cert_path is not None
    monkeypatch.setenv("SSL_CERT_FILE", emulator_tls.cert_path)
    client = make_client(emulator_tls, backend, ssl_from_env=True)
    async with client.aio.live.connect(model=DEFAULT.id, config=audio_config(DEFAULT)) as session:
        await say(session, DEFAULT, "hello over the default TLS path")
        assert '"hello over the default TLS path"' in spoken_text(await asyncio.wait_for(collect_turn(session), 20))


@pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning")
async def test_ephemeral_token_path(emulator_tls: Emulator) -> None:
    client = make_client(emulator_tls, api_key="auth_tokens/ephemeral-test", api_version="v1alpha")
    async with client.aio.live.connect(model=DEFAULT.id, config=audio_config(DEFAULT)) as session:
        await say(session, DEFAULT, "hi ephemeral")
        assert '"hi ephemeral"' in spoken_text(await asyncio.wait_for(collect_turn(session), 20))
    assert emulator_tls.paths[-1][0].endswith("v1alpha.GenerativeService.BidiGenerateContentConstrained")


async def test_gateway_path(emulator_tls: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Vertex with a custom base_url and no key, project or location: the SDK dials base_url verbatim."""
    assert emulator_tls.cert_path is not None
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    ctx = ssl.create_default_context(cafile=emulator_tls.cert_path)
    client = genai.Client(vertexai=True, http_options={
        "base_url": f"wss://127.0.0.1:{emulator_tls.port}/vertex-proxy",
        "headers": {"Authorization": "Bearer gateway-token"},
        "async_client_args": {"ssl": ctx},
    })
    # No response_modalities: on this path the SDK asks for AUDIO itself.
    async with client.aio.live.connect(model=DEFAULT.id, config={"output_audio_transcription": {}}) as session:
        await say(session, DEFAULT, "hi gateway")
        messages = await asyncio.wait_for(collect_turn(session), 20)
    assert '"hi gateway"' in spoken_text(messages) and audio_of(messages)
    assert emulator_tls.paths[-1] == ("/vertex-proxy", "vertex")
    assert emulator_tls.sessions[session.session_id].model == DEFAULT.id


# 9. Offline speech: the emulator hears what is said and speaks its reply (issue 14).


def spoken_pcm(sentence: str, voice: str = "Aoede", before: float = 0.3, after: float = 1.2) -> bytes:
    """``sentence`` spoken by the offline TTS at 16 kHz (a rendering the recogniser hears), with
    silence around it (the VAD ends the turn)."""
    return silence(before) + heard_rendering(sentence, voice) + silence(after)


def heard_text(messages: list[types.LiveServerMessage]) -> str:
    return "".join(
        m.server_content.input_transcription.text or ""
        for m in messages
        if m.server_content and m.server_content.input_transcription
    )


def shared_both_ways(said: str, heard: str) -> tuple[float, float]:
    """(share of ``said``'s content words in ``heard``, share of ``heard``'s content words in ``said``)."""
    return share_heard(said, heard), share_heard(heard, said)


REPLY_SHARE = 0.2
"""Shared content words between a spoken reply's transcription and what the recogniser hears in its
audio, each way. Measured 0.25-0.6 (numbers are spoken as words, quotes are rough); a tone: 0.0."""
needs_speech = pytest.mark.skipif(not speech.speech_available(), reason=speech.unavailable_reason() or "speech on")


@needs_speech
@pytest.mark.parametrize("backend", BACKENDS)
async def test_sdk_speech_in_is_heard_and_the_reply_is_speech(emulator_tls: Emulator, backend: str) -> None:
    """google-genai streams a spoken sentence as realtime audio: the emulator's inputTranscription
    carries most of its content words, the reply says what was heard, and the reply's audio, run
    through the recogniser, shares words with its outputTranscription in both directions (a tone
    would share none)."""
    assert emulator_tls.hearing and emulator_tls.speaking
    client = make_client(emulator_tls, backend)
    config = audio_config(
        DEFAULT, input_audio_transcription={},
        speech_config={"voice_config": {"prebuilt_voice_config": {"voice_name": "Aoede"}}, "language_code": "en-US"},
    )
    async with client.aio.live.connect(model=DEFAULT.id, config=config) as session:
        await send_pcm(session, spoken_pcm(WEATHER_SENTENCE))
        messages = await asyncio.wait_for(collect_turn(session), 30)
    heard = heard_text(messages)
    assert share_heard(WEATHER_SENTENCE, heard) >= 0.5, heard  # most content words (weather, like, paris, today)
    pieces = [m.server_content.input_transcription for m in messages
              if m.server_content and m.server_content.input_transcription]
    assert pieces[-1].finished and not any(p.finished for p in pieces[:-1])
    said = spoken_text(messages)
    assert said.startswith("Turn 1. You spoke to me [") and 'Offline recognition heard: "' in said
    assert heard.strip() in said  # the reply quotes exactly what the transcription said was heard
    audio = audio_of(messages)
    assert len(audio) > 24_000 * 2 * 3  # seconds of speech, not a beep
    reply_heard = speech.transcribe(audio, 24_000)
    there, back = shared_both_ways(said, reply_heard)
    assert there > REPLY_SHARE and back > REPLY_SHARE, (said, reply_heard)
    session_turns = emulator_tls.sessions[session.session_id].context
    assert session_turns[0][0] == "user" and "offline recognition heard: " in session_turns[0][1]


@needs_speech
async def test_sdk_speech_names_a_function_and_the_call_is_made(emulator_tls: Emulator) -> None:
    """Tools work from speech: the heard text names a declared function ("get the weather" names get_weather)."""
    client = make_client(emulator_tls)
    config = audio_config(DEFAULT, input_audio_transcription={}, tools=[{"function_declarations": [
        {"name": "get_weather", "description": "weather", "behavior": "BLOCKING",
         "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}]}])
    async with client.aio.live.connect(model=DEFAULT.id, config=config) as session:
        await send_pcm(session, spoken_pcm("Please get the weather for Paris."))
        call = None
        before: list[types.LiveServerMessage] = []
        async for message in session.receive():
            before.append(message)
            if message.tool_call:
                call = message.tool_call.function_calls[0]
                break
        assert call is not None and call.name == "get_weather", (heard_text(before), spoken_text(before))
        assert share_heard("get weather", heard_text(before)) == 1.0
        await session.send_tool_response(function_responses=[
            types.FunctionResponse(id=call.id, name=call.name, response={"temp_c": 21})])
        answer = await asyncio.wait_for(collect_turn(session), 30)
    assert 'get_weather returned {"temp_c": 21}' in spoken_text(answer)


@needs_speech
async def test_sdk_barge_in_stops_a_spoken_reply_and_the_next_reply_is_speech(slow_emulator: Emulator) -> None:
    client = make_client(slow_emulator)
    config = audio_config(
        DEFAULT, input_audio_transcription={},
        speech_config={"voice_config": {"prebuilt_voice_config": {"voice_name": "Aoede"}}},
    )
    async with client.aio.live.connect(model=DEFAULT.id, config=config) as session:
        await say(session, DEFAULT, "tell me about your context please")
        first: list[types.LiveServerMessage] = []
        async for message in session.receive():  # until the reply is audibly under way
            first.append(message)
            if len(audio_of(first)) > 24_000:
                break
        await send_pcm(session, spoken_pcm(NOTEBOOK_SENTENCE))
        cut = await asyncio.wait_for(collect_turn(session), 30)
        answer = await asyncio.wait_for(collect_turn(session), 30)
        context = slow_emulator.sessions[session.session_id].context
    assert any(m.server_content and m.server_content.interrupted for m in cut)
    assert not any(m.server_content and m.server_content.generation_complete for m in cut)
    # What was sent is what counts: the interrupted model turn holds exactly the words that went out.
    sent_words = spoken_text(first + cut).strip()
    model_turn = next(text for role, text, _ in context if role == "model")
    assert model_turn == sent_words
    # The next reply is speech again, about what was heard this time.
    said = spoken_text(answer)
    assert said.startswith("Turn 2. You spoke to me [")
    assert share_heard(NOTEBOOK_SENTENCE, heard_text(answer + cut)) >= 0.4
    reply_heard = speech.transcribe(audio_of(answer), 24_000)
    there, back = shared_both_ways(said, reply_heard)
    assert there > REPLY_SHARE and back > REPLY_SHARE, (said, reply_heard)


async def test_sdk_without_speech_replies_with_a_tone_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="live_nb.emulator")
    async with Emulator(tls=True, chunk_delay=0.002, speech=False) as emu:
        assert not emu.hearing and not emu.speaking
        assert emu.speech_status == SPEECH_OFF
        client = make_client(emu)
        async with client.aio.live.connect(
            model=DEFAULT.id, config=audio_config(DEFAULT, input_audio_transcription={})
        ) as session:
            replies = []
            for _ in range(2):
                await send_pcm(session, spoken_pcm(WEATHER_SENTENCE))
                replies.append(await asyncio.wait_for(collect_turn(session), 30))
    said = [r.getMessage() for r in caplog.records if "offline speech is off" in r.getMessage()]
    assert said == [SPEECH_OFF]  # once, however many replies
    for messages in replies:
        assert heard_text(messages).endswith("s of speech: offline speech recognition is off]")
        assert "I heard" not in spoken_text(messages) and "Offline recognition" not in spoken_text(messages)
        audio = audio_of(messages)
        words = len(spoken_text(messages).split())
        # The tone: 0.15 s per word of the reply, nothing a recogniser hears as words.
        assert len(audio) == pytest.approx(words * 0.15 * 24_000 * 2, rel=0.01)
        assert share_heard(spoken_text(messages), speech.transcribe(audio, 24_000)) == 0.0
