"""Live API wire messages as typed, frozen dataclasses, both ways.

Every class has ``from_wire(dict)`` (accepting camelCase and snake_case at every level, int64 as
number or string, standard or URL-safe base64) and ``to_wire() -> dict`` (the canonical camelCase
of the docs, standard base64). Opaque user data (function ``args``, function ``response``, tool
declarations, speech config) is kept exactly as given: its keys belong to the user, not the wire.

Frames: a client frame holds one top-level key (``setup``, ``clientContent``, ``realtimeInput``,
``toolResponse``, ``contextUpdate``); a server frame holds one payload key with ``usageMetadata``
optionally riding along. ``parse_server_frame`` returns the payload and the usage as separate
messages, in that order, so ``receive()`` can yield one typed object at a time; a frame with
nothing in it (``{}``, an empty ``serverContent``) yields nothing.

Durations (``goAway.timeLeft``, transcription and voice-activity offsets) are float seconds here
and proto3 Duration strings ("1.5s", written to the millisecond) on the wire. A Duration read from
the wire is always finite and from 0 to ``MAX_DURATION_SECONDS`` (a day); anything else is refused.

The parsers raise ``RemoteProtocolError`` on any bad input, whatever its shape (fuzzed in
tests/protocol/test_protocol_fuzz.py); ``parse_client_frame`` also raises ``ConfigError`` for a setup value of
the right type outside its range.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..exceptions import RemoteProtocolError
from . import _wire as w
from .audio import INPUT_AUDIO_MIME
from .config import LiveGenerationConfig, SessionResumptionConfig
from .content import Blob, Content, FunctionCall, FunctionResponse, Part

logger = logging.getLogger("live_nb.protocol")

__all__ = [
    "ActivityEnd",
    "ActivityStart",
    "AudioStreamEnd",
    "ClientContent",
    "ClientMessage",
    "ContextUpdate",
    "GoAway",
    "GoingAwayNotice",
    "ModalityTokenCount",
    "RealtimeInput",
    "ServerContent",
    "ServerMessage",
    "SessionResumptionUpdate",
    "Setup",
    "SetupComplete",
    "ToolCall",
    "ToolCallCancellation",
    "ToolResponse",
    "Transcription",
    "UnknownMessage",
    "UsageMetadata",
    "VoiceActivity",
    "VoiceActivityDetectionSignal",
    "WordInfo",
    "encode_client_frame",
    "encode_realtime_audio",
    "encode_server_frame",
    "excerpt",
    "parse_client_frame",
    "parse_server_frame",
]

Json = dict[str, Any]



def excerpt(frame: str | bytes, limit: int = 200) -> str:
    """Return the start of a frame for error messages and logs."""
    return w._frame_excerpt(frame, limit)


# Client -> server messages.


@dataclass(frozen=True, slots=True)
class Setup:
    """The first client message: model and connection config."""

    model: str
    config: LiveGenerationConfig
    session_resumption: SessionResumptionConfig | None = None
    extra: Mapping[str, Any] | None = None

    KEY: ClassVar[str] = "setup"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "setup") -> Setup:
        data = w.mapping(data, where)
        model = w.string(w.field(data, "model"), f"{where}.model")
        if not model:
            raise RemoteProtocolError(f"{where}.model is required")
        resumption = w.field(data, "session_resumption")
        return cls(
            model=model,
            config=LiveGenerationConfig.from_wire(data, where),
            session_resumption=None
            if resumption is None
            else SessionResumptionConfig.from_wire(resumption, f"{where}.sessionResumption"),
            extra=w.extra_fields(data, ("model", "session_resumption", *LiveGenerationConfig.SETUP_KEYS), "setup"),
        )

    def to_wire(self) -> Json:
        body: Json = {"model": self.model, **self.config.to_wire()}
        if self.session_resumption is not None:
            body["sessionResumption"] = self.session_resumption.to_wire()
        if self.extra:
            body.update(self.extra)
        return {"setup": body}


@dataclass(frozen=True, slots=True)
class ClientContent:
    """Turns appended to the conversation; ``turn_complete`` asks the model to answer."""

    turns: tuple[Content, ...] = ()
    turn_complete: bool = False

    KEY: ClassVar[str] = "clientContent"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "clientContent") -> ClientContent:
        data = w.mapping(data, where)
        turns = w.sequence(w.field(data, "turns"), f"{where}.turns")
        return cls(
            turns=tuple(Content.from_wire(t, f"{where}.turns[{i}]") for i, t in enumerate(turns)),
            turn_complete=w.boolean(w.field(data, "turn_complete"), f"{where}.turnComplete"),
        )

    def to_wire(self) -> Json:
        return {"clientContent": {"turns": [t.to_wire() for t in self.turns], "turnComplete": self.turn_complete}}


@dataclass(frozen=True, slots=True)
class RealtimeInput:
    """Realtime input: exactly one of audio, video, text, a legacy media chunk, or an activity signal."""

    audio: Blob | None = None
    video: Blob | None = None
    text: str | None = None
    media_chunks: tuple[Blob, ...] = ()
    audio_stream_end: bool = False
    activity_start: bool = False
    activity_end: bool = False

    KEY: ClassVar[str] = "realtimeInput"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "realtimeInput") -> RealtimeInput:
        data = w.mapping(data, where)
        audio = w.field(data, "audio")
        video = w.field(data, "video")
        chunks = w.sequence(w.field(data, "media_chunks"), f"{where}.mediaChunks")
        return cls(
            audio=None if audio is None else Blob.from_wire(audio, f"{where}.audio"),
            video=None if video is None else Blob.from_wire(video, f"{where}.video"),
            text=w.string(w.field(data, "text"), f"{where}.text"),
            media_chunks=tuple(Blob.from_wire(c, f"{where}.mediaChunks[{i}]") for i, c in enumerate(chunks)),
            audio_stream_end=w.boolean(w.field(data, "audio_stream_end"), f"{where}.audioStreamEnd"),
            activity_start=w.field(data, "activity_start") is not None,
            activity_end=w.field(data, "activity_end") is not None,
        )

    def to_wire(self) -> Json:
        body: Json = {}
        if self.audio is not None:
            body["audio"] = self.audio.to_wire()
        if self.video is not None:
            body["video"] = self.video.to_wire()
        if self.text is not None:
            body["text"] = self.text
        if self.media_chunks:
            body["mediaChunks"] = [c.to_wire() for c in self.media_chunks]
        if self.audio_stream_end:
            body["audioStreamEnd"] = True
        if self.activity_start:
            body["activityStart"] = {}
        if self.activity_end:
            body["activityEnd"] = {}
        return {"realtimeInput": body}


ActivityStart = RealtimeInput(activity_start=True)
ActivityEnd = RealtimeInput(activity_end=True)
AudioStreamEnd = RealtimeInput(audio_stream_end=True)


@dataclass(frozen=True, slots=True)
class ToolResponse:
    """Answers to the model's function calls."""

    function_responses: tuple[FunctionResponse, ...]

    KEY: ClassVar[str] = "toolResponse"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "toolResponse") -> ToolResponse:
        data = w.mapping(data, where)
        items = w.sequence(w.field(data, "function_responses"), f"{where}.functionResponses")
        return cls(tuple(FunctionResponse.from_wire(r, f"{where}.functionResponses[{i}]") for i, r in enumerate(items)))

    def to_wire(self) -> Json:
        return {"toolResponse": {"functionResponses": [r.to_wire() for r in self.function_responses]}}


@dataclass(frozen=True, slots=True)
class ContextUpdate:
    """Mid-session change of system instruction and/or tools (the newer route, live-protocol.md section 4)."""

    system_instruction: Content | None = None
    tools: tuple[Mapping[str, Any], ...] | None = None

    KEY: ClassVar[str] = "contextUpdate"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "contextUpdate") -> ContextUpdate:
        data = w.mapping(data, where)
        si = w.field(data, "system_instruction")
        tools = w.field(data, "tools")
        if isinstance(tools, Mapping):  # {"tools": {"tools": [...]}} as the SDK nests it
            tools = w.field(tools, "tools")
        return cls(
            system_instruction=None if si is None else Content.from_wire(si, f"{where}.systemInstruction"),
            tools=None if tools is None else w.objects(tools, f"{where}.tools"),
        )

    def to_wire(self) -> Json:
        body: Json = {}
        if self.system_instruction is not None:
            body["systemInstruction"] = self.system_instruction.to_wire()
        if self.tools is not None:
            body["tools"] = {"tools": [dict(t) for t in self.tools]}
        return {"contextUpdate": body}


ClientMessage = Setup | ClientContent | RealtimeInput | ToolResponse | ContextUpdate

def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)


# Top-level keys in both spellings: google-genai sends client_content, realtime_input, tool_response.
_CLIENT_TYPES: dict[str, type[Any]] = {}
for _cls in (Setup, ClientContent, RealtimeInput, ToolResponse, ContextUpdate):
    _CLIENT_TYPES[_cls.KEY] = _CLIENT_TYPES[_snake(_cls.KEY)] = _cls


def _load(frame: str | bytes) -> Mapping[str, Any]:
    data = w.loads(frame)
    if not isinstance(data, dict):
        raise RemoteProtocolError("frame is not a JSON object", excerpt(frame))
    return data


def parse_client_frame(frame: str | bytes) -> ClientMessage:
    """Parse one client frame (text or binary) into its message.

    Raises:
        RemoteProtocolError: not JSON, not exactly one known top-level key, or an invalid field.
        ConfigError: a setup whose config is out of range.
    """
    data = _load(frame)
    if len(data) != 1:
        raise RemoteProtocolError("a client message must hold exactly one top-level key", excerpt(frame))
    ((key, body),) = data.items()
    cls = _CLIENT_TYPES.get(key)
    if cls is None:
        raise RemoteProtocolError(f"unknown client message {key!r}", excerpt(frame))
    message: ClientMessage = cls.from_wire(body)
    return message


def encode_client_frame(message: ClientMessage) -> str:
    """Encode a client message as the canonical camelCase JSON text frame.

    Raises:
        LocalProtocolError: a Duration that is NaN, infinite, negative or above a day.
    """
    return w.dumps(message.to_wire())


def encode_realtime_audio(pcm: bytes, mime_type: str = INPUT_AUDIO_MIME) -> str:
    """Encode one realtime audio chunk straight to its frame.

    Why: this is the hot path (10 chunks a second per stream, thousands a second in the
    benchmark); building the string directly skips two dict layers and a json.dumps walk.
    """
    return '{"realtimeInput":{"audio":{"data":"' + w.b64encode(pcm) + '","mimeType":"' + mime_type + '"}}}'


# Server -> client messages.


@dataclass(frozen=True, slots=True)
class SetupComplete:
    """The server accepted the setup; the session is open."""

    session_id: str | None = None

    KEY: ClassVar[str] = "setupComplete"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "setupComplete") -> SetupComplete:
        data = w.mapping(data or {}, where)
        return cls(session_id=w.string(w.field(data, "session_id"), f"{where}.sessionId"))

    def to_wire(self) -> Json:
        return w.prune({"sessionId": self.session_id})


def _offset(seconds: float | None, where: str) -> str | None:
    """Write an optional offset back as a proto3 Duration string."""
    return None if seconds is None else w.format_duration(seconds, where)


def _flag(data: Mapping[str, Any], name: str, where: str) -> bool | None:
    """Read an optional bool where absent and false mean different things (``finished``)."""
    value = w.field(data, name)
    return None if value is None else w.boolean(value, f"{where}.{w.camel(name)}")


@dataclass(frozen=True, slots=True)
class WordInfo:
    """One recognised word of a Transcription, with its timing (seconds from the audio's start)."""

    word: str = ""
    start_offset: float | None = None
    end_offset: float | None = None
    extra: Mapping[str, Any] | None = None

    _KNOWN: ClassVar[tuple[str, ...]] = ("word", "start_offset", "end_offset")

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "word") -> WordInfo:
        data = w.mapping(data, where)
        return cls(
            word=w.string(w.field(data, "word"), f"{where}.word") or "",
            start_offset=w.duration(w.field(data, "start_offset"), f"{where}.startOffset"),
            end_offset=w.duration(w.field(data, "end_offset"), f"{where}.endOffset"),
            extra=w.extra_fields(data, cls._KNOWN, "WordInfo"),
        )

    def to_wire(self) -> Json:
        out = w.prune(
            {
                "word": self.word,
                "startOffset": _offset(self.start_offset, "WordInfo.start_offset"),
                "endOffset": _offset(self.end_offset, "WordInfo.end_offset"),
            }
        )
        if self.extra:
            out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class Transcription:
    """Text of what was heard (input) or spoken (output), with the metadata 3.x models attach.

    Offsets are proto3 Durations on the wire ("1.5s") and seconds here, counted from the start of
    the audio stream, so they line up with ``VoiceActivity.audio_offset``.
    """

    text: str = ""
    finished: bool | None = None
    language_code: str | None = None
    speaker_label: str | None = None
    start_offset: float | None = None
    end_offset: float | None = None
    words: tuple[WordInfo, ...] = ()
    extra: Mapping[str, Any] | None = None

    _KNOWN: ClassVar[tuple[str, ...]] = (
        "text",
        "finished",
        "language_code",
        "speaker_label",
        "start_offset",
        "end_offset",
        "words",
    )

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "transcription") -> Transcription:
        data = w.mapping(data, where)
        words = w.sequence(w.field(data, "words"), f"{where}.words")
        return cls(
            text=w.string(w.field(data, "text"), f"{where}.text") or "",
            finished=_flag(data, "finished", where),
            language_code=w.string(w.field(data, "language_code"), f"{where}.languageCode"),
            speaker_label=w.string(w.field(data, "speaker_label"), f"{where}.speakerLabel"),
            start_offset=w.duration(w.field(data, "start_offset"), f"{where}.startOffset"),
            end_offset=w.duration(w.field(data, "end_offset"), f"{where}.endOffset"),
            words=tuple(WordInfo.from_wire(x, f"{where}.words[{i}]") for i, x in enumerate(words)),
            extra=w.extra_fields(data, cls._KNOWN, "Transcription"),
        )

    def to_wire(self) -> Json:
        out = w.prune(
            {
                "text": self.text,
                "finished": self.finished,
                "languageCode": self.language_code,
                "speakerLabel": self.speaker_label,
                "startOffset": _offset(self.start_offset, "Transcription.start_offset"),
                "endOffset": _offset(self.end_offset, "Transcription.end_offset"),
                "words": [x.to_wire() for x in self.words] if self.words else None,
            }
        )
        if self.extra:
            out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class ServerContent:
    """Model output for the current turn, and turn lifecycle flags.

    ``interaction_status`` (``IN_PROGRESS``, ``REQUIRES_ACTION``, ``IDLE``) comes with
    ``turn_complete`` on gemini-3.8-live-extended-thinking: a turn that completes with
    ``IN_PROGRESS`` was a filler and more answer follows; ``IDLE`` ends the whole answer. It stays a
    string so a status a newer service adds still reads. ``grounding_metadata`` and
    ``url_context_metadata`` are kept as given: they are tool output, not session flow.
    """

    model_turn: Content | None = None
    turn_complete: bool = False
    interrupted: bool = False
    generation_complete: bool = False
    input_transcription: Transcription | None = None
    output_transcription: Transcription | None = None
    waiting_for_input: bool = False
    turn_complete_reason: str | None = None
    interaction_status: str | None = None
    interim_input_transcription: Transcription | None = None
    grounding_metadata: Mapping[str, Any] | None = None
    url_context_metadata: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] | None = None

    KEY: ClassVar[str] = "serverContent"
    _KNOWN: ClassVar[tuple[str, ...]] = (
        "model_turn",
        "turn_complete",
        "interrupted",
        "generation_complete",
        "input_transcription",
        "output_transcription",
        "waiting_for_input",
        "turn_complete_reason",
        "interaction_status",
        "interim_input_transcription",
        "grounding_metadata",
        "url_context_metadata",
    )

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "serverContent") -> ServerContent:
        data = w.mapping(data, where)
        turn = w.field(data, "model_turn")
        grounding = w.field(data, "grounding_metadata")
        url_context = w.field(data, "url_context_metadata")

        def transcription(name: str) -> Transcription | None:
            value = w.field(data, name)
            return None if value is None else Transcription.from_wire(value, f"{where}.{w.camel(name)}")

        return cls(
            model_turn=None if turn is None else Content.from_wire(turn, f"{where}.modelTurn"),
            turn_complete=w.boolean(w.field(data, "turn_complete"), f"{where}.turnComplete"),
            interrupted=w.boolean(w.field(data, "interrupted"), f"{where}.interrupted"),
            generation_complete=w.boolean(w.field(data, "generation_complete"), f"{where}.generationComplete"),
            input_transcription=transcription("input_transcription"),
            output_transcription=transcription("output_transcription"),
            waiting_for_input=w.boolean(w.field(data, "waiting_for_input"), f"{where}.waitingForInput"),
            turn_complete_reason=w.string(w.field(data, "turn_complete_reason"), f"{where}.turnCompleteReason"),
            interaction_status=w.string(w.field(data, "interaction_status"), f"{where}.interactionStatus"),
            interim_input_transcription=transcription("interim_input_transcription"),
            grounding_metadata=None if grounding is None else w.mapping(grounding, f"{where}.groundingMetadata"),
            url_context_metadata=None if url_context is None else w.mapping(url_context, f"{where}.urlContextMetadata"),
            extra=w.extra_fields(data, cls._KNOWN, "serverContent"),
        )

    def to_wire(self) -> Json:
        out: Json = {}
        if self.model_turn is not None:
            out["modelTurn"] = self.model_turn.to_wire()
        if self.interim_input_transcription is not None:
            out["interimInputTranscription"] = self.interim_input_transcription.to_wire()
        if self.input_transcription is not None:
            out["inputTranscription"] = self.input_transcription.to_wire()
        if self.output_transcription is not None:
            out["outputTranscription"] = self.output_transcription.to_wire()
        if self.grounding_metadata is not None:
            out["groundingMetadata"] = dict(self.grounding_metadata)
        if self.url_context_metadata is not None:
            out["urlContextMetadata"] = dict(self.url_context_metadata)
        if self.interrupted:
            out["interrupted"] = True
        if self.generation_complete:
            out["generationComplete"] = True
        if self.turn_complete:
            out["turnComplete"] = True
        if self.turn_complete_reason is not None:
            out["turnCompleteReason"] = self.turn_complete_reason
        if self.interaction_status is not None:
            out["interactionStatus"] = self.interaction_status
        if self.waiting_for_input:
            out["waitingForInput"] = True
        if self.extra:
            out.update(self.extra)
        return out

    @property
    def text(self) -> str:
        """The text parts of this chunk of the model's turn."""
        return "" if self.model_turn is None else self.model_turn.text

    @property
    def audio(self) -> bytes:
        """The inline audio of this chunk of the model's turn, joined."""
        if self.model_turn is None:
            return b""
        return b"".join(
            p.inline_data.data
            for p in self.model_turn.parts
            if p.inline_data is not None and p.inline_data.mime_type.startswith("audio/")
        )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks the client to run functions."""

    function_calls: tuple[FunctionCall, ...]

    KEY: ClassVar[str] = "toolCall"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "toolCall") -> ToolCall:
        data = w.mapping(data, where)
        calls = w.sequence(w.field(data, "function_calls"), f"{where}.functionCalls")
        return cls(tuple(FunctionCall.from_wire(c, f"{where}.functionCalls[{i}]") for i, c in enumerate(calls)))

    def to_wire(self) -> Json:
        return {"functionCalls": [c.to_wire() for c in self.function_calls]}


@dataclass(frozen=True, slots=True)
class ToolCallCancellation:
    """Function calls the client should no longer answer (e.g. after barge-in)."""

    ids: tuple[str, ...]

    KEY: ClassVar[str] = "toolCallCancellation"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "toolCallCancellation") -> ToolCallCancellation:
        data = w.mapping(data, where)
        return cls(w.strings(w.field(data, "ids"), f"{where}.ids"))

    def to_wire(self) -> Json:
        return {"ids": list(self.ids)}


@dataclass(frozen=True, slots=True)
class GoAway:
    """The server will close this connection in ``time_left`` seconds: resume on a new one.

    ``GoingAwayNotice`` is the same class under the seed SDKs' name.
    """

    time_left: float | None = None

    KEY: ClassVar[str] = "goAway"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "goAway") -> GoAway:
        data = w.mapping(data or {}, where)
        return cls(time_left=w.duration(w.field(data, "time_left"), f"{where}.timeLeft"))

    def to_wire(self) -> Json:
        return w.prune({"timeLeft": _offset(self.time_left, "GoAway.time_left")})


GoingAwayNotice = GoAway


@dataclass(frozen=True, slots=True)
class SessionResumptionUpdate:
    """A new handle to resume the session with, or word that there is no resumable point now."""

    new_handle: str | None = None
    resumable: bool = False
    last_consumed_client_message_index: int | None = None

    KEY: ClassVar[str] = "sessionResumptionUpdate"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "sessionResumptionUpdate") -> SessionResumptionUpdate:
        data = w.mapping(data, where)
        return cls(
            new_handle=w.string(w.field(data, "new_handle"), f"{where}.newHandle") or None,
            resumable=w.boolean(w.field(data, "resumable"), f"{where}.resumable"),
            last_consumed_client_message_index=w.int64(
                w.field(data, "last_consumed_client_message_index"), f"{where}.lastConsumedClientMessageIndex"
            ),
        )

    def to_wire(self) -> Json:
        out: Json = {"newHandle": self.new_handle or "", "resumable": self.resumable}
        if self.last_consumed_client_message_index is not None:
            # int64 is a string in proto3 JSON.
            out["lastConsumedClientMessageIndex"] = str(self.last_consumed_client_message_index)
        return out


@dataclass(frozen=True, slots=True)
class ModalityTokenCount:
    """Tokens of one modality (TEXT, AUDIO, IMAGE, VIDEO, DOCUMENT)."""

    modality: str
    token_count: int

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "modalityTokenCount") -> ModalityTokenCount:
        data = w.mapping(data, where)
        return cls(
            modality=w.string(w.field(data, "modality"), f"{where}.modality") or "MODALITY_UNSPECIFIED",
            token_count=w.int64(w.field(data, "token_count", 0), f"{where}.tokenCount") or 0,
        )

    def to_wire(self) -> Json:
        return {"modality": self.modality, "tokenCount": self.token_count}


def _details(data: Mapping[str, Any], name: str, where: str) -> tuple[ModalityTokenCount, ...]:
    items = w.sequence(w.field(data, name), f"{where}.{w.camel(name)}")
    return tuple(ModalityTokenCount.from_wire(d, f"{where}.{w.camel(name)}[{i}]") for i, d in enumerate(items))


@dataclass(frozen=True, slots=True)
class UsageMetadata:
    """Token use reported by the server (on every turnComplete in the emulator).

    Vertex spells the response side ``candidatesTokenCount`` / ``candidatesTokensDetails``; both
    spellings land in ``response_token_count`` / ``response_tokens_details``.
    """

    prompt_token_count: int | None = None
    response_token_count: int | None = None
    total_token_count: int | None = None
    cached_content_token_count: int | None = None
    tool_use_prompt_token_count: int | None = None
    thoughts_token_count: int | None = None
    prompt_tokens_details: tuple[ModalityTokenCount, ...] = ()
    response_tokens_details: tuple[ModalityTokenCount, ...] = ()
    cache_tokens_details: tuple[ModalityTokenCount, ...] = ()
    tool_use_prompt_tokens_details: tuple[ModalityTokenCount, ...] = ()
    traffic_type: str | None = None

    KEY: ClassVar[str] = "usageMetadata"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "usageMetadata") -> UsageMetadata:
        data = w.mapping(data, where)
        response = w.field(data, "response_token_count")
        if response is None:
            response = w.field(data, "candidates_token_count")
        response_details = _details(data, "response_tokens_details", where) or _details(
            data, "candidates_tokens_details", where
        )
        return cls(
            prompt_token_count=w.int64(w.field(data, "prompt_token_count"), f"{where}.promptTokenCount"),
            response_token_count=w.int64(response, f"{where}.responseTokenCount"),
            total_token_count=w.int64(w.field(data, "total_token_count"), f"{where}.totalTokenCount"),
            cached_content_token_count=w.int64(
                w.field(data, "cached_content_token_count"), f"{where}.cachedContentTokenCount"
            ),
            tool_use_prompt_token_count=w.int64(
                w.field(data, "tool_use_prompt_token_count"), f"{where}.toolUsePromptTokenCount"
            ),
            thoughts_token_count=w.int64(w.field(data, "thoughts_token_count"), f"{where}.thoughtsTokenCount"),
            prompt_tokens_details=_details(data, "prompt_tokens_details", where),
            response_tokens_details=response_details,
            cache_tokens_details=_details(data, "cache_tokens_details", where),
            tool_use_prompt_tokens_details=_details(data, "tool_use_prompt_tokens_details", where),
            traffic_type=w.string(w.field(data, "traffic_type"), f"{where}.trafficType"),
        )

    def to_wire(self) -> Json:
        def details(items: tuple[ModalityTokenCount, ...]) -> list[Json] | None:
            return [d.to_wire() for d in items] if items else None

        return w.prune(
            {
                "promptTokenCount": self.prompt_token_count,
                "cachedContentTokenCount": self.cached_content_token_count,
                "responseTokenCount": self.response_token_count,
                "toolUsePromptTokenCount": self.tool_use_prompt_token_count,
                "thoughtsTokenCount": self.thoughts_token_count,
                "totalTokenCount": self.total_token_count,
                "promptTokensDetails": details(self.prompt_tokens_details),
                "cacheTokensDetails": details(self.cache_tokens_details),
                "responseTokensDetails": details(self.response_tokens_details),
                "toolUsePromptTokensDetails": details(self.tool_use_prompt_tokens_details),
                "trafficType": self.traffic_type,
            }
        )

    def prompt_tokens_by_modality(self) -> dict[str, int]:
        """Prompt tokens keyed by modality name."""
        return {d.modality: d.token_count for d in self.prompt_tokens_details}

    def response_tokens_by_modality(self) -> dict[str, int]:
        """Response tokens keyed by modality name."""
        return {d.modality: d.token_count for d in self.response_tokens_details}


@dataclass(frozen=True, slots=True)
class VoiceActivity:
    """The server heard speech start or end (``voiceActivity``).

    ``type`` is ``ACTIVITY_START`` or ``ACTIVITY_END`` (google-genai calls it ``voice_activity_type``;
    we keep the wire name). ``audio_offset`` is seconds from the start of the input audio stream,
    so a client can tell how far behind the server's ear is.
    """

    type: str | None = None
    audio_offset: float | None = None
    extra: Mapping[str, Any] | None = None

    KEY: ClassVar[str] = "voiceActivity"
    _KNOWN: ClassVar[tuple[str, ...]] = ("type", "audio_offset")

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "voiceActivity") -> VoiceActivity:
        data = w.mapping(data or {}, where)
        return cls(
            type=w.string(w.field(data, "type"), f"{where}.type"),
            audio_offset=w.duration(w.field(data, "audio_offset"), f"{where}.audioOffset"),
            extra=w.extra_fields(data, cls._KNOWN, "voiceActivity"),
        )

    def to_wire(self) -> Json:
        out = w.prune({"type": self.type, "audioOffset": _offset(self.audio_offset, "VoiceActivity.audio_offset")})
        if self.extra:
            out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class VoiceActivityDetectionSignal:
    """The older, allowlisted VAD signal (``voiceActivityDetectionSignal``).

    ``vad_signal_type`` is ``VAD_SIGNAL_TYPE_SOS`` or ``VAD_SIGNAL_TYPE_EOS``. A class of its own, not a
    VoiceActivity, so that re-encoding it (the emulator sends with these classes) keeps its key.
    """

    vad_signal_type: str | None = None

    KEY: ClassVar[str] = "voiceActivityDetectionSignal"

    @classmethod
    def from_wire(
        cls, data: Mapping[str, Any], where: str = "voiceActivityDetectionSignal"
    ) -> VoiceActivityDetectionSignal:
        data = w.mapping(data or {}, where)
        return cls(vad_signal_type=w.string(w.field(data, "vad_signal_type"), f"{where}.vadSignalType"))

    def to_wire(self) -> Json:
        return w.prune({"vadSignalType": self.vad_signal_type})


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A top-level server key this version does not know: kept, logged once, never a crash."""

    key: str
    value: Any


ServerMessage = (
    SetupComplete
    | ServerContent
    | ToolCall
    | ToolCallCancellation
    | GoAway
    | SessionResumptionUpdate
    | UsageMetadata
    | VoiceActivity
    | VoiceActivityDetectionSignal
    | UnknownMessage
)

_SERVER_TYPES: dict[str, type[Any]] = {}
_PAYLOADS = (SetupComplete, ServerContent, ToolCall, ToolCallCancellation, GoAway, SessionResumptionUpdate)
for _payload in (*_PAYLOADS, VoiceActivity, VoiceActivityDetectionSignal):
    _SERVER_TYPES[_payload.KEY] = _SERVER_TYPES[_snake(_payload.KEY)] = _payload
_USAGE_KEYS = ("usageMetadata", "usage_metadata")
_EMPTY_CONTENT = ServerContent()


def parse_server_frame(frame: str | bytes) -> list[ServerMessage]:
    """Parse one server frame into its payload message(s), usage metadata last.

    Frames that say nothing give nothing: ``{}`` (gemini-3.8-live sends it between content
    messages) returns ``[]``, and an empty ``serverContent`` is dropped, so the usage-only frame
    ``{"serverContent": {}, "usageMetadata": {...}}`` (3.1-flash-live) returns just the usage. An
    empty ServerContent would otherwise reach every consumer as a reply chunk with no content.

    The frames of a reply (audio chunks, transcription, ``{}``, usage) take ``_fast_frame``; any
    other frame, and any hot frame with something unusual in it, takes the general path, which
    gives the same messages and is the one that raises.

    Raises:
        RemoteProtocolError: the frame is not JSON, not an object, or a known field is malformed.
    """
    data = w.decode_json(frame)
    if type(data) is dict:
        fast = _fast_frame(data)
        if fast is not None:
            return fast
    return _parse_general(data, frame)


def _parse_general(data: Any, frame: str | bytes) -> list[ServerMessage]:
    """Every server frame the long way: nesting check, both spellings, extra fields, errors."""
    w.check_nesting(data, frame)
    if not isinstance(data, dict):
        raise RemoteProtocolError("frame is not a JSON object", excerpt(frame))
    out: list[ServerMessage] = []
    usage: UsageMetadata | None = None
    for key, body in data.items():
        if key in _USAGE_KEYS:
            usage = UsageMetadata.from_wire(body)
            continue
        cls = _SERVER_TYPES.get(key)
        if cls is None:
            w.extra_fields({key: body}, (), "server message")
            out.append(UnknownMessage(key, body))
            continue
        message = cls.from_wire(body)
        if cls is not ServerContent or message != _EMPTY_CONTENT:
            out.append(message)
    if usage is not None:
        out.append(usage)
    return out


# The fast path. Why: a spoken reply is ~100 frames a round trip, nearly all
# {"serverContent": {"modelTurn": {"parts": [{"inlineData": ...}]}, "outputTranscription": ...}}
# and {}; read the general way, each costs ~19 two-spelling lookups, an extra-fields scan and a
# nesting pre-walk, seven times json.loads. The readers below take exactly the camelCase shapes
# the service sends, with every leaf's type checked, and return None (never raise) at the first
# thing they do not expect: a snake_case or unknown key, a wrong type, an out-of-range number,
# base64 that is not padded standard base64. The general path then reads the frame from the
# start, so results and errors are the general path's by construction (tests/protocol/test_messages.py
# compares both on a corpus). Accepted shapes are at most six levels deep, which is why the
# nesting pre-walk is skipped for them.

_NO = object()
_FAST_FLAGS = (
    ("turnComplete", "turn_complete"),
    ("generationComplete", "generation_complete"),
    ("interrupted", "interrupted"),
    ("waitingForInput", "waiting_for_input"),
)
_FAST_TRANSCRIPTIONS = (
    ("outputTranscription", "output_transcription"),
    ("inputTranscription", "input_transcription"),
    ("interimInputTranscription", "interim_input_transcription"),
)
_FAST_CONTENT: dict[str, tuple[str, bool]] = {
    **{key: (name, True) for key, name in _FAST_FLAGS},
    **{key: (name, False) for key, name in _FAST_TRANSCRIPTIONS},
}
_FAST_TURN_KEYS = frozenset({"role", "parts"})
_FAST_TRANSCRIPTION_KEYS = frozenset({"text", "finished"})
_FAST_USAGE_COUNTS = (
    ("promptTokenCount", "prompt_token_count"),
    ("responseTokenCount", "response_token_count"),
    ("totalTokenCount", "total_token_count"),
    ("cachedContentTokenCount", "cached_content_token_count"),
    ("toolUsePromptTokenCount", "tool_use_prompt_token_count"),
    ("thoughtsTokenCount", "thoughts_token_count"),
)
_FAST_USAGE_DETAILS = (
    ("promptTokensDetails", "prompt_tokens_details"),
    ("responseTokensDetails", "response_tokens_details"),
    ("cacheTokensDetails", "cache_tokens_details"),
    ("toolUsePromptTokensDetails", "tool_use_prompt_tokens_details"),
)
_FAST_USAGE_KEYS = frozenset(
    ["trafficType", *(k for k, _ in _FAST_USAGE_COUNTS), *(k for k, _ in _FAST_USAGE_DETAILS)]
)
_FAST_COUNT_KEYS = frozenset({"modality", "tokenCount"})


def _fast_frame(data: dict[str, Any]) -> list[ServerMessage] | None:
    """The messages of a hot frame shape, or None to take the general path."""
    if not data:  # {}: gemini-3.8-live sends it between content messages
        return []
    content = data.get("serverContent", _NO)
    usage = data.get("usageMetadata", _NO)
    if len(data) != (content is not _NO) + (usage is not _NO):
        return None
    out: list[ServerMessage] = []
    if content is not _NO:
        message = _fast_content(content)
        if message is None:
            return None
        if message is not _EMPTY_CONTENT:
            out.append(message)
    if usage is not _NO:
        metadata = _fast_usage(usage)
        if metadata is None:
            return None
        out.append(metadata)
    return out


def _fast_content(body: Any) -> ServerContent | None:
    """``ServerContent.from_wire`` for camelCase model turns, transcriptions and flags; ``_EMPTY_CONTENT`` if empty."""
    if type(body) is not dict:
        return None
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if key == "modelTurn":
            if value is not None:
                turn = _fast_turn(value)
                if turn is None:
                    return None
                fields["model_turn"] = turn
            continue
        spec = _FAST_CONTENT.get(key)
        if spec is None:
            return None
        if value is None:
            continue
        name, is_flag = spec
        if is_flag:
            if type(value) is not bool:
                return None
            if value:
                fields[name] = True
        else:
            transcription = _fast_transcription(value)
            if transcription is None:
                return None
            fields[name] = transcription
    return ServerContent(**fields) if fields else _EMPTY_CONTENT


def _fast_turn(turn: Any) -> Content | None:
    """``Content.from_wire`` for parts that are each one inline blob or one text."""
    if type(turn) is not dict or not turn.keys() <= _FAST_TURN_KEYS:
        return None
    role = turn.get("role")
    if role is not None and type(role) is not str:
        return None
    items = turn.get("parts")
    if items is None:
        items = ()
    elif type(items) is not list:
        return None
    parts = []
    for item in items:
        if type(item) is not dict or len(item) != 1:
            return None
        blob = item.get("inlineData")
        if blob is not None:
            if type(blob) is not dict or len(blob) != 2:
                return None
            data, mime = blob.get("data"), blob.get("mimeType")
            if type(data) is not str or type(mime) is not str:
                return None
            pcm = w.b64decode_padded(data)
            if pcm is None:
                return None
            parts.append(Part(inline_data=Blob(pcm, mime)))
            continue
        text = item.get("text")
        if type(text) is not str:
            return None
        parts.append(Part(text))
    return Content(role, tuple(parts))


def _fast_transcription(value: Any) -> Transcription | None:
    """``Transcription.from_wire`` for text and ``finished`` alone."""
    if type(value) is not dict or not value.keys() <= _FAST_TRANSCRIPTION_KEYS:
        return None
    text = value.get("text")
    if text is None:
        text = ""
    elif type(text) is not str:
        return None
    finished = value.get("finished")
    if finished is not None and type(finished) is not bool:
        return None
    return Transcription(text=text, finished=finished)


def _fast_count(value: Any) -> bool:
    """A token count the general path reads as itself: None or an in-range int (never a bool)."""
    return value is None or (type(value) is int and w.INT64_MIN <= value <= w.INT64_MAX)


def _fast_usage(body: Any) -> UsageMetadata | None:
    """``UsageMetadata.from_wire`` for camelCase counts (the Developer API's names) and details."""
    if type(body) is not dict or not body.keys() <= _FAST_USAGE_KEYS:
        return None
    fields: dict[str, Any] = {}
    for key, name in _FAST_USAGE_COUNTS:
        count = body.get(key)
        if not _fast_count(count):
            return None
        fields[name] = count
    for key, name in _FAST_USAGE_DETAILS:
        items = body.get(key)
        if items is None:
            continue
        if type(items) is not list:
            return None
        details = []
        for item in items:
            if type(item) is not dict or not item.keys() <= _FAST_COUNT_KEYS:
                return None
            modality, count = item.get("modality"), item.get("tokenCount")
            if (modality is not None and type(modality) is not str) or not _fast_count(count):
                return None
            details.append(ModalityTokenCount(modality=modality or "MODALITY_UNSPECIFIED", token_count=count or 0))
        fields[name] = tuple(details)
    traffic = body.get("trafficType")
    if traffic is not None and type(traffic) is not str:
        return None
    return UsageMetadata(traffic_type=traffic, **fields)


def encode_server_frame(message: ServerMessage, usage: UsageMetadata | None = None) -> bytes:
    """Encode a server message (with usage riding along, if given) as canonical JSON bytes.

    Raises:
        LocalProtocolError: a Duration that is NaN, infinite, negative or above a day.
    """
    if isinstance(message, UnknownMessage):
        body: Json = {message.key: message.value}
    elif isinstance(message, UsageMetadata):
        body = {"usageMetadata": message.to_wire()}
    else:
        body = {message.KEY: message.to_wire()}
    if usage is not None:
        body["usageMetadata"] = usage.to_wire()
    return w.dumps_bytes(body)
