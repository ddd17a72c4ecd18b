"""Connection config, named as the seed SDKs name it, validated before anything is sent.

``LiveGenerationConfig`` holds everything a ``setup`` message carries besides the model and the
resumption config. Bad values raise ``ConfigError`` (a ValueError) naming the field, the value and
the allowed range, at construction time: a session never opens with a config the service would
close with 1007.

Ranges (live-protocol.md section 4, Vertex "Interactive conversations" table):
``triggerTokens`` 5,000..128,000, default 80% of the 128k window; ``slidingWindow.targetTokens``
0..128,000 and below the trigger, default half the trigger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..exceptions import ConfigError
from . import _wire as w
from .messages import Content, as_content

__all__ = [
    "CONNECTION_LIFETIME_SECONDS",
    "CONTEXT_WINDOW_TOKENS",
    "GO_AWAY_LEAD_SECONDS",
    "HANDLE_RETENTION_SECONDS",
    "ContextWindowCompressionConfig",
    "LiveGenerationConfig",
    "SessionResumptionConfig",
    "SlidingWindow",
]

CONTEXT_WINDOW_TOKENS = 128_000
"""The Live API's context window (tokens)."""

CONNECTION_LIFETIME_SECONDS = 600.0
"""How long one connection lives (about 10 min, live-protocol.md section 4)."""

GO_AWAY_LEAD_SECONDS = 60.0
"""How long before a connection's end its GoAway arrives."""

HANDLE_RETENTION_SECONDS = {"gemini": 2 * 3600.0, "vertex": 24 * 3600.0}
"""How long a resumption handle stays valid after its session ends, by backend."""

TRIGGER_MIN, TRIGGER_MAX = 5_000, 128_000
TARGET_MIN, TARGET_MAX = 0, 128_000
MODALITIES = ("TEXT", "AUDIO")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, value, f"an integer from {low:,} to {high:,}")


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(name, value, f"a number from {low} to {high}")


@dataclass(frozen=True, slots=True)
class SlidingWindow:
    """Compression by sliding window: drop the oldest turns until the context is at or below the target."""

    target_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.target_tokens is not None:
            _check_int("sliding_window.target_tokens", self.target_tokens, TARGET_MIN, TARGET_MAX)

    def to_wire(self) -> dict[str, Any]:
        # int64 goes out as a string, as proto3 JSON (and js-genai) write it.
        return {} if self.target_tokens is None else {"targetTokens": str(self.target_tokens)}


@dataclass(frozen=True, slots=True)
class ContextWindowCompressionConfig:
    """Context window compression: past ``trigger_tokens``, slide down to ``target_tokens``.

    ``sliding_window`` is always sent: the service rejects a compression config without it.
    """

    trigger_tokens: int | None = None
    sliding_window: SlidingWindow | None = field(default_factory=SlidingWindow)

    def __post_init__(self) -> None:
        if self.trigger_tokens is not None:
            _check_int(
                "context_window_compression.trigger_tokens", self.trigger_tokens, TRIGGER_MIN, TRIGGER_MAX
            )
        target = self.sliding_window.target_tokens if self.sliding_window else None
        if target is not None and target >= self.effective_trigger_tokens:
            raise ConfigError(
                "sliding_window.target_tokens",
                target,
                f"below trigger_tokens ({self.effective_trigger_tokens:,})",
            )

    @property
    def effective_trigger_tokens(self) -> int:
        """The trigger in force: as given, or 80% of the context window."""
        return self.trigger_tokens if self.trigger_tokens is not None else CONTEXT_WINDOW_TOKENS * 8 // 10

    @property
    def effective_target_tokens(self) -> int:
        """The target in force: as given, or half the trigger."""
        target = self.sliding_window.target_tokens if self.sliding_window else None
        return target if target is not None else self.effective_trigger_tokens // 2

    @classmethod
    def from_wire(
        cls, data: Mapping[str, Any], where: str = "contextWindowCompression"
    ) -> ContextWindowCompressionConfig:
        data = w.mapping(data, where)
        sliding = w.field(data, "sliding_window")
        target = None
        if sliding is not None:
            target = w.int64(w.field(w.mapping(sliding, f"{where}.slidingWindow"), "target_tokens"), "targetTokens")
        return cls(
            trigger_tokens=w.int64(w.field(data, "trigger_tokens"), f"{where}.triggerTokens"),
            sliding_window=None if sliding is None else SlidingWindow(target),
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.trigger_tokens is not None:
            out["triggerTokens"] = str(self.trigger_tokens)
        if self.sliding_window is not None:
            out["slidingWindow"] = self.sliding_window.to_wire()
        return out


@dataclass(frozen=True, slots=True)
class SessionResumptionConfig:
    """Session resumption: ``SessionResumptionConfig()`` starts a resumable session, ``handle=h`` resumes one.

    ``transparent=True`` asks the server for ``lastConsumedClientMessageIndex`` so the client can
    replay what the server had not yet folded in (Vertex AI and the emulator).
    """

    handle: str | None = None
    transparent: bool = False

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "sessionResumption") -> SessionResumptionConfig:
        data = w.mapping(data, where)
        return cls(
            handle=w.string(w.field(data, "handle"), f"{where}.handle") or None,
            transparent=w.boolean(w.field(data, "transparent"), f"{where}.transparent"),
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.handle:
            out["handle"] = self.handle
        if self.transparent:
            out["transparent"] = True
        return out


@dataclass(frozen=True, slots=True)
class LiveGenerationConfig:
    """Everything in ``setup`` besides the model and resumption.

    Args:
        response_modalities: ``["TEXT"]`` or ``["AUDIO"]`` (one per session; the service defaults to AUDIO).
        system_instruction: text or a Content; stays in force until updated.
        context_window_compression: turn on sliding-window compression.
        temperature, top_p, top_k, max_output_tokens, seed, presence_penalty, frequency_penalty:
            sampling, as in generateContent.
        speech_config: voice and language, passed through as given (e.g. ``{"voiceConfig": ...}``).
        media_resolution: ``MEDIA_RESOLUTION_LOW|MEDIUM|HIGH``.
        tools: tool declarations as wire dicts (``[{"functionDeclarations": [...]}]``).
        input_audio_transcription, output_audio_transcription: ask for transcripts of audio in and out.
        realtime_input_config: activity detection settings, passed through as given.
        extra_setup, extra_generation_config: further fields passed through as given.
    """

    response_modalities: Sequence[str] | None = None
    system_instruction: Content | str | None = None
    context_window_compression: ContextWindowCompressionConfig | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    speech_config: Mapping[str, Any] | None = None
    media_resolution: str | None = None
    tools: Sequence[Mapping[str, Any]] | None = None
    input_audio_transcription: bool = False
    output_audio_transcription: bool = False
    realtime_input_config: Mapping[str, Any] | None = None
    extra_setup: Mapping[str, Any] | None = None
    extra_generation_config: Mapping[str, Any] | None = None

    SETUP_KEYS: ClassVar[tuple[str, ...]] = (
        "generation_config",
        "system_instruction",
        "tools",
        "context_window_compression",
        "input_audio_transcription",
        "output_audio_transcription",
        "realtime_input_config",
        "proactivity",
        "history_config",
        "safety_settings",
        "labels",
        "explicit_vad_signal",
        "avatar_config",
    )
    _GENERATION_KEYS: ClassVar[tuple[str, ...]] = (
        "response_modalities",
        "temperature",
        "top_p",
        "top_k",
        "max_output_tokens",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "speech_config",
        "media_resolution",
    )

    def __post_init__(self) -> None:
        if self.response_modalities is not None:
            modalities = tuple(str(m).upper() for m in self.response_modalities)
            if len(modalities) != 1 or modalities[0] not in MODALITIES:
                raise ConfigError(
                    "response_modalities", list(self.response_modalities), 'exactly one of "TEXT" or "AUDIO"'
                )
            object.__setattr__(self, "response_modalities", modalities)
        if isinstance(self.system_instruction, str):
            object.__setattr__(self, "system_instruction", as_content(self.system_instruction, role="user"))
        if self.temperature is not None:
            _check_number("temperature", self.temperature, 0.0, 2.0)
        if self.top_p is not None:
            _check_number("top_p", self.top_p, 0.0, 1.0)
        if self.top_k is not None:
            _check_int("top_k", self.top_k, 1, 1_000_000)
        if self.max_output_tokens is not None:
            _check_int("max_output_tokens", self.max_output_tokens, 1, 1_000_000)
        if self.media_resolution is not None and self.media_resolution not in (
            "MEDIA_RESOLUTION_LOW",
            "MEDIA_RESOLUTION_MEDIUM",
            "MEDIA_RESOLUTION_HIGH",
            "MEDIA_RESOLUTION_UNSPECIFIED",
        ):
            raise ConfigError("media_resolution", self.media_resolution, "MEDIA_RESOLUTION_LOW, _MEDIUM or _HIGH")
        if self.tools is not None:
            object.__setattr__(self, "tools", tuple(self.tools))

    @property
    def response_modality(self) -> str:
        """The one modality replies come in (AUDIO when unset, as on the service)."""
        return self.response_modalities[0] if self.response_modalities else "AUDIO"

    @property
    def system_instruction_text(self) -> str:
        """The system instruction as plain text ('' when none)."""
        si = self.system_instruction
        return si.text if isinstance(si, Content) else (si or "")

    @classmethod
    def from_wire(cls, setup: Mapping[str, Any], where: str = "setup") -> LiveGenerationConfig:
        """Read the config part of a ``setup`` message body."""
        gen = w.mapping(w.field(setup, "generation_config") or {}, f"{where}.generationConfig")
        si = w.field(setup, "system_instruction")
        cwc = w.field(setup, "context_window_compression")
        tools = w.field(setup, "tools")
        modalities = w.field(gen, "response_modalities")
        rest_setup = {
            k: v
            for k, v in setup.items()
            if k in w._known_spellings(("proactivity", "history_config", "safety_settings", "labels",
                                        "explicit_vad_signal", "avatar_config"))
        }
        return cls(
            response_modalities=None if modalities is None else tuple(w.sequence(modalities, "responseModalities")),
            system_instruction=None if si is None else Content.from_wire(si, f"{where}.systemInstruction"),
            context_window_compression=None
            if cwc is None
            else ContextWindowCompressionConfig.from_wire(cwc, f"{where}.contextWindowCompression"),
            temperature=w.field(gen, "temperature"),
            top_p=w.field(gen, "top_p"),
            top_k=w.int64(w.field(gen, "top_k"), "topK"),
            max_output_tokens=w.int64(w.field(gen, "max_output_tokens"), "maxOutputTokens"),
            seed=w.int64(w.field(gen, "seed"), "seed"),
            presence_penalty=w.field(gen, "presence_penalty"),
            frequency_penalty=w.field(gen, "frequency_penalty"),
            speech_config=w.field(gen, "speech_config"),
            media_resolution=w.string(w.field(gen, "media_resolution"), "mediaResolution"),
            tools=None if tools is None else tuple(w.sequence(tools, f"{where}.tools")),
            input_audio_transcription=w.field(setup, "input_audio_transcription") is not None,
            output_audio_transcription=w.field(setup, "output_audio_transcription") is not None,
            realtime_input_config=w.field(setup, "realtime_input_config"),
            extra_setup=rest_setup or None,
            extra_generation_config=w.extra_fields(gen, cls._GENERATION_KEYS, "generationConfig"),
        )

    def to_wire(self) -> dict[str, Any]:
        """The canonical camelCase setup fields (without ``model`` and ``sessionResumption``)."""
        gen = w.prune(
            {
                "responseModalities": list(self.response_modalities) if self.response_modalities else None,
                "temperature": self.temperature,
                "topP": self.top_p,
                "topK": self.top_k,
                "maxOutputTokens": self.max_output_tokens,
                "seed": self.seed,
                "presencePenalty": self.presence_penalty,
                "frequencyPenalty": self.frequency_penalty,
                "speechConfig": dict(self.speech_config) if self.speech_config else None,
                "mediaResolution": self.media_resolution,
            }
        )
        if self.extra_generation_config:
            gen.update(self.extra_generation_config)
        si = self.system_instruction
        out = w.prune(
            {
                "generationConfig": gen or None,
                "systemInstruction": si.to_wire() if isinstance(si, Content) else None,
                "tools": [dict(t) for t in self.tools] if self.tools else None,
                "contextWindowCompression": None
                if self.context_window_compression is None
                else self.context_window_compression.to_wire(),
                "inputAudioTranscription": {} if self.input_audio_transcription else None,
                "outputAudioTranscription": {} if self.output_audio_transcription else None,
                "realtimeInputConfig": dict(self.realtime_input_config) if self.realtime_input_config else None,
            }
        )
        if self.extra_setup:
            out.update(self.extra_setup)
        return out

    @property
    def automatic_activity_detection(self) -> bool:
        """Whether the server detects speech turns by itself (the default)."""
        ric = self.realtime_input_config or {}
        aad = w.field(ric, "automatic_activity_detection") or {}
        return not bool(w.field(aad, "disabled", False))
