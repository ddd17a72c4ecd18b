"""The emulator's sans-I/O engine, driven without sockets or an event loop.

``run`` plays the asyncio layer's part: it streams every ``Stream`` plan to the end (calling
``chunk_sent`` and ``finish_reply`` as server.py does) and returns what would have been sent.

Sessions use today's default, gemini-3.8-live: replies are AUDIO, and their text is read from
``outputTranscription`` (no current Live model answers in TEXT, models.md section 2).
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import pytest

from live_nb.emulator.engine import (
    SECONDS_PER_WORD,
    Action,
    Checkpoint,
    Close,
    ReplyPlan,
    Send,
    ServerEngine,
    SessionState,
    Stream,
)
from live_nb.emulator.responder import ContextResponder, RequestContext, Turn, called_function
from live_nb.emulator.server_protocol import check_setup
from live_nb.protocol.config import (
    ContextWindowCompressionConfig,
    HistoryConfig,
    LiveGenerationConfig,
    SessionResumptionConfig,
    SlidingWindow,
    ThinkingConfig,
)
from live_nb.protocol.content import Blob, Content, FunctionResponse, Part
from live_nb.protocol.messages import (
    ClientContent,
    ClientMessage,
    ContextUpdate,
    RealtimeInput,
    ServerContent,
    SessionResumptionUpdate,
    Setup,
    ToolCall,
    ToolCallCancellation,
    ToolResponse,
    UsageMetadata,
    parse_client_frame,
)

MODEL = "models/gemini-3.8-live"
NATIVE_25 = "models/gemini-2.5-flash-native-audio-preview-12-2025"
LEGACY_31 = "models/gemini-3.1-flash-live-preview"
EXTENDED = "models/gemini-3.8-live-extended-thinking"


def make_engine(
    *,
    model: str = MODEL,
    flavor: str = "vertex",
    compression: ContextWindowCompressionConfig | None = None,
    resumption: SessionResumptionConfig | None = None,
    system_instruction: str | None = None,
    realtime_input_config: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    state: SessionState | None = None,
    consumed: list[ClientMessage] | None = None,
    **config_fields: Any,
) -> ServerEngine:
    """An engine over an AUDIO session with output transcription (the reply's text), checked like the server does."""
    config = LiveGenerationConfig(
        response_modalities=["AUDIO"],
        output_audio_transcription=True,
        context_window_compression=compression,
        system_instruction=system_instruction,
        realtime_input_config=realtime_input_config,
        tools=tools,
        **config_fields,
    )
    setup = Setup(model=model, config=config, session_resumption=resumption)
    assert check_setup(setup, flavor, "v1beta") is None  # the server only builds engines for valid setups
    return ServerEngine(
        setup,
        state or SessionState("sess-test", model.rsplit("/", 1)[-1]),
        consumed if consumed is not None else [],
        ContextResponder(),
        resumed=state is not None,
        flavor=flavor,
    )


def run(engine: ServerEngine, actions: list[Action], stop_after_chunks: int | None = None) -> list[Action]:
    """Carry out actions like server.py: streams run to their end (or stop after N chunks)."""
    out: list[Action] = []
    for action in actions:
        if isinstance(action, Stream):
            out.append(action)
            for _ in action.plan.chunks:
                if action.plan.cancelled:
                    break
                if stop_after_chunks is not None and action.plan.sent >= stop_after_chunks:
                    return out
                engine.chunk_sent(action.plan)
            out += run(engine, engine.finish_reply(action.plan))
        else:
            out.append(action)
    return out


def ask(engine: ServerEngine, text: str, complete: bool = True) -> list[Action]:
    return run(engine, engine.receive(ClientContent((Content("user", (Part(text=text),)),), complete)))


def transcript(chunks: list[Any]) -> str:
    """The reply text a client reads: the output transcription of the chunks."""
    return "".join(
        c.output_transcription.text for c in chunks if isinstance(c, ServerContent) and c.output_transcription
    ).strip()


def reply_text(actions: list[Action]) -> str:
    chunks: list[Any] = []
    for action in actions:
        if isinstance(action, Stream):
            assert not any(isinstance(c, ServerContent) and c.text for c in action.plan.chunks)  # AUDIO: no text parts
            chunks += action.plan.chunks
    return transcript(chunks)


def close_of(actions: list[Action]) -> Close:
    assert actions and isinstance(actions[-1], Close), actions
    return actions[-1]


def usage_of(actions: list[Action]) -> UsageMetadata:
    usages = [a.usage for a in actions if isinstance(a, Send) and a.usage is not None]
    assert len(usages) == 1
    return usages[0]


def pcm_tone(seconds: float, amplitude: int = 8000) -> bytes:
    n = int(seconds * 16_000)
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * 440 * i / 16_000)) for i in range(n)))


def audio(pcm: bytes) -> RealtimeInput:
    """A realtime audio message as it arrives off the wire (base64 JSON, parsed)."""
    frame = json.dumps({"realtimeInput": {"audio": {"data": base64.b64encode(pcm).decode(), "mimeType": "audio/pcm"}}})
    message = parse_client_frame(frame)
    assert isinstance(message, RealtimeInput)
    return message


# Setup checks.


def test_check_setup_refuses_like_the_service() -> None:
    def setup(model: str, modality: str = "AUDIO", **kw: Any) -> Setup:
        return Setup(model=model, config=LiveGenerationConfig(response_modalities=[modality], **kw))

    assert check_setup(setup(MODEL), "gemini", "v1beta") is None
    assert check_setup(setup(MODEL), "vertex", "v1beta1") is None
    assert check_setup(setup(NATIVE_25), "gemini", "v1") is None
    unknown = check_setup(setup("models/gemini-9"), "gemini", "v1beta")
    assert unknown == Close(
        1008,
        "models/gemini-9 is not found for API version v1beta, or is not supported for bidiGenerateContent. "
        "Call ListModels to see the list of available models and their supported methods.",
    )
    vertex = check_setup(setup("projects/p/locations/l/publishers/google/models/nope"), "vertex", "v1beta1")
    assert vertex is not None and vertex.code == 1008 and vertex.reason.startswith("Publisher Model `projects/p")
    # Shut down on 2025-12-09: the service answers as for a model it never had.
    dead = check_setup(setup("models/gemini-live-2.5-flash-preview", "TEXT"), "gemini", "v1beta")
    assert dead == Close(1008, unknown.reason.replace("models/gemini-9", "models/gemini-live-2.5-flash-preview"))
    # No current model answers in TEXT; each says so in its own words.
    text = check_setup(setup(MODEL, "TEXT"), "gemini", "v1beta")
    assert text == Close(1007, "The requested combination of response modalities (TEXT) is not supported by the model.")
    native = check_setup(setup("models/gemini-2.5-flash-native-audio-preview-09-2025", "TEXT"), "gemini", "v1beta")
    assert native == Close(1007, "Cannot extract voices from a non-audio request.")
    thinking = check_setup(setup(MODEL, thinking=ThinkingConfig(thinking_level="LOW")), "gemini", "v1beta")
    assert thinking == Close(1007, "Thinking level is not supported for this model.")
    # A catalogue model this emulator was told not to serve is unknown to it.
    only = frozenset({"gemini-3.8-live"})
    assert check_setup(setup(NATIVE_25), "gemini", "v1beta", only) == Close(
        1008, unknown.reason.replace("models/gemini-9", NATIVE_25)
    )
    no_window = setup(MODEL, context_window_compression=ContextWindowCompressionConfig(sliding_window=None))
    refused = check_setup(no_window, "gemini", "v1beta")
    assert refused is not None and refused.code == 1007 and "slidingWindow" in refused.reason


# Replies, usage and the responder's honesty.


def test_reply_streams_and_counts_tokens() -> None:
    engine = make_engine(system_instruction="Be terse.")  # 10 chars -> 3 tokens
    actions = ask(engine, "hello there")  # 11 chars -> 3 tokens
    plan = next(a.plan for a in actions if isinstance(a, Stream))
    assert plan.modality == "AUDIO" and len(plan.chunks) >= 3
    text = reply_text(actions)
    assert text.startswith('Turn 1. You asked: "hello there".') and 'I follow the instruction "Be terse."' in text
    seconds = sum(len(c.audio) for c in plan.chunks if isinstance(c, ServerContent)) / 48_000
    usage = usage_of(actions)
    assert usage.prompt_token_count == 6
    assert usage.response_token_count == round(seconds * 25)  # 25 tokens a second of audio
    assert usage.total_token_count == 6 + usage.response_token_count
    assert usage.prompt_tokens_by_modality() == {"TEXT": 6}
    assert usage.response_tokens_by_modality() == {"AUDIO": usage.response_token_count}
    # The model turn holds the whole reply as its text, and its audio tokens; the next prompt counts them.
    assert engine.state.turns[-1].text == text
    assert engine.state.turns[-1].modalities == {"AUDIO": usage.response_token_count}
    second = usage_of(ask(engine, "again"))
    assert second.prompt_token_count == 6 + usage.response_token_count + 2
    assert second.prompt_tokens_by_modality() == {"TEXT": 8, "AUDIO": usage.response_token_count}


def test_first_question_answered_from_context() -> None:
    engine = make_engine()
    ask(engine, "my favourite bird is the barn owl")
    text = reply_text(ask(engine, "What did I say first?"))
    assert 'The first thing you said that I still remember (turn 1) was "my favourite bird is the barn owl".' in text
    assert "Turn 2." in text and "I hold 3 turns" in text


def test_audio_reply_is_a_tone_with_transcription() -> None:
    engine = make_engine()
    actions = ask(engine, "sing")
    plan = next(a.plan for a in actions if isinstance(a, Stream))
    audio_chunks = [c for c in plan.chunks if isinstance(c, ServerContent) and c.audio]
    assert all(len(c.audio) == 1920 for c in audio_chunks[:-1])  # 40 ms of 24 kHz PCM16
    assert all(p.inline_data.mime_type == "audio/pcm;rate=24000"
               for c in audio_chunks for p in c.model_turn.parts if p.inline_data)  # type: ignore[union-attr]
    assert transcript(plan.chunks).split() == plan.text.split()
    seconds = sum(len(c.audio) for c in audio_chunks) / 48_000
    assert seconds == pytest.approx(len(plan.text.split()) * SECONDS_PER_WORD)
    usage = usage_of(actions)
    assert usage.response_tokens_by_modality() == {"AUDIO": round(seconds * 25)}


def test_no_output_transcription_no_reply_text() -> None:
    """Without outputAudioTranscription an AUDIO reply carries no text at all (the client gets only sound)."""
    setup = Setup(model=MODEL, config=LiveGenerationConfig(response_modalities=["AUDIO"]))
    engine = ServerEngine(setup, SessionState("s", "gemini-3.8-live"), [], ContextResponder())
    plan = next(a.plan for a in ask(engine, "hello") if isinstance(a, Stream))
    assert plan.text.startswith("Turn 1.")
    assert all(isinstance(c, ServerContent) and c.audio and c.output_transcription is None for c in plan.chunks)


def test_function_call_waits_for_the_response() -> None:
    tools = [{"functionDeclarations": [{"name": "get_time", "behavior": "BLOCKING",
                                        "parameters": {"type": "OBJECT", "properties": {"tz": {}}}}]}]
    engine = make_engine(tools=tools, resumption=SessionResumptionConfig())
    actions = ask(engine, "get time tz=UTC please")
    call = next(a.message for a in actions if isinstance(a, Send) and isinstance(a.message, ToolCall))
    assert call.function_calls[0].name == "get_time" and call.function_calls[0].args == {"tz": "UTC"}
    assert not engine.resumable
    assert engine.periodic() == [Send(SessionResumptionUpdate(new_handle=None, resumable=False))]
    response = ToolResponse((FunctionResponse("get_time", {"result": "12:00"}, id=call.function_calls[0].id),))
    after = run(engine, engine.receive(response))
    assert 'get_time returned {"result": "12:00"}' in reply_text(after)
    assert isinstance(after[-1], Checkpoint) and engine.resumable


def test_called_function_rule() -> None:
    decls = [{"name": "get_weather", "parameters": {"properties": {"city": {}}}}]
    assert called_function("call get_weather city=Paris", decls) == ("get_weather", {"city": "Paris"})
    assert called_function("what's the Get Weather like", decls) == ("get_weather", {})
    assert called_function("forget_weathers", decls) is None


# Compression: the sawtooth.


def test_compression_sawtooth_between_trigger_and_target() -> None:
    cwc = ContextWindowCompressionConfig(trigger_tokens=5_000)  # target defaults to half: 2,500
    engine = make_engine(compression=cwc, system_instruction="Remember everything.")
    prompts: list[int] = []
    texts: list[str] = []
    for i in range(30):
        actions = ask(engine, f"message {i} " + "lorem ipsum " * 100)  # about 300 tokens a turn
        prompts.append(int(usage_of(actions).prompt_token_count or 0))
        texts.append(reply_text(actions))
    drops = [i for i in range(1, len(prompts)) if prompts[i] < prompts[i - 1]]
    assert len(drops) >= 3, prompts
    for i in drops:
        assert prompts[i - 1] <= 5_000 + 400  # it grew up to about the trigger...
        assert prompts[i] <= 2_500  # ...and the sliding window cut it to the target
    assert max(prompts) <= 5_000 + 400
    state = engine.state
    assert state.turns[0].role == "user"  # the kept window starts at a user turn
    assert state.system_instruction == "Remember everything."  # never dropped
    assert state.compressions == len(drops)
    after = texts[drops[0]]
    assert "Compression ran 1 time and I forgot" in after
    assert f"The earliest turn I remember is turn {state.turns[0].number}" in texts[-1]


def test_without_compression_an_exhausted_window_closes() -> None:
    engine = make_engine()
    engine.settings = type(engine.settings)(context_window=1_000)
    ask(engine, "x" * 2_000)  # 500 tokens, fine
    actions = ask(engine, "y" * 4_000)
    close = actions[-1]
    assert isinstance(close, Close) and close.code == 1007 and "Context window exhausted" in close.reason
    assert engine.closed and engine.receive(ClientContent((), True)) == []


# Realtime input, VAD and barge-in.


def test_vad_turn_from_pcm() -> None:
    engine = make_engine()
    actions: list[Action] = []
    speech, quiet = pcm_tone(1.2), b"\x00\x00" * 16_000
    for i in range(0, len(speech), 3200):
        actions += run(engine, engine.receive(audio(speech[i : i + 3200])))
    assert not any(isinstance(a, Stream) for a in actions) and engine.state.in_speech
    for i in range(0, len(quiet), 3200):
        actions += run(engine, engine.receive(audio(quiet[i : i + 3200])))
    text = reply_text(actions)
    assert text.startswith("Turn 1. You spoke to me [1.2 s of speech: offline speech recognition is off].")
    assert usage_of(actions).prompt_tokens_by_modality() == {"AUDIO": 50}  # 1.2 s + 0.8 s of silence


def test_activity_signals_follow_the_vad_setting() -> None:
    auto = make_engine()
    close = auto.receive(RealtimeInput(activity_end=True))
    assert isinstance(close[-1], Close) and close[-1].code == 1007 and "activityEnd" in close[-1].reason
    manual = make_engine(realtime_input_config={"automaticActivityDetection": {"disabled": True}})
    assert manual.receive(RealtimeInput(activity_start=True)) == []
    manual.receive(audio(pcm_tone(0.5)))
    text = reply_text(run(manual, manual.receive(RealtimeInput(activity_end=True))))
    assert "[0.5 s of speech" in text
    close = manual.receive(RealtimeInput(audio_stream_end=True))
    assert isinstance(close[-1], Close) and close[-1].code == 1007 and "audioStreamEnd" in close[-1].reason


def test_barge_in_keeps_only_what_was_sent() -> None:
    engine = make_engine(resumption=SessionResumptionConfig())
    first = run(engine, engine.receive(ClientContent((Content("user", (Part(text="tell me a long story"),)),), True)),
                stop_after_chunks=0)
    plan: ReplyPlan = next(a.plan for a in first if isinstance(a, Stream))
    # Stop right after the third transcription chunk: the client has heard and read three words.
    said = [i for i, c in enumerate(plan.chunks) if isinstance(c, ServerContent) and c.output_transcription]
    stop = said[2] + 1
    for _ in range(stop):
        engine.chunk_sent(plan)
    assert engine.generating and plan.sent == stop
    sent_text = transcript(plan.chunks[:stop])
    assert len(sent_text.split()) == 3
    barge = engine.receive(audio(pcm_tone(0.1)))
    messages = [a.message for a in barge if isinstance(a, Send)]
    assert messages[0] == ServerContent(interrupted=True)
    assert isinstance(messages[1], ServerContent) and messages[1].turn_complete
    assert isinstance(barge[-1], Checkpoint)
    assert plan.cancelled and engine.finish_reply(plan) == []
    assert engine.state.turns[-1].role == "model" and engine.state.turns[-1].text == sent_text
    sent_audio = sum(len(c.audio) for c in plan.chunks[:stop] if isinstance(c, ServerContent)) / 48_000
    assert engine.state.turns[-1].modalities == {"AUDIO": pytest.approx(sent_audio * 25)}  # only the sent audio


def test_barge_in_cancels_pending_function_calls() -> None:
    tools = [{"functionDeclarations": [{"name": "lookup", "behavior": "BLOCKING"}]}]
    engine = make_engine(tools=tools)
    ask(engine, "lookup it")
    actions = engine.receive(audio(pcm_tone(0.1)))
    assert isinstance(actions[0], Send) and isinstance(actions[0].message, ToolCallCancellation)
    assert actions[0].message.ids == ("fc-1",)
    late = ToolResponse((FunctionResponse("lookup", {"too": "late"}, id="fc-1"),))
    assert engine.receive(late) == [] and not engine.closed  # ignored, as the cancelled call's answer
    done = actions[2]
    assert isinstance(done, Send) and isinstance(done.message, ServerContent) and done.message.turn_complete
    assert done.usage is not None and done.usage.prompt_token_count == 3  # "lookup it": every turnComplete has usage


# Snapshots, indexes and the consumed log.


def test_checkpoints_carry_the_transparent_index_and_a_restorable_state() -> None:
    # Transparent resumption and contextUpdate are Vertex features (models.md section 3).
    consumed: list[ClientMessage] = []
    engine = make_engine(resumption=SessionResumptionConfig(transparent=True), consumed=consumed, flavor="vertex")
    engine.receive(ClientContent((Content("user", (Part(text="one"),)),), False))  # index 1
    engine.receive(ContextUpdate(system_instruction=Content("user", (Part(text="new rules"),))))  # index 2
    actions = ask(engine, "three")  # index 3
    checkpoint = actions[-1]
    assert isinstance(checkpoint, Checkpoint) and checkpoint.index == 3
    assert [type(m).__name__ for m in consumed] == ["ClientContent", "ContextUpdate", "ClientContent"]
    restored = SessionState.from_json(json.loads(json.dumps(checkpoint.state)))
    assert restored.to_json() == engine.state.to_json()
    assert restored.consumed_count == 3 and restored.system_instruction == "new rules"
    # A new connection over the restored state counts from 1 again and remembers.
    again = make_engine(resumption=SessionResumptionConfig(transparent=True), state=restored, flavor="vertex")
    assert restored == engine.state  # the frame rate is per connection: the new one set it from its setup
    later = ask(again, "what did I say first?")
    assert '(turn 1) was "one"' in reply_text(later)
    assert isinstance(later[-1], Checkpoint) and later[-1].index == 1
    assert engine.periodic() == []  # nothing new since the checkpoint: no update
    engine.receive(RealtimeInput(text=None, audio=None, video=None))
    assert isinstance(engine.periodic()[0], Checkpoint)


def test_turn_json_round_trip() -> None:
    turn = Turn(3, "user", "hi", 2.5, {"AUDIO": 2.5})
    assert Turn.from_json(turn.to_json()) == turn


def test_responder_reports_forgotten_turns() -> None:
    context = RequestContext(
        turn_number=9,
        request="anything?",
        request_is_audio=False,
        system_instruction="",
        turns=(Turn(7, "user", "the kept start", 4), Turn(8, "model", "ok", 1), Turn(9, "user", "anything?", 3)),
        context_tokens=8,
        forgotten_turns=6,
        compressions=2,
        last_forgotten="a turn that fell out of the window",
    )
    text = ContextResponder().respond(context).text
    assert 'The earliest turn I remember is turn 7 (you): "the kept start".' in text
    assert 'Compression ran 2 times and I forgot 6 turns, the last of them "a turn that fell out of the window".' in text


def test_engine_is_sans_io() -> None:
    """engine.py and responder.py import no I/O, event loop or notebook machinery (style.md rule 1)."""
    import ast
    from pathlib import Path

    import live_nb.emulator.engine as engine_module

    banned = {"asyncio", "websockets", "socket", "sqlite3", "IPython", "ipywidgets", "time", "threading"}
    for name in ("engine.py", "responder.py"):
        tree = ast.parse((Path(engine_module.__file__).parent / name).read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & banned, (name, imported & banned)


def test_input_audio_rate_from_mime_type() -> None:
    engine = make_engine(realtime_input_config={"turnCoverage": "TURN_INCLUDES_ALL_INPUT"})  # silence counts only when the turn covers all input
    engine.receive(RealtimeInput(audio=Blob(b"\x00\x00" * 24_000, "audio/pcm;rate=24000")))  # 1 s at 24 kHz
    engine.receive(RealtimeInput(audio=Blob(b"\x00\x00" * 16_000, "audio/pcm")))  # 1 s at the default 16 kHz
    assert engine.state.pending_audio_tokens == 50


def test_vertex_sliding_window_example() -> None:
    """The Vertex docs' example: trigger 32k, target 16k, turns of 12k + 12k + 14k: turns 1 and 2 go."""
    cwc = ContextWindowCompressionConfig(trigger_tokens=32_000, sliding_window=SlidingWindow(target_tokens=16_000))
    engine = make_engine(compression=cwc)
    engine.receive(
        ClientContent(
            (Content("user", (Part(text="a" * 48_000),)), Content("model", (Part(text="b" * 48_000),))), False
        )
    )
    actions = ask(engine, "c" * 56_000)
    assert [t.number for t in engine.state.turns] == [3, 4]  # the 14k user turn and the reply to it
    assert usage_of(actions).prompt_token_count == 14_000
    assert engine.state.forgotten_turns == 2 and engine.state.compressions == 1


def media_seconds_until_close(engine: ServerEngine, video: bool) -> int:
    """Stream 1 s of (silent) audio, plus one video frame when asked, per second until the engine closes."""
    second = Blob(b"\x00\x00" * 16_000, "audio/pcm;rate=16000")
    frame = Blob(b"\xff\xd8 jpeg", "image/jpeg")
    for seconds in range(1, 20_000):
        actions = engine.receive(RealtimeInput(audio=second))
        if video:
            actions += engine.receive(RealtimeInput(video=frame))
        if any(isinstance(a, Close) for a in actions):
            return seconds
    raise AssertionError("never closed")


def test_session_limits_follow_from_the_token_rates() -> None:
    """Without compression the window ends the session: at 25 tokens/s audio and 258 per video frame
    (2.5 native audio's fixed rate), a 32k window (the older Vertex figure) lasts ~2 min of audio+video
    (the documented limit) and ~21 min of audio; the 128k window ~7.5 min and ~85 min."""
    for window, video, low, high in ((32_000, True, 110, 115), (32_000, False, 1_270, 1_290),
                                     (128_000, True, 450, 455), (128_000, False, 5_110, 5_130)):
        engine = make_engine(model=NATIVE_25, flavor="gemini", realtime_input_config={"turnCoverage": "TURN_INCLUDES_ALL_INPUT"})  # silent media counts
        engine.settings = type(engine.settings)(context_window=window)
        assert low <= media_seconds_until_close(engine, video) <= high, (window, video)


def test_video_frame_tokens_follow_the_model_and_media_resolution() -> None:
    frame = RealtimeInput(video=Blob(b"\xff\xd8 jpeg", "image/jpeg"))
    for model, resolution, tokens in ((MODEL, None, 256), (MODEL, "low", 64), (MODEL, "high", 256),
                                      (NATIVE_25, None, 258), (NATIVE_25, "low", 258)):
        engine = make_engine(model=model, flavor="gemini", media_resolution=resolution, realtime_input_config={"turnCoverage": "TURN_INCLUDES_ALL_INPUT"})
        engine.receive(frame)
        assert engine.state.pending_tokens == tokens, (model, resolution)


def test_turn_coverage_decides_what_joins_the_user_turn() -> None:
    """realtimeInputConfig.turnCoverage, else the model's default (3.x: audio activity and all video;
    2.5: only activity): silence before speech and, on 2.5, video outside speech stay out of the turn."""
    silence = RealtimeInput(audio=Blob(b"\x00\x00" * 1_600, "audio/pcm;rate=16000"))  # 0.1 s
    speech = RealtimeInput(audio=Blob(b"\x10\x27" * 1_600, "audio/pcm;rate=16000"))  # 0.1 s at RMS 10,000
    frame = RealtimeInput(video=Blob(b"\xff\xd8 jpeg", "image/jpeg"))
    cases = ((MODEL, None, 256.0, 256.0 + 2.5), (NATIVE_25, None, 0.0, 258.0 + 2.5),
             (NATIVE_25, "TURN_INCLUDES_ALL_INPUT", 258.0 + 2.5, 2 * 258.0 + 5.0))
    for model, coverage, before, during in cases:
        engine = make_engine(model=model, flavor="gemini",
                             realtime_input_config={"turnCoverage": coverage} if coverage else None)
        engine.receive(silence)
        engine.receive(frame)
        assert engine.state.pending_tokens == before, (model, coverage)
        engine.receive(speech)
        if coverage is None and model == NATIVE_25:
            engine.receive(frame)
            during = 258.0 + 2.5
        elif coverage is None:
            during = 256.0 + 2.5
        else:
            engine.receive(frame)
        assert engine.state.pending_tokens == during, (model, coverage)


# Backend rules: what the Developer API refuses mid-session and Vertex accepts (models.md section 3).


def system_turn(text: str) -> ClientContent:
    return ClientContent((Content("system", (Part(text=text),)),), False)


def test_developer_api_refuses_system_turns_and_context_updates() -> None:
    update = ContextUpdate(system_instruction=Content("user", (Part(text="new rules"),)))
    for message, words in ((system_turn("new rules"), 'role "system"'), (update, "contextUpdate")):
        consumed: list[ClientMessage] = []
        engine = make_engine(flavor="gemini", system_instruction="old rules", consumed=consumed)
        close = close_of(engine.receive(message))
        assert close.code == 1007 and words in close.reason and close.reason.startswith("Request contains an invalid")
        assert engine.closed and consumed == [] and engine.state.system_instruction == "old rules"


def test_vertex_takes_system_turns_and_context_updates() -> None:
    engine = make_engine(flavor="vertex", system_instruction="old rules")
    assert engine.receive(system_turn("be a pirate")) == []
    assert engine.state.system_instruction == "be a pirate"
    assert 'My system instruction is "be a pirate"' in reply_text(ask(engine, "what is your system instruction?"))
    tools = ({"functionDeclarations": [{"name": "get_time"}]},)
    assert engine.receive(ContextUpdate(system_instruction=Content("user", (Part(text="be brief"),)), tools=tools)) == []
    assert engine.state.system_instruction == "be brief" and engine.state.tools == [dict(tools[0])]
    assert not engine.closed


# Model rules after setup: 3.1's initial history, extended thinking's tool responses.


def typed(text: str) -> RealtimeInput:
    return RealtimeInput(text=text)


def test_31_takes_client_content_only_as_initial_history() -> None:
    history = ClientContent((Content("user", (Part(text="my name is Ada"),)), Content("model", (Part(text="hi Ada"),))))
    # Without historyConfig.initialHistoryInClientContent: refused at once.
    plain = make_engine(model=LEGACY_31, flavor="gemini")
    close = close_of(plain.receive(history))
    assert close.code == 1007 and "only accepted as initial history" in close.reason
    # With it: history first, then the conversation goes on as realtime text.
    engine = make_engine(model=LEGACY_31, flavor="gemini", history_config=HistoryConfig(True))
    assert engine.receive(history) == []
    text = reply_text(run(engine, engine.receive(typed("what did I say first?"))))
    assert '(turn 1) was "my name is Ada"' in text
    late = close_of(engine.receive(ClientContent((Content("user", (Part(text="more history"),)),), True)))
    assert late.code == 1007 and "only accepted as initial history" in late.reason
    # A resumed connection is past its history: clientContent is refused there too.
    resumed = make_engine(model=LEGACY_31, flavor="gemini", history_config=HistoryConfig(True),
                          state=SessionState.from_json(engine.state.to_json()))
    assert close_of(resumed.receive(history)).code == 1007


def test_38_takes_client_content_any_time() -> None:
    engine = make_engine()
    ask(engine, "one")
    run(engine, engine.receive(typed("two")))
    assert 'You asked: "three"' in reply_text(ask(engine, "three"))


def test_extended_thinking_refuses_scheduled_tool_responses() -> None:
    tools = [{"functionDeclarations": [{"name": "lookup"}]}]
    engine = make_engine(model=EXTENDED, flavor="gemini", tools=tools, thinking=ThinkingConfig(thinking_level="low"))
    call = next(a.message for a in ask(engine, "lookup it") if isinstance(a, Send) and isinstance(a.message, ToolCall))
    scheduled = ToolResponse((FunctionResponse("lookup", {"ok": True}, id=call.function_calls[0].id,
                                               scheduling="WHEN_IDLE"),))
    close = close_of(engine.receive(scheduled))
    assert close.code == 1007 and "scheduling" in close.reason
    # Plain 3.8 takes the scheduling and answers.
    plain = make_engine(tools=tools)
    call = next(a.message for a in ask(plain, "lookup it") if isinstance(a, Send) and isinstance(a.message, ToolCall))
    answer = ToolResponse((FunctionResponse("lookup", {"ok": True}, id=call.function_calls[0].id,
                                            scheduling="WHEN_IDLE"),))
    assert 'lookup returned {"ok": true}' in reply_text(run(plain, plain.receive(answer)))


# Rule 5: a checkpoint's snapshot contains every message up to its index, and no later one.

GET_TIME = [{"functionDeclarations": [{"name": "get_time", "parameters": {"type": "OBJECT", "properties": {"tz": {}}}}]}]
"""get_time as the model's default runs it (NON_BLOCKING on 3.8)."""
GET_TIME_BLOCKING = [{"functionDeclarations": [
    {"name": "get_time", "behavior": "BLOCKING", "parameters": {"type": "OBJECT", "properties": {"tz": {}}}},
]}]
MANUAL_VAD = {"automaticActivityDetection": {"disabled": True}}
TRANSPARENT = SessionResumptionConfig(transparent=True)
SPEECH = pcm_tone(0.1)
QUIET = b"\x00\x00" * 1_600


def user(text: str, complete: bool = True) -> ClientContent:
    return ClientContent((Content("user", (Part(text=text),)),), complete)


def streaming(engine: ServerEngine, message: ClientMessage, chunks: int = 5) -> ReplyPlan:
    """Send ``message`` and stream ``chunks`` of the reply it starts (leaving it in flight)."""
    plan = next(a.plan for a in engine.receive(message) if isinstance(a, Stream))
    for _ in range(chunks):
        engine.chunk_sent(plan)
    return plan


def barge_in_cases() -> list[tuple[str, dict[str, Any], list[ClientMessage], ClientMessage]]:
    """(name, engine options, messages before, the barging message): one per handler that interrupts."""
    tool_ask = user("get_time tz=UTC")
    return [
        ("clientContent turn", {}, [user("first")], user("second")),
        ("clientContent without turnComplete", {}, [user("first")], user("second", complete=False)),
        ("realtime text", {}, [user("first")], typed("second")),
        ("VAD speech start", {}, [user("first")], audio(SPEECH)),
        ("activityStart", {"realtime_input_config": MANUAL_VAD}, [user("first")], RealtimeInput(activity_start=True)),
        ("realtime text, manual VAD", {"realtime_input_config": MANUAL_VAD}, [user("first")], typed("second")),
        ("tool call cancelled by a turn", {"tools": GET_TIME_BLOCKING}, [tool_ask], user("never mind")),
        ("tool call cancelled by speech", {"tools": GET_TIME_BLOCKING}, [tool_ask], audio(SPEECH)),
        ("tool call cancelled by activityStart", {"tools": GET_TIME_BLOCKING, "realtime_input_config": MANUAL_VAD},
         [tool_ask], RealtimeInput(activity_start=True)),
        ("NON_BLOCKING call's filler cut by a turn", {"tools": GET_TIME}, [tool_ask], user("never mind")),
        ("NON_BLOCKING call's filler cut by an INTERRUPT result", {"tools": GET_TIME}, [tool_ask],
         ToolResponse((FunctionResponse("get_time", {"t": 1}, id="fc-1", scheduling="INTERRUPT"),))),
    ]


@pytest.mark.parametrize("case", barge_in_cases(), ids=lambda c: c[0])
def test_barge_in_checkpoint_leaves_out_the_interrupting_message(
    case: tuple[str, dict[str, Any], list[ClientMessage], ClientMessage],
) -> None:
    """The reproduced loss: the interruption's checkpoint carried index N with a snapshot lacking
    message N, so the client forgot N and a resume lost it. Now it names N-1, and N is replayed."""
    _, options, before, barging = case
    consumed: list[ClientMessage] = []
    engine = make_engine(resumption=TRANSPARENT, consumed=consumed, **options)
    for message in before:
        actions = engine.receive(message)
        if engine.generating:
            streaming_plan = next(a.plan for a in actions if isinstance(a, Stream))
            for _ in range(5):
                engine.chunk_sent(streaming_plan)
    assert engine.generating or engine.waiting_calls
    actions = engine.receive(barging)
    n = engine.index
    interrupted = [a for a in actions if isinstance(a, Send) and a.message == ServerContent(interrupted=True)]
    assert interrupted, actions
    checkpoints = [a for a in actions if isinstance(a, Checkpoint)]
    assert [c.index for c in checkpoints] == [n - 1]
    (checkpoint,) = checkpoints
    assert checkpoint.state["consumed_count"] == n - 1
    # The checkpoint comes right after the interruption, before anything message N starts.
    ended = next(i for i, a in enumerate(actions)
                 if isinstance(a, Send) and isinstance(a.message, ServerContent) and a.message.turn_complete)
    assert actions.index(checkpoint) == ended + 1
    # Resume from it and replay what it does not hold: the same session as the live one.
    restored = make_engine(resumption=TRANSPARENT, consumed=consumed[: checkpoint.index],
                           state=SessionState.from_json(json.loads(json.dumps(checkpoint.state))), **options)
    restored.receive(barging)
    assert restored.state.to_json() == engine.state.to_json()
    assert restored.consumed == consumed


def test_barge_in_midway_through_a_message_checkpoints_after_it() -> None:
    """Several audio chunks in one (legacy mediaChunks) message: speech, 0.8 s of silence that ends
    the turn and starts a reply, speech again that interrupts it. That reply began inside the
    message, so no snapshot before the message can hold it: the checkpoint comes after (index N)."""
    engine = make_engine(resumption=TRANSPARENT)
    chunks = (Blob(SPEECH, "audio/pcm"),) + (Blob(QUIET, "audio/pcm"),) * 8 + (Blob(SPEECH, "audio/pcm"),)
    actions = engine.receive(RealtimeInput(media_chunks=chunks))
    assert any(isinstance(a, Stream) for a in actions) and ServerContent(interrupted=True) in [
        a.message for a in actions if isinstance(a, Send)
    ]
    assert isinstance(actions[-1], Checkpoint) and actions[-1].index == engine.index == 1
    assert actions[-1].state == engine.state.to_json() and engine.resumable


Event = tuple[str, Any]


def step(engine: ServerEngine, event: Event) -> list[Action]:
    """One event of a schedule, as the asyncio layer would carry it out."""
    kind, value = event
    if kind == "msg":
        return engine.receive(value)
    if kind == "periodic":
        return engine.periodic()
    plan = engine.plan
    if plan is None or plan.cancelled:
        return []
    if kind == "chunks":
        for _ in range(min(value, len(plan.chunks) - plan.sent)):
            engine.chunk_sent(plan)
        return []
    assert kind == "finish"
    while plan.sent < len(plan.chunks):
        engine.chunk_sent(plan)
    return engine.finish_reply(plan)


def next_event(rng: Any, engine: ServerEngine, manual: bool, n: int) -> Event:
    """A random next event for a session with get_time declared (messages shaped as a client sends them)."""
    roll = rng.random()
    if roll < 0.25:
        return ("chunks", rng.randint(1, 40))
    if roll < 0.32:
        return ("finish", None)
    if roll < 0.37:
        return ("periodic", None)
    if engine.pending_calls and rng.random() < 0.5:
        call_id = next(iter(engine.pending_calls))
        scheduling = rng.choice([None, "SILENT", "WHEN_IDLE", "INTERRUPT"])
        interim = rng.random() < 0.2
        return ("msg", ToolResponse((FunctionResponse("get_time", {"time": f"12:{n:02d}"}, id=call_id,
                                                      scheduling=scheduling, will_continue=interim or None),)))
    kind = rng.choice(["turn", "turn", "tool", "partial", "text", "late", "update", "media", "media", "media"])
    if kind == "turn":
        return ("msg", user(f"turn {n} please"))
    if kind == "tool":
        return ("msg", user(f"get_time tz=Z{n}"))
    if kind == "partial":
        return ("msg", user(f"note {n}", complete=False))
    if kind == "text":
        return ("msg", typed(f"typed {n}"))
    if kind == "late":
        return ("msg", ToolResponse((FunctionResponse("get_time", {"late": n}, id=f"fc-{rng.randint(1, 3)}"),)))
    if kind == "update":
        return ("msg", ContextUpdate(system_instruction=Content("user", (Part(text=f"rules {n}"),))))
    if manual:
        if engine.state.in_activity:
            return ("msg", rng.choice([audio(SPEECH), audio(QUIET), RealtimeInput(activity_end=True)]))
        return ("msg", rng.choice([RealtimeInput(activity_start=True), audio(QUIET)]))
    return ("msg", audio(SPEECH if rng.random() < 0.4 else QUIET))


def replay(checkpoint: Checkpoint, schedule: list[Event], produced_at: int, until: int,
           consumed: list[ClientMessage], options: dict[str, Any]) -> ServerEngine:
    """Resume from ``checkpoint`` (made by event ``produced_at``) and replay what it lacks up to ``until``:
    the client messages after its index (transparent replay), then the schedule as it went on."""
    assert checkpoint.index is not None
    state = SessionState.from_json(json.loads(json.dumps(checkpoint.state)))
    engine = make_engine(resumption=TRANSPARENT, consumed=list(consumed[: checkpoint.index]), state=state, **options)
    seen = 0
    for position, event in enumerate(schedule[: until + 1]):
        if event[0] == "msg":
            seen += 1
            if position <= produced_at and seen <= checkpoint.index:
                continue  # in the snapshot
        elif position <= produced_at:
            continue  # the server's side of the past: already in the snapshot
        step(engine, event)
    return engine


@pytest.mark.parametrize("blocking", [False, True], ids=["NON_BLOCKING calls", "BLOCKING calls"])
@pytest.mark.parametrize("manual", [False, True], ids=["automatic VAD", "manual VAD"])
def test_every_checkpoint_restores_to_the_live_session(manual: bool, blocking: bool) -> None:
    """Property (Rule 5), over seeded random schedules of turns, barge-ins, realtime text, speech,
    activity signals, tool calls, tool responses (timely and late), context updates, partial and
    whole reply streams and periodic updates: after every step, each checkpoint it produced, restored
    into a fresh engine with the consumed messages after its index replayed, equals the live session
    (state and consumed log: every message exactly once). At the end every checkpoint of the run,
    replayed with the rest of the schedule, ends equal to the live session too."""
    import random

    options: dict[str, Any] = {"tools": GET_TIME_BLOCKING if blocking else GET_TIME}
    if manual:
        options["realtime_input_config"] = MANUAL_VAD
    checked = interruptions = 0
    for seed in range(12):
        rng = random.Random(seed)
        consumed: list[ClientMessage] = []
        engine = make_engine(resumption=TRANSPARENT, consumed=consumed, **options)
        schedule: list[Event] = []
        made: list[tuple[Checkpoint, int]] = []
        for n in range(70):
            event = next_event(rng, engine, manual, n)
            schedule.append(event)
            actions = step(engine, event)
            interruptions += ServerContent(interrupted=True) in [a.message for a in actions if isinstance(a, Send)]
            assert not engine.closed, actions
            for checkpoint in (a for a in actions if isinstance(a, Checkpoint)):
                assert checkpoint.index is not None and checkpoint.state["consumed_count"] == checkpoint.index
                assert engine.index - 1 <= checkpoint.index <= engine.index
                made.append((checkpoint, len(schedule) - 1))
                again = replay(checkpoint, schedule, len(schedule) - 1, len(schedule) - 1, consumed, options)
                assert again.state.to_json() == engine.state.to_json(), (seed, n, event)
                assert again.consumed == consumed, (seed, n, event)
                checked += 1
        for checkpoint, produced_at in made:
            again = replay(checkpoint, schedule, produced_at, len(schedule) - 1, consumed, options)
            assert again.state.to_json() == engine.state.to_json(), (seed, produced_at)
            assert again.consumed == consumed
    print(f"\n{checked} checkpoints checked, {interruptions} interruptions")
    assert checked >= 100 and interruptions >= 20, (checked, interruptions)


def test_the_context_window_is_the_models_input_window_unless_the_emulator_sets_one() -> None:
    assert make_engine(model=MODEL).window == 131_072  # 3.x
    assert make_engine(model=NATIVE_25, flavor="gemini").window == 128_000  # 2.5
    engine = make_engine(model=MODEL)
    engine.settings = type(engine.settings)(context_window=1_000)
    assert engine.window == 1_000


async def test_the_client_ledger_uses_the_models_input_window() -> None:
    from emulator_constants import GEMINI_PATH

    from live_nb.client.session import LiveModel
    from live_nb.emulator import Emulator

    async with Emulator(chunk_delay=0) as emu:
        async with LiveModel(url=emu.url).connect() as session:
            assert session.ledger.window == 131_072
        model = LiveModel("gemini-2.5-flash-native-audio-preview-12-2025", url=emu.url + GEMINI_PATH)
        async with model.connect() as session:
            assert session.ledger.window == 128_000
