"""The Live API's models and the rules each one enforces, as data: one place for the client and the emulator.

Why one module: model facts go stale (models.md). The client reads this table to refuse a config
early, with an error that names the model, the rule and what to use instead; the emulator reads
the same table to refuse it on the wire, with the service's close code and reason. A fact changed
here changes both sides, so they cannot drift apart.

Rules:
1. Data first. ``ModelInfo`` rows say what a model is; ``BACKEND_OFFERS`` says what each backend
   (wire flavour: ``gemini`` is the Developer API, ``vertex`` Vertex AI) offers. Functions below
   only read them.
2. A check returns a ``Refusal`` (close code, the service's reason, and the plain-words advice the
   client shows), never raises: the caller decides whether it becomes a ``ConfigError`` before
   sending (client) or a close frame (emulator).
3. A model the catalogue does not know is not refused here: the client warns once and tries it
   (the service may know it); the emulator refuses it with 1008, as the service does.

Sources: models.md sections 1-3 (ai.google.dev model pages, Vertex guides, third-party probes
marked there). Where models.md lists an open question, the stricter reading is taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import _wire as w
from .config import LiveGenerationConfig, SessionResumptionConfig
from .messages import ClientContent, ClientMessage, ContextUpdate, RealtimeInput, ToolResponse

__all__ = [
    "BACKEND_OFFERS",
    "CATALOGUE",
    "DEFAULT_MODEL",
    "BackendOffer",
    "ClientContentGate",
    "ModelInfo",
    "Refusal",
    "bare_model_name",
    "check_client_message",
    "check_setup",
    "lookup",
    "unknown_model_reason",
    "wire_flavor",
]

CURRENT, PREVIEW, LEGACY, SHUT_DOWN = "current", "preview", "legacy", "shut down"
TURN_ONLY_ACTIVITY = "TURN_INCLUDES_ONLY_ACTIVITY"
TURN_AUDIO_ACTIVITY_ALL_VIDEO = "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"
TURN_ALL_INPUT = "TURN_INCLUDES_ALL_INPUT"
INVALID = "Request contains an invalid argument."
DEFAULT_INPUT_WINDOW = 128_000
"""The window assumed for a model the catalogue does not know (the Live API's documented 128k)."""


@dataclass(frozen=True, slots=True)
class BackendOffer:
    """What one backend offers beyond the models (models.md section 3)."""

    transparent_resumption: bool
    system_instruction_update: bool
    """A ``role: "system"`` clientContent turn mid-session."""
    context_update: bool
    """The ``contextUpdate {systemInstruction, tools}`` message."""
    audio_stream_end: bool
    explicit_vad_signal: bool
    handle_retention_seconds: float


BACKEND_OFFERS: Mapping[str, BackendOffer] = {
    "gemini": BackendOffer(
        transparent_resumption=False, system_instruction_update=False, context_update=False,
        audio_stream_end=True, explicit_vad_signal=False, handle_retention_seconds=2 * 3600.0,
    ),
    "vertex": BackendOffer(
        transparent_resumption=True, system_instruction_update=True, context_update=True,
        audio_stream_end=False, explicit_vad_signal=True, handle_retention_seconds=24 * 3600.0,
    ),
}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One Live model: its status and the rules it enforces.

    Attributes:
        id: the model id without prefix (``gemini-3.8-live``).
        backends: where it is served (``gemini``, ``vertex``).
        status: ``current``, ``preview``, ``legacy`` or ``shut down``.
        released, shut_down: ISO dates, when known.
        replacement: what to use instead (legacy and shut-down models).
        response_modalities: what it can answer in (today: AUDIO only).
        input_window: the context window in tokens.
        client_content: ``any`` or ``initial_history`` (only before realtime input, with
            ``historyConfig.initialHistoryInClientContent``).
        thinking: ``none`` (no knob: any level refused), ``level_required``, ``level`` or ``budget``.
        thinking_levels: the levels it takes, and ``default_thinking_level``.
        affective_dialog: ``optional`` or ``refused``.
        proactive_audio: ``optional``, ``always`` (turning it off is refused) or ``refused``.
        function_behavior: the default ``behavior`` of a declared function (``NON_BLOCKING`` or
            ``BLOCKING``); ``blocking_allowed``/``non_blocking_allowed`` say which may be asked for;
            ``response_scheduling`` whether a tool response may carry ``scheduling``.
        turn_coverage: the default ``realtimeInputConfig.turnCoverage``.
        tokens_per_frame: video tokens per frame by ``mediaResolution`` (``""`` is the default).
        interaction_status: sends ``interactionStatus`` (IN_PROGRESS after fillers, IDLE at the end).
        empty_frames: sends ``{}`` frames between content messages.
        audio_with_transcription: one ``serverContent`` carries an audio chunk and its words together.
        text_refusal: the reason its close frame gives when asked for TEXT.
        aliases: other ids that name it.
    """

    id: str
    backends: tuple[str, ...]
    status: str
    released: str | None = None
    shut_down: str | None = None
    replacement: str | None = None
    response_modalities: tuple[str, ...] = ("AUDIO",)
    input_window: int = 131_072
    client_content: str = "any"
    thinking: str = "none"
    thinking_levels: tuple[str, ...] = ()
    default_thinking_level: str | None = None
    affective_dialog: str = "refused"
    proactive_audio: str = "refused"
    function_behavior: str = "BLOCKING"
    blocking_allowed: bool = True
    non_blocking_allowed: bool = True
    response_scheduling: bool = True
    turn_coverage: str = TURN_AUDIO_ACTIVITY_ALL_VIDEO
    tokens_per_frame: Mapping[str, int] = field(default_factory=lambda: {"": 258})
    interaction_status: bool = False
    empty_frames: bool = False
    audio_with_transcription: bool = False
    text_refusal: str = INVALID
    aliases: tuple[str, ...] = ()
    note: str = ""

    @property
    def usable(self) -> bool:
        """Whether the service still serves it."""
        return self.status != SHUT_DOWN

    def frame_tokens(self, media_resolution: str | None) -> int:
        """Tokens one video frame costs at this media resolution."""
        table = self.tokens_per_frame
        return table.get(media_resolution or "", table[""])


_GEN3_FRAMES = {"": 256, "MEDIA_RESOLUTION_LOW": 64, "MEDIA_RESOLUTION_MEDIUM": 256, "MEDIA_RESOLUTION_HIGH": 256}
_NATIVE_AUDIO_25 = ModelInfo(
    "gemini-2.5-flash-native-audio", ("gemini",), PREVIEW, input_window=128_000, thinking="budget",
    affective_dialog="optional", proactive_audio="optional", function_behavior="BLOCKING",
    turn_coverage=TURN_ONLY_ACTIVITY, text_refusal="Cannot extract voices from a non-audio request.",
)

CATALOGUE: tuple[ModelInfo, ...] = (
    ModelInfo(
        "gemini-3.8-live", ("gemini", "vertex"), CURRENT, released="2026-09-15",
        proactive_audio="always", function_behavior="NON_BLOCKING", tokens_per_frame=_GEN3_FRAMES,
        audio_with_transcription=True, empty_frames=True,
        text_refusal="The requested combination of response modalities (TEXT) is not supported by the model.",
        note="Google's recommended default for voice agents",
    ),
    ModelInfo(
        "gemini-3.8-live-extended-thinking", ("gemini",), CURRENT, released="2026-09-15",
        thinking="level_required", thinking_levels=("LOW", "MEDIUM", "HIGH"),
        function_behavior="NON_BLOCKING", blocking_allowed=False, response_scheduling=False,
        tokens_per_frame=_GEN3_FRAMES, audio_with_transcription=True, interaction_status=True, empty_frames=True,
        text_refusal="The requested combination of response modalities (TEXT) is not supported by the model.",
        note="thinks before it answers: fillers with interactionStatus IN_PROGRESS, IDLE at the end",
    ),
    ModelInfo(
        "gemini-3.1-flash-live-preview", ("gemini",), LEGACY, released="2026-03", replacement="gemini-3.8-live",
        client_content="initial_history", thinking="level", thinking_levels=("MINIMAL", "LOW", "MEDIUM", "HIGH"),
        default_thinking_level="MINIMAL", non_blocking_allowed=False, response_scheduling=False,
        tokens_per_frame=_GEN3_FRAMES, audio_with_transcription=True,
        text_refusal="The requested combination of response modalities (TEXT) is not supported by the model.",
        note="legacy preview: clientContent only as initial history, later text as realtimeInput.text",
    ),
    replace(
        _NATIVE_AUDIO_25, id="gemini-2.5-flash-native-audio-preview-12-2025", released="2025-12",
        aliases=("gemini-2.5-flash-native-audio-latest",),
    ),
    replace(_NATIVE_AUDIO_25, id="gemini-2.5-flash-native-audio-preview-09-2025", released="2025-09"),
    replace(
        _NATIVE_AUDIO_25, id="gemini-live-2.5-flash-native-audio", backends=("vertex",), status=CURRENT,
        note="Vertex AI GA: 128k window, 1,000 concurrent sessions",
    ),
    ModelInfo(
        "gemini-live-2.5-flash-preview", ("gemini",), SHUT_DOWN, shut_down="2025-12-09",
        replacement="gemini-3.8-live", response_modalities=("TEXT", "AUDIO"),
    ),
    ModelInfo(
        "gemini-2.0-flash-live-001", ("gemini",), SHUT_DOWN, shut_down="2025-12-09",
        replacement="gemini-3.8-live", response_modalities=("TEXT", "AUDIO"),
    ),
)

DEFAULT_MODEL = "gemini-3.8-live"
"""What live_nb uses when no model is named, on both backends (models.md section 1)."""

_BY_NAME: dict[str, ModelInfo] = {
    name: info for info in CATALOGUE for name in (info.id, *info.aliases)
}


def bare_model_name(model: str) -> str:
    """``models/x``, ``publishers/google/models/x`` or ``projects/.../models/x`` -> ``x``."""
    return model.rsplit("/", 1)[-1]


def lookup(model: str) -> ModelInfo | None:
    """The catalogue row for a model id (any prefix, any alias), or None when it is not known."""
    return _BY_NAME.get(bare_model_name(model))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A rule broken: what the service closes with, and what the client tells the user.

    Attributes:
        code: the WebSocket close code (1007 invalid argument, 1008 not found / policy).
        reason: the close reason, worded as the service words it.
        field: the config field or message at fault (``response_modalities``, ``thinking``...).
        advice: the rule in plain words, naming the model and what to use instead.
        kind: whose rule it is: ``config`` (the model refuses a setting), ``backend`` (the backend
            does not offer a feature) or ``message`` (the model refuses a message now); the client
            raises ConfigError, UnsupportedOnBackend or LocalProtocolError for them.
    """

    code: int
    reason: str
    field: str
    value: Any
    advice: str
    kind: str = "config"


def wire_flavor(backend: str, url: str) -> str | None:
    """Whose rules apply on a connection: ``gemini``, ``vertex``, or None for a bare emulator URL.

    The real backends are what they are. The emulator serves both flavours: its service paths
    say which (the Vertex path, or a ``/vertex`` gateway path, is Vertex's), while its bare URL
    serves whatever flavour it was started with, which only the emulator knows.
    """
    if backend in BACKEND_OFFERS:
        return backend
    path = "/" + url.split("://", 1)[-1].partition("/")[2]
    if "LlmBidiService" in path or path == "/vertex" or path.startswith(("/vertex/", "/vertex-")):
        return "vertex"
    if "GenerativeService" in path:
        return "gemini"
    return None


def unknown_model_reason(model: str, flavor: str, api_version: str) -> str:
    """The service's 1008 reason for a model it does not serve on this path (models.md, live-protocol.md 5)."""
    if flavor == "vertex":
        return f"Publisher Model `{model}` was not found or your project does not have access to it."
    shown = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
    return (
        f"{shown} is not found for API version {api_version}, or is not supported for bidiGenerateContent. "
        "Call ListModels to see the list of available models and their supported methods."
    )


def _declared_behaviors(config: LiveGenerationConfig) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for tool in config.tools or ():
        for decl in w.field(tool, "function_declarations") or ():
            if isinstance(decl, Mapping):
                behavior = decl.get("behavior")
                if isinstance(behavior, str):
                    out.append((str(decl.get("name", "?")), behavior.upper()))
    return out


def check_setup(
    info: ModelInfo,
    flavor: str | None,
    config: LiveGenerationConfig,
    resumption: SessionResumptionConfig | None = None,
    model_as_sent: str | None = None,
    api_version: str = "v1beta",
) -> Refusal | None:
    """The first rule a setup breaks on this model and backend, or None.

    Args:
        info: the model's catalogue row.
        flavor: ``gemini`` or ``vertex`` (the wire flavour), or None when unknown (a bare emulator
            URL: the emulator then decides the backend rules itself).
        config: the connection config.
        resumption: the resumption config (transparent mode is a backend rule).
        model_as_sent: the model name as it goes on the wire (quoted in 1008 reasons).
        api_version: quoted in the Developer API's 1008 reason.
    """
    name = info.id
    sent = model_as_sent or name
    if info.status == SHUT_DOWN:
        return Refusal(
            1008, unknown_model_reason(sent, flavor or "gemini", api_version), "model", name,
            f"{name} was shut down on {info.shut_down}; use {info.replacement}",
        )
    if flavor is not None and flavor not in info.backends:
        where = "Vertex AI" if flavor == "vertex" else "the Gemini Developer API"
        others = [m.id for m in CATALOGUE if flavor in m.backends and m.status == CURRENT]
        return Refusal(
            1008, unknown_model_reason(sent, flavor, api_version), "model", name,
            f"{name} is not served on {where}; use {' or '.join(others)}",
        )
    modality = config.response_modality
    if modality not in info.response_modalities:
        return Refusal(
            1007, info.text_refusal, "response_modalities", [modality],
            f"{name} answers in {' or '.join(info.response_modalities)} only; for the reply as text ask for "
            "AUDIO with output_audio_transcription=True (the transcription streams as text)",
        )
    thinking = config.thinking
    level = thinking.thinking_level if thinking else None
    budget = thinking.thinking_budget if thinking else None
    if info.thinking == "none" and (level is not None or budget is not None):
        return Refusal(
            1007, "Thinking level is not supported for this model.", "thinking", thinking,
            f"{name} has no thinking setting; leave thinking unset, or use gemini-3.8-live-extended-thinking",
        )
    if info.thinking == "level_required" and level is None:
        return Refusal(
            1007, "Thinking level must be specified for this model.", "thinking.thinking_level", None,
            f"{name} needs a thinking level: ThinkingConfig(thinking_level=one of {', '.join(info.thinking_levels)})",
        )
    if info.thinking in ("level", "level_required") and level is not None and level not in info.thinking_levels:
        return Refusal(
            1007, f"Thinking level {level} is not supported for this model.", "thinking.thinking_level", level,
            f"{name} takes thinking levels {', '.join(info.thinking_levels)}",
        )
    if info.thinking in ("level", "level_required") and budget is not None:
        return Refusal(
            1007, "Thinking budget is not supported for this model; use thinkingLevel.", "thinking.thinking_budget",
            budget, f"{name} takes a thinking level, not a budget",
        )
    if info.thinking == "budget" and level is not None:
        return Refusal(
            1007, "Thinking level is not supported for this model.", "thinking.thinking_level", level,
            f"{name} takes a thinking budget (ThinkingConfig(thinking_budget=N), 0 turns thinking off)",
        )
    if config.enable_affective_dialog is not None and info.affective_dialog == "refused":
        return Refusal(
            1007, f"{INVALID[:-1]}: enableAffectiveDialog is not supported for this model.",
            "enable_affective_dialog", config.enable_affective_dialog,
            f"{name} does not take affective dialog; leave enable_affective_dialog unset "
            "(gemini-2.5-flash-native-audio models offer it)",
        )
    proactive = config.proactivity.proactive_audio if config.proactivity else None
    if proactive is not None and info.proactive_audio == "refused":
        return Refusal(
            1007, f"{INVALID[:-1]}: proactivity is not supported for this model.", "proactivity", proactive,
            f"{name} does not take proactivity settings; leave proactivity unset",
        )
    if proactive is False and info.proactive_audio == "always":
        return Refusal(
            1007, f"{INVALID[:-1]}: proactive audio cannot be turned off for this model.",
            "proactivity.proactive_audio", False,
            f"{name} is always proactive; leave proactivity unset (it may stay silent when not addressed)",
        )
    for function, behavior in _declared_behaviors(config):
        if behavior == "BLOCKING" and not info.blocking_allowed:
            return Refusal(
                1007, "BLOCKING function calls are not supported for this model", "tools", function,
                f"{name} calls functions asynchronously only; drop behavior=BLOCKING from {function}",
            )
        if behavior == "NON_BLOCKING" and not info.non_blocking_allowed:
            return Refusal(
                1007, f"{INVALID[:-1]}: NON_BLOCKING function calls are not supported for this model.",
                "tools", function, f"{name} calls functions blocking only; drop behavior=NON_BLOCKING from {function}",
            )
    if flavor is not None:
        offer = BACKEND_OFFERS[flavor]
        if resumption is not None and resumption.transparent and not offer.transparent_resumption:
            return Refusal(
                1007, f"{INVALID[:-1]}: transparent session resumption is not supported.",
                "session_resumption.transparent", True,
                "transparent resumption is a Vertex AI feature; the Gemini Developer API does not offer it "
                "(turn it off, or use backend='vertex')", kind="backend",
            )
    return None


@dataclass
class ClientContentGate:
    """Tracks whether ``clientContent`` is still allowed on a model that takes it only as initial history.

    On gemini-3.1-flash-live-preview clientContent is accepted only with
    ``historyConfig.initialHistoryInClientContent`` and only before the conversation starts: the
    first realtime input, or a clientContent with ``turnComplete``, closes the history (models.md).
    Client and emulator keep one each and feed it the same messages.
    """

    open: bool = True

    def observe(self, message: ClientMessage) -> None:
        starts = isinstance(message, (RealtimeInput, ToolResponse))
        if starts or (isinstance(message, ClientContent) and message.turn_complete):
            self.open = False


def check_client_message(
    info: ModelInfo | None,
    flavor: str | None,
    config: LiveGenerationConfig,
    message: ClientMessage,
    gate: ClientContentGate | None = None,
) -> Refusal | None:
    """The first rule a client message breaks after setup, or None (call before ``gate.observe``)."""
    if isinstance(message, ClientContent):
        if info is not None and info.client_content == "initial_history":
            history = config.history_config
            if not (history and history.initial_history_in_client_content and (gate is None or gate.open)):
                return Refusal(
                    1007, f"{INVALID[:-1]}: clientContent is only accepted as initial history for this model.",
                    "client_content", None,
                    f"{info.id} takes clientContent only as initial history (historyConfig."
                    "initialHistoryInClientContent, before any realtime input); send text as realtime text "
                    "(send_realtime_text)", kind="message",
                )
        system_turn = any((turn.role or "").lower() == "system" for turn in message.turns)
        if system_turn and flavor is not None and not BACKEND_OFFERS[flavor].system_instruction_update:
            return Refusal(
                1007, f"{INVALID[:-1]}: role \"system\" is not supported in clientContent.", "role", "system",
                "updating the system instruction mid-session is a Vertex AI feature; the Gemini Developer "
                "API does not offer it (use backend='vertex', or start a new session)", kind="backend",
            )
    elif isinstance(message, ContextUpdate):
        if flavor is not None and not BACKEND_OFFERS[flavor].context_update:
            return Refusal(
                1007, f"{INVALID[:-1]}: contextUpdate is not supported.", "context_update", None,
                "contextUpdate (system instruction and tools mid-session) is a Vertex AI feature", kind="backend",
            )
    elif isinstance(message, ToolResponse) and info is not None and not info.response_scheduling:
        scheduled = any(r.scheduling for r in message.function_responses)
        return None if not scheduled else Refusal(
            1007, f"{INVALID[:-1]}: scheduling is not supported for this model.", "scheduling", None,
            f"{info.id} does not take a scheduling on tool responses; leave it unset", kind="message",
        )
    return None
