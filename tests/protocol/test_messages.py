"""Wire messages: decoding tolerances, canonical encoding, and Google's SDK types as an oracle."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from google.genai import types as genai_types

from live_nb.exceptions import LocalProtocolError, RemoteProtocolError
from live_nb.protocol import audio
from live_nb.protocol import content as c
from live_nb.protocol import messages as m
from live_nb.protocol.config import (
    ContextWindowCompressionConfig,
    LiveGenerationConfig,
    SessionResumptionConfig,
    SlidingWindow,
)

# Every server sample of live-protocol.md section 3, verbatim.
SERVER_SAMPLES = [
    '{"setupComplete": {"sessionId": "sess-123"}}',
    '{"serverContent": {"modelTurn": {"role": "model", "parts": [{"text": "Hello "}]}}}',
    '{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AAECAw=="}}]}}}',
    '{"serverContent": {"outputTranscription": {"text": "Hello"}}}',
    '{"serverContent": {"inputTranscription": {"text": "hi there", "finished": true}}}',
    '{"serverContent": {"interrupted": true}}',
    '{"serverContent": {"generationComplete": true}}',
    """{"serverContent": {"turnComplete": true},
 "usageMetadata": {"promptTokenCount": 522, "responseTokenCount": 42, "totalTokenCount": 564, "thoughtsTokenCount": 136,
   "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 332}, {"modality": "AUDIO", "tokenCount": 165}],
   "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 42}]}}""",
    '{"toolCall": {"functionCalls": [{"id": "fc-1", "name": "get_time", "args": {"tz": "UTC"}}]}}',
    '{"toolCallCancellation": {"ids": ["fc-1"]}}',
    '{"sessionResumptionUpdate": {"newHandle": "<opaque>", "resumable": true, "lastConsumedClientMessageIndex": "17"}}',
    '{"goAway": {"timeLeft": "50s"}}',
]


@pytest.mark.parametrize("sample", SERVER_SAMPLES)
def test_every_documented_server_sample_decodes(sample: str) -> None:
    parsed = m.parse_server_frame(sample)
    assert parsed and not any(isinstance(p, m.UnknownMessage) for p in parsed)
    # Round trip: our canonical encoding decodes to the same typed messages.
    payload = [p for p in parsed if not isinstance(p, m.UsageMetadata)]
    usage = next((p for p in parsed if isinstance(p, m.UsageMetadata)), None)
    assert m.parse_server_frame(m.encode_server_frame(payload[0], usage)) == parsed


def test_server_sample_fields_are_typed() -> None:
    update = m.parse_server_frame(SERVER_SAMPLES[10])[0]
    assert update == m.SessionResumptionUpdate("<opaque>", True, 17)
    assert m.parse_server_frame(SERVER_SAMPLES[11]) == [m.GoAway(50.0)]
    content, usage = m.parse_server_frame(SERVER_SAMPLES[7])
    assert isinstance(content, m.ServerContent) and content.turn_complete
    assert isinstance(usage, m.UsageMetadata)
    assert usage.prompt_tokens_by_modality() == {"TEXT": 332, "AUDIO": 165}
    assert usage.response_tokens_by_modality() == {"AUDIO": 42}
    audio = m.parse_server_frame(SERVER_SAMPLES[2])[0]
    assert isinstance(audio, m.ServerContent) and audio.audio == b"\x00\x01\x02\x03"


def test_snake_case_and_string_int64_and_urlsafe_base64_at_every_level() -> None:
    frame = json.dumps(
        {
            "server_content": {
                "model_turn": {"parts": [{"inline_data": {"mime_type": "audio/pcm", "data": "-vv8__r7_P_6-_z_-vv8_w=="}}]},
                "turn_complete": True,
            },
            "usage_metadata": {
                "prompt_token_count": "10",
                "candidates_token_count": "3",
                "candidates_tokens_details": [{"modality": "TEXT", "token_count": "3"}],
            },
        }
    )
    content, usage = m.parse_server_frame(frame.encode())  # a binary frame
    assert isinstance(content, m.ServerContent) and isinstance(usage, m.UsageMetadata)
    assert content.audio == base64.urlsafe_b64decode("-vv8__r7_P_6-_z_-vv8_w==")
    assert usage.prompt_token_count == 10 and usage.response_token_count == 3
    assert usage.response_tokens_by_modality() == {"TEXT": 3}


def test_unpadded_base64_and_fractional_duration() -> None:
    frame = '{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm","data":"AAEC"}}]}}}'
    assert m.parse_server_frame(frame)[0].audio == b"\x00\x01\x02"  # type: ignore[union-attr]
    frame = '{"serverContent":{"modelTurn":{"parts":[{"inlineData":{"mimeType":"audio/pcm","data":"AAE"}}]}}}'
    assert m.parse_server_frame(frame)[0].audio == b"\x00\x01"  # type: ignore[union-attr]
    assert m.parse_server_frame('{"goAway":{"timeLeft":"1.5s"}}') == [m.GoAway(1.5)]


def test_unknown_fields_and_keys_are_kept_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="live_nb.protocol")
    frame = '{"serverContent":{"turnComplete":true,"futureFlagX":1},"brandNewMessageX":{"a":1}}'
    first = m.parse_server_frame(frame)
    second = m.parse_server_frame(frame)
    assert first == second
    content, unknown = first
    assert isinstance(content, m.ServerContent) and content.extra == {"futureFlagX": 1}
    assert unknown == m.UnknownMessage("brandNewMessageX", {"a": 1})
    notes = [r.getMessage() for r in caplog.records if "X" in r.getMessage()]
    assert len(notes) == 2  # one per unknown name, not one per frame


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"goAway": {"timeLeft": "soon"}}', "Duration"),
        ('{"sessionResumptionUpdate": {"lastConsumedClientMessageIndex": "x1"}}', "integer"),
        ('{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "%%%"}}]}}}', "base64"),
        ('{"serverContent": {"turnComplete": "yes"}}', "true or false"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_server_frames_raise_remote_protocol_error_with_excerpt(frame: str | bytes, words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=words) as info:
        m.parse_server_frame(frame)
    assert info.value.excerpt


def test_client_frames_accept_the_sdks_mixed_casing() -> None:
    # Captured from google-genai (live-protocol.md section 2).
    setup = m.parse_client_frame(
        json.dumps(
            {
                "setup": {
                    "model": "models/gemini-live-2.5-flash-preview",
                    "generationConfig": {"responseModalities": ["TEXT"], "temperature": 0.3},
                    "systemInstruction": {"parts": [{"text": "You are a test."}], "role": "user"},
                    "sessionResumption": {"handle": "prev-handle"},
                    "contextWindowCompression": {"trigger_tokens": 25600, "sliding_window": {"target_tokens": 12800}},
                    "realtimeInputConfig": {"automatic_activity_detection": {"disabled": True}},
                }
            }
        )
    )
    assert isinstance(setup, m.Setup)
    assert setup.config.response_modality == "TEXT"
    assert setup.config.system_instruction_text == "You are a test."
    assert setup.session_resumption == SessionResumptionConfig(handle="prev-handle")
    cwc = setup.config.context_window_compression
    assert cwc is not None and (cwc.effective_trigger_tokens, cwc.effective_target_tokens) == (25600, 12800)
    assert setup.config.automatic_activity_detection is False

    audio = m.parse_client_frame('{"realtime_input": {"audio": {"data": "-vv8_w==", "mime_type": "audio/pcm;rate=16000"}}}')
    assert isinstance(audio, m.RealtimeInput) and audio.audio is not None
    assert audio.audio.data == base64.urlsafe_b64decode("-vv8_w==")
    tool = m.parse_client_frame(
        '{"tool_response": {"functionResponses": [{"id": "fc-1", "name": "get_time", '
        '"response": {"result_value": "12:00"}, "will_continue": false}]}}'
    )
    assert isinstance(tool, m.ToolResponse)
    # User data keeps its own keys: result_value is not turned into resultValue.
    assert tool.function_responses[0].response == {"result_value": "12:00"}
    update = m.parse_client_frame('{"contextUpdate": {"systemInstruction": {"parts": [{"text": "new"}]}}}')
    assert isinstance(update, m.ContextUpdate) and update.system_instruction is not None
    assert m.parse_client_frame('{"realtimeInput": {"activityStart": {}}}') == m.ActivityStart


@pytest.mark.parametrize("frame", ['{"setup": {}, "clientContent": {}}', '{"bogus": {}}', '{"setup": {}}'])
def test_bad_client_frames(frame: str) -> None:
    with pytest.raises(RemoteProtocolError):
        m.parse_client_frame(frame)


def _all_client_messages() -> list[m.ClientMessage]:
    config = LiveGenerationConfig(
        response_modalities=["AUDIO"],
        system_instruction="Be brief.",
        context_window_compression=ContextWindowCompressionConfig(
            trigger_tokens=20_000, sliding_window=SlidingWindow(target_tokens=8_000)
        ),
        temperature=0.5,
        speech_config={"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
        tools=[{"functionDeclarations": [{"name": "get_time", "parameters": {"type": "OBJECT"}}]}],
        input_audio_transcription=True,
        output_audio_transcription=True,
    )
    return [
        m.Setup("models/gemini-live-2.5-flash-preview", config, SessionResumptionConfig(handle="h", transparent=True)),
        m.ClientContent(c.as_turns(["hi", {"role": "model", "parts": [{"text": "hello"}]}]), turn_complete=True),
        m.ClientContent(c.as_turns("new rule", role="system")),
        m.RealtimeInput(audio=c.Blob(b"\x01\x02" * 50, "audio/pcm;rate=16000")),
        m.RealtimeInput(video=c.Blob(b"\xff\xd8jpeg", "image/jpeg")),
        m.RealtimeInput(text="typed"),
        m.AudioStreamEnd,
        m.ActivityStart,
        m.ActivityEnd,
        m.ToolResponse((c.FunctionResponse("get_time", {"result": "12:00"}, id="fc-1"),)),
        m.ToolResponse(
            (
                c.FunctionResponse(
                    "plot", {"caption": "a chart"}, id="fc-2", will_continue=False, scheduling="WHEN_IDLE",
                    parts=(c.FunctionResponsePart(c.Blob(b"\x89PNG", "image/png", display_name="chart.png")),),
                ),
            )
        ),
        m.ContextUpdate(system_instruction=c.as_content("updated", role="user")),
    ]


@pytest.mark.parametrize("message", _all_client_messages(), ids=lambda msg: type(msg).__name__)
def test_our_wire_json_validates_against_the_sdks_pydantic_types(message: m.ClientMessage) -> None:
    wire = json.loads(m.encode_client_frame(message))
    parsed = genai_types.LiveClientMessage.model_validate(wire)
    assert parsed.model_dump(exclude_none=True)  # the SDK understood a non-empty message
    # And we read back exactly what we wrote.
    assert m.parse_client_frame(json.dumps(wire)) == message


def test_fast_audio_encoding_matches_the_general_encoder() -> None:
    pcm = bytes(range(256)) * 12
    fast = m.encode_realtime_audio(pcm)
    assert json.loads(fast) == json.loads(m.encode_client_frame(m.RealtimeInput(audio=c.Blob(pcm, audio.INPUT_AUDIO_MIME))))


def test_canonical_encoding_is_camel_case_with_string_int64() -> None:
    setup = _all_client_messages()[0]
    wire = json.loads(m.encode_client_frame(setup))["setup"]
    assert wire["contextWindowCompression"] == {"triggerTokens": "20000", "slidingWindow": {"targetTokens": "8000"}}
    assert wire["sessionResumption"] == {"handle": "h", "transparent": True}
    assert wire["generationConfig"]["responseModalities"] == ["AUDIO"]
    update = json.loads(m.encode_server_frame(m.SessionResumptionUpdate("h2", True, 5)))
    assert update == {"sessionResumptionUpdate": {"newHandle": "h2", "resumable": True, "lastConsumedClientMessageIndex": "5"}}


def test_as_turns_rejects_what_is_not_a_turn() -> None:
    with pytest.raises(LocalProtocolError, match="turn"):
        c.as_turns(42)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="not a valid turn"):
        c.as_turns({"parts": "nope"})


def test_realtime_input_config_validates_against_its_sdk_type() -> None:
    # google-genai sends setup.realtimeInputConfig (live-protocol.md section 2) but its LiveClientSetup
    # model does not declare it, so we check that piece against types.RealtimeInputConfig on its own.
    config = LiveGenerationConfig(
        realtime_input_config={"automaticActivityDetection": {"disabled": True}, "activityHandling": "NO_INTERRUPTION"}
    )
    wire = json.loads(m.encode_client_frame(m.Setup("models/x", config)))["setup"]
    ric = genai_types.RealtimeInputConfig.model_validate(wire.pop("realtimeInputConfig"))
    assert ric.automatic_activity_detection is not None and ric.automatic_activity_detection.disabled is True
    genai_types.LiveClientMessage.model_validate({"setup": wire})
    assert config.automatic_activity_detection is False


# Fields today's Live models send (models.md section 4, live-protocol.md section 3).


def _snake_keys(value: object) -> object:
    """The same wire JSON with every key in its snake_case spelling, as proto3 parsers also accept."""
    if isinstance(value, dict):
        return {m._snake(k): _snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake_keys(v) for v in value]
    return value


RICH_CONTENT_WIRE = {
    "serverContent": {
        "interimInputTranscription": {"text": "what's the wea", "languageCode": "en-US"},
        "inputTranscription": {
            "text": "what's the weather",
            "finished": True,
            "languageCode": "en-US",
            "speakerLabel": "spk_1",
            "startOffset": "1.5s",
            "endOffset": "2.75s",
            "words": [
                {"word": "what's", "startOffset": "1.5s", "endOffset": "1.8s"},
                {"word": "the", "startOffset": "1.8s", "endOffset": "1.9s"},
            ],
        },
        "outputTranscription": {"text": "Sunny.", "finished": False, "languageCode": "en-GB"},
        "generationComplete": True,
        "turnComplete": True,
        "turnCompleteReason": "NEED_MORE_INPUT",
        "interactionStatus": "IN_PROGRESS",
        "waitingForInput": True,
    }
}

RICH_CONTENT = m.ServerContent(
    interim_input_transcription=m.Transcription("what's the wea", language_code="en-US"),
    input_transcription=m.Transcription(
        "what's the weather",
        finished=True,
        language_code="en-US",
        speaker_label="spk_1",
        start_offset=1.5,
        end_offset=2.75,
        words=(m.WordInfo("what's", 1.5, 1.8), m.WordInfo("the", 1.8, 1.9)),
    ),
    output_transcription=m.Transcription("Sunny.", finished=False, language_code="en-GB"),
    generation_complete=True,
    turn_complete=True,
    turn_complete_reason="NEED_MORE_INPUT",
    interaction_status="IN_PROGRESS",
    waiting_for_input=True,
)


@pytest.mark.parametrize("casing", ["camel", "snake"])
def test_serverContent_3x_fields_are_typed_in_either_casing(casing: str) -> None:
    wire = RICH_CONTENT_WIRE if casing == "camel" else _snake_keys(RICH_CONTENT_WIRE)
    assert m.parse_server_frame(json.dumps(wire)) == [RICH_CONTENT]
    assert RICH_CONTENT.extra is None and RICH_CONTENT.input_transcription is not None
    assert RICH_CONTENT.input_transcription.extra is None


def test_serverContent_3x_fields_encode_to_canonical_camel_case_and_back() -> None:
    frame = m.encode_server_frame(RICH_CONTENT)
    assert json.loads(frame) == RICH_CONTENT_WIRE
    assert m.parse_server_frame(frame) == [RICH_CONTENT]


def test_interaction_status_rides_on_each_filler_turn_complete() -> None:
    # gemini-3.8-live-extended-thinking: a filler ends IN_PROGRESS, the whole answer ends IDLE.
    for status in ("IN_PROGRESS", "REQUIRES_ACTION", "IDLE"):
        content = m.ServerContent(turn_complete=True, interaction_status=status)
        wire = json.loads(m.encode_server_frame(content))
        assert wire == {"serverContent": {"turnComplete": True, "interactionStatus": status}}
        assert m.parse_server_frame(json.dumps(wire)) == [content]


def test_grounding_and_url_context_metadata_are_kept_as_given() -> None:
    grounding = {"webSearchQueries": ["weather"], "groundingChunks": [{"web": {"uri": "https://x"}}]}
    urls = {"urlMetadata": [{"retrievedUrl": "https://x", "url_retrieval_status": "URL_RETRIEVAL_STATUS_SUCCESS"}]}
    frame = json.dumps({"serverContent": {"groundingMetadata": grounding, "urlContextMetadata": urls}})
    (content,) = m.parse_server_frame(frame)
    assert isinstance(content, m.ServerContent) and content.extra is None
    assert content.grounding_metadata == grounding and content.url_context_metadata == urls
    assert json.loads(m.encode_server_frame(content)) == json.loads(frame)


def test_unknown_transcription_fields_are_kept_and_round_trip() -> None:
    frame = '{"serverContent":{"outputTranscription":{"text":"hi","confidenceX":0.9}}}'
    (content,) = m.parse_server_frame(frame)
    assert isinstance(content, m.ServerContent) and content.output_transcription is not None
    assert content.output_transcription.extra == {"confidenceX": 0.9}
    assert json.loads(m.encode_server_frame(content)) == json.loads(frame)


@pytest.mark.parametrize("casing", ["camel", "snake"])
def test_voice_activity_and_vad_signal_are_typed_in_either_casing(casing: str) -> None:
    activity = {"voiceActivity": {"type": "ACTIVITY_START", "audioOffset": "12.345s"}}
    signal = {"voiceActivityDetectionSignal": {"vadSignalType": "VAD_SIGNAL_TYPE_EOS"}}
    if casing == "snake":
        activity, signal = _snake_keys(activity), _snake_keys(signal)  # type: ignore[assignment]
    assert m.parse_server_frame(json.dumps(activity)) == [m.VoiceActivity("ACTIVITY_START", 12.345)]
    assert m.parse_server_frame(json.dumps(signal)) == [m.VoiceActivityDetectionSignal("VAD_SIGNAL_TYPE_EOS")]


def test_voice_activity_messages_round_trip_under_their_own_keys() -> None:
    cases: list[tuple[m.ServerMessage, dict[str, object]]] = [
        (m.VoiceActivity("ACTIVITY_END", 3.0), {"voiceActivity": {"type": "ACTIVITY_END", "audioOffset": "3s"}}),
        (m.VoiceActivity("ACTIVITY_START"), {"voiceActivity": {"type": "ACTIVITY_START"}}),
        (
            m.VoiceActivityDetectionSignal("VAD_SIGNAL_TYPE_SOS"),
            {"voiceActivityDetectionSignal": {"vadSignalType": "VAD_SIGNAL_TYPE_SOS"}},
        ),
    ]
    for message, wire in cases:
        frame = m.encode_server_frame(message)
        assert json.loads(frame) == wire
        assert m.parse_server_frame(frame) == [message]


@pytest.mark.parametrize("frame", ["{}", b"{}", " { } "])
def test_empty_frames_mean_nothing_happened(frame: str | bytes, caplog: pytest.LogCaptureFixture) -> None:
    # gemini-3.8-live sends {} between content messages: no message, no error, no log line.
    caplog.set_level(logging.DEBUG, logger="live_nb")
    assert m.parse_server_frame(frame) == []
    assert m.parse_server_frame('{"serverContent": {}}') == []
    assert not caplog.records


def test_usage_only_serverContent_parses_into_the_usage() -> None:
    # 3.1-flash-live: an empty serverContent carrying only usage.
    frame = '{"serverContent": {}, "usageMetadata": {"promptTokenCount": 10, "totalTokenCount": 12}}'
    assert m.parse_server_frame(frame) == [m.UsageMetadata(prompt_token_count=10, total_token_count=12)]
    usage = m.UsageMetadata(prompt_token_count=7, response_token_count=2, total_token_count=9)
    emitted = m.encode_server_frame(m.ServerContent(), usage)  # what an emulator sends to mimic it
    assert json.loads(emitted)["serverContent"] == {}
    assert m.parse_server_frame(emitted) == [usage]


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        ('{"voiceActivity": {"type": "ACTIVITY_START", "audioOffset": "soon"}}', "Duration"),
        ('{"serverContent": {"inputTranscription": {"text": "x", "endOffset": "1.5 s"}}}', "Duration"),
        ('{"serverContent": {"inputTranscription": {"words": {"word": "x"}}}}', "JSON array"),
        ('{"serverContent": {"outputTranscription": {"languageCode": 7}}}', "must be a string"),
        ('{"serverContent": {"interactionStatus": 1}}', "must be a string"),
        ('{"serverContent": {"groundingMetadata": []}}', "JSON object"),
    ],
)
def test_malformed_3x_fields_raise_remote_protocol_error(frame: str, words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=words):
        m.parse_server_frame(frame)


def _sdk_reads(frame: bytes, vertex: bool) -> genai_types.LiveServerMessage:
    """What google-genai's AsyncSession._receive makes of a frame.

    It maps the top-level keys (and voiceActivity.type -> voice_activity_type) with its own
    converter, then builds LiveServerMessage. We validate strictly (extra fields forbidden) instead
    of its lenient _from_response, so a misspelt key fails here rather than vanishing.
    """
    from google.genai import _live_converters

    convert = (
        _live_converters._LiveServerMessage_from_vertex if vertex else _live_converters._LiveServerMessage_from_mldev
    )
    return genai_types.LiveServerMessage.model_validate(convert(json.loads(frame)))


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini", "vertex"])
def test_the_sdk_reads_our_3x_server_fields(vertex: bool) -> None:
    content = _sdk_reads(m.encode_server_frame(RICH_CONTENT), vertex).server_content
    assert content is not None
    assert content.interaction_status == genai_types.InteractionStatus.IN_PROGRESS
    assert content.generation_complete is True and content.turn_complete is True
    assert content.turn_complete_reason == genai_types.TurnCompleteReason.NEED_MORE_INPUT
    assert content.waiting_for_input is True
    heard = content.input_transcription
    assert heard is not None
    assert (heard.text, heard.finished, heard.language_code, heard.speaker_label) == (
        "what's the weather",
        True,
        "en-US",
        "spk_1",
    )
    assert (heard.start_offset, heard.end_offset) == ("1.5s", "2.75s")
    assert heard.words is not None and [(x.word, x.start_offset, x.end_offset) for x in heard.words] == [
        ("what's", "1.5s", "1.8s"),
        ("the", "1.8s", "1.9s"),
    ]
    assert content.output_transcription is not None and content.output_transcription.language_code == "en-GB"
    assert content.interim_input_transcription is not None
    assert content.interim_input_transcription.text == "what's the wea"

    activity = _sdk_reads(m.encode_server_frame(m.VoiceActivity("ACTIVITY_END", 2.5)), vertex).voice_activity
    assert activity is not None
    assert activity.voice_activity_type == genai_types.VoiceActivityType.ACTIVITY_END
    assert activity.audio_offset == "2.5s"

    signal = _sdk_reads(m.encode_server_frame(m.VoiceActivityDetectionSignal("VAD_SIGNAL_TYPE_SOS")), vertex)
    assert signal.voice_activity_detection_signal is not None
    assert signal.voice_activity_detection_signal.vad_signal_type == genai_types.VadSignalType.VAD_SIGNAL_TYPE_SOS

    usage = m.UsageMetadata(prompt_token_count=7, total_token_count=9)
    usage_only = _sdk_reads(m.encode_server_frame(m.ServerContent(), usage), vertex)
    assert usage_only.usage_metadata is not None and usage_only.usage_metadata.prompt_token_count == 7

    # And an empty frame is an empty message to the SDK too, not an error.
    assert _sdk_reads(b"{}", vertex).model_dump(exclude_none=True) == {}


# --- Function calls and responses: parts, scheduling, streamed arguments (issue 13) ---------------

STREAMED_CALL = m.ToolCall(
    (
        c.FunctionCall(
            "write",
            {},
            id="fc-9",
            partial_args=(
                c.PartialArg("$.title", string_value="Hel", will_continue=True),
                c.PartialArg("$.size", number_value=3),
                c.PartialArg("$.draft", bool_value=False),
                c.PartialArg("$.note", null_value=True),
            ),
            will_continue=True,
        ),
    )
)


def test_function_response_parts_round_trip_and_reach_the_sdk() -> None:
    response = c.FunctionResponse(
        "plot", {"caption": "a chart"}, id="fc-2",
        parts=(
            c.FunctionResponsePart(c.Blob(b"\x89PNG", "image/png")),
            c.FunctionResponsePart(extra={"fileData": {"fileUri": "gs://b/o.png", "mimeType": "image/png"}}),
        ),
    )
    frame = m.encode_client_frame(m.ToolResponse((response,)))
    wire = json.loads(frame)["toolResponse"]["functionResponses"][0]
    assert wire["parts"] == [
        {"inlineData": {"data": base64.b64encode(b"\x89PNG").decode(), "mimeType": "image/png"}},
        {"fileData": {"fileUri": "gs://b/o.png", "mimeType": "image/png"}},
    ]
    assert m.parse_client_frame(frame) == m.ToolResponse((response,))
    sdk = genai_types.LiveClientMessage.model_validate(json.loads(frame)).tool_response
    assert sdk is not None and sdk.function_responses is not None
    [parsed] = sdk.function_responses
    assert parsed.parts is not None and parsed.parts[0].inline_data is not None
    assert parsed.parts[0].inline_data.data == b"\x89PNG"
    assert parsed.parts[1].file_data is not None and parsed.parts[1].file_data.file_uri == "gs://b/o.png"


def test_the_sdks_own_tool_response_with_parts_parses() -> None:
    sdk = genai_types.FunctionResponse(
        id="fc-1", name="plot", response={"ok": True}, will_continue=True, scheduling="SILENT",
        parts=[genai_types.FunctionResponsePart.from_bytes(data=b"\x00\x01", mime_type="audio/pcm")],
    )
    # As google-genai sends it: snake_case top-level key, URL-safe base64, its own key casing inside.
    frame = json.dumps({"tool_response": {"functionResponses": [sdk.model_dump(mode="json", exclude_none=True)]}})
    message = m.parse_client_frame(frame)
    assert isinstance(message, m.ToolResponse)
    [response] = message.function_responses
    assert (response.id, response.will_continue, response.scheduling) == ("fc-1", True, "SILENT")
    assert response.parts == (c.FunctionResponsePart(c.Blob(b"\x00\x01", "audio/pcm")),)


@pytest.mark.parametrize("scheduling", ["SILENT", "WHEN_IDLE", "INTERRUPT", "SCHEDULING_UNSPECIFIED", "when_idle"])
def test_scheduling_values_are_the_sdks(scheduling: str) -> None:
    frame = json.dumps({"toolResponse": {"functionResponses": [{"id": "a", "name": "f", "scheduling": scheduling}]}})
    message = m.parse_client_frame(frame)
    assert isinstance(message, m.ToolResponse)
    assert message.function_responses[0].scheduling == scheduling.upper()
    assert genai_types.FunctionResponse(scheduling=scheduling.upper()).scheduling is not None
    assert c.FunctionResponse("f", scheduling=scheduling).scheduling == scheduling.upper()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"id": "a", "name": "f", "scheduling": "LATER"}, "scheduling must be one of"),
        ({"id": "a", "name": "f", "scheduling": 2}, "scheduling must be a string"),
        ({"id": "a", "name": "f", "parts": {"inlineData": {}}}, "parts must be a JSON array"),
        ({"id": "a", "name": "f", "parts": [{"inlineData": {"data": "!!", "mimeType": "x"}}]}, "not valid base64"),
        ({"id": "a", "name": "f", "parts": [{"inlineData": {"data": "", "displayName": 1}}]}, "displayName"),
    ],
)
def test_bad_function_responses_are_remote_protocol_errors(body: dict[str, object], words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=words):
        m.parse_client_frame(json.dumps({"toolResponse": {"functionResponses": [body]}}))


def test_a_bad_scheduling_built_locally_is_a_local_protocol_error() -> None:
    with pytest.raises(LocalProtocolError, match="scheduling"):
        c.FunctionResponse("f", scheduling="SOON")


def test_partial_args_and_will_continue_round_trip() -> None:
    frame = m.encode_server_frame(STREAMED_CALL)
    call = json.loads(frame)["toolCall"]["functionCalls"][0]
    assert call["willContinue"] is True
    assert call["partialArgs"] == [
        {"jsonPath": "$.title", "stringValue": "Hel", "willContinue": True},
        {"jsonPath": "$.size", "numberValue": 3},
        {"jsonPath": "$.draft", "boolValue": False},
        {"jsonPath": "$.note", "nullValue": "NULL_VALUE"},
    ]
    assert m.parse_server_frame(frame) == [STREAMED_CALL]
    assert [p.value for p in STREAMED_CALL.function_calls[0].partial_args] == ["Hel", 3, False, None]


def test_the_sdk_reads_our_partial_args() -> None:
    # google-genai documents partialArgs and FunctionCall.willContinue as Vertex AI only.
    tool_call = _sdk_reads(m.encode_server_frame(STREAMED_CALL), vertex=True).tool_call
    assert tool_call is not None and tool_call.function_calls is not None
    [call] = tool_call.function_calls
    assert call.will_continue is True and call.partial_args is not None
    assert [(p.json_path, p.string_value, p.number_value, p.bool_value, p.null_value, p.will_continue)
            for p in call.partial_args] == [
        ("$.title", "Hel", None, None, None, True),
        ("$.size", None, 3.0, None, None, None),
        ("$.draft", None, None, False, None, None),
        ("$.note", None, None, None, "NULL_VALUE", None),
    ]


@pytest.mark.parametrize("null", ['"NULL_VALUE"', "null"])
def test_null_value_reads_in_both_proto3_forms_and_snake_case(null: str) -> None:
    frame = (
        '{"tool_call": {"function_calls": [{"id": "a", "name": "f", "will_continue": false, '
        f'"partial_args": [{{"json_path": "$.x", "null_value": {null}}}]}}]}}}}'
    )
    [message] = m.parse_server_frame(frame)
    assert isinstance(message, m.ToolCall)
    [call] = message.function_calls
    assert call.will_continue is False
    assert call.partial_args == (c.PartialArg("$.x", null_value=True),)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        ('{"name": "f", "partialArgs": {"jsonPath": "$.x"}}', "partialArgs must be a JSON array"),
        ('{"name": "f", "partialArgs": [{"jsonPath": 1}]}', "jsonPath must be a string"),
        ('{"name": "f", "partialArgs": [{"jsonPath": "$.x", "numberValue": "3"}]}', "numberValue must be a number"),
        ('{"name": "f", "partialArgs": [{"jsonPath": "$.x", "boolValue": 1}]}', "boolValue must be true or false"),
        ('{"name": "f", "partialArgs": [{"jsonPath": "$.x", "nullValue": 0}]}', "nullValue must be NULL_VALUE"),
        ('{"name": "f", "partialArgs": [{"jsonPath": "$.x", "willContinue": "yes"}]}', "willContinue"),
        ('{"name": "f", "willContinue": "yes"}', "willContinue must be true or false"),
    ],
)
def test_bad_partial_args_are_remote_protocol_errors(call: str, words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=words):
        m.parse_server_frame(f'{{"toolCall": {{"functionCalls": [{call}]}}}}')


# parse_server_frame's fast path (the reply frames' shapes) against the general path.

_PCM = base64.b64encode(bytes(range(256)) * 3).decode()
_AUDIO_PART = {"inlineData": {"data": _PCM, "mimeType": "audio/pcm;rate=24000"}}
_AUDIO_TURN = {"role": "model", "parts": [_AUDIO_PART]}
_USAGE = json.loads(SERVER_SAMPLES[7])["usageMetadata"]

# Frames the fast path takes: the emulator's reply, the docs' samples of those shapes.
HOT_FRAMES = [
    {},
    {"serverContent": {"modelTurn": _AUDIO_TURN}},
    {"serverContent": {"modelTurn": _AUDIO_TURN, "outputTranscription": {"text": "Hel"}}},
    {"serverContent": {"outputTranscription": {"text": "lo", "finished": False}}},
    {"serverContent": {"inputTranscription": {"text": "hi", "finished": True}, "interimInputTranscription": {}}},
    {"serverContent": {"modelTurn": {"parts": [{"text": "Hello "}, _AUDIO_PART, {"text": ""}]}}},
    {"serverContent": {"modelTurn": {"parts": []}}},
    {"serverContent": {"modelTurn": {}}},
    {"serverContent": {"generationComplete": True}},
    {"serverContent": {"interrupted": True, "waitingForInput": True}},
    {"serverContent": {"turnComplete": True}, "usageMetadata": _USAGE},
    {"serverContent": {}, "usageMetadata": _USAGE},
    {"usageMetadata": {"promptTokenCount": 0, "trafficType": "ON_DEMAND", "cacheTokensDetails": [{}]}},
    {"serverContent": {"turnComplete": False, "interrupted": None, "modelTurn": None}},
    {"serverContent": {"modelTurn": {"role": None, "parts": None}, "outputTranscription": None}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "", "mimeType": ""}}]}}},
]

# Frames that must leave the fast path (the general path reads them, or refuses them, its own way).
COLD_FRAMES = [
    {"server_content": {"model_turn": _AUDIO_TURN}},
    {"serverContent": {"model_turn": _AUDIO_TURN}},
    {"serverContent": {"modelTurn": {"parts": [{"inline_data": _AUDIO_PART["inlineData"]}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": _PCM, "mime_type": "audio/pcm"}}]}}},
    {"serverContent": {"modelTurn": _AUDIO_TURN, "groundingMetadata": {"x": 1}}},
    {"serverContent": {"modelTurn": _AUDIO_TURN, "somethingNew": 1}},
    {"serverContent": {"modelTurn": _AUDIO_TURN, "somethingNew": None}},
    {"serverContent": {"modelTurn": {**_AUDIO_TURN, "extraField": None}}},
    {"serverContent": {"modelTurn": {"parts": [{"text": "a", "thought": True}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": _PCM}}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": _PCM, "mimeType": "a", "displayName": "x"}}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": None, "mimeType": "audio/pcm"}}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "AAEC", "mimeType": None}}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"text": None}]}}},
    {"serverContent": {"modelTurn": {"parts": [{}]}}},
    {"serverContent": {"outputTranscription": {"text": "a", "languageCode": "en"}}},
    {"serverContent": {"turnComplete": True, "turnCompleteReason": "X", "interactionStatus": "IDLE"}},
    {"serverContent": {}, "usageMetadata": {"candidatesTokenCount": 3, "candidatesTokensDetails": []}},
    {"serverContent": {}, "usage_metadata": _USAGE},
    {"serverContent": {}, "usageMetadata": {**_USAGE, "promptTokenCount": "522"}},
    {"setupComplete": {}},
    {"serverContent": {}, "goAway": {"timeLeft": "5s"}},
    # Bad input: the general path raises.
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "AAE", "mimeType": "a"}}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "AA==AA==", "mimeType": "a"}}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "AA-_", "mimeType": "a"}}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "AA\nA", "mimeType": "a"}}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": 7, "mimeType": "a"}}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": [], "text": "a"}]}}},
    {"serverContent": {"modelTurn": {"parts": {"text": "a"}}}},
    {"serverContent": {"modelTurn": {"role": 1, "parts": []}}},
    {"serverContent": {"modelTurn": []}},
    {"serverContent": {"turnComplete": 1}},
    {"serverContent": {"interrupted": "true"}},
    {"serverContent": {"outputTranscription": {"text": 5}}},
    {"serverContent": {"outputTranscription": {"finished": "yes"}}},
    {"serverContent": {"outputTranscription": "hi"}},
    {"serverContent": None},
    {"serverContent": []},
    {"serverContent": {}, "usageMetadata": {"promptTokenCount": True}},
    {"serverContent": {}, "usageMetadata": {"promptTokenCount": 2**63}},
    {"serverContent": {}, "usageMetadata": {"promptTokenCount": 1.5}},
    {"serverContent": {}, "usageMetadata": {"promptTokensDetails": [{"modality": 3}]}},
    {"serverContent": {}, "usageMetadata": {"promptTokensDetails": {"modality": "TEXT"}}},
    {"serverContent": {}, "usageMetadata": {"trafficType": 1}},
    {"serverContent": {}, "usageMetadata": None},
    {"usageMetadata": []},
]


def _outcome(parse: object, frame: str) -> object:
    try:
        return parse(frame)  # type: ignore[operator]
    except RemoteProtocolError as exc:
        return (type(exc), str(exc))


def _general(frame: str) -> list[m.ServerMessage]:
    return m._parse_general(json.loads(frame), frame)


@pytest.mark.parametrize("value", HOT_FRAMES + COLD_FRAMES + [json.loads(s) for s in SERVER_SAMPLES])
def test_the_fast_path_gives_what_the_general_path_gives(value: dict[str, object]) -> None:
    frame = json.dumps(value)
    assert _outcome(m.parse_server_frame, frame) == _outcome(_general, frame)


@pytest.mark.parametrize("value", HOT_FRAMES)
def test_reply_frames_take_the_fast_path(value: dict[str, object]) -> None:
    assert m._fast_frame(json.loads(json.dumps(value))) is not None


@pytest.mark.parametrize("value", COLD_FRAMES)
def test_unusual_frames_leave_the_fast_path(value: dict[str, object]) -> None:
    assert m._fast_frame(json.loads(json.dumps(value))) is None


def test_the_fast_path_reads_the_emulators_reply() -> None:
    """Frames as the emulator writes them (encode_server_frame) are all fast-path frames."""
    pcm = bytes(range(256)) * 4
    turn = c.Content(role="model", parts=(c.Part(inline_data=c.Blob(pcm, "audio/pcm;rate=24000")),))
    messages = [
        m.ServerContent(model_turn=turn),
        m.ServerContent(model_turn=turn, output_transcription=m.Transcription(text="Hel")),
        m.ServerContent(generation_complete=True),
    ]
    for message in messages:
        frame = m.encode_server_frame(message)
        assert m._fast_frame(json.loads(frame)) == [message] == m.parse_server_frame(frame)
    usage = m.UsageMetadata(prompt_token_count=5, response_token_count=7, total_token_count=12,
                            prompt_tokens_details=(m.ModalityTokenCount("TEXT", 5),))
    frame = m.encode_server_frame(m.ServerContent(turn_complete=True), usage)
    assert m._fast_frame(json.loads(frame)) == [m.ServerContent(turn_complete=True), usage]
    assert m._fast_frame({}) == [] == m.parse_server_frame(b"{}")


def test_strict_base64_refuses_what_b64decode_refuses() -> None:
    """``b64decode_padded`` decodes what ``b64decode`` decodes, to the same bytes, or gives None."""
    import itertools

    from live_nb.protocol import _wire as w

    alphabet = "Az09+/=\n -_!é"
    decoded = 0
    for size in range(0, 6):
        for chars in itertools.product(alphabet, repeat=size):
            value = "".join(chars)
            fast = w.b64decode_padded(value)
            if fast is None:
                continue
            decoded += 1
            assert fast == w.b64decode(value, "data"), value
    assert decoded > 100
    assert w.b64decode_padded(_PCM) == bytes(range(256)) * 3
    assert w.b64decode_padded("AAE") is None  # unpadded: b64decode pads it, the fast path leaves it
