"""``%%live`` and ``%live``: Live API sessions from notebook cells.

How the pieces fit (the model is measured in kernel-loop.md and chosen in design.md):

- Every session the magics open lives on live_nb's private loop thread (``live_nb._loop``), so
  it keeps receiving, answering pings and resuming after GoAway during any cell, even a long
  CPU-bound one, and Ctrl-C cannot land inside its reader.
- In a kernel, an input transformer turns a ``%%live`` cell into ``await ...live_cell_async(line,
  body)``: the cell becomes an async cell that polls the request's future every
  ``poll_interval`` seconds. The kernel's loop therefore keeps dispatching comm messages (mic,
  camera, dashboard) during the wait, and a kernel interrupt lands within one poll and cancels
  the request, leaving the session usable. Without a kernel (terminal IPython, a script) the
  cell magic blocks on the future and turns Ctrl-C into a cancel.
- A request's output is pinned to the cell that made it: the magic captures the cell's parent
  header and every display update from the loop thread is wrapped in ``set_thread_parent`` /
  ``reset_thread_parent``, so a reply that streams in while a later cell runs (``--async``)
  still lands in its own cell. ``with out:`` is never used off-cell (it overwrites the global
  parent).
- No nest_asyncio: in ipykernel 7.4 a nested run loses shell messages.

Sessions open on first use with the configured defaults (``%config LiveMagics.<name>``). With no
API key in the environment or a ``.env``, the magics start the bundled emulator in-process on
127.0.0.1 and say so once, naming the flavour it serves (``LiveMagics.emulator_flavor``: Vertex AI's
rules by default, or the Gemini Developer API's). Defaults follow what the backend, or the
emulator's flavour, offers (``catalogue.BACKEND_OFFERS``): transparent resumption where it exists,
``%live system`` only where a system instruction may change mid-session.

Today's Live models answer in AUDIO only (models.md): a session asks for AUDIO with output
transcription by default, a ``%%live`` cell streams the transcription as plain text and offers the
reply's audio as a player. Model rules come from ``protocol.catalogue``: a setting a model refuses
is a one-line UsageError naming what to use instead, before anything is sent; on a model that
takes ``clientContent`` only as initial history (gemini-3.1-flash-live-preview) the turns before the
first question go as initial history and every question as realtime text.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core import magic as _magic
from IPython.core import magic_arguments as _magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display as _display
from IPython.utils.process import arg_split  # type: ignore[attr-defined]
from traitlets import Bool, CaselessStrEnum, Float, Unicode, default

from .. import _loop
from ..client.credentials import env_or_dotenv, find_api_key, read_dotenv
from ..client.endpoints import GEMINI_PATH, VERTEX_PATH, EndpointResolver
from ..exceptions import ConfigError, InvalidState, LiveError, LocalProtocolError, UnsupportedOnBackend
from ..protocol import catalogue
from ..protocol.config import (
    CONNECTION_LIFETIME_SECONDS,
    ContextWindowCompressionConfig,
    HistoryConfig,
    LiveGenerationConfig,
    SessionResumptionConfig,
    SlidingWindow,
)
from ..protocol.content import Content, Part
from . import history as history_views
from ._proxy import KernelSession
from ._reply import CellRenderer, Renderer, Router, StreamRenderer, Turn
from .metadata import SESSION_NAME_RULE, is_session_name

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..client.session import LiveModel, LiveSession

__all__ = [
    "LiveMagics",
    "interpolate",
    "live_completions",
    "load_ipython_extension",
    "parse_compress",
    "unload_ipython_extension",
]

logger = logging.getLogger("live_nb.notebook")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# IPython's decorators and display are untyped; these typed aliases keep mypy --strict meaningful here.
cell_magic: Callable[[str], Callable[[F], F]] = _magic.cell_magic  # type: ignore[assignment]
line_magic: Callable[[str], Callable[[F], F]] = _magic.line_magic  # type: ignore[assignment]
magic_arguments: Callable[[], Callable[[F], F]] = _magic_arguments.magic_arguments
argument: Callable[..., Callable[[F], F]] = _magic_arguments.argument
parse_argstring: Callable[[Any, str], Any] = _magic_arguments.parse_argstring
display: Callable[..., Any] = _display

DEFAULT_MODEL = catalogue.DEFAULT_MODEL
"""gemini-3.8-live: Google's recommended Live model; it answers in AUDIO (with its transcription)."""
FLAVORS = ("vertex", "gemini")
"""Wire flavours the bundled emulator serves: Vertex AI's rules, or the Gemini Developer API's."""
FLAVOR_TITLES = {"vertex": "Vertex AI", "gemini": "Gemini Developer API"}
FLAVOR_RULES = {"vertex": "Vertex AI's rules", "gemini": "the Gemini Developer API's rules"}
USE_VERTEX_ENV = "GOOGLE_GENAI_USE_VERTEXAI"
"""google-genai's switch to Vertex AI; the magics' automatic backend honours it as the SDK does."""

CONNECT_TIMEOUT = 30.0


# Pure helpers: argument values and cell text.


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


def _in_kernel(ip: Any) -> bool:
    return getattr(ip, "kernel", None) is not None


# Options of a session, resolved from traits and arguments.


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
        )

    def resumption(self) -> SessionResumptionConfig:
        return SessionResumptionConfig(handle=self.handle, transparent=self.transparent)


@dataclass
class Entry:
    """A named session the magics manage."""

    name: str
    options: ConnectOptions
    magics: LiveMagics
    session: LiveSession | None = None
    model: LiveModel | None = None
    handle: str | None = None
    router: Router | None = None
    remove_listener: Callable[[], None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# The cell transformer.


_CELL_MAGIC = re.compile(r"^%%live(?=\s|$)")


def transform_live_cells(lines: list[str]) -> list[str]:
    """Turn a ``%%live`` cell into an awaited call, when running in a kernel.

    An ``input_transformers_cleanup`` hook: it sees the raw cell. The awaited form lets the
    kernel dispatch comm messages during the wait and cancel it promptly on interrupt
    (kernel-loop.md, "How %%live waits").
    """
    if not lines or not _CELL_MAGIC.match(lines[0]):
        return lines
    first = lines[0].rstrip("\n")
    if first.rstrip().endswith("?"):
        return lines  # %%live? asks for help
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None or not _in_kernel(ip) or "LiveMagics" not in ip.magics_manager.registry:
        return lines
    if _inside_a_running_cell(ip):
        # A nested run (%%capture, %%time, run_cell from code) cannot await: IPython would call
        # run_until_complete on the running kernel loop. The cell magic's blocking path serves it.
        return lines
    line = first[len("%%live") :].strip()
    body = "".join(lines[1:])
    return [f"await get_ipython().magics_manager.registry['LiveMagics'].live_cell_async({line!r}, {body!r})\n"]


def _inside_a_running_cell(ip: Any) -> bool:
    """True when a cell of ``ip`` is already executing further up the stack (a nested run).

    The kernel transforms a cell (to decide whether it is async) before it starts running it, so
    at top level no ``run_cell*`` frame of the shell is on the stack yet.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name in _RUN_CELL_NAMES and frame.f_locals.get("self") is ip:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


_RUN_CELL_NAMES = frozenset({"run_cell", "_run_cell", "run_cell_async", "run_cell_magic", "run_line_magic"})


# The magics.


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {message}"


@magics_class
class LiveMagics(Magics):
    """``%%live`` sends the cell to a Live API session; ``%live`` manages sessions."""

    model = Unicode(
        DEFAULT_MODEL, help="Model of new sessions (%live models lists them; %live connect --model <TAB> completes)."
    ).tag(config=True)
    backend = CaselessStrEnum(
        ["auto", "emulator", "gemini", "vertex"],
        default_value="auto",
        help="auto: gemini when GEMINI_API_KEY/GOOGLE_API_KEY is set (environment or .env; vertex when "
        "GOOGLE_GENAI_USE_VERTEXAI is true, as in google-genai), else the bundled emulator.",
    ).tag(config=True)
    modality = CaselessStrEnum(
        ["audio", "text"],
        default_value="audio",
        help="Reply modality of new sessions. Today's Live models answer in audio only (the cell shows the "
        "transcription); text is refused before anything is sent unless the model takes it.",
    ).tag(config=True)
    transcription = Bool(
        True, help="Ask for the output transcription of audio replies: the text a %%live cell streams."
    ).tag(config=True)
    speak = Bool(False, help="Play each %%live reply aloud when it is complete (autoplay; per cell: --speak).").tag(
        config=True
    )
    emulator_flavor = CaselessStrEnum(
        list(FLAVORS),
        default_value="vertex",
        help="Whose rules the bundled in-kernel emulator serves: 'vertex' (Vertex AI: transparent resumption, "
        "system-instruction updates, 24 h handles) or 'gemini' (the Gemini Developer API: neither, 2 h "
        "handles). Defaults follow it. Environment: LIVE_NB_EMULATOR_FLAVOR.",
    ).tag(config=True)
    compress = Unicode(
        "", help="Context window compression of new sessions: TRIGGER[:TARGET] tokens, 'default', or '' for off."
    ).tag(config=True)
    transparent = Bool(
        None,
        allow_none=True,
        help="Transparent resumption (lastConsumedClientMessageIndex + replay, so nothing is lost on a GoAway). "
        "None (the default) turns it on where the backend offers it: the emulator and Vertex AI, not the "
        "Gemini Developer API.",
    ).tag(config=True)
    time_scale = Float(
        1.0, help="Emulator only: divide its time limits by this (60 turns the 10-minute connection into 10 s)."
    ).tag(config=True)
    system = Unicode("", help="System instruction of new sessions.").tag(config=True)
    persist_handles = Bool(
        True, help="Keep each session's resumption handle in the notebook metadata (via the labextension)."
    ).tag(config=True)
    default_session = Unicode("default", help="Session name used when a magic names none.").tag(config=True)
    poll_interval = Float(
        0.2, help="Seconds between checks while a %%live cell waits: the bound on Ctrl-C latency."
    ).tag(config=True)
    reply_timeout = Float(300.0, help="Seconds a %%live cell waits for the reply before giving up (0: forever).").tag(
        config=True
    )
    emulator_url = Unicode(
        "", help="Use an emulator already running at this ws:// URL instead of starting one in-process."
    ).tag(config=True)
    emulator_db = Unicode(
        help="SQLite file of the in-process emulator's resumable state (so handles survive a kernel restart)."
    ).tag(config=True)
    project = Unicode("", help="Vertex AI project (default: from the environment / ADC).").tag(config=True)
    location = Unicode("", help="Vertex AI location (default: from the environment).").tag(config=True)

    @default("backend")
    def _default_backend(self) -> str:
        wanted = os.environ.get("LIVE_NB_BACKEND", "auto").lower()
        return wanted if wanted in ("auto", "emulator", "gemini", "vertex") else "auto"

    @default("emulator_flavor")
    def _default_emulator_flavor(self) -> str:
        wanted = os.environ.get("LIVE_NB_EMULATOR_FLAVOR", "vertex").lower()
        return wanted if wanted in FLAVORS else "vertex"

    @default("emulator_url")
    def _default_emulator_url(self) -> str:
        return os.environ.get("LIVE_NB_EMULATOR_URL", "")

    @default("emulator_db")
    def _default_emulator_db(self) -> str:
        if os.environ.get("LIVE_NB_EMULATOR_DB"):
            return os.environ["LIVE_NB_EMULATOR_DB"]
        return str(emulator_cache_dir() / "emulator.sqlite3")

    def __init__(self, shell: InteractiveShell | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.sessions: dict[str, Entry] = {}
        self.handles: dict[str, tuple[str, ConnectOptions]] = {}
        self.ended: dict[str, LiveSession] = {}
        """The last session of each closed name, so ``%live history NAME`` still works after close."""
        self._emulators: dict[tuple[float, str], Any] = {}
        self._told_emulator: set[str] = set()

    # Cell magic.

    @magic_arguments()
    @argument("name", nargs="?", default=None, help="Session name (default: LiveMagics.default_session).")
    @argument("--no-reply", action="store_true", help="Add the turn to the context without asking for a reply.")
    @argument(
        "--role",
        choices=["user", "model"],
        default="user",
        help="Whose turn the cell is; 'model' restores history (implies --no-reply).",
    )
    @argument("--system", action="store_true", help="The cell replaces the session's system instruction.")
    @argument("--async", dest="asynchronous", action="store_true", help="Return at once; the reply still lands here.")
    @argument("--speak", action="store_true", help="Play the reply aloud when it is complete (autoplay).")
    @cell_magic("live")
    def live_cell(self, line: str, cell: str) -> None:
        """Send the cell to a Live session as one turn and show the reply as it streams in.

        ``{var}`` in the cell is replaced with the notebook variable ``var``. The session opens on
        first use with the configured defaults (``%config LiveMagics``).
        """
        try:
            request = self._plan(line, cell)
            future = self._start(request)
        except LiveError as exc:
            raise UsageError(_one_line(exc)) from None
        if future is None:
            return
        try:
            _loop.block(future)
        except KeyboardInterrupt:
            print("live_nb: request cancelled; the session is still open.", file=sys.stderr)
            raise
        except concurrent.futures.CancelledError:
            raise KeyboardInterrupt() from None
        except LiveError as exc:
            raise UsageError(_one_line(exc)) from None

    async def live_cell_async(self, line: str, cell: str) -> None:
        """The awaited form of ``%%live`` (what the input transformer calls in a kernel)."""
        try:
            request = self._plan(line, cell)
            future = self._start(request)
        except LiveError as exc:
            raise UsageError(_one_line(exc)) from None
        if future is None:
            return
        try:
            await _loop.wait(future, self.poll_interval)
        except LiveError as exc:
            raise UsageError(_one_line(exc)) from None

    def _parse_cell_line(self, line: str) -> Any:
        try:
            return parse_argstring(self.live_cell, line)
        except UsageError as exc:
            raise UsageError(f"%%live: {str(exc).splitlines()[0] if str(exc) else 'bad arguments'}") from None
        except ValueError as exc:  # unbalanced quotes
            raise UsageError(f"%%live: {exc}") from None

    def _plan(self, line: str, cell: str) -> Request:
        args = self._parse_cell_line(line)
        name = args.name or self.default_session
        self._check_name(name)
        text = interpolate(cell, self.shell.user_ns if self.shell is not None else {}).strip()
        if not text:
            raise UsageError("the cell is empty: write the turn to send below the %%live line")
        if args.system and args.role != "user":
            raise UsageError("--system replaces the system instruction; it takes no --role")
        if args.system:
            kind = "system"
            self._check_system_update(name)
        elif args.role == "model" or args.no_reply:
            kind = "context"
        else:
            kind = "ask"
        return Request(
            name=name, text=text, kind=kind, role=args.role, asynchronous=args.asynchronous, speak=args.speak
        )

    def _start(self, request: Request) -> concurrent.futures.Future[Any] | None:
        """Open the session if needed and submit the request; returns the future to wait on."""
        options = None if request.name in self.sessions else self._options(request.name)
        renderer: Renderer | None = None
        if request.kind == "ask":
            speak = request.speak or self.speak
            renderer = CellRenderer(self.shell, speak=speak) if _in_kernel(self.shell) else StreamRenderer()
        future = _loop.submit(self._run_request(request, options, renderer))
        if request.asynchronous:
            self._track_pending(request.name, future)
            return None
        return future

    def _track_pending(self, name: str, future: concurrent.futures.Future[Any]) -> None:
        def report(done: concurrent.futures.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is not None:
                logger.warning("live_nb: %%live --async on %r failed: %s", name, done.exception())

        future.add_done_callback(report)

    async def _run_request(self, request: Request, options: ConnectOptions | None, renderer: Renderer | None) -> str:
        try:
            return await self._execute(request, options, renderer)
        except LiveError as exc:
            if request.asynchronous and renderer is not None:
                # Nobody waits on an --async cell: its error goes where its reply would have.
                Turn._safely(renderer.finish, "", [f"error: {_one_line(exc)}"], b"")
            raise

    async def _execute(self, request: Request, options: ConnectOptions | None, renderer: Renderer | None) -> str:
        entry = await self._ensure(request.name, options)
        session = entry.session
        assert session is not None and entry.router is not None
        # One request at a time per session, in the order the cells ran: a turn sent while a reply
        # streams would interrupt it (the Live API treats new content as a barge-in).
        async with entry.lock:
            if session.closed:
                raise InvalidState(
                    f"session {entry.name!r} has ended; `%live resume {entry.name}` continues it with its "
                    f"last handle, `%live connect {entry.name}` starts a new one"
                )
            if request.kind == "system":
                if entry.options.flavor is not None and not _offer(entry.options.flavor).system_instruction_update:
                    raise UnsupportedOnBackend(_system_refusal(entry.options))
                await session.update_system_instruction(request.text)
                return ""
            if request.kind == "context":
                if entry.options.initial_history_only and not session.history_open:
                    raise LocalProtocolError(_history_closed(entry.options.model))
                turn_content = Content(role=request.role, parts=(Part(text=request.text),))
                await session.send_content([turn_content], turn_complete=False)
                return ""
            assert renderer is not None
            return await self._ask(entry, session, request.text, renderer)

    async def _ask(self, entry: Entry, session: LiveSession, text: str, renderer: Renderer) -> str:
        """Send one complete user turn and collect the model's turn (under ``entry.lock``).

        The turn goes as a complete ``clientContent`` turn, or as realtime text on a model that takes
        clientContent only as initial history (the turns sent before it become that history).
        """
        assert entry.router is not None
        turn = Turn(renderer, asyncio.get_running_loop())
        entry.router.current = turn
        sent = False
        try:
            sent = True
            if entry.options.initial_history_only:
                await session.send_realtime_text(text)
            else:
                await session.send_content([Content(role="user", parts=(Part(text=text),))], turn_complete=True)
            timeout = self.reply_timeout or None
            return await asyncio.wait_for(asyncio.shield(turn.done), timeout)
        except asyncio.TimeoutError:
            entry.router.discard += 1
            turn.note(f"no reply after {self.reply_timeout:.0f} s")
            turn.render_now()
            raise InvalidState(f"no reply within {self.reply_timeout:.0f} s (LiveMagics.reply_timeout)") from None
        except asyncio.CancelledError:
            if sent and not turn.done.done():
                entry.router.discard += 1  # its reply is still coming: keep it out of the next cell
            if not turn.done.done():
                turn.note("cancelled")
                turn.render_now()
            raise
        finally:
            entry.router.current = None

    # Line magic.

    @line_magic("live")
    def live_line(self, line: str) -> Any:
        """Manage Live sessions: ``%live help`` lists the subcommands."""
        words = line.strip().split(None, 1)
        if not words:
            names = ", ".join(sorted(self._subcommands()))
            raise UsageError(f"%live needs a subcommand: {names} (see %live help)")
        command, rest = words[0], (words[1] if len(words) > 1 else "")
        handler = self._subcommands().get(command)
        if handler is None:
            raise UsageError(f"unknown %live subcommand {command!r}; try: " + ", ".join(sorted(self._subcommands())))
        try:
            return handler(rest)
        except LiveError as exc:  # ConfigError, UnsupportedOnBackend, InvalidState ... from the client
            raise UsageError(_one_line(exc)) from None

    def _subcommands(self) -> dict[str, Callable[[str], Any]]:
        return {
            "connect": self._cmd_connect,
            "status": self._cmd_status,
            "system": self._cmd_system,
            "resume": self._cmd_resume,
            "close": self._cmd_close,
            "sessions": self._cmd_sessions,
            "session": self._cmd_session,
            "history": self._cmd_history,
            "help": self._cmd_help,
            "dashboard": self._cmd_dashboard,
            "mic": self._cmd_mic,
            "camera": self._cmd_camera,
            "models": self._cmd_models,
        }

    def _cmd_connect(self, rest: str) -> None:
        parser = _parser("connect", "Open (or reopen) a named session.")
        parser.add_argument("name", nargs="?", default=None)
        parser.add_argument("--model", default=None)
        parser.add_argument("--backend", choices=["auto", "emulator", "gemini", "vertex"], default=None)
        parser.add_argument("--flavor", "--flavour", type=str.lower, choices=list(FLAVORS), default=None)
        parser.add_argument("--modality", type=str.lower, choices=["audio", "text"], default=None)
        parser.add_argument("--transcription", action=argparse.BooleanOptionalAction, default=None)
        parser.add_argument("--compress", nargs="?", const="default", default=None, metavar="TRIGGER[:TARGET]")
        parser.add_argument("--resume", nargs="?", const="", default=None, metavar="HANDLE")
        parser.add_argument("--transparent", action=argparse.BooleanOptionalAction, default=None)
        parser.add_argument("--time-scale", type=_positive_float, default=None)
        parser.add_argument("--system", default=None)
        parser.add_argument("--url", default=None, help="an emulator already running (ws://...)")
        args = _parse_with(parser, rest)
        name = args.name or self.default_session
        self._check_name(name)
        options = self._options(
            name,
            model=args.model,
            backend=args.backend,
            flavor=args.flavor,
            modality=args.modality,
            transcription=args.transcription,
            compress=args.compress,
            transparent=args.transparent,
            time_scale=args.time_scale,
            system=args.system,
            url=args.url,
        )
        if args.resume is not None:
            handle = args.resume or self._known_handle(name)
            if not handle:
                raise UsageError(f"--resume: no handle known for session {name!r}; pass one: --resume HANDLE")
            options = replace(options, handle=handle)
        replaced = name in self.sessions
        if replaced:
            self._block(self._close(name))
        entry = self._block(self._ensure(name, options))
        print(self._describe(entry, "reconnected" if replaced else "connected"))

    def _cmd_status(self, rest: str) -> None:
        parser = _parser("status", "Show the state of sessions.")
        parser.add_argument("name", nargs="?", default=None)
        args = _parse_with(parser, rest)
        names = [args.name] if args.name else sorted(self.sessions)
        if args.name and args.name not in self.sessions:
            raise UsageError(f"no open session named {args.name!r}")
        if not names:
            print("no open sessions (a %%live cell opens one)")
            return
        for name in names:
            print(self._describe(self.sessions[name], "status"))

    def _cmd_system(self, rest: str) -> None:
        name, text = self.default_session, rest.strip()
        match = re.match(r"^(?:-n|--name)[ =](\S+)\s*(.*)$", text, re.S)
        if match:
            name, text = match.group(1), match.group(2).strip()
        if not text:
            raise UsageError("%live system needs the instruction text: %live system [--name NAME] TEXT")
        self._check_name(name)
        self._check_system_update(name)
        text = interpolate(text, self.shell.user_ns if self.shell is not None else {})
        options = None if name in self.sessions else self._options(name)
        request = Request(name=name, text=text, kind="system", role="user", asynchronous=False)
        self._block(self._run_request(request, options, None))

    def _cmd_resume(self, rest: str) -> None:
        parser = _parser("resume", "Move a session to a new connection with its latest handle.")
        parser.add_argument("name", nargs="?", default=None)
        args = _parse_with(parser, rest)
        name = args.name or self.default_session
        self._check_name(name)
        entry = self.sessions.get(name)
        if entry is not None and entry.session is not None and entry.session.state != "closed":
            session = entry.session
            handle = session.handle or entry.handle
            if not handle:
                raise UsageError(f"session {name!r} has no resumption handle yet")
            config = SessionResumptionConfig(handle=handle, transparent=entry.options.transparent)
            self._block(_call(session.resume_session(config)))
            print(self._describe(entry, "resumed"))
            return
        handle = self._known_handle(name)
        if not handle:
            raise UsageError(f"no handle known for {name!r}: connect it first, or %live connect --resume HANDLE")
        known = self.handles.get(name)
        if known and known[0] == handle:
            options = known[1]
        else:  # from the notebook's metadata: reopen on the backend and model the handle belongs to
            record = self._stored_record(name)
            backend = record.get("backend") if record.get("backend") in ("emulator", "gemini", "vertex") else None
            model = record.get("model") if isinstance(record.get("model"), str) else None
            options = self._options(name, backend=backend, model=model)
        if entry is not None:
            self._block(self._close(name))
        record = self._stored_record(name)
        try:
            entry = self._block(self._ensure(name, replace(options, handle=handle)))
        except UsageError:
            # Our expiry is an estimate (counted from when the handle arrived), so we always try; when
            # the service refuses a handle we believe expired, say that plainly instead of its close code.
            if record.get("handle") == handle and _metadata_says_expired(record):
                raise UsageError(_metadata_description(record)) from None
            raise
        print(self._describe(entry, "resumed"))

    def _cmd_close(self, rest: str) -> None:
        parser = _parser("close", "Close a session (or --all).")
        parser.add_argument("name", nargs="?", default=None)
        parser.add_argument("--all", action="store_true")
        args = _parse_with(parser, rest)
        names = sorted(self.sessions) if args.all else [args.name or self.default_session]
        for name in names:
            if name not in self.sessions:
                raise UsageError(f"no open session named {name!r}")
            self._block(self._close(name))
            print(f"closed {name!r}")

    def _cmd_sessions(self, rest: str) -> None:
        _parse_with(_parser("sessions", "List open sessions and the handles stored in the notebook."), rest)
        if not self.sessions:
            print("no open sessions")
        for name in sorted(self.sessions):
            entry = self.sessions[name]
            state = entry.session.state if entry.session is not None else "opening"
            options = entry.options
            print(f"{name}: {state}, {_where(options)}, {options.model}, {options.modality}")
        bridge = _bridge(self.shell)
        stored = {n: r for n, r in (bridge.records.items() if bridge is not None else ()) if n not in self.sessions}
        for name in sorted(stored):
            print(f"{name}: stored, {_metadata_description(stored[name])}; %live resume {name}")

    def _cmd_session(self, rest: str) -> KernelSession:
        parser = _parser("session", "The session object, for top-level await in cells (opened if needed).")
        parser.add_argument("name", nargs="?", default=None)
        args = _parse_with(parser, rest)
        entry = self._entry(args.name, open_if_missing=True)
        return KernelSession(entry.session, self.poll_interval)

    def _cmd_history(self, rest: str) -> Any:
        parser = _parser("history", "A pandas view of a session.")
        parser.add_argument("name", nargs="?", default=None)
        parser.add_argument("--view", choices=sorted(history_views.VIEWS), default="transcript")
        args = _parse_with(parser, rest)
        name = args.name or self.default_session
        if name not in self.sessions and name in self.ended:
            return history_views.view(self.ended[name], args.view)
        entry = self._entry(name)
        return history_views.view(entry.session, args.view)

    def _cmd_help(self, rest: str) -> None:
        print(HELP)

    def _cmd_dashboard(self, rest: str) -> None:
        parser = _parser("dashboard", "Show the session's dashboard widget.")
        parser.add_argument("name", nargs="?", default=None)
        args = _parse_with(parser, rest)
        entry = self._entry(args.name, open_if_missing=True)
        try:
            from ..widgets.dashboard import Dashboard
        except ImportError as exc:
            raise UsageError(f"the dashboard is not available: {exc}") from None
        limit = CONNECTION_LIFETIME_SECONDS
        if entry.options.backend == "emulator":
            limit /= entry.options.time_scale  # the emulator scales its 10-minute connections too
        display(Dashboard(entry.session, connection_limit=limit))

    def _media(self, kind: str, rest: str) -> None:
        parser = _parser(kind, f"Stream the {'microphone' if kind == 'mic' else 'camera'} into a session.")
        parser.add_argument("switch", choices=["on", "off"])
        parser.add_argument("name", nargs="?", default=None)
        args = _parse_with(parser, rest)
        flags = {"audio": kind == "mic", "video": kind == "camera"}
        try:
            from ..widgets import media
        except ImportError as exc:
            raise UsageError(f"mic and camera streaming is not available: {exc}") from None
        if args.switch == "on":
            entry = self._entry(args.name, open_if_missing=True)
            widget = media.start_media(entry.session, **flags)
            if widget is not None:
                display(widget)
        else:
            entry = self._entry(args.name)
            media.stop_media(entry.session, **flags)

    def _cmd_mic(self, rest: str) -> None:
        self._media("mic", rest)

    def _cmd_camera(self, rest: str) -> None:
        self._media("camera", rest)

    def _cmd_models(self, rest: str) -> Any:
        _parse_with(_parser("models", "The Live models live_nb knows (protocol.catalogue), as a DataFrame."), rest)
        return models_table()

    # Sessions (the coroutines run on the loop thread).

    def _check_name(self, name: str) -> None:
        # The bridge's rule (metadata.SESSION_NAME_PATTERN): a name the notebook cannot store is refused
        # here, rather than accepted and its handle never kept.
        if not is_session_name(name):
            shown = name if len(name) <= 40 else name[:39] + "…"
            raise UsageError(f"bad session name {shown!r}: use {SESSION_NAME_RULE}")

    def _entry(self, name: str | None, open_if_missing: bool = False) -> Entry:
        name = name or self.default_session
        self._check_name(name)
        if name not in self.sessions:
            if not open_if_missing:
                raise UsageError(f"no open session named {name!r}")
            return self._block(self._ensure(name, self._options(name)))
        return self.sessions[name]

    def _options(
        self,
        name: str,
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
    ) -> ConnectOptions:
        """Resolve a session's options from arguments, then traits; validate them (UsageError).

        Validation covers the model's and the backend's rules (``catalogue.check_setup``): a setting
        the service would refuse is refused here, in one line that says what to use instead. When
        the options need the in-kernel emulator, it is started here and announced once.
        """
        chosen = (backend or self.backend).lower()
        emulator_url = self.emulator_url if url is None else url
        if url is not None:
            if chosen == "auto":
                chosen = "emulator"
            if chosen != "emulator":
                raise UsageError("--url points at an emulator; it cannot be combined with --backend " + chosen)
            if not re.match(r"^wss?://", url):
                raise UsageError(f"--url wants a ws:// or wss:// URL, not {url!r}")
        automatic = chosen == "auto"
        if automatic:
            chosen = _automatic_backend()
        scale = self.time_scale if time_scale is None else time_scale
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
        model = model or self.model
        if chosen == "emulator":
            wire = (flavor or self.emulator_flavor) if in_kernel_emulator else _url_flavor(emulator_url, model)
        else:
            wire = chosen
        wanted_transparent = self.transparent if transparent is None else transparent
        try:
            options = ConnectOptions(
                model=model,
                backend=chosen,
                modality=(modality or self.modality).upper(),
                compression=parse_compress(self.compress if compress is None else compress),
                transparent=_transparent(wire, wanted_transparent),
                time_scale=scale,
                system=self.system if system is None else system,
                emulator_url=emulator_url,
                transcription=self.transcription if transcription is None else transcription,
                flavor=wire,
            )
            config = options.generation_config()
        except LiveError as exc:
            raise UsageError(_one_line(exc)) from None
        info = options.info
        if info is not None:
            refusal = catalogue.check_setup(info, wire, config, options.resumption())
            if refusal is not None:
                raise UsageError(_refusal_message(refusal, options, in_kernel_emulator))
        if in_kernel_emulator and not _loop.in_loop_thread():
            url_now = self._block(self._emulator(scale, wire or "vertex"))
            self._announce_emulator(automatic, wire or "vertex", url_now)
        return options

    def _session_options(self, name: str) -> ConnectOptions:
        """The options of session ``name``: the open one's, else what opening it would use."""
        entry = self.sessions.get(name)
        return entry.options if entry is not None else self._options(name)

    def _check_system_update(self, name: str) -> None:
        """Refuse a mid-session system-instruction update where the backend (or flavour) lacks it."""
        options = self._session_options(name)
        if options.flavor is not None and not _offer(options.flavor).system_instruction_update:
            raise UsageError(_system_refusal(options))

    def _known_handle(self, name: str) -> str | None:
        entry = self.sessions.get(name)
        if entry is not None:
            handle = (entry.session.handle if entry.session is not None else None) or entry.handle
            if handle:
                return handle
        if name in self.handles:
            return self.handles[name][0]
        handle = self._stored_record(name).get("handle")
        return handle if isinstance(handle, str) and handle else None

    def _stored_record(self, name: str) -> dict[str, Any]:
        """The record the metadata bridge holds for ``name`` (notebook metadata or sidecar), or {}."""
        bridge = _bridge(self.shell)
        if bridge is None:
            return {}
        try:
            record = bridge.records.get(name)
        except Exception:
            return {}
        return dict(record) if isinstance(record, dict) else {}

    def _new_handle(self, entry: Entry, handle: str) -> None:
        """A resumption update brought a handle (loop thread)."""
        entry.handle = handle
        self._remember(entry)

    def _remember(self, entry: Entry) -> None:
        """A new handle arrived (loop thread): keep it for ``resume`` and tell the metadata bridge."""
        if entry.handle:
            self.handles[entry.name] = (entry.handle, entry.options)
        if entry.session is not None:
            retention = None
            options = entry.options
            if options.backend == "emulator" and options.flavor is not None:
                # The emulator keeps handles as long as the flavour it serves, and scales that too.
                retention = _offer(options.flavor).handle_retention_seconds / options.time_scale
            _track(self.shell, entry.name, entry.session, retention)

    async def _emulator(self, time_scale: float, flavor: str) -> str:
        """The URL of the in-process emulator serving ``flavor`` at ``time_scale`` (started on first use).

        One emulator per (time scale, flavour), each with its own database file, so the handles of
        one never meet the other's connections.
        """
        key = (time_scale, flavor)
        emulator = self._emulators.get(key)
        if emulator is None:
            from ..emulator import Emulator  # type: ignore[attr-defined]

            db = Path(self.emulator_db)
            suffix = "" if flavor == "vertex" else f"-{flavor}"
            if time_scale != 1.0:
                suffix += f"-x{time_scale:g}"
            db = db.with_name(f"{db.stem}{suffix}{db.suffix}")
            make_emulator_dir(db.parent)
            # consumed_limit bounds the emulator's test-only log of consumed messages (an hour of audio
            # would otherwise hold ~115 MB in the kernel).
            emulator = Emulator(
                host="127.0.0.1", port=0, time_scale=time_scale, db_path=str(db), consumed_limit=10_000, mode=flavor
            )
            await emulator.start()
            self._emulators[key] = emulator
        return str(emulator.url)

    async def _ensure(self, name: str, options: ConnectOptions | None) -> Entry:
        """The open session called ``name``, opening it with ``options`` if there is none."""
        entry = self.sessions.get(name)
        if entry is not None and entry.session is None:
            async with entry.lock:  # another request is opening it: wait for that
                pass
            entry = self.sessions.get(name)
        if entry is not None and entry.session is not None:
            return entry
        if options is None:
            options = self._options(name)
        entry = Entry(name=name, options=options, magics=self)
        self.sessions[name] = entry
        try:
            async with entry.lock:
                await asyncio.wait_for(self._connect(entry), CONNECT_TIMEOUT)
        except BaseException as exc:
            if self.sessions.get(name) is entry:
                del self.sessions[name]
            if isinstance(exc, asyncio.TimeoutError):
                raise InvalidState(f"could not open session {name!r} within {CONNECT_TIMEOUT:.0f} s") from None
            raise
        return entry

    async def _connect(self, entry: Entry) -> None:
        from ..client.session import LiveModel

        options = entry.options
        url = None
        api_key = None
        if options.backend == "emulator" and options.emulator_url:
            url = options.emulator_url
        elif options.backend == "emulator":
            # The in-kernel emulator is dialled on its flavour's own service path, so the client knows
            # whose rules apply (catalogue.wire_flavor) exactly as it would on the real backend.
            flavor = options.flavor or "vertex"
            base = await self._emulator(options.time_scale, flavor)
            self._announce_emulator(self.backend.lower() == "auto", flavor, base)
            url = base + _service_path(flavor)
        elif options.backend == "gemini":
            key = find_api_key()
            api_key = key.value if key is not None else None
        kwargs: dict[str, Any] = {}
        if options.backend == "vertex":
            kwargs = {"project": self.project or None, "location": self.location or None}
        model = LiveModel(
            options.model,
            generation_config=options.generation_config(),
            backend=options.backend,
            url=url,
            api_key=api_key,
            **kwargs,
        )
        session = await model.connect(session_resumption=options.resumption())
        entry.model, entry.session = model, session
        entry.router = Router(on_handle=lambda handle: self._new_handle(entry, handle))
        entry.remove_listener = session.add_listener(entry.router)
        entry.handle = session.handle or options.handle
        self._remember(entry)

    async def _close(self, name: str) -> None:
        entry = self.sessions.pop(name, None)
        if entry is None:
            return
        if entry.remove_listener is not None:
            with contextlib.suppress(Exception):
                entry.remove_listener()
        _untrack(self.shell, name)
        if entry.router is not None and entry.router.current is not None:
            entry.router.current.fail(InvalidState(f"session {name!r} was closed"))
        if entry.session is not None:
            self.ended[name] = entry.session
            handle = entry.session.handle or entry.handle
            if handle:
                self.handles[name] = (handle, entry.options)
            with contextlib.suppress(LiveError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(entry.session.close(), 5.0)

    async def _close_all(self) -> None:
        for name in list(self.sessions):
            await self._close(name)
        emulators, self._emulators = self._emulators, {}
        for emulator in emulators.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(emulator.stop(), 5.0)
                emulator.cleanup()

    def _block(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop thread and wait (for short operations: connect, close, resume)."""
        try:
            return _loop.block(_loop.submit(coro), timeout)
        except LiveError as exc:
            raise UsageError(_one_line(exc)) from None

    def _describe(self, entry: Entry, verb: str) -> str:
        session = entry.session
        options = entry.options
        parts = [f"{verb} {entry.name!r}:", _where(options), options.model, options.modality]
        if options.modality == "AUDIO" and not options.transcription:
            parts.append("(no transcription)")
        if session is None:
            return " ".join([*parts, "(opening)"])
        parts.append(f"state={session.state}")
        handle = session.handle
        parts.append(f"handle={handle[:10]}…" if handle else "handle=none yet")
        if session.reconnects:
            parts.append(f"reconnects={session.reconnects}")
        ledger = session.ledger
        parts.append(f"context≈{ledger.estimated:,.0f} tokens")
        if options.compression is not None:
            parts.append(f"compress {ledger.trigger:,}→{ledger.target:,}")
        deadline = session.go_away_deadline
        if deadline:
            parts.append(f"GoAway: {max(0.0, deadline - time.time()):.0f} s left")
        if options.backend == "emulator" and options.time_scale != 1.0:
            parts.append(f"time x{options.time_scale:g}")
        return " ".join(parts)

    # Extension lifecycle.

    def _announce_emulator(self, automatic: bool, flavor: str, url: str) -> None:
        """Say once per flavour, plainly, that the bundled emulator is in use, why, and whose rules it serves."""
        if flavor in self._told_emulator:
            return
        self._told_emulator.add(flavor)
        why = (
            "no API key found (GEMINI_API_KEY / GOOGLE_API_KEY, environment or .env)"
            if automatic
            else "LiveMagics.backend is 'emulator'"
        )
        other = "gemini" if flavor == "vertex" else "vertex"
        print(
            f"live_nb: {why}; using the bundled Live API emulator, offline in this kernel "
            f"({_flavor_phrase(flavor)}) on {url}. "
            f"%config LiveMagics.emulator_flavor = '{other}' serves {FLAVOR_RULES[other]}."
        )

    def shutdown(self) -> None:
        """Close every session and stop the in-process emulators (``%unload_ext``)."""
        if not self.sessions and not self._emulators:
            return
        if _loop.running():
            with contextlib.suppress(Exception):
                _loop.block(_loop.submit(self._close_all()), 15.0)


@dataclass(frozen=True)
class Request:
    """One ``%%live`` cell (or ``%live system``), parsed."""

    name: str
    text: str
    kind: str  # ask | context | system
    role: str
    asynchronous: bool
    speak: bool = False


async def _call(awaitable: Any) -> Any:
    return await awaitable


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"not a number: {text!r}") from None
    if not value > 0:
        raise UsageError(f"must be positive: {text!r}")
    return value


def _parser(prog: str, description: str) -> MagicArgumentParser:
    make: Callable[..., MagicArgumentParser] = MagicArgumentParser
    return make(prog=f"%live {prog}", description=description)


def _parse_with(parser: MagicArgumentParser, argstring: str) -> Any:
    """Parse a subcommand's arguments; quotes group words and are removed (``--system "Be brief."``)."""
    try:
        split: Callable[..., list[str]] = arg_split
        parse: Callable[[list[str]], Any] = parser.parse_args
        return parse(split(argstring, posix=True, strict=True))
    except UsageError as exc:
        raise UsageError(f"{parser.prog}: {str(exc).splitlines()[0] if str(exc) else 'bad arguments'}") from None
    except ValueError as exc:  # unbalanced quotes
        raise UsageError(f"{parser.prog}: {exc}") from None


def _offer(flavor: str) -> catalogue.BackendOffer:
    return catalogue.BACKEND_OFFERS[flavor]


def _transparent(flavor: str | None, wanted: bool | None) -> bool:
    """Transparent resumption as asked, or by default wherever the flavour offers it (Vertex AI's).

    An emulator URL whose path names no flavour serves the emulator's default, Vertex AI's.
    """
    if wanted is not None:
        return wanted
    return _offer(flavor or "vertex").transparent_resumption


def _automatic_backend() -> str:
    """``LiveMagics.backend = 'auto'``: the real service when the user has chosen or keyed one, else the emulator.

    ``GOOGLE_GENAI_USE_VERTEXAI`` true (environment or .env, the switch google-genai reads) means
    Vertex AI, with an API key (express mode) or application default credentials; otherwise a key
    means the Gemini Developer API, and no key the bundled emulator.
    """
    use_vertex = (env_or_dotenv(USE_VERTEX_ENV, read_dotenv()) or "").strip().lower()
    if use_vertex in ("1", "true", "yes", "on"):
        return "vertex"
    return "emulator" if find_api_key() is None else "gemini"


def _url_flavor(url: str, model: str) -> str | None:
    """Whose rules an emulator at ``url`` applies: the flavour of the path the client will dial.

    Asked of the client's own resolver, so the magics' defaults and the client's checks always
    agree; None for a bare URL, where the emulator serves its own mode.
    """
    try:
        dialled = EndpointResolver("emulator", model, url).url
    except LiveError as exc:
        raise UsageError(f"--url: {_one_line(exc)}") from None
    return catalogue.wire_flavor("emulator", dialled)


def _service_path(flavor: str) -> str:
    """The service path of a flavour, as the real backend's URL has it (the emulator serves both)."""
    return VERTEX_PATH.format(version="v1beta1") if flavor == "vertex" else GEMINI_PATH.format(version="v1beta")


def _where(options: ConnectOptions) -> str:
    """``emulator (Vertex AI flavour)``, ``gemini``, ``vertex``: the backend and, for the emulator, its rules."""
    if options.backend != "emulator":
        return options.backend
    if options.flavor is None:
        return "emulator"
    return f"emulator ({FLAVOR_TITLES[options.flavor]} flavour)"


def _flavor_phrase(flavor: str) -> str:
    """``Vertex AI flavour: transparent resumption, system-instruction updates`` (from BACKEND_OFFERS)."""
    offer = _offer(flavor)
    features = {
        "transparent resumption": offer.transparent_resumption,
        "system-instruction updates": offer.system_instruction_update,
    }
    offered = [name for name, on in features.items() if on]
    lacking = [name for name, on in features.items() if not on]
    said = ", ".join(offered)
    if lacking:
        said += ("; " if said else "") + "no " + " or ".join(lacking)
    return f"{FLAVOR_TITLES[flavor]} flavour: {said}"


def _system_refusal(options: ConnectOptions) -> str:
    where = FLAVOR_RULES.get(options.flavor or "", options.backend)
    if options.backend == "emulator":
        hint = "--flavor vertex (or %config LiveMagics.emulator_flavor = 'vertex')"
    else:
        hint = "--backend vertex"
    return (
        f"updating the system instruction mid-session is Vertex AI only; this session follows {where}. "
        f"Start a new session with --system TEXT, or use {hint}"
    )


def _history_closed(model: str) -> str:
    return (
        f"{catalogue.bare_model_name(model)} takes turns without a reply only as initial history, before the "
        "first question (clientContent is closed once a reply was asked for); ask instead, or use "
        f"{catalogue.DEFAULT_MODEL}"
    )


def _refusal_message(refusal: catalogue.Refusal, options: ConnectOptions, in_kernel_emulator: bool) -> str:
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
    elif refusal.field == "session_resumption.transparent":
        hint = "drop --transparent (and LiveMagics.transparent): it is off by default where it is not offered"
    else:
        hint = ""
    error = ConfigError(refusal.field, refusal.value, refusal.advice)
    return f"ConfigError: {error}" + (f"; in the magics: {hint}" if hint else "")


def _metadata_says_expired(record: dict[str, Any]) -> bool:
    from .metadata import is_expired

    return is_expired(record)


def emulator_cache_dir() -> Path:
    """live_nb's own cache directory, where the in-kernel emulator keeps its database by default."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "live_nb"


def make_emulator_dir(directory: Path) -> None:
    """Create the in-kernel emulator's directory owner-only (0700, missing parents too).

    Its database holds the HMAC secret that signs handles and every session's context. Earlier
    versions made ``emulator_cache_dir()`` with the umask's mode (0755): that one, ours by name, is
    tightened to 0700 when we own it; a directory the user chose (``LIVE_NB_EMULATOR_DB``) that
    already exists is left as it is.
    """
    from ..emulator.store import make_private_dirs

    make_private_dirs(str(directory))
    if directory.absolute() == emulator_cache_dir().absolute():
        _tighten_directory(directory)


def _tighten_directory(directory: Path) -> None:
    """Drop group and other permissions from ``directory`` if we own it (never through a symlink)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
    if not hasattr(os, "fchmod") or not flags & getattr(os, "O_NOFOLLOW", 0):
        return  # no POSIX modes to speak of (Windows)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return  # a symlink (ELOOP) or not a directory: not ours to change
    try:
        info = os.fstat(fd)
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.fchmod(fd, info.st_mode & 0o700)
    except OSError:
        logger.debug("live_nb: could not tighten %s", directory, exc_info=True)
    finally:
        os.close(fd)


def _metadata_description(record: dict[str, Any]) -> str:
    from .metadata import describe_record

    return describe_record(record)


def _bridge(ip: Any) -> Any:
    """The labextension's metadata bridge for this shell, or None when that module is absent."""
    if ip is None:
        return None
    try:
        from . import metadata  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    try:
        return metadata.get_bridge(ip)
    except Exception:
        logger.debug("live_nb: no metadata bridge", exc_info=True)
        return None


def _track(ip: Any, name: str, session: Any, retention: float | None = None) -> None:
    """Hand a session to the labextension's metadata bridge (on connect and on every new handle)."""
    bridge = _bridge(ip)
    if bridge is None:
        return
    try:
        bridge.track(name, session, retention)
    except ConfigError:
        logger.debug("live_nb: metadata bridge refused %r (it has told the user)", name, exc_info=True)
    except Exception:
        # A handle must never go unkept in silence: say so, once per name.
        if name not in _TRACK_FAILED:
            _TRACK_FAILED.add(name)
            logger.warning("live_nb: the handle of session %r is not kept with the notebook", name, exc_info=True)


_TRACK_FAILED: set[str] = set()


def _untrack(ip: Any, name: str) -> None:
    bridge = _bridge(ip)
    if bridge is not None:
        with contextlib.suppress(Exception):
            bridge.untrack(name)


HELP = """\
%%live [NAME] [--no-reply] [--role user|model] [--system] [--async] [--speak]
    The cell is one turn of session NAME (default: 'default'; opened on first use).
    {var} inserts the notebook variable var. Today's Live models answer in audio: the cell
    streams the reply's transcription as plain text, then offers the reply's audio as a player.
    --no-reply      add the turn to the context, ask for no reply (turn_complete=False)
    --role model    restore a model turn of history (implies --no-reply)
    --system        the cell replaces the system instruction (Vertex AI and its emulator flavour only)
    --async         return at once; the reply still lands in this cell
    --speak         play the reply aloud when it is complete (LiveMagics.speak for every cell)
    On gemini-3.1-flash-live-preview, turns before the first question go as initial history and
    every question as realtime text (that model takes clientContent only as initial history).

%live connect [NAME] [--model M] [--backend auto|emulator|gemini|vertex] [--flavor vertex|gemini]
              [--modality audio|text] [--[no-]transcription] [--compress TRIGGER[:TARGET]]
              [--resume [HANDLE]] [--[no-]transparent] [--time-scale X] [--system TEXT]
              [--url ws://HOST:PORT (an emulator already running)]
    --model         default gemini-3.8-live; <TAB> completes from %live models
    --flavor        the bundled emulator's rules: vertex (default) or gemini (the Developer API's)
    --modality      audio (default); text is refused on every current model (use audio: the
                    transcription is the text)
    --no-transcription   no output transcription: the cell shows only the audio player
%live models               the Live models live_nb knows: id, status, backends, replacement, note
%live status [NAME]        state, handle, context estimate, GoAway countdown
%live system [--name NAME] TEXT   replace the system instruction (Vertex AI and its emulator flavour)
%live resume [NAME]        new connection with the latest handle (also after a kernel restart)
%live close [NAME|--all]
%live sessions
s = %live session [NAME]   the session itself: `await s.send_content(...)`, `s.handle`, `s.ledger` ...
%live history [NAME] [--view transcript|events|usage|context]   a pandas DataFrame
%live dashboard [NAME]     the session's dashboard widget
%live mic on|off [NAME]    stream the microphone into the session
%live camera on|off [NAME] stream the camera into the session
%live help

Defaults: %config LiveMagics.model / backend / modality / transcription / speak / compress / transparent
/ time_scale / system / emulator_flavor (%config LiveMagics shows them all). Without GEMINI_API_KEY /
GOOGLE_API_KEY the bundled emulator runs in the kernel, serving Vertex AI's rules (emulator_flavor =
'gemini' for the Gemini Developer API's). With a key: the Developer API (Vertex AI when
GOOGLE_GENAI_USE_VERTEXAI is true, or --backend vertex). Transparent resumption (nothing lost on a
GoAway) is on by default where it is offered: Vertex AI and the emulator's Vertex flavour.
"""


def models_table() -> Any:
    """The catalogue as a pandas DataFrame: id, status, backends, replacement, note (``%live models``)."""
    import pandas as pd

    rows = []
    for info in catalogue.CATALOGUE:
        notes = [info.note] if info.note else []
        if info.aliases:
            notes.append("alias " + ", ".join(info.aliases))
        if info.shut_down:
            notes.append(f"shut down on {info.shut_down}: a setup naming it is refused (1008)")
        if "TEXT" not in info.response_modalities:
            notes.append("answers in " + "/".join(info.response_modalities))
        rows.append(
            {
                "id": info.id,
                "status": info.status + (" (default)" if info.id == DEFAULT_MODEL else ""),
                "backends": ", ".join(info.backends),
                "replacement": info.replacement or "",
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows, columns=["id", "status", "backends", "replacement", "note"])


# Completion: `%live connect --model <TAB>` and friends (IPython's matcher API v2).

_OPTION_VALUES: dict[str, Callable[[], list[str]]] = {
    "--model": lambda: [m.id for m in catalogue.CATALOGUE if m.usable],
    "--backend": lambda: ["auto", "emulator", "gemini", "vertex"],
    "--flavor": lambda: list(FLAVORS),
    "--flavour": lambda: list(FLAVORS),
    "--modality": lambda: ["audio", "text"],
    "--view": lambda: sorted(history_views.VIEWS),
    "--role": lambda: ["user", "model"],
}


def _live_candidates(before: str) -> tuple[str, list[str]] | None:
    """What to complete at the end of ``before`` (the line up to the cursor): (fragment, candidates)."""
    stripped = before.lstrip()
    match = re.match(r"^(%%?live)(\s.*)?$", stripped, re.S)
    if match is None or match.group(2) is None:
        return None
    words = stripped.split()
    current = "" if stripped[-1].isspace() else words[-1]
    previous = words[-1] if current == "" else (words[-2] if len(words) > 1 else "")
    option, equals, value = current.partition("=")
    if equals and option in _OPTION_VALUES:
        return value, [v for v in _OPTION_VALUES[option]() if v.startswith(value)]
    if previous in _OPTION_VALUES:
        return current, [v for v in _OPTION_VALUES[previous]() if v.startswith(current)]
    if match.group(1) == "%live" and len(words) == (1 if current == "" else 2):
        commands = sorted(m for m in _SUBCOMMANDS if m.startswith(current))
        return current, commands
    return None


_SUBCOMMANDS = (
    "camera", "close", "connect", "dashboard", "help", "history", "mic", "models", "resume", "session",
    "sessions", "status", "system",
)


def _completion_matcher() -> Callable[..., Any]:
    """``live_completions`` wrapped as an IPython matcher (API v2); imported lazily."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    def live_matcher(context: Any) -> dict[str, Any]:
        found = _live_candidates(context.text_until_cursor)
        if not found:
            return {"completions": [], "suppress": False}
        fragment, candidates = found
        return {
            "completions": [SimpleCompletion(text, type="live_nb") for text in candidates],
            "matched_fragment": fragment,
            "suppress": bool(candidates),
            "ordered": True,
        }

    matcher: Callable[..., Any] = context_matcher(identifier="live_nb.live_completions")(live_matcher)
    return matcher


def live_completions(line: str) -> list[str]:
    """What ``%live ... <TAB>`` offers at the end of ``line`` (the model ids after ``--model``, ...)."""
    found = _live_candidates(line)
    return found[1] if found else []


# Extension hooks (called by live_nb.load_ipython_extension / unload_ipython_extension).


def _is_ours(matcher: object) -> bool:
    return getattr(matcher, "matcher_identifier", None) == "live_nb.live_completions"


def load_ipython_extension(ip: InteractiveShell) -> None:
    """Register the magics and the ``%%live`` cell transformer on ``ip``."""
    if "LiveMagics" in ip.magics_manager.registry:
        return
    ip.register_magics(LiveMagics)
    if transform_live_cells not in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.append(transform_live_cells)
    completer = getattr(ip, "Completer", None)
    if completer is not None and not any(_is_ours(m) for m in completer.custom_matchers):
        completer.custom_matchers.append(_completion_matcher())
    _bridge(ip)  # the bridge opens its comm to the labextension when it is created


def unload_ipython_extension(ip: InteractiveShell) -> None:
    """Close every session, stop the loop thread, and unregister the magics and the transformer."""
    magics = ip.magics_manager.registry.pop("LiveMagics", None)
    if isinstance(magics, LiveMagics):
        magics.shutdown()
    for kind in ("line", "cell"):
        table = ip.magics_manager.magics[kind]
        func = table.get("live")
        if func is not None and getattr(func, "__self__", None) is magics:
            del table["live"]
    while transform_live_cells in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.remove(transform_live_cells)
    completer = getattr(ip, "Completer", None)
    if completer is not None:
        completer.custom_matchers[:] = [m for m in completer.custom_matchers if not _is_ours(m)]
    with contextlib.suppress(ImportError):
        from .metadata import close_bridge  # type: ignore[attr-defined,unused-ignore]

        close_bridge(ip)
    _loop.stop()
