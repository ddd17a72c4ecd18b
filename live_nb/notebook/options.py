"""A named session's options: resolved from arguments, then ``LiveMagics`` defaults, and checked.

Why a module of its own: resolving options is where the catalogue's rules meet the user's words.
A setting the model or the backend refuses is refused here, before anything is sent, in one
``UsageError`` line that says what to use instead. Nothing here opens a socket or starts the
emulator: ``resolve_options`` returns what to open, and the registry opens it.

Also here: the pure helpers of argument values and cell text (``parse_compress``, ``interpolate``),
and the plain sentences the magics say about flavours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from IPython.core.error import UsageError

from ..client.credentials import env_or_dotenv, find_api_key, read_dotenv
from ..client.endpoints import GEMINI_PATH, VERTEX_PATH, EndpointResolver
from ..exceptions import ConfigError, LiveError
from ..protocol import catalogue
from ..protocol.config import (
    ContextWindowCompressionConfig,
    HistoryConfig,
    LiveGenerationConfig,
    SessionResumptionConfig,
    SlidingWindow,
    ThinkingConfig,
)
from ..protocol.tool_calls import check_tools
from ..protocol.tools import Tool

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL",
    "FLAVORS",
    "ConnectOptions",
    "OptionDefaults",
    "interpolate",
    "one_line",
    "parse_compress",
    "positive_float",
    "resolve_options",
]

DEFAULT_MODEL = catalogue.DEFAULT_MODEL
"""gemini-3.8-live: Google's recommended Live model; it answers in AUDIO (with its transcription)."""
FLAVORS = ("vertex", "gemini")
"""Wire flavours the bundled emulator serves: Vertex AI's rules, or the Gemini Developer API's."""
FLAVOR_TITLES = {"vertex": "Vertex AI", "gemini": "Gemini Developer API"}
FLAVOR_RULES = {"vertex": "Vertex AI's rules", "gemini": "the Gemini Developer API's rules"}
USE_VERTEX_ENV = "GOOGLE_GENAI_USE_VERTEXAI"
"""google-genai's switch to Vertex AI; the magics' automatic backend honours it as the SDK does."""
BACKENDS = ("auto", "emulator", "gemini", "vertex")
"""``LiveMagics.backend`` and ``--backend``: auto picks one of the other three."""


def parse_compress(value: str) -> ContextWindowCompressionConfig | None:
    """Parse ``TRIGGER[:TARGET]`` (``20000:8000``, ``20k:8k``, ``default``, ``off``) into a config.

    Raises:
        UsageError: not a number pair, or outside the Live API's ranges.
    """
    text = value.strip().lower().replace("_", "").replace(",", "")
    if text in ("", "off", "none", "no", "false"):
        return None
    if text in ("on", "default", "yes", "true"):
        return ContextWindowCompressionConfig()

    def number(part: str) -> int:
        scale = 1000 if part.endswith("k") else 1
        digits = part[:-1] if part.endswith("k") else part
        try:
            return int(float(digits) * scale)
        except ValueError:
            raise UsageError(f"--compress wants TRIGGER[:TARGET] in tokens (e.g. 20000:8000), not {value!r}") from None

    trigger_text, _, target_text = text.partition(":")
    try:
        return ContextWindowCompressionConfig(
            trigger_tokens=number(trigger_text) if trigger_text else None,
            sliding_window=SlidingWindow(number(target_text) if target_text else None),
        )
    except LiveError as exc:
        raise UsageError(f"--compress {value}: {exc}") from None


_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(![rsa])?(?::([^{}]*))?\}")


def interpolate(text: str, namespace: dict[str, Any]) -> str:
    """Replace ``{name}``, ``{name.attr}``, ``{name!r}`` and ``{name:spec}`` with values from ``namespace``.

    As jupyter-ai's ``%%ai`` does, but forgiving: a field whose name is not defined (or any brace
    that is not a field, like the braces of a code sample or JSON) is left exactly as written;
    ``{{`` and ``}}`` give literal braces.
    """

    def substitute(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        path, conversion, spec = match.group(1), match.group(2), match.group(3)
        root, *attrs = path.split(".")
        if root not in namespace:
            return whole
        try:
            value = namespace[root]
            for attr in attrs:
                value = getattr(value, attr)
            if conversion == "!r":
                value = repr(value)
            elif conversion == "!a":
                value = ascii(value)
            elif conversion == "!s":
                value = str(value)
            return format(value, spec or "")
        except Exception:  # a broken field is left as text, never a failed cell
            return whole

    return _FIELD.sub(substitute, text)



def one_line(exc: BaseException) -> str:
    """``ConfigError: <first line>``: a client error as the one line a UsageError shows."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {message}"


def positive_float(text: str) -> float:
    """An argparse ``type``: a number above zero (``--time-scale``)."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"not a number: {text!r}") from None
    if not value > 0:
        raise UsageError(f"must be positive: {text!r}")
    return value


@dataclass(frozen=True)
class ConnectOptions:
    """Everything needed to open one named session (no key: it is looked up when connecting)."""

    model: str
    backend: str  # emulator | gemini | vertex
    modality: str  # TEXT | AUDIO
    compression: ContextWindowCompressionConfig | None
    transparent: bool
    time_scale: float
    system: str = ""
    handle: str | None = None
    emulator_url: str = ""
    transcription: bool = True
    """Ask for the output transcription of audio replies (what the cell shows as text)."""
    flavor: str | None = None
    """Whose rules apply: ``gemini``, ``vertex``, or None (an emulator URL that does not say)."""
    automatic: bool = False
    """The backend was picked by ``LiveMagics.backend = 'auto'`` (what the emulator's announcement says)."""
    project: str = ""
    """Vertex AI project ('' : from the environment / ADC)."""
    location: str = ""
    """Vertex AI location ('' : from the environment)."""
    tools: tuple[Tool, ...] = ()
    """Notebook functions the model may call (``--tools``); the client's tool loop runs them."""
    thinking: str | None = None
    """``thinkingConfig.thinkingLevel`` (``--thinking``): LOW, MEDIUM, HIGH (MINIMAL where taken), or None."""

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The declared names of ``tools``, in order."""
        return tuple(tool.name for tool in self.tools)

    @property
    def in_kernel_emulator(self) -> bool:
        """The bundled emulator, started in this kernel (not one already running at a URL)."""
        return self.backend == "emulator" and not self.emulator_url

    @property
    def handle_retention(self) -> float | None:
        """Seconds the service keeps this session's handles: its flavour's (``BACKEND_OFFERS``).

        The emulator keeps them as long as the flavour it serves, divided by its time scale as it
        divides every limit. None when no flavour is known (an emulator URL that does not say).
        """
        if self.flavor is None:
            return None
        seconds = offer(self.flavor).handle_retention_seconds
        return seconds / self.time_scale if self.backend == "emulator" else seconds

    @property
    def info(self) -> catalogue.ModelInfo | None:
        """The model's catalogue row (None for a model the catalogue does not know)."""
        return catalogue.lookup(self.model)

    @property
    def initial_history_only(self) -> bool:
        """The model takes clientContent only as initial history (gemini-3.1-flash-live-preview)."""
        info = self.info
        return info is not None and info.client_content == "initial_history"

    def generation_config(self) -> LiveGenerationConfig:
        """The setup's generation config: modality, system instruction, compression, transcriptions."""
        audio = self.modality == "AUDIO"
        return LiveGenerationConfig(
            response_modalities=[self.modality],
            system_instruction=self.system or None,
            context_window_compression=self.compression,
            input_audio_transcription=audio,
            output_audio_transcription=audio and self.transcription,
            history_config=HistoryConfig(initial_history_in_client_content=True)
            if self.initial_history_only
            else None,
            thinking=ThinkingConfig(thinking_level=self.thinking) if self.thinking else None,
        )

    def resumption(self) -> SessionResumptionConfig:
        """The setup's resumption config: the handle to resume (None: a new session), transparent or not."""
        return SessionResumptionConfig(handle=self.handle, transparent=self.transparent)



def offer(flavor: str) -> catalogue.BackendOffer:
    return catalogue.BACKEND_OFFERS[flavor]


def default_transparent(flavor: str | None, wanted: bool | None) -> bool:
    """Transparent resumption as asked, or by default wherever the flavour offers it (Vertex AI's).

    An emulator URL whose path names no flavour serves the emulator's default, Vertex AI's.
    """
    if wanted is not None:
        return wanted
    return offer(flavor or "vertex").transparent_resumption


def automatic_backend() -> str:
    """``LiveMagics.backend = 'auto'``: the real service when the user has chosen or keyed one, else the emulator.

    ``GOOGLE_GENAI_USE_VERTEXAI`` true (environment or .env, the switch google-genai reads) means
    Vertex AI, with an API key (express mode) or application default credentials; otherwise a key
    means the Gemini Developer API, and no key the bundled emulator.
    """
    use_vertex = (env_or_dotenv(USE_VERTEX_ENV, read_dotenv()) or "").strip().lower()
    if use_vertex in ("1", "true", "yes", "on"):
        return "vertex"
    return "emulator" if find_api_key() is None else "gemini"


def url_flavor(url: str, model: str) -> str | None:
    """Whose rules an emulator at ``url`` applies: the flavour of the path the client will dial.

    Asked of the client's own resolver, so the magics' defaults and the client's checks always
    agree; None for a bare URL, where the emulator serves its own mode.
    """
    try:
        dialled = EndpointResolver("emulator", model, url).url
    except LiveError as exc:
        raise UsageError(f"--url: {one_line(exc)}") from None
    return catalogue.wire_flavor("emulator", dialled)


def service_path(flavor: str) -> str:
    """The service path of a flavour, as the real backend's URL has it (the emulator serves both)."""
    return VERTEX_PATH.format(version="v1beta1") if flavor == "vertex" else GEMINI_PATH.format(version="v1beta")


def where(options: ConnectOptions) -> str:
    """``emulator (Vertex AI flavour)``, ``gemini``, ``vertex``: the backend and, for the emulator, its rules."""
    if options.backend != "emulator":
        return options.backend
    if options.flavor is None:
        return "emulator"
    return f"emulator ({FLAVOR_TITLES[options.flavor]} flavour)"


def flavor_phrase(flavor: str) -> str:
    """``Vertex AI flavour: transparent resumption, system-instruction updates`` (from BACKEND_OFFERS)."""
    offered_by = offer(flavor)
    features = {
        "transparent resumption": offered_by.transparent_resumption,
        "system-instruction updates": offered_by.system_instruction_update,
    }
    offered = [name for name, on in features.items() if on]
    lacking = [name for name, on in features.items() if not on]
    said = ", ".join(offered)
    if lacking:
        said += ("; " if said else "") + "no " + " or ".join(lacking)
    return f"{FLAVOR_TITLES[flavor]} flavour: {said}"


def system_refusal(options: ConnectOptions) -> str:
    where = FLAVOR_RULES.get(options.flavor or "", options.backend)
    if options.backend == "emulator":
        hint = "--flavor vertex (or %config LiveMagics.emulator_flavor = 'vertex')"
    else:
        hint = "--backend vertex"
    return (
        f"updating the system instruction mid-session is Vertex AI only; this session follows {where}. "
        f"Start a new session with --system TEXT, or use {hint}"
    )


def history_closed(model: str) -> str:
    return (
        f"{catalogue.bare_model_name(model)} takes turns without a reply only as initial history, before the "
        "first question (clientContent is closed once a reply was asked for); ask instead, or use "
        f"{catalogue.DEFAULT_MODEL}"
    )


def refusal_message(refusal: catalogue.Refusal, options: ConnectOptions, in_kernel_emulator: bool) -> str:
    """A catalogue refusal as a one-line UsageError: the client's ConfigError text, then the magics' way out."""
    other = "gemini" if options.flavor == "vertex" else "vertex"
    info = options.info
    if refusal.field == "response_modalities":
        hint = "--modality audio, the default: the cell shows the reply's transcription as text"
    elif refusal.field == "model" and in_kernel_emulator and info is not None and info.usable and (
        other in info.backends
    ):
        hint = f"--flavor {other}: the bundled emulator then serves {FLAVOR_RULES[other]}, which offer it"
    elif refusal.field == "model":
        hint = "%live models lists the models"
    elif refusal.field.startswith("thinking"):
        hint = "--thinking low|medium|high where the model needs a level; none on gemini-3.8-live"
    elif refusal.field in ("tools", "scheduling"):
        hint = "--tool-behavior / --tool-scheduling (or a Tool: tool_from_callable(fn, behavior=..., scheduling=...))"
    elif refusal.field == "session_resumption.transparent":
        hint = "drop --transparent (and LiveMagics.transparent): it is off by default where it is not offered"
    else:
        hint = ""
    error = ConfigError(refusal.field, refusal.value, refusal.advice)
    return f"ConfigError: {error}" + (f"; in the magics: {hint}" if hint else "")



TOOL_NAME_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def resolve_tools(
    namespace: dict[str, Any],
    names: str,
    *,
    timeout: float | None = None,
    behavior: str | None = None,
    scheduling: str | None = None,
) -> tuple[Tool, ...]:
    """The tools ``--tools a,b`` names: each looked up in the notebook's namespace and described.

    A plain function (sync or async) is described from its signature, type hints and docstring
    (``tool_from_callable``) with ``timeout``, ``behavior`` and ``scheduling``; a ``Tool`` (made with
    ``tool_from_callable(fn, behavior=...)``) keeps its own settings, taking only what it leaves unset.

    Raises:
        UsageError: one line: a name that is not defined, not callable, or a function that cannot be
            described (the ConfigError names the function and the parameter).
    """
    from dataclasses import replace

    from ..protocol.tools import tool_from_callable

    words = [w.strip() for w in names.split(",") if w.strip()]
    if not words:
        raise UsageError("--tools wants the names of notebook functions, comma-separated: --tools get_weather,search")
    tools: list[Tool] = []
    for word in words:
        if not TOOL_NAME_WORD.fullmatch(word):
            raise UsageError(f"--tools: {word!r} is not a Python name; give function names, comma-separated")
        if word not in namespace:
            raise UsageError(f"--tools: no {word!r} in the notebook; define the function first (def {word}(...): ...)")
        value = namespace[word]
        try:
            if isinstance(value, Tool):
                changes: dict[str, Any] = {}
                if timeout is not None and value.timeout is None:
                    changes["timeout"] = timeout
                if behavior is not None and value.behavior is None:
                    changes["behavior"] = behavior
                if scheduling is not None and value.scheduling is None and (changes.get("behavior", value.behavior)
                                                                            != "BLOCKING"):
                    changes["scheduling"] = scheduling
                tool = replace(value, **changes) if changes else value
            elif not callable(value):
                raise UsageError(f"--tools: {word!r} is a {type(value).__name__}, not a function the model could call")
            else:
                own = getattr(value, "__name__", None)
                named = own if isinstance(own, str) and TOOL_NAME_WORD.fullmatch(own) else word
                tool = tool_from_callable(value, name=named, timeout=timeout, behavior=behavior, scheduling=scheduling)
        except LiveError as exc:
            raise UsageError(f"--tools {word}: {one_line(exc)}") from None
        if any(t.name == tool.name for t in tools):
            raise UsageError(f"--tools: two tools are called {tool.name!r}; the model calls functions by name")
        tools.append(tool)
    return tuple(tools)


class OptionDefaults(Protocol):
    """The defaults options fall back to (``LiveMagics``' config traits: ``%config LiveMagics``)."""

    model: str
    backend: str
    modality: str
    transcription: bool
    emulator_flavor: str
    compress: str
    transparent: bool | None
    time_scale: float
    system: str
    emulator_url: str
    project: str
    location: str


def resolve_options(
    defaults: OptionDefaults,
    *,
    model: str | None = None,
    backend: str | None = None,
    flavor: str | None = None,
    modality: str | None = None,
    transcription: bool | None = None,
    compress: str | None = None,
    transparent: bool | None = None,
    time_scale: float | None = None,
    system: str | None = None,
    url: str | None = None,
    tools: tuple[Tool, ...] = (),
    thinking: str | None = None,
) -> ConnectOptions:
    """Resolve a session's options from arguments (None: not given), then ``defaults``; check them.

    The checks cover the model's and the backend's rules (``catalogue.check_setup``): a setting the
    service would refuse is refused here, in one line that says what to use instead.

    Raises:
        UsageError: a bad or refused setting.
    """
    chosen = (backend or defaults.backend).lower()
    emulator_url = defaults.emulator_url if url is None else url
    if url is not None:
        if chosen == "auto":
            chosen = "emulator"
        if chosen != "emulator":
            raise UsageError("--url points at an emulator; it cannot be combined with --backend " + chosen)
        if not re.match(r"^wss?://", url):
            raise UsageError(f"--url wants a ws:// or wss:// URL, not {url!r}")
    automatic = chosen == "auto"
    if automatic:
        chosen = automatic_backend()
    scale = defaults.time_scale if time_scale is None else time_scale
    if scale <= 0:
        raise UsageError(f"time scale must be positive, not {scale}")
    if chosen != "emulator" and scale != 1.0:
        raise UsageError("--time-scale applies only to the emulator backend")
    if chosen == "gemini" and find_api_key() is None:
        raise UsageError("backend gemini needs GEMINI_API_KEY or GOOGLE_API_KEY (environment or .env)")
    in_kernel_emulator = chosen == "emulator" and not emulator_url
    if flavor is not None and not in_kernel_emulator:
        raise UsageError(
            "--flavor picks the rules of the bundled in-kernel emulator; "
            + ("an emulator at a URL serves the flavour of its path" if chosen == "emulator"
               else f"backend {chosen} has its own")
        )
    model = model or defaults.model
    if chosen == "emulator":
        wire = (flavor or defaults.emulator_flavor) if in_kernel_emulator else url_flavor(emulator_url, model)
    else:
        wire = chosen
    wanted_transparent = defaults.transparent if transparent is None else transparent
    try:
        options = ConnectOptions(
            model=model,
            backend=chosen,
            modality=(modality or defaults.modality).upper(),
            compression=parse_compress(defaults.compress if compress is None else compress),
            transparent=default_transparent(wire, wanted_transparent),
            time_scale=scale,
            system=defaults.system if system is None else system,
            emulator_url=emulator_url,
            transcription=defaults.transcription if transcription is None else transcription,
            flavor=wire,
            automatic=automatic,
            project=defaults.project,
            location=defaults.location,
            tools=tuple(tools),
            thinking=thinking.upper() if thinking else None,
        )
        config = options.generation_config()
    except LiveError as exc:
        raise UsageError(one_line(exc)) from None
    info = options.info
    if info is not None:
        refusal = catalogue.check_setup(info, wire, config, options.resumption())
        if refusal is None:
            refusal = check_tools(info, options.tools)
        if refusal is not None:
            raise UsageError(refusal_message(refusal, options, in_kernel_emulator))
    return options
