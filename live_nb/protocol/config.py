"""Connection config, named as the seed SDKs name it, validated before anything is sent.

``LiveGenerationConfig`` holds everything a ``setup`` message carries besides the model and the
resumption config. Bad values raise ``ConfigError`` (a ValueError) naming the field, the value and
the allowed range, at construction time: a session never opens with a config the service would
close with 1007.

Read from the wire (``from_wire``, the emulator reading a client's setup), a value of the wrong
JSON type is a ``RemoteProtocolError`` naming its path (``setup.generationConfig.temperature``);
a value of the right type outside its range stays a ``ConfigError``. The emulator refuses both with
1007.

Ranges (live-protocol.md section 4, Vertex "Interactive conversations" table):
``triggerTokens`` 5,000..128,000, default 80% of the 128k window; ``slidingWindow.targetTokens``
0..128,000 and below the trigger, default half the trigger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..exceptions import ConfigError, LiveError
from . import _wire as w
from .content import Content, as_content
from .tools import Tool, as_tool

__all__ = [
    "CONNECTION_LIFETIME_SECONDS",
    "CONTEXT_WINDOW_TOKENS",
    "GO_AWAY_LEAD_SECONDS",
    "MEDIA_RESOLUTIONS",
    "THINKING_LEVELS",
    "AudioTranscriptionConfig",
    "ContextWindowCompressionConfig",
    "HistoryConfig",
    "LiveGenerationConfig",
    "ProactivityConfig",
    "SessionResumptionConfig",
    "SlidingWindow",
    "SpeechConfig",
    "ThinkingConfig",
]

CONTEXT_WINDOW_TOKENS = 128_000
"""The Live API's context window (tokens)."""

CONNECTION_LIFETIME_SECONDS = 600.0
"""How long one connection lives (about 10 min, live-protocol.md section 4)."""

GO_AWAY_LEAD_SECONDS = 60.0
"""How long before a connection's end its GoAway arrives."""

TRIGGER_MIN, TRIGGER_MAX = 5_000, 128_000
TARGET_MIN, TARGET_MAX = 0, 128_000
MODALITIES = ("TEXT", "AUDIO")
THINKING_LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
"""``thinkingConfig.thinkingLevel`` values (which a model takes is the catalogue's business)."""
MEDIA_RESOLUTIONS = ("MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH")
THINKING_BUDGET_MIN, THINKING_BUDGET_MAX = -1, 32_768


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(name, value, f"an integer from {low:,} to {high:,}")


def _split_tools(config: LiveGenerationConfig, items: Sequence[Any]) -> None:
    """Set ``config.tools`` to wire dicts only and ``config.function_tools`` to the Tools among ``items``.

    Functions and Tools become one ``{"functionDeclarations": [...]}`` entry where the first stands.
    """
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
        raise ConfigError("tools", items, "a list of functions, Tools and/or declaration dicts")
    wire: list[Mapping[str, Any] | None] = []
    tools: list[Tool] = []
    for item in items:
        if isinstance(item, Mapping):
            wire.append(item)
        elif isinstance(item, Tool) or callable(item):
            if not tools:
                wire.append(None)  # where the functions' entry goes
            tools.append(as_tool(item))
        else:
            raise ConfigError("tools", item, "a function, a Tool or a declaration dict")
    names: set[str] = set()
    for item in wire:
        for decl in (w.field(item, "function_declarations") or ()) if item is not None else ():
            if isinstance(decl, Mapping) and isinstance(decl.get("name"), str):
                names.add(decl["name"])
    for tool in tools:
        if tool.name in names:
            raise ConfigError(f"tools.{tool.name}", tool.name, "one function per name")
        names.add(tool.name)
    entry = {"functionDeclarations": [t.declaration() for t in tools]}
    object.__setattr__(config, "tools", tuple(entry if item is None else item for item in wire))
    object.__setattr__(config, "function_tools", tuple(tools))


def _check_bool(name: str, value: object, optional: bool = True) -> None:
    if not (isinstance(value, bool) or (optional and value is None)):
        raise ConfigError(name, value, "True or False")


def _check_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(name, value, f"a number from {low} to {high}")


def _upper_choice(name: str, value: object, choices: Sequence[str], prefix: str = "") -> str:
    """``low`` -> ``LOW`` (or ``MEDIA_RESOLUTION_LOW`` with a prefix); ConfigError outside ``choices``."""
    text = str(value).upper() if isinstance(value, str) else ""
    if prefix and text and not text.startswith(prefix):
        text = prefix + text
    if text not in choices:
        raise ConfigError(name, value, ", ".join(choices))
    return text


@dataclass(frozen=True, slots=True)
class ThinkingConfig:
    """``generationConfig.thinkingConfig``: how much the model thinks before it speaks.

    Which knob a model takes is a rule of the model (the catalogue checks it): gemini-3.8-live has
    none, its extended-thinking sibling needs a level, 3.1 takes a level, 2.5 a budget.

    Args:
        thinking_level: ``MINIMAL``, ``LOW``, ``MEDIUM`` or ``HIGH`` (any case).
        thinking_budget: tokens to think (0 turns thinking off, -1 lets the model decide).
        include_thoughts: send thought summaries as ``thought`` parts.
    """

    thinking_level: str | None = None
    thinking_budget: int | None = None
    include_thoughts: bool | None = None

    def __post_init__(self) -> None:
        if self.thinking_level is not None:
            level = _upper_choice("thinking.thinking_level", self.thinking_level, THINKING_LEVELS)
            object.__setattr__(self, "thinking_level", level)
        if self.thinking_budget is not None:
            _check_int("thinking.thinking_budget", self.thinking_budget, THINKING_BUDGET_MIN, THINKING_BUDGET_MAX)
        _check_bool("thinking.include_thoughts", self.include_thoughts)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "thinkingConfig") -> ThinkingConfig:
        data = w.mapping(data, where)
        include = w.field(data, "include_thoughts")
        return cls(
            thinking_level=w.string(w.field(data, "thinking_level"), f"{where}.thinkingLevel"),
            thinking_budget=w.int64(w.field(data, "thinking_budget"), f"{where}.thinkingBudget"),
            include_thoughts=None if include is None else w.boolean(include, f"{where}.includeThoughts"),
        )

    def to_wire(self) -> dict[str, Any]:
        return w.prune(
            {
                "thinkingLevel": self.thinking_level,
                "thinkingBudget": self.thinking_budget,
                "includeThoughts": self.include_thoughts,
            }
        )


@dataclass(frozen=True, slots=True)
class SpeechConfig:
    """``generationConfig.speechConfig``: the prebuilt voice and the language replies are spoken in.

    Args:
        voice_name: a prebuilt voice, e.g. ``Kore``, ``Puck``, ``Charon``.
        language_code: BCP-47, e.g. ``en-US``.
    """

    voice_name: str | None = None
    language_code: str | None = None

    def __post_init__(self) -> None:
        for name in ("voice_name", "language_code"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"speech.{name}", value, "a non-empty string")

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "speechConfig") -> SpeechConfig:
        data = w.mapping(data, where)
        voice = w.mapping(w.field(data, "voice_config") or {}, f"{where}.voiceConfig")
        prebuilt = w.mapping(w.field(voice, "prebuilt_voice_config") or {}, f"{where}.voiceConfig.prebuiltVoiceConfig")
        return cls(
            voice_name=w.string(w.field(prebuilt, "voice_name"), f"{where}.voiceConfig.prebuiltVoiceConfig.voiceName")
            or None,
            language_code=w.string(w.field(data, "language_code"), f"{where}.languageCode") or None,
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.voice_name:
            out["voiceConfig"] = {"prebuiltVoiceConfig": {"voiceName": self.voice_name}}
        if self.language_code:
            out["languageCode"] = self.language_code
        return out


@dataclass(frozen=True, slots=True)
class AudioTranscriptionConfig:
    """``inputAudioTranscription`` / ``outputAudioTranscription``: transcripts of the audio in or out.

    Args:
        language_codes: expected languages (BCP-47), as hints.
        custom_vocabulary: words to favour (Vertex AI only, input transcription).
    """

    language_codes: tuple[str, ...] = ()
    custom_vocabulary: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("language_codes", "custom_vocabulary"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"transcription.{name}", value, "a list of non-empty strings")
            object.__setattr__(self, name, tuple(value))

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "audioTranscription") -> AudioTranscriptionConfig:
        data = w.mapping(data, where)
        return cls(
            language_codes=w.strings(w.field(data, "language_codes"), f"{where}.languageCodes"),
            custom_vocabulary=w.strings(w.field(data, "custom_vocabulary"), f"{where}.customVocabulary"),
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.language_codes:
            out["languageCodes"] = list(self.language_codes)
        if self.custom_vocabulary:
            out["customVocabulary"] = list(self.custom_vocabulary)
        return out


@dataclass(frozen=True, slots=True)
class ProactivityConfig:
    """``proactivity``: may the model speak without being spoken to (and stay silent when not addressed)."""

    proactive_audio: bool | None = None

    def __post_init__(self) -> None:
        _check_bool("proactivity.proactive_audio", self.proactive_audio)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "proactivity") -> ProactivityConfig:
        data = w.mapping(data, where)
        value = w.field(data, "proactive_audio")
        return cls(None if value is None else w.boolean(value, f"{where}.proactiveAudio"))

    def to_wire(self) -> dict[str, Any]:
        return {} if self.proactive_audio is None else {"proactiveAudio": self.proactive_audio}


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """``historyConfig``: ``initial_history_in_client_content=True`` lets a session start from history.

    On gemini-3.1-flash-live-preview that is the only way ``clientContent`` is accepted: as the
    first messages, before any realtime input (models.md section 2).
    """

    initial_history_in_client_content: bool = False

    def __post_init__(self) -> None:
        _check_bool(
            "history_config.initial_history_in_client_content", self.initial_history_in_client_content, optional=False
        )

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "historyConfig") -> HistoryConfig:
        data = w.mapping(data, where)
        value = w.field(data, "initial_history_in_client_content")
        return cls(False if value is None else w.boolean(value, f"{where}.initialHistoryInClientContent"))

    def to_wire(self) -> dict[str, Any]:
        return {"initialHistoryInClientContent": self.initial_history_in_client_content}


def _transcription(name: str, value: object) -> AudioTranscriptionConfig | None:
    if value is None or value is False:
        return None
    if value is True:
        return AudioTranscriptionConfig()
    if isinstance(value, AudioTranscriptionConfig):
        return value
    raise ConfigError(name, value, "True, False or an AudioTranscriptionConfig")


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
            target = w.int64(
                w.field(w.mapping(sliding, f"{where}.slidingWindow"), "target_tokens"),
                f"{where}.slidingWindow.targetTokens",
            )
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
        speech_config: voice and language (``SpeechConfig``; a wire-form dict is read into one).
        media_resolution: ``MEDIA_RESOLUTION_LOW|MEDIUM|HIGH`` (or ``low``/``medium``/``high``): how
            many tokens a video frame costs (the catalogue has the numbers per model).
        tools: Python functions, ``Tool`` objects and/or tool declarations as wire dicts
            (``{"functionDeclarations": [...]}``). Functions and Tools are described by
            ``protocol.tools`` and sent as one ``functionDeclarations`` entry where the first of them
            stands; ``tools`` then holds wire dicts only and ``function_tools`` the Tool objects (the
            tool loop answers their calls). Two functions of one name are a ConfigError.
        input_audio_transcription, output_audio_transcription: ``True`` or an
            ``AudioTranscriptionConfig`` to get transcripts of the audio in and out. On today's
            audio-only models the output transcription is how a reply reaches you as text.
        realtime_input_config: activity detection settings, passed through as given.
        thinking: ``ThinkingConfig`` (which knob a model takes is in the catalogue).
        enable_affective_dialog: adapt the voice to the user's tone (2.5 native audio only).
        proactivity: ``ProactivityConfig`` (gemini-3.8-live is always proactive).
        history_config: ``HistoryConfig`` (3.1 takes clientContent only as initial history).
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
    speech_config: SpeechConfig | Mapping[str, Any] | None = None
    media_resolution: str | None = None
    tools: Sequence[Any] | None = None
    """Given: functions, Tools, declaration dicts. Held after construction: declaration dicts only."""
    input_audio_transcription: AudioTranscriptionConfig | bool | None = None
    output_audio_transcription: AudioTranscriptionConfig | bool | None = None
    realtime_input_config: Mapping[str, Any] | None = None
    thinking: ThinkingConfig | None = None
    enable_affective_dialog: bool | None = None
    proactivity: ProactivityConfig | None = None
    history_config: HistoryConfig | None = None
    extra_setup: Mapping[str, Any] | None = None
    extra_generation_config: Mapping[str, Any] | None = None
    function_tools: tuple[Tool, ...] = field(init=False, default=(), repr=False, compare=False)
    """The Tools among ``tools`` (functions described), in order; the wire dicts are in ``tools``."""

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
        "thinking_config",
        "enable_affective_dialog",
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
        if self.media_resolution is not None:
            resolution = _upper_choice(
                "media_resolution", self.media_resolution, (*MEDIA_RESOLUTIONS, "MEDIA_RESOLUTION_UNSPECIFIED"),
                prefix="MEDIA_RESOLUTION_",
            )
            object.__setattr__(self, "media_resolution", resolution)
        if self.tools is not None:
            _split_tools(self, self.tools)
        if self.speech_config is not None and not isinstance(self.speech_config, SpeechConfig):
            if not isinstance(self.speech_config, Mapping):
                raise ConfigError("speech_config", self.speech_config, "a SpeechConfig")
            try:
                speech = SpeechConfig.from_wire(self.speech_config)
            except LiveError as exc:
                raise ConfigError("speech_config", self.speech_config, f"a SpeechConfig ({exc})") from None
            object.__setattr__(self, "speech_config", speech)
        for name in ("input_audio_transcription", "output_audio_transcription"):
            object.__setattr__(self, name, _transcription(name, getattr(self, name)))
        typed = (
            ("thinking", ThinkingConfig),
            ("proactivity", ProactivityConfig),
            ("history_config", HistoryConfig),
        )
        for name, cls in typed:
            value = getattr(self, name)
            if value is not None and not isinstance(value, cls):
                raise ConfigError(name, value, f"a {cls.__name__}")
        _check_bool("enable_affective_dialog", self.enable_affective_dialog)

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
        gen_where = f"{where}.generationConfig"
        gen = w.field(setup, "generation_config")
        gen = {} if gen is None else w.mapping(gen, gen_where)
        si = w.field(setup, "system_instruction")
        cwc = w.field(setup, "context_window_compression")
        tools = w.field(setup, "tools")
        modalities = w.field(gen, "response_modalities")
        rest_setup = {
            k: v
            for k, v in setup.items()
            if k in w._known_spellings(("safety_settings", "labels", "explicit_vad_signal", "avatar_config"))
        }
        thinking = w.field(gen, "thinking_config")
        speech = w.field(gen, "speech_config")
        affective = w.field(gen, "enable_affective_dialog")
        proactivity = w.field(setup, "proactivity")
        history = w.field(setup, "history_config")
        realtime = w.field(setup, "realtime_input_config")
        transcriptions = [
            None if value is None else AudioTranscriptionConfig.from_wire(value, f"{where}.{w.camel(name)}")
            for name in ("input_audio_transcription", "output_audio_transcription")
            for value in [w.field(setup, name)]
        ]
        return cls(
            response_modalities=None
            if modalities is None
            else w.strings(modalities, f"{gen_where}.responseModalities"),
            system_instruction=None if si is None else Content.from_wire(si, f"{where}.systemInstruction"),
            context_window_compression=None
            if cwc is None
            else ContextWindowCompressionConfig.from_wire(cwc, f"{where}.contextWindowCompression"),
            temperature=w.number(w.field(gen, "temperature"), f"{gen_where}.temperature"),
            top_p=w.number(w.field(gen, "top_p"), f"{gen_where}.topP"),
            top_k=w.int64(w.field(gen, "top_k"), f"{gen_where}.topK"),
            max_output_tokens=w.int64(w.field(gen, "max_output_tokens"), f"{gen_where}.maxOutputTokens"),
            seed=w.int64(w.field(gen, "seed"), f"{gen_where}.seed"),
            presence_penalty=w.number(w.field(gen, "presence_penalty"), f"{gen_where}.presencePenalty"),
            frequency_penalty=w.number(w.field(gen, "frequency_penalty"), f"{gen_where}.frequencyPenalty"),
            speech_config=None if speech is None else SpeechConfig.from_wire(speech, f"{gen_where}.speechConfig"),
            media_resolution=w.string(w.field(gen, "media_resolution"), f"{gen_where}.mediaResolution"),
            tools=None if tools is None else w.objects(tools, f"{where}.tools"),
            input_audio_transcription=transcriptions[0],
            output_audio_transcription=transcriptions[1],
            realtime_input_config=None if realtime is None else w.mapping(realtime, f"{where}.realtimeInputConfig"),
            thinking=None if thinking is None else ThinkingConfig.from_wire(thinking, f"{gen_where}.thinkingConfig"),
            enable_affective_dialog=None
            if affective is None
            else w.boolean(affective, f"{gen_where}.enableAffectiveDialog"),
            proactivity=None
            if proactivity is None
            else ProactivityConfig.from_wire(proactivity, f"{where}.proactivity"),
            history_config=None if history is None else HistoryConfig.from_wire(history, f"{where}.historyConfig"),
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
                "speechConfig": self._speech.to_wire() if self._speech is not None else None,
                "mediaResolution": self.media_resolution,
                "thinkingConfig": self.thinking.to_wire() if self.thinking is not None else None,
                "enableAffectiveDialog": self.enable_affective_dialog,
            }
        )
        if self.extra_generation_config:
            gen.update(self.extra_generation_config)
        si = self.system_instruction
        out = w.prune(
            {
                "generationConfig": gen or None,
                "systemInstruction": si.to_wire() if isinstance(si, Content) else None,
                "tools": [dict(t) for t in self.tools] if self.tools is not None else None,
                "contextWindowCompression": None
                if self.context_window_compression is None
                else self.context_window_compression.to_wire(),
                "inputAudioTranscription": _transcription_wire(self.input_audio_transcription),
                "outputAudioTranscription": _transcription_wire(self.output_audio_transcription),
                "realtimeInputConfig": None
                if self.realtime_input_config is None
                else dict(self.realtime_input_config),
                "proactivity": self.proactivity.to_wire() if self.proactivity is not None else None,
                "historyConfig": self.history_config.to_wire() if self.history_config is not None else None,
            }
        )
        if self.extra_setup:
            out.update(self.extra_setup)
        return out

    @property
    def _speech(self) -> SpeechConfig | None:
        speech = self.speech_config
        return speech if isinstance(speech, SpeechConfig) else None

    @property
    def voice_name(self) -> str | None:
        """The prebuilt voice asked for, if any."""
        return self._speech.voice_name if self._speech else None

    @property
    def activity_handling(self) -> str | None:
        """``realtimeInputConfig.activityHandling`` as given (None: the service default, barge-in)."""
        value = w.field(self.realtime_input_config or {}, "activity_handling")
        return value if isinstance(value, str) else None

    @property
    def turn_coverage(self) -> str | None:
        """``realtimeInputConfig.turnCoverage`` as given (None: the model's default, see the catalogue)."""
        value = w.field(self.realtime_input_config or {}, "turn_coverage")
        return value if isinstance(value, str) else None

    @property
    def automatic_activity_detection(self) -> bool:
        """Whether the server detects speech turns by itself (the default)."""
        ric = self.realtime_input_config or {}
        aad = w.field(ric, "automatic_activity_detection") or {}
        return not bool(w.field(aad, "disabled", False))


def _transcription_wire(value: object) -> dict[str, Any] | None:
    return value.to_wire() if isinstance(value, AudioTranscriptionConfig) else None
