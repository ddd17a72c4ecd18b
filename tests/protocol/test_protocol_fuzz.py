"""Property-based fuzzing of the sans-I/O protocol layer, both directions.

Two properties, each for server and client frames:

1. **Any frame parses or is refused cleanly.** Whatever bytes or text a peer sends,
   ``parse_server_frame`` / ``parse_client_frame`` return typed messages or raise
   ``RemoteProtocolError``; never a RecursionError, TypeError, KeyError, OverflowError,
   binascii.Error... ``parse_client_frame`` may also raise ``ConfigError``, but only for a value of
   the right type outside its range (the emulator refuses both with 1007); a wrong *type* is a
   ``RemoteProtocolError``.
2. **Encoding round-trips.** For any valid typed message ``m``, ``parse(encode(m)) == m``; and
   whatever parses can be encoded again, ``encode(parse(encode(x))) == encode(x)`` (the emulator
   echoes what it parsed).

The frames fed to (1) are arbitrary bytes and text, arbitrary JSON values (NaN and Infinity
included, as Python's json reads them), the right top-level keys over arbitrary bodies, and valid
encoded messages with one subtree swapped for an arbitrary value (wrong types deep inside right
shapes). Shapes a random search rarely reaches (100,000 levels of nesting, 5,000-digit numbers,
lone surrogates, bad Durations) are written out below the properties.

Runs are derandomized (the same examples on every run and in CI) and sized to finish in a few
seconds. For a deeper local search set ``LIVE_NB_FUZZ_EXAMPLES`` (e.g. 4000, about three minutes):
the examples are then random, and a failure prints the ``@reproduce_failure`` line to replay it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from live_nb.exceptions import ConfigError, LocalProtocolError, RemoteProtocolError
from live_nb.protocol import _wire as w
from live_nb.protocol import audio
from live_nb.protocol import content as c
from live_nb.protocol import messages as m
from live_nb.protocol.config import (
    AudioTranscriptionConfig,
    ContextWindowCompressionConfig,
    HistoryConfig,
    LiveGenerationConfig,
    ProactivityConfig,
    SessionResumptionConfig,
    SlidingWindow,
    SpeechConfig,
    ThinkingConfig,
)

_DEEP_RUN = int(os.environ.get("LIVE_NB_FUZZ_EXAMPLES", "0"))


def _fuzz(examples: int) -> Callable[[Any], Any]:
    """Settings for one property: derandomized with ``examples`` cases, or a deep random run."""
    if _DEEP_RUN:
        return settings(max_examples=_DEEP_RUN, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        # The one function-scoped fixture (below) is meant to run once per test, not per example.
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


@pytest.fixture(autouse=True)
def _forget_fuzzed_field_names() -> Iterator[None]:
    """Fuzzing fills the bounded memory of logged unknown field names: give other tests theirs back."""
    saved = set(w._seen_unknown)
    yield
    w._seen_unknown.clear()
    w._seen_unknown.update(saved)


# Field names the parsers look for, in both spellings, so that generated objects hit real code paths.
_NAMES = (
    "setup", "client_content", "realtime_input", "tool_response", "context_update",
    "setup_complete", "server_content", "tool_call", "tool_call_cancellation", "go_away",
    "session_resumption_update", "usage_metadata", "voice_activity", "voice_activity_detection_signal",
    "model", "generation_config", "system_instruction", "tools", "context_window_compression",
    "sliding_window", "trigger_tokens", "target_tokens", "session_resumption", "handle", "transparent",
    "response_modalities", "temperature", "top_p", "top_k", "speech_config", "voice_config",
    "prebuilt_voice_config", "voice_name", "language_code", "language_codes", "media_resolution",
    "thinking_config", "thinking_level", "thinking_budget", "include_thoughts", "proactivity",
    "proactive_audio", "history_config", "initial_history_in_client_content",
    "input_audio_transcription", "output_audio_transcription", "realtime_input_config",
    "turns", "turn_complete", "role", "parts", "text", "inline_data", "data", "mime_type",
    "function_call", "function_response", "name", "args", "id", "response", "will_continue",
    "audio", "video", "media_chunks", "audio_stream_end", "activity_start", "activity_end",
    "function_responses", "function_calls", "ids", "time_left", "seconds", "nanos", "new_handle",
    "resumable", "last_consumed_client_message_index", "model_turn", "interrupted",
    "generation_complete", "input_transcription", "output_transcription", "finished", "words",
    "word", "start_offset", "end_offset", "prompt_token_count", "response_token_count",
    "prompt_tokens_details", "modality", "token_count", "type", "audio_offset", "session_id",
)
_KEYS = st.sampled_from(sorted({*_NAMES, *(w.camel(n) for n in _NAMES)})) | st.text(max_size=6)

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and the infinities included: Python's json reads them
    | st.text(max_size=20)
    | st.sampled_from(["50s", "-5s", "nans", "infs", "1e400s", "1.5s", "TEXT", "AUDIO", "AAEC", "%%", ""])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=25,
)
_SERVER_KEYS = st.sampled_from(
    ["setupComplete", "serverContent", "toolCall", "toolCallCancellation", "goAway", "sessionResumptionUpdate",
     "usageMetadata", "voiceActivity", "voiceActivityDetectionSignal", "server_content", "go_away", "usage_metadata"]
)
_CLIENT_KEYS = st.sampled_from(
    ["setup", "clientContent", "realtimeInput", "toolResponse", "contextUpdate", "client_content",
     "realtime_input", "tool_response"]
)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


def _plausible_config_value(value: object) -> bool:
    """A ConfigError must be about a value of the right type: a scalar, or a list of strings."""
    if isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _server_parses_or_refuses(frame: str | bytes) -> list[m.ServerMessage] | None:
    try:
        return m.parse_server_frame(frame)
    except RemoteProtocolError:
        return None


def _client_parses_or_refuses(frame: str | bytes) -> m.ClientMessage | None:
    try:
        return m.parse_client_frame(frame)
    except RemoteProtocolError:
        return None
    except ConfigError as exc:
        assert _plausible_config_value(exc.value), f"wrong type reported as ConfigError: {exc!r}"
        return None


def _reencodes(messages: list[m.ServerMessage]) -> None:
    """What we parsed, we can send on (the emulator echoes what it parsed), and that is a fixpoint.

    ``encode(parse(encode(x))) == encode(x)``, rather than ``parse(encode(x)) == x``: Durations are
    written to the millisecond, and a NaN in opaque data is never equal to itself.
    """
    for message in messages:
        try:
            frame = m.encode_server_frame(message)
        except LocalProtocolError:
            continue
        again = m.parse_server_frame(frame)
        if not again:  # an empty serverContent is dropped on purpose
            assert message == m.ServerContent(), frame
            continue
        (same,) = again
        assert m.encode_server_frame(same) == frame


def _client_reencodes(message: m.ClientMessage) -> None:
    frame = m.encode_client_frame(message)
    assert m.encode_client_frame(m.parse_client_frame(frame)) == frame


# 1. Any frame parses or is refused with RemoteProtocolError.


@_fuzz(300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(frame: bytes) -> None:
    _server_parses_or_refuses(frame)
    _client_parses_or_refuses(frame)


@_fuzz(300)
@given(st.text(max_size=200))
def test_arbitrary_text(frame: str) -> None:
    _server_parses_or_refuses(frame)
    _client_parses_or_refuses(frame)


@_fuzz(300)
@given(_JSON)
def test_arbitrary_json_values(value: Any) -> None:
    frame = _dumps(value)
    _server_parses_or_refuses(frame)
    _client_parses_or_refuses(frame.encode())


@_fuzz(300)
@given(_SERVER_KEYS, _JSON, st.none() | _JSON)
def test_server_keys_with_arbitrary_bodies(key: str, body: Any, usage: Any) -> None:
    frame: dict[str, Any] = {key: body}
    if usage is not None:
        frame["usageMetadata"] = usage
    parsed = _server_parses_or_refuses(_dumps(frame))
    if parsed is not None:
        _reencodes(parsed)


@_fuzz(300)
@given(_CLIENT_KEYS, _JSON)
def test_client_keys_with_arbitrary_bodies(key: str, body: Any) -> None:
    message = _client_parses_or_refuses(_dumps({key: body}))
    if message is not None:
        _client_reencodes(message)


# 2. Typed messages round-trip: parse(encode(m)) == m.

_TEXT = st.text(max_size=12)
_NAME = st.text(min_size=1, max_size=12)
_SECONDS = st.integers(min_value=0, max_value=int(w.MAX_DURATION_SECONDS * 1000)).map(lambda ms: ms / 1000)
_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_COUNT = st.integers(min_value=0, max_value=2**31)
# Opaque user JSON (function args, tool declarations): finite floats, so that equality holds.
_USER_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=10,
)
_USER_OBJECT = st.dictionaries(_TEXT, _USER_JSON, max_size=4)
# Unknown fields a newer service might add: names no parser knows, in either spelling.
_EXTRA = st.none() | st.dictionaries(st.from_regex(r"x[A-Za-z0-9]{1,8}", fullmatch=True), _USER_JSON,
                                     min_size=1, max_size=2)

_BLOB = st.builds(c.Blob, data=st.binary(max_size=64), mime_type=st.sampled_from(
    [audio.INPUT_AUDIO_MIME, audio.OUTPUT_AUDIO_MIME, "image/jpeg", ""]))
_CALL = st.builds(c.FunctionCall, name=_NAME, args=_USER_OBJECT, id=st.none() | _NAME)
_RESPONSE = st.builds(
    c.FunctionResponse, name=_NAME, response=_USER_OBJECT, id=st.none() | _NAME,
    will_continue=st.none() | st.booleans(), scheduling=st.none() | st.sampled_from(["INTERRUPT", "WHEN_IDLE"]),
)
_PART = st.one_of(
    st.builds(c.Part, text=_TEXT, thought=st.none() | st.booleans()),
    st.builds(c.Part, inline_data=_BLOB),
    st.builds(c.Part, function_call=_CALL),
    st.builds(c.Part, function_response=_RESPONSE),
    st.builds(c.Part, text=_TEXT, extra=_EXTRA),
)
_CONTENT = st.builds(
    c.Content, role=st.none() | st.sampled_from(["user", "model", "system"]),
    parts=st.lists(_PART, max_size=3).map(tuple),
)
_WORD = st.builds(m.WordInfo, word=_TEXT, start_offset=st.none() | _SECONDS, end_offset=st.none() | _SECONDS,
                  extra=_EXTRA)
_TRANSCRIPTION = st.builds(
    m.Transcription, text=_TEXT, finished=st.none() | st.booleans(), language_code=st.none() | _NAME,
    speaker_label=st.none() | _NAME, start_offset=st.none() | _SECONDS, end_offset=st.none() | _SECONDS,
    words=st.lists(_WORD, max_size=2).map(tuple), extra=_EXTRA,
)
_SERVER_CONTENT = st.builds(
    m.ServerContent,
    model_turn=st.none() | _CONTENT,
    turn_complete=st.booleans(),
    interrupted=st.booleans(),
    generation_complete=st.booleans(),
    input_transcription=st.none() | _TRANSCRIPTION,
    output_transcription=st.none() | _TRANSCRIPTION,
    waiting_for_input=st.booleans(),
    turn_complete_reason=st.none() | _TEXT,
    interaction_status=st.none() | st.sampled_from(["IN_PROGRESS", "REQUIRES_ACTION", "IDLE", ""]),
    interim_input_transcription=st.none() | _TRANSCRIPTION,
    grounding_metadata=st.none() | _USER_OBJECT,
    url_context_metadata=st.none() | _USER_OBJECT,
    extra=_EXTRA,
).filter(lambda c: c != m.ServerContent())  # an empty serverContent is dropped on purpose
_MODALITIES = st.lists(
    st.builds(m.ModalityTokenCount, modality=st.sampled_from(["TEXT", "AUDIO", "VIDEO"]), token_count=_COUNT),
    max_size=2,
).map(tuple)
_USAGE = st.builds(
    m.UsageMetadata,
    prompt_token_count=st.none() | _COUNT,
    response_token_count=st.none() | _COUNT,
    total_token_count=st.none() | _COUNT,
    cached_content_token_count=st.none() | _COUNT,
    tool_use_prompt_token_count=st.none() | _COUNT,
    thoughts_token_count=st.none() | _COUNT,
    prompt_tokens_details=_MODALITIES,
    response_tokens_details=_MODALITIES,
    cache_tokens_details=_MODALITIES,
    tool_use_prompt_tokens_details=_MODALITIES,
    traffic_type=st.none() | st.sampled_from(["ON_DEMAND", "PROVISIONED_THROUGHPUT"]),
)
_SERVER_MESSAGE = st.one_of(
    st.builds(m.SetupComplete, session_id=st.none() | _NAME),
    _SERVER_CONTENT,
    st.builds(m.ToolCall, function_calls=st.lists(_CALL, max_size=3).map(tuple)),
    st.builds(m.ToolCallCancellation, ids=st.lists(_NAME, max_size=3).map(tuple)),
    st.builds(m.GoAway, time_left=st.none() | _SECONDS),
    st.builds(
        m.SessionResumptionUpdate, new_handle=st.none() | _NAME, resumable=st.booleans(),
        last_consumed_client_message_index=st.none() | _INT64,
    ),
    st.builds(m.VoiceActivity, type=st.none() | st.sampled_from(["ACTIVITY_START", "ACTIVITY_END"]),
              audio_offset=st.none() | _SECONDS, extra=_EXTRA),
    st.builds(m.VoiceActivityDetectionSignal,
              vad_signal_type=st.none() | st.sampled_from(["VAD_SIGNAL_TYPE_SOS", "VAD_SIGNAL_TYPE_EOS"])),
)

_CONFIG = st.builds(
    LiveGenerationConfig,
    response_modalities=st.none() | st.sampled_from([("TEXT",), ("AUDIO",)]),
    system_instruction=st.none() | _TEXT | _CONTENT,
    context_window_compression=st.none() | st.builds(
        ContextWindowCompressionConfig,
        trigger_tokens=st.none() | st.integers(20_000, 128_000),
        sliding_window=st.none() | st.builds(SlidingWindow, target_tokens=st.none() | st.integers(0, 10_000)),
    ),
    temperature=st.none() | st.floats(0.0, 2.0),
    top_p=st.none() | st.floats(0.0, 1.0),
    top_k=st.none() | st.integers(1, 1_000_000),
    max_output_tokens=st.none() | st.integers(1, 1_000_000),
    seed=st.none() | _INT64,
    presence_penalty=st.none() | st.floats(-2.0, 2.0),
    frequency_penalty=st.none() | st.floats(-2.0, 2.0),
    speech_config=st.none() | st.builds(SpeechConfig, voice_name=st.none() | st.sampled_from(["Kore", "Puck"]),
                                        language_code=st.none() | st.sampled_from(["en-US", "de-DE"])),
    media_resolution=st.none() | st.sampled_from(["MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_HIGH"]),
    tools=st.none() | st.lists(_USER_OBJECT, max_size=2),
    input_audio_transcription=st.none() | st.booleans() | st.builds(
        AudioTranscriptionConfig, language_codes=st.lists(_NAME, max_size=2).map(tuple)),
    output_audio_transcription=st.none() | st.booleans(),
    realtime_input_config=st.none() | _USER_OBJECT.filter(bool),
    thinking=st.none() | st.builds(
        ThinkingConfig, thinking_level=st.none() | st.sampled_from(["LOW", "HIGH"]),
        thinking_budget=st.none() | st.integers(-1, 32_768), include_thoughts=st.none() | st.booleans(),
    ),
    enable_affective_dialog=st.none() | st.booleans(),
    proactivity=st.none() | st.builds(ProactivityConfig, proactive_audio=st.none() | st.booleans()),
    history_config=st.none() | st.builds(HistoryConfig, initial_history_in_client_content=st.booleans()),
    extra_setup=st.none() | st.fixed_dictionaries({"safetySettings": st.lists(_USER_OBJECT, max_size=2)}),
    extra_generation_config=_EXTRA,
)
_CLIENT_MESSAGE = st.one_of(
    st.builds(
        m.Setup, model=_NAME, config=_CONFIG,
        session_resumption=st.none() | st.builds(
            SessionResumptionConfig, handle=st.none() | _NAME, transparent=st.booleans()),
        extra=_EXTRA,
    ),
    st.builds(m.ClientContent, turns=st.lists(_CONTENT, max_size=3).map(tuple), turn_complete=st.booleans()),
    st.builds(m.RealtimeInput, audio=_BLOB),
    st.builds(m.RealtimeInput, video=_BLOB),
    st.builds(m.RealtimeInput, text=_TEXT),
    st.builds(m.RealtimeInput, media_chunks=st.lists(_BLOB, max_size=2).map(tuple)),
    st.sampled_from([m.ActivityStart, m.ActivityEnd, m.AudioStreamEnd]),
    st.builds(m.ToolResponse, function_responses=st.lists(_RESPONSE, max_size=3).map(tuple)),
    st.builds(m.ContextUpdate, system_instruction=st.none() | _CONTENT,
              tools=st.none() | st.lists(_USER_OBJECT, max_size=2).map(tuple)),
)


@_fuzz(400)
@given(_SERVER_MESSAGE, st.none() | _USAGE)
def test_server_messages_round_trip(message: m.ServerMessage, usage: m.UsageMetadata | None) -> None:
    frame = m.encode_server_frame(message, usage)
    assert m.parse_server_frame(frame) == [message] + ([usage] if usage is not None else [])


@_fuzz(150)
@given(_USAGE)
def test_usage_alone_round_trips(usage: m.UsageMetadata) -> None:
    assert m.parse_server_frame(m.encode_server_frame(usage)) == [usage]


@_fuzz(400)
@given(_CLIENT_MESSAGE)
def test_client_messages_round_trip(message: m.ClientMessage) -> None:
    assert m.parse_client_frame(m.encode_client_frame(message)) == message


# 1b. Valid frames with one subtree swapped for anything: wrong types deep inside right shapes.


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {**node, head: _replace(node[head], rest, value)}
    copy = list(node)
    copy[head] = _replace(node[head], rest, value)
    return copy


def _mutated(wire: dict[str, Any], data: st.DataObject) -> str:
    paths = list(_paths(wire))[1:]  # never the whole frame: the other tests do that
    path = data.draw(st.sampled_from(paths), label="path")
    return _dumps(_replace(wire, path, data.draw(_JSON, label="replacement")))


@_fuzz(400)
@given(_SERVER_MESSAGE, st.data())
def test_server_frames_with_a_wrongly_typed_subtree(message: m.ServerMessage, data: st.DataObject) -> None:
    wire = json.loads(m.encode_server_frame(message))
    parsed = _server_parses_or_refuses(_mutated(wire, data))
    if parsed is not None:
        _reencodes(parsed)


@_fuzz(400)
@given(_CLIENT_MESSAGE, st.data())
def test_client_frames_with_a_wrongly_typed_subtree(message: m.ClientMessage, data: st.DataObject) -> None:
    wire = json.loads(m.encode_client_frame(message))
    parsed = _client_parses_or_refuses(_mutated(wire, data))
    if parsed is not None:
        _client_reencodes(parsed)


# 3. The shapes a random search rarely reaches, written out.

_PARSERS = pytest.mark.parametrize("parse", [m.parse_server_frame, m.parse_client_frame], ids=["server", "client"])


@_PARSERS
@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        '{"toolCall": {"functionCalls": [{"name": "f", "args": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}]}}",
        '{"toolResponse": {"functionResponses": [' + "[" * 50_000,  # deep and truncated
        ("[" * 100_000 + "]" * 100_000).encode(),
    ],
    ids=["lists", "objects", "in-args", "truncated", "bytes"],
)
def test_deep_nesting_is_refused(parse: Callable[[str | bytes], object], frame: str | bytes) -> None:
    with pytest.raises(RemoteProtocolError, match=r"nested too deeply|not valid JSON|JSON object"):
        parse(frame)


@pytest.mark.parametrize("depth", [w.MAX_NESTING - 10, w.MAX_NESTING + 1, 300, 900])
def test_nesting_guard_sits_at_max_nesting(depth: int) -> None:
    """Below the guard, deep user data round-trips; above it, the frame is refused whatever Python's stack."""
    args = "[" * depth + "]" * depth
    frame = '{"toolCall": {"functionCalls": [{"name": "f", "args": {"x": ' + args + "}}]}}"
    if depth + 5 <= w.MAX_NESTING:
        (call,) = m.parse_server_frame(frame)
        assert m.parse_server_frame(m.encode_server_frame(call)) == [call]
    else:
        with pytest.raises(RemoteProtocolError, match="nested too deeply"):
            m.parse_server_frame(frame)


@_PARSERS
@pytest.mark.parametrize(
    "frame",
    [
        "NaN", "Infinity", "-Infinity", "1e400", "1" * 5000, '{"x": ' + "9" * 5000 + "}",
        b"\xff\xfe\x00", b'\xef\xbb\xbf{"setupComplete": {}}', '{"a": 1}'.encode("utf-16"),
        '{"a": "\\ud800"}', "\x00", "",
    ],
)
def test_odd_json_is_refused_or_parsed(parse: Callable[[str | bytes], object], frame: str | bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse(frame)


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ('{"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": 1e400}}', "lastConsumedClientMessageIndex"),
        ('{"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": NaN}}', "lastConsumedClientMessageIndex"),
        ('{"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": "99999999999999999999"}}',
         "lastConsumedClientMessageIndex"),
        ('{"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": 1e30}}', "lastConsumedClientMessageIndex"),
        ('{"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": "1_000"}}',
         "lastConsumedClientMessageIndex"),
        ('{"usageMetadata": {"totalTokenCount": -Infinity}}', "totalTokenCount"),
        ('{"toolCallCancellation": {"ids": [["fc-1"]]}}', "ids[0]"),
        ('{"toolCallCancellation": {"ids": [null]}}', "ids[0]"),
    ],
)
def test_huge_or_odd_numbers_are_refused_naming_the_field(frame: str, field: str) -> None:
    with pytest.raises(RemoteProtocolError, match=field.replace("[", r"\[").replace("]", r"\]")):
        m.parse_server_frame(frame)


def test_int64_reads_its_whole_range() -> None:
    for value in (-(2**63), 2**63 - 1, "9223372036854775807", "-9223372036854775808", 17.0, "+3"):
        frame = json.dumps({"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": value}})
        (update,) = m.parse_server_frame(frame)
        assert update.last_consumed_client_message_index == int(value)  # type: ignore[union-attr]


def test_lone_surrogates_encode_to_valid_utf8() -> None:
    """``"\\ud800"`` is valid JSON but not encodable as UTF-8: the emulator echoes such text back."""
    (content,) = m.parse_server_frame('{"serverContent": {"outputTranscription": {"text": "a\\ud800b"}}}')
    frame = m.encode_server_frame(content)
    frame.decode("utf-8")  # strict: what a WebSocket text frame must be
    assert m.parse_server_frame(frame) == [content]
    message = m.parse_client_frame('{"realtimeInput": {"text": "\\udfff"}}')
    text = m.encode_client_frame(message)
    text.encode("utf-8")
    assert m.parse_client_frame(text) == message


def test_unknown_field_log_memory_is_bounded() -> None:
    for i in range(w.MAX_UNKNOWN_LOGGED + 50):
        m.parse_server_frame(json.dumps({"serverContent": {f"fuzzField{i}": 1, "turnComplete": True}}))
    assert len(w._seen_unknown) <= w.MAX_UNKNOWN_LOGGED


# 4. Durations from the wire: never NaN, infinite, negative or absurd.

_DURATION_FIELDS = [
    ("goAway.timeLeft", lambda v: {"goAway": {"timeLeft": v}}),
    ("serverContent.inputTranscription.startOffset",
     lambda v: {"serverContent": {"inputTranscription": {"text": "x", "startOffset": v}}}),
    ("serverContent.outputTranscription.endOffset",
     lambda v: {"serverContent": {"outputTranscription": {"text": "x", "endOffset": v}}}),
    ("serverContent.inputTranscription.words[0].startOffset",
     lambda v: {"serverContent": {"inputTranscription": {"words": [{"word": "x", "startOffset": v}]}}}),
    ("voiceActivity.audioOffset", lambda v: {"voiceActivity": {"type": "ACTIVITY_START", "audioOffset": v}}),
]
_BAD_DURATIONS: list[tuple[str, Any, str]] = [
    ("nan-number", "NaN", "not a finite number"),
    ("inf-number", "Infinity", "not a finite number"),
    ("minus-inf-number", "-Infinity", "not a finite number"),
    ("huge-number", "1e400", "not a finite number"),
    ("negative-number", "-5", "negative"),
    ("over-max-number", str(int(w.MAX_DURATION_SECONDS) + 1), "above"),
    ("nans", '"nans"', "Duration"),
    ("infs", '"infs"', "Duration"),
    ("minus-infs", '"-infs"', "Duration"),
    ("negative", '"-5s"', "negative"),
    ("negative-fraction", '"-0.5s"', "negative"),
    ("exponent", '"1e400s"', "Duration"),
    ("over-max", '"90000s"', "above"),
    ("huge-digits", '"' + "9" * 400 + 's"', "above"),
    ("proto-negative", '{"seconds": "-1"}', "negative"),
    ("proto-huge", '{"seconds": "99999999999999999999999"}', "int64|above"),
    ("proto-bad-nanos", '{"seconds": 1, "nanos": 2000000000}', "nanos"),
    ("bool", "true", "Duration"),
    ("list", "[1]", "Duration"),
]


@pytest.mark.parametrize(("where", "build"), _DURATION_FIELDS, ids=[f[0] for f in _DURATION_FIELDS])
@pytest.mark.parametrize(("literal", "words"), [(b[1], b[2]) for b in _BAD_DURATIONS],
                         ids=[b[0] for b in _BAD_DURATIONS])
def test_bad_durations_are_refused_naming_field_and_value(
    where: str, build: Callable[[Any], dict[str, Any]], literal: str, words: str
) -> None:
    frame = json.dumps(build("@@")).replace('"@@"', literal)
    with pytest.raises(RemoteProtocolError, match=words) as info:
        m.parse_server_frame(frame)
    text = str(info.value)
    assert where in text, text
    assert info.value.excerpt, "the error carries the offending value"


@pytest.mark.parametrize(
    ("literal", "seconds"),
    [('"50s"', 50.0), ('"1.5s"', 1.5), ('"0s"', 0.0), ("50", 50.0), ("0.25", 0.25), ('" 2s "', 2.0),
     ('"000.000000001s"', 1e-9), ('{"seconds": "50", "nanos": 500000000}', 50.5),
     (f'"{int(w.MAX_DURATION_SECONDS)}s"', w.MAX_DURATION_SECONDS)],
)
def test_good_durations_read_as_finite_seconds(literal: str, seconds: float) -> None:
    (go_away,) = m.parse_server_frame('{"goAway": {"timeLeft": ' + literal + "}}")
    assert isinstance(go_away, m.GoAway) and go_away.time_left == pytest.approx(seconds)
    assert go_away.time_left is not None and math.isfinite(go_away.time_left)


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -math.inf, -1.0, w.MAX_DURATION_SECONDS + 1])
def test_bad_durations_are_not_encoded_either(seconds: float) -> None:
    with pytest.raises(LocalProtocolError, match=r"time_left|Duration"):
        m.encode_server_frame(m.GoAway(time_left=seconds))


# 5. Setup: a wrong type is a protocol error; a right type out of range stays a ConfigError.


@pytest.mark.parametrize(
    ("setup", "field"),
    [
        ({"generationConfig": {"temperature": "hot"}}, "temperature"),
        ({"generationConfig": {"temperature": True}}, "temperature"),
        ({"generationConfig": {"temperature": float("nan")}}, "temperature"),  # NaN is no JSON number
        ({"generationConfig": {"presencePenalty": float("-inf")}}, "presencePenalty"),
        ({"generationConfig": {"topP": [0.5]}}, "topP"),
        ({"generationConfig": {"presencePenalty": "x"}}, "presencePenalty"),
        ({"generationConfig": {"frequencyPenalty": {}}}, "frequencyPenalty"),
        ({"generationConfig": {"responseModalities": [1]}}, "responseModalities"),
        ({"generationConfig": {"responseModalities": [["TEXT"]]}}, "responseModalities"),
        ({"generationConfig": {"responseModalities": "TEXT"}}, "responseModalities"),
        ({"generationConfig": {"mediaResolution": 3}}, "mediaResolution"),
        ({"generationConfig": {"thinkingConfig": {"thinkingLevel": ["LOW"]}}}, "thinkingLevel"),
        ({"generationConfig": {"speechConfig": {"languageCode": 5}}}, "languageCode"),
        ({"generationConfig": []}, "generationConfig"),
        ({"generationConfig": "x"}, "generationConfig"),
        ({"inputAudioTranscription": {"languageCodes": [1]}}, "languageCodes"),
        ({"outputAudioTranscription": {"customVocabulary": [None]}}, "customVocabulary"),
        ({"inputAudioTranscription": True}, "inputAudioTranscription"),
        ({"tools": [1]}, "tools[0]"),
        ({"tools": {"functionDeclarations": []}}, "tools"),
        ({"realtimeInputConfig": []}, "realtimeInputConfig"),
        ({"realtimeInputConfig": "auto"}, "realtimeInputConfig"),
        ({"contextWindowCompression": {"slidingWindow": {"targetTokens": "many"}}}, "slidingWindow.targetTokens"),
        ({"contextWindowCompression": {"triggerTokens": 1.5}}, "triggerTokens"),
        ({"systemInstruction": "be brief"}, "systemInstruction"),
        ({"sessionResumption": {"handle": 7}}, "handle"),
    ],
)
def test_setup_with_wrong_types_is_a_remote_protocol_error(setup: dict[str, Any], field: str) -> None:
    frame = json.dumps({"setup": {"model": "models/gemini-3.8-live", **setup}})
    with pytest.raises(RemoteProtocolError, match=field.replace("[", r"\[").replace("]", r"\]")):
        m.parse_client_frame(frame)


@pytest.mark.parametrize(
    ("setup", "field"),
    [
        ({"generationConfig": {"temperature": 5}}, "temperature"),
        ({"generationConfig": {"responseModalities": ["VIDEO"]}}, "response_modalities"),
        ({"generationConfig": {"topK": 0}}, "top_k"),
        ({"contextWindowCompression": {"triggerTokens": "100", "slidingWindow": {}}}, "trigger_tokens"),
        ({"inputAudioTranscription": {"languageCodes": [""]}}, "language_codes"),
        ({"generationConfig": {"thinkingConfig": {"thinkingLevel": "ENORMOUS"}}}, "thinking_level"),
    ],
)
def test_setup_with_values_out_of_range_stays_a_config_error(setup: dict[str, Any], field: str) -> None:
    frame = json.dumps({"setup": {"model": "models/gemini-3.8-live", **setup}})
    with pytest.raises(ConfigError, match=field):
        m.parse_client_frame(frame)


@pytest.mark.parametrize(
    "frame",
    [
        '{"contextUpdate": {"tools": [1, 2]}}',
        '{"contextUpdate": {"tools": {"tools": ["x"]}}}',
        '{"realtimeInput": {"mediaChunks": [[]]}}',
        '{"clientContent": {"turns": [{"parts": [{"functionResponse": {"name": "f", "response": []}}]}]}}',
    ],
)
def test_client_frames_with_wrong_types_are_refused(frame: str) -> None:
    with pytest.raises(RemoteProtocolError):
        m.parse_client_frame(frame)


# 4. parse_server_frame's fast path gives exactly what the general path gives: the same messages,
# or the same RemoteProtocolError (type and message), on anything.


def _outcome(parse: Callable[[str], object], frame: str) -> object:
    try:
        result = parse(frame)
    except RemoteProtocolError as exc:
        return (type(exc), str(exc))
    return repr(result)  # repr: a NaN in opaque data is never equal to itself


def _fast_agrees_with_general(frame: str) -> None:
    general = _outcome(lambda f: m._parse_general(w.decode_json(f), f), frame)
    assert _outcome(m.parse_server_frame, frame) == general


# Reply frames as the service and the emulator write them: the fast path's shapes, often valid.
_HOT_TRANSCRIPTION = st.builds(m.Transcription, text=_TEXT, finished=st.none() | st.booleans())
_HOT_PART = st.builds(c.Part, text=_TEXT) | st.builds(c.Part, inline_data=_BLOB)
_HOT_CONTENT = st.builds(
    m.ServerContent,
    model_turn=st.none() | st.builds(c.Content, role=st.none() | st.just("model"),
                                     parts=st.lists(_HOT_PART, max_size=3).map(tuple)),
    turn_complete=st.booleans(),
    interrupted=st.booleans(),
    generation_complete=st.booleans(),
    output_transcription=st.none() | _HOT_TRANSCRIPTION,
    input_transcription=st.none() | _HOT_TRANSCRIPTION,
    waiting_for_input=st.booleans(),
)


@_fuzz(300)
@given(_HOT_CONTENT, st.none() | _USAGE)
def test_fast_path_agrees_on_reply_frames(message: m.ServerContent, usage: m.UsageMetadata | None) -> None:
    frame = m.encode_server_frame(message, usage).decode()
    _fast_agrees_with_general(frame)
    assert m._fast_frame(json.loads(frame)) is not None  # these frames do take the fast path


@_fuzz(400)
@given(_HOT_CONTENT, st.none() | _USAGE, st.data())
def test_fast_path_agrees_on_reply_frames_with_a_wrongly_typed_subtree(
    message: m.ServerContent, usage: m.UsageMetadata | None, data: st.DataObject
) -> None:
    wire = json.loads(m.encode_server_frame(message, usage))
    if len(list(_paths(wire))) > 1:
        _fast_agrees_with_general(_mutated(wire, data))


@_fuzz(300)
@given(_SERVER_KEYS, _JSON, st.none() | _JSON)
def test_fast_path_agrees_on_arbitrary_bodies(key: str, body: Any, usage: Any) -> None:
    frame: dict[str, Any] = {key: body}
    if usage is not None:
        frame["usageMetadata"] = usage
    _fast_agrees_with_general(_dumps(frame))


@_fuzz(300)
@given(_SERVER_MESSAGE, st.none() | _USAGE, st.data())
def test_fast_path_agrees_on_server_frames_with_a_wrongly_typed_subtree(
    message: m.ServerMessage, usage: m.UsageMetadata | None, data: st.DataObject
) -> None:
    wire = json.loads(m.encode_server_frame(message, usage))
    if len(list(_paths(wire))) > 1:
        _fast_agrees_with_general(_mutated(wire, data))


@pytest.mark.parametrize("depth", [w.MAX_NESTING - 5, w.MAX_NESTING - 4, w.MAX_NESTING - 3, w.MAX_NESTING + 1, 5000])
def test_fast_path_keeps_the_nesting_limit(depth: int) -> None:
    """Deep values inside a reply frame's shape leave the fast path and meet the nesting check."""
    deep = "[" * depth + "]" * depth
    for frame in (
        '{"serverContent": {"outputTranscription": {"text": ' + deep + "}}}",
        '{"serverContent": {"modelTurn": {"parts": [{"text": ' + deep + "}]}}}",
        '{"serverContent": {}, "usageMetadata": {"promptTokensDetails": [{"modality": ' + deep + "}]}}",
    ):
        _fast_agrees_with_general(frame)
        if depth > w.MAX_NESTING:
            with pytest.raises(RemoteProtocolError, match="nested too deeply"):
                m.parse_server_frame(frame)
