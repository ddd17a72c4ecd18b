"""``%%live`` and ``%live``: declarations and dispatch.

This module only declares what the magics take and hands each call to the part that does the work:

- every subcommand is a method declared with IPython's ``@magic_arguments() @argument(...)``; the
  declarations are the parsers (bad input is a one-line ``UsageError``), the ``%live help`` text
  (``help_text``, generated from them) and the subcommand list the completer offers;
- options are resolved by ``options.resolve_options`` from arguments and this class's config traits;
- the named sessions, the in-kernel emulator and what the notebook keeps belong to one
  ``SessionRegistry`` (``sessions.py``); a cell's request runs through ``cells.run_request``;
- in a kernel, ``transformer.transform_live_cells`` turns a ``%%live`` cell into an awaited
  ``live_cell_async`` call.

How the pieces fit (the model is measured in kernel-loop.md and chosen in design.md):

- Every session the magics open lives on live_nb's private loop thread (``live_nb._loop``), so
  it keeps receiving, answering pings and resuming after GoAway during any cell, even a long
  CPU-bound one, and Ctrl-C cannot land inside its reader.
- In a kernel the awaited cell polls the request's future every ``poll_interval`` seconds: the
  kernel's loop keeps dispatching comm messages (mic, camera, dashboard) during the wait, and a
  kernel interrupt lands within one poll and cancels the request, leaving the session usable.
  Without a kernel (terminal IPython, a script) the cell magic blocks on the future and turns
  Ctrl-C into a cancel.
- A request's output is pinned to the cell that made it (``_reply.CellRenderer``), so a reply that
  streams in while a later cell runs (``--async``) still lands in its own cell.
- No nest_asyncio: in ipykernel 7.4 a nested run loses shell messages.

Sessions open on first use with the configured defaults (``%config LiveMagics.<name>``). With no
API key in the environment or a ``.env``, the bundled emulator runs in-process on 127.0.0.1 and the
registry says so once, naming the flavour it serves (``LiveMagics.emulator_flavor``). Defaults follow
what the backend, or the emulator's flavour, offers (``catalogue.BACKEND_OFFERS``).

Today's Live models answer in AUDIO only (models.md): a session asks for AUDIO with output
transcription by default, a ``%%live`` cell streams the transcription as plain text and offers the
reply's audio as a player. A setting a model refuses is a one-line UsageError naming what to use
instead, before anything is sent.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import inspect
import logging
import os
import re
import sys
import textwrap
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from IPython.core import magic as _magic
from IPython.core import magic_arguments as _magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class
from IPython.display import display as _display
from IPython.utils.process import arg_split  # type: ignore[attr-defined]
from traitlets import Bool, CaselessStrEnum, Float, Unicode, default

from .. import _loop
from ..exceptions import LiveError
from ..protocol.config import CONNECTION_LIFETIME_SECONDS, SessionResumptionConfig
from . import history as history_views
from ._proxy import KernelSession
from ._reply import CellRenderer, Renderer, StreamRenderer
from .cells import Request, run_request
from .completion import completion_matcher, is_ours, live_candidates, tool_candidates
from .options import (
    BACKENDS,
    DEFAULT_MODEL,
    FLAVORS,
    ConnectOptions,
    interpolate,
    offer,
    one_line,
    parse_compress,
    positive_float,
    resolve_options,
    resolve_tools,
    system_refusal,
    where,
)
from .records import SESSION_NAME_RULE, describe_record, is_expired, is_session_name
from .sessions import Entry, SessionRegistry, emulator_cache_dir
from .transformer import MAGICS_KEY, in_kernel, transform_live_cells

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..client.session import LiveSession
    from ..protocol.tools import Tool

__all__ = [
    "HELP",
    "LiveMagics",
    "help_text",
    "interpolate",
    "live_completions",
    "load_ipython_extension",
    "parse_compress",
    "transform_live_cells",
    "unload_ipython_extension",
]

logger = logging.getLogger("live_nb.notebook")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# IPython's decorators and display are untyped; these typed aliases keep mypy --strict meaningful here.
cell_magic: Callable[[str], Callable[[F], F]] = _magic.cell_magic  # type: ignore[assignment]
line_magic: Callable[[str], Callable[[F], F]] = _magic.line_magic  # type: ignore[assignment]
magic_arguments: Callable[..., Callable[[F], F]] = _magic_arguments.magic_arguments
argument: Callable[..., Callable[[F], F]] = _magic_arguments.argument
parse_argstring: Callable[[Any, str], Any] = _magic_arguments.parse_argstring
display: Callable[..., Any] = _display

# Session names and session-opening arguments, shared by the subcommands that take them.
_NAME_ARG = argument("name", nargs="?", default=None, metavar="NAME", help="session name (default: 'default')")


@magics_class
class LiveMagics(Magics):
    """``%%live`` sends the cell to a Live API session; ``%live`` manages sessions."""

    model = Unicode(
        DEFAULT_MODEL, help="Model of new sessions (%live models lists them; %live connect --model <TAB> completes)."
    ).tag(config=True)
    backend = CaselessStrEnum(
        list(BACKENDS),
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
        return wanted if wanted in BACKENDS else "auto"

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
        self.registry = SessionRegistry(shell, self)
        """The one owner of this shell's named sessions."""

    # -- the cell magic -------------------------------------------------------------------------

    @magic_arguments("%%live")
    @_NAME_ARG
    @argument("--no-reply", action="store_true", help="add the turn to the context, ask for no reply")
    @argument(
        "--role",
        choices=["user", "model"],
        default="user",
        help="whose turn the cell is; model restores history (implies --no-reply)",
    )
    @argument(
        "--system",
        action="store_true",
        help="the cell replaces the system instruction (Vertex AI and its emulator flavour only)",
    )
    @argument("--async", dest="asynchronous", action="store_true", help="return at once; the reply still lands here")
    @argument("--speak", action="store_true", help="play the reply aloud when it is complete (LiveMagics.speak)")
    @cell_magic("live")
    def live_cell(self, line: str, cell: str) -> None:
        """The cell is one turn of session NAME (opened on first use); the reply streams in below.

        {var} inserts the notebook variable var. Today's Live models answer in audio: the cell
        streams the reply's transcription as plain text, then offers the reply's audio as a player.
        On gemini-3.1-flash-live-preview, turns before the first question go as initial history and
        every question as realtime text.
        """
        try:
            future = self._start(self._plan(line, cell))
        except LiveError as exc:
            raise UsageError(one_line(exc)) from None
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
            raise UsageError(one_line(exc)) from None

    async def live_cell_async(self, line: str, cell: str) -> None:
        """The awaited form of ``%%live`` (what the input transformer calls in a kernel)."""
        try:
            future = self._start(self._plan(line, cell))
        except LiveError as exc:
            raise UsageError(one_line(exc)) from None
        if future is None:
            return
        try:
            await _loop.wait(future, self.poll_interval)
        except LiveError as exc:
            raise UsageError(one_line(exc)) from None

    def _plan(self, line: str, cell: str) -> Request:
        try:
            args = parse_argstring(self.live_cell, line)
        except UsageError as exc:
            raise UsageError(f"%%live: {_first_line(exc)}") from None
        except ValueError as exc:  # unbalanced quotes
            raise UsageError(f"%%live: {exc}") from None
        name = self._name(args.name)
        text = interpolate(cell, self._namespace()).strip()
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
        """Submit the request to the loop; the future to wait on (None for ``--async``)."""
        options = self._session_options(request.name)
        renderer: Renderer | None = None
        if request.kind == "ask":
            speak = request.speak or self.speak
            renderer = CellRenderer(self.shell, speak=speak) if in_kernel(self.shell) else StreamRenderer()
        future = _loop.submit(run_request(self.registry, request, options, renderer, self.reply_timeout))
        if not request.asynchronous:
            return future

        def report(done: concurrent.futures.Future[Any]) -> None:
            if not done.cancelled() and done.exception() is not None:
                logger.warning("live_nb: %%live --async on %r failed: %s", request.name, done.exception())

        future.add_done_callback(report)
        return None

    # -- the line magic: dispatch ---------------------------------------------------------------

    @line_magic("live")
    def live_line(self, line: str) -> Any:
        """Manage Live sessions: ``%live help`` lists the subcommands."""
        words = line.strip().split(None, 1)
        commands = self._subcommands()
        if not words:
            raise UsageError(f"%live needs a subcommand: {', '.join(sorted(commands))} (see %live help)")
        command, rest = words[0], (words[1] if len(words) > 1 else "")
        handler = commands.get(command)
        if handler is None:
            raise UsageError(f"unknown %live subcommand {command!r}; try: " + ", ".join(sorted(commands)))
        try:
            return handler(rest)
        except LiveError as exc:  # ConfigError, UnsupportedOnBackend, InvalidState ... from the client
            raise UsageError(one_line(exc)) from None

    def _subcommands(self) -> dict[str, Callable[[str], Any]]:
        """Subcommand name -> its declared method (help order)."""
        return {name: getattr(self, f"_cmd_{name}") for name in SUBCOMMANDS}

    # -- the subcommands: declarations ----------------------------------------------------------

    @magic_arguments("%live connect")
    @_NAME_ARG
    @argument("--model", default=None, metavar="M", help=f"default {DEFAULT_MODEL}; <TAB> completes from %%live models")
    @argument("--backend", choices=list(BACKENDS), default=None, help="auto: a key picks the service, else emulator")
    @argument(
        "--flavor",
        "--flavour",
        type=str.lower,
        choices=list(FLAVORS),
        default=None,
        help="the bundled emulator's rules: vertex (default) or gemini (the Developer API's)",
    )
    @argument(
        "--modality",
        type=str.lower,
        choices=["audio", "text"],
        default=None,
        help="audio (default); text is refused on every current model (the transcription is the text)",
    )
    @argument(
        "--transcription",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--no-transcription: no output transcription, the cell shows only the audio player",
    )
    @argument(
        "--compress",
        nargs="?",
        const="default",
        default=None,
        metavar="TRIGGER[:TARGET]",
        help="context window compression, in tokens (20k:8k)",
    )
    @argument("--resume", nargs="?", const="", default=None, metavar="HANDLE", help="resume (the latest handle)")
    @argument(
        "--transparent",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="transparent resumption (default: where it is offered)",
    )
    @argument("--time-scale", type=positive_float, default=None, metavar="X", help="emulator: divide its time limits")
    @argument("--system", default=None, metavar="TEXT", help="the system instruction")
    @argument("--url", default=None, metavar="ws://HOST:PORT", help="an emulator already running")
    @argument(
        "--thinking",
        type=str.lower,
        choices=["minimal", "low", "medium", "high"],
        default=None,
        help="thinking level (gemini-3.8-live-extended-thinking needs low, medium or high)",
    )
    @argument(
        "--tools",
        default=None,
        metavar="F,G",
        help="notebook functions the model may call (described from their hints and docstrings; they run "
        "when called)",
    )
    @argument("--tool-timeout", type=positive_float, default=None, metavar="S", help="answer a call running longer "
              "than S seconds with an error")
    @argument(
        "--tool-behavior",
        type=str.upper,
        choices=["BLOCKING", "NON_BLOCKING"],
        default=None,
        help="how the model waits for --tools (default: the model's; gemini-3.8-live: NON_BLOCKING)",
    )
    @argument(
        "--tool-scheduling",
        type=str.upper,
        choices=["SILENT", "WHEN_IDLE", "INTERRUPT"],
        default=None,
        help="how a NON_BLOCKING result enters the conversation (default: the service's, WHEN_IDLE)",
    )
    def _cmd_connect(self, rest: str) -> None:
        """Open (or reopen) a named session."""
        args = _parse(self._cmd_connect, rest)
        name = self._name(args.name)
        tools: tuple[Tool, ...] = ()
        if args.tools is not None:
            tools = resolve_tools(
                self._namespace(),
                args.tools,
                timeout=args.tool_timeout,
                behavior=args.tool_behavior,
                scheduling=args.tool_scheduling,
            )
        elif args.tool_timeout is not None or args.tool_behavior or args.tool_scheduling:
            raise UsageError("%live connect: --tool-timeout, --tool-behavior and --tool-scheduling go with --tools")
        options = self._resolve(
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
            tools=tools,
            thinking=args.thinking,
        )
        if args.resume is not None:
            handle = args.resume or self.registry.known_handle(name)
            if not handle:
                raise UsageError(f"--resume: no handle known for session {name!r}; pass one: --resume HANDLE")
            options = replace(options, handle=handle)
        replaced = name in self.registry.sessions
        if replaced:
            self._block(self.registry.close(name))
        entry = self._block(self.registry.ensure(name, options))
        print(_describe(entry, "reconnected" if replaced else "connected"))

    @magic_arguments("%live models")
    def _cmd_models(self, rest: str) -> Any:
        """The Live models live_nb knows: id, status, backends, replacement, note (a DataFrame)."""
        _parse(self._cmd_models, rest)
        return history_views.models_table()

    @magic_arguments("%live status")
    @_NAME_ARG
    def _cmd_status(self, rest: str) -> None:
        """State, handle, context estimate and GoAway countdown of open sessions."""
        args = _parse(self._cmd_status, rest)
        sessions = self.registry.sessions
        if args.name and args.name not in sessions:
            raise UsageError(f"no open session named {args.name!r}")
        names = [args.name] if args.name else sorted(sessions)
        if not names:
            print("no open sessions (a %%live cell opens one)")
        for name in names:
            print(_describe(sessions[name], "status"))

    @magic_arguments("%live system")
    @argument("--name", "-n", default=None, metavar="NAME", help="the session (default: 'default')")
    @argument("text", nargs="*", metavar="TEXT", help="the instruction: the rest of the line, as written")
    def _cmd_system(self, rest: str) -> None:
        """Replace the system instruction (Vertex AI and its emulator flavour)."""
        # The text is the rest of the line exactly as written (quotes, braces and all), so only the
        # name is split off here; the declaration above is for the help and the completer.
        name, text = self.default_session, rest.strip()
        match = re.match(r"^(?:-n|--name)[ =](\S+)\s*(.*)$", text, re.S)
        if match:
            name, text = match.group(1), match.group(2).strip()
        if not text:
            raise UsageError("%live system needs the instruction text: %live system [--name NAME] TEXT")
        self._name(name)
        self._check_system_update(name)
        text = interpolate(text, self._namespace())
        request = Request(name=name, text=text, kind="system", role="user", asynchronous=False)
        self._block(run_request(self.registry, request, self._session_options(name), None, self.reply_timeout))

    @magic_arguments("%live resume")
    @_NAME_ARG
    def _cmd_resume(self, rest: str) -> None:
        """A new connection with the latest handle (also after a kernel restart)."""
        args = _parse(self._cmd_resume, rest)
        name = self._name(args.name)
        registry = self.registry
        entry = registry.sessions.get(name)
        if entry is not None and entry.session is not None and entry.session.state != "closed":
            if not entry.handle:
                raise UsageError(f"session {name!r} has no resumption handle yet")
            config = SessionResumptionConfig(handle=entry.handle, transparent=entry.options.transparent)
            self._block(_awaited(entry.session.resume_session(config)))
            print(_describe(entry, "resumed"))
            return
        handle = registry.known_handle(name)
        if not handle:
            raise UsageError(f"no handle known for {name!r}: connect it first, or %live connect --resume HANDLE")
        record = registry.stored_record(name)
        options = registry.ended_options(name, handle)
        if options is None:  # from the notebook's metadata: reopen on the backend and model the handle belongs to
            backend = record.get("backend") if record.get("backend") in ("emulator", "gemini", "vertex") else None
            model = record.get("model") if isinstance(record.get("model"), str) else None
            options = self._resolve(backend=backend, model=model)
        if entry is not None:
            self._block(registry.close(name))
        try:
            entry = self._block(registry.ensure(name, replace(options, handle=handle)))
        except UsageError:
            # Our expiry is an estimate (counted from when the handle arrived), so we always try; when
            # the service refuses a handle we believe expired, say that plainly instead of its close code.
            if record.get("handle") == handle and is_expired(record):
                raise UsageError(describe_record(record)) from None
            raise
        print(_describe(entry, "resumed"))

    @magic_arguments("%live close")
    @_NAME_ARG
    @argument("--all", action="store_true", help="every open session")
    def _cmd_close(self, rest: str) -> None:
        """Close a session (or --all)."""
        args = _parse(self._cmd_close, rest)
        sessions = self.registry.sessions
        names = sorted(sessions) if args.all else [args.name or self.default_session]
        for name in names:
            if name not in sessions:
                raise UsageError(f"no open session named {name!r}")
            self._block(self.registry.close(name))
            print(f"closed {name!r}")

    @magic_arguments("%live sessions")
    def _cmd_sessions(self, rest: str) -> None:
        """Open sessions, and the handles stored with the notebook."""
        _parse(self._cmd_sessions, rest)
        sessions = self.registry.sessions
        if not sessions:
            print("no open sessions")
        for name in sorted(sessions):
            entry = sessions[name]
            state = entry.session.state if entry.session is not None else "opening"
            options = entry.options
            print(f"{name}: {state}, {where(options)}, {options.model}, {options.modality}")
        bridge = self.registry.bridge()
        stored = {n: r for n, r in (bridge.records.items() if bridge is not None else ()) if n not in sessions}
        for name in sorted(stored):
            print(f"{name}: stored, {describe_record(stored[name])}; %live resume {name}")

    @magic_arguments("%live session")
    @_NAME_ARG
    def _cmd_session(self, rest: str) -> KernelSession:
        """The session itself, for top-level await: s = %live session; await s.send_content(...)."""
        args = _parse(self._cmd_session, rest)
        entry = self._entry(args.name, open_if_missing=True)
        return KernelSession(entry.session, self.poll_interval)

    @magic_arguments("%live history")
    @_NAME_ARG
    @argument("--view", choices=sorted(history_views.VIEWS), default="transcript", help="which table (a DataFrame)")
    def _cmd_history(self, rest: str) -> Any:
        """A pandas view of a session (also after it was closed)."""
        args = _parse(self._cmd_history, rest)
        name = self._name(args.name)
        ended = self.registry.ended.get(name)
        if name not in self.registry.sessions and ended is not None:
            return history_views.view(ended.session, args.view)
        return history_views.view(self._entry(name).session, args.view)

    @magic_arguments("%live dashboard")
    @_NAME_ARG
    def _cmd_dashboard(self, rest: str) -> None:
        """The session's dashboard widget."""
        args = _parse(self._cmd_dashboard, rest)
        entry = self._entry(args.name, open_if_missing=True)
        try:
            from ..widgets.dashboard import Dashboard
        except ImportError as exc:
            raise UsageError(f"the dashboard is not available: {exc}") from None
        limit = CONNECTION_LIFETIME_SECONDS
        if entry.options.backend == "emulator":
            limit /= entry.options.time_scale  # the emulator scales its 10-minute connections too
        display(Dashboard(_opened(entry), connection_limit=limit))

    @magic_arguments("%live mic")
    @argument("switch", choices=["on", "off"], help="start or stop")
    @_NAME_ARG
    def _cmd_mic(self, rest: str) -> None:
        """Stream the microphone into the session."""
        self._media(_parse(self._cmd_mic, rest), audio=True, video=False)

    @magic_arguments("%live camera")
    @argument("switch", choices=["on", "off"], help="start or stop")
    @_NAME_ARG
    def _cmd_camera(self, rest: str) -> None:
        """Stream the camera into the session."""
        self._media(_parse(self._cmd_camera, rest), audio=False, video=True)

    @magic_arguments("%live help")
    def _cmd_help(self, rest: str) -> None:
        """This text."""
        print(HELP)

    # -- helpers of the subcommands -------------------------------------------------------------

    def _media(self, args: Any, audio: bool, video: bool) -> None:
        try:
            from ..widgets import media
        except ImportError as exc:
            raise UsageError(f"mic and camera streaming is not available: {exc}") from None
        if args.switch == "on":
            entry = self._entry(args.name, open_if_missing=True)
            widget = media.start_media(_opened(entry), audio=audio, video=video)
            if widget is not None:
                display(widget)
        else:
            entry = self._entry(args.name)
            media.stop_media(_opened(entry), audio=audio, video=video)

    def _namespace(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def _name(self, name: str | None) -> str:
        """``name`` (or the default session's), if the notebook can store it (``records.SESSION_NAME_PATTERN``).

        A name whose handle the notebook could not keep is refused here, not accepted and its handle lost.
        """
        name = name or self.default_session
        if not is_session_name(name):
            shown = name if len(name) <= 40 else name[:39] + "…"
            raise UsageError(f"bad session name {shown!r}: use {SESSION_NAME_RULE}")
        return name

    def _entry(self, name: str | None, open_if_missing: bool = False) -> Entry:
        name = self._name(name)
        entry = self.registry.sessions.get(name)
        if entry is not None:
            return entry
        if not open_if_missing:
            raise UsageError(f"no open session named {name!r}")
        return self._block(self.registry.ensure(name, self._resolve()))

    def _resolve(self, **arguments: Any) -> ConnectOptions:
        """Options from ``arguments``, then the config traits; starts the in-kernel emulator they need."""
        options = resolve_options(self, **arguments)
        try:
            self.registry.prepare(options)
        except LiveError as exc:
            raise UsageError(one_line(exc)) from None
        return options

    def _session_options(self, name: str) -> ConnectOptions:
        """The options of session ``name``: the open one's, else what opening it would use."""
        entry = self.registry.sessions.get(name)
        return entry.options if entry is not None else self._resolve()

    def _check_system_update(self, name: str) -> None:
        """Refuse a mid-session system-instruction update where the backend (or flavour) lacks it."""
        options = self._session_options(name)
        if options.flavor is not None and not offer(options.flavor).system_instruction_update:
            raise UsageError(system_refusal(options))

    def _block(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop thread and wait (for short operations: connect, close, resume)."""
        try:
            return _loop.block(_loop.submit(coro), timeout)
        except LiveError as exc:
            raise UsageError(one_line(exc)) from None

    def shutdown(self) -> None:
        """Close every session and stop the in-process emulators (``%unload_ext``)."""
        self.registry.shutdown()


SUBCOMMANDS = (
    "connect", "models", "status", "system", "resume", "close", "sessions", "session", "history", "dashboard",
    "mic", "camera", "help",
)
"""The ``%live`` subcommands, in the order the help lists them (each is ``LiveMagics._cmd_<name>``)."""


def _opened(entry: Entry) -> LiveSession:
    """The entry's session (widgets take the real ``LiveSession``, never a proxy).

    Raises:
        UsageError: it is still opening (another request is connecting it).
    """
    if entry.session is None:
        raise UsageError(f"session {entry.name!r} is still opening; try again in a moment")
    return entry.session


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else "bad arguments"


def _parse(command: Any, argstring: str) -> Any:
    """Parse a subcommand's arguments by its declaration; quotes group words and are removed.

    Raises:
        UsageError: one line, naming the subcommand (``%live connect: ...``).
    """
    parser = command.parser
    try:
        split: Callable[..., list[str]] = arg_split
        return parser.parse_args(split(argstring, posix=True, strict=True))
    except UsageError as exc:
        raise UsageError(f"{parser.prog}: {_first_line(exc)}") from None
    except ValueError as exc:  # unbalanced quotes
        raise UsageError(f"{parser.prog}: {exc}") from None


def _describe(entry: Entry, verb: str) -> str:
    """One status line: where, model, modality, state, handle, reconnects, context, GoAway countdown."""
    import time

    session = entry.session
    options = entry.options
    parts = [f"{verb} {entry.name!r}:", where(options), options.model, options.modality]
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
    if options.thinking:
        parts.append(f"thinking {options.thinking.lower()}")
    if options.tools:
        parts.append("tools " + ",".join(options.tool_names))
    deadline = session.go_away_deadline
    if deadline:
        parts.append(f"GoAway: {max(0.0, deadline - time.time()):.0f} s left")
    if options.backend == "emulator" and options.time_scale != 1.0:
        parts.append(f"time x{options.time_scale:g}")
    return " ".join(parts)


# -- %live help, generated from the declarations ----------------------------------------------


def _words(action: argparse.Action) -> str:
    """How one declared argument reads in a usage line: ``[NAME]``, ``--role user|model``, ``--[no-]transparent``."""
    shown = "|".join(str(c) for c in action.choices) if action.choices else (action.metavar or action.dest.upper())
    if not action.option_strings:
        text = f"{shown} ..." if action.nargs == "*" else str(shown)
        return f"[{text}]" if action.nargs in ("?", "*") else text
    option = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
    option = next((o for o in action.option_strings if o.startswith("--")), option)
    if isinstance(action, argparse.BooleanOptionalAction):
        return f"[--[no-]{option[2:]}]"
    if action.nargs == 0:
        return f"[{option}]"
    value = f"[{shown}]" if action.nargs == "?" else str(shown)
    return f"[{option} {value}]"


def _usage(parser: argparse.ArgumentParser) -> str:
    # A declared argument is never cut across lines: its spaces are held until the line is filled.
    words = [_words(a).replace(" ", "\0") for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    text = textwrap.fill(" ".join([parser.prog.replace(" ", "\0"), *words]), width=104, break_on_hyphens=False,
                         subsequent_indent=" " * (len(parser.prog) + 1))
    return text.replace("\0", " ")


def _options_help(parser: argparse.ArgumentParser) -> list[str]:
    lines = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings or not action.help:
            continue
        option = _words(action).removeprefix("[").removesuffix("]")
        if len(option) > 28:  # a long option takes its own line
            lines.append(f"    {option}")
            option = ""
        lines.append(f"    {option:<28} {action.help.replace('%%', '%')}")  # argparse's escape
    return lines


def help_text(magics: type[LiveMagics] = LiveMagics) -> str:
    """``%live help``: every declaration's usage line, its description and its options' help.

    Generated from the ``@magic_arguments`` declarations, so the help cannot drift from what the
    parsers accept; the closing paragraph names the config traits (``%config LiveMagics``).
    """
    blocks = []
    for command in [magics.live_cell, *(getattr(magics, f"_cmd_{name}") for name in SUBCOMMANDS)]:
        parser: argparse.ArgumentParser = command.parser  # type: ignore[attr-defined]
        description = inspect.cleandoc(parser.description or "")
        lines = [_usage(parser)]
        lines += ["    " + line if line else "" for line in description.splitlines()]
        lines += _options_help(parser)
        blocks.append("\n".join(lines))
    traits = sorted(name for name, trait in magics.class_traits(config=True).items())
    defaults = textwrap.fill(
        "Defaults: %config LiveMagics." + " / ".join(traits) + " (%config LiveMagics shows them all). "
        "Without GEMINI_API_KEY / GOOGLE_API_KEY the bundled emulator runs in the kernel, serving Vertex "
        "AI's rules (emulator_flavor = 'gemini' for the Gemini Developer API's). With a key: the Developer "
        "API (Vertex AI when GOOGLE_GENAI_USE_VERTEXAI is true, or --backend vertex). Transparent "
        "resumption (nothing lost on a GoAway) is on by default where it is offered.",
        width=104,
    )
    return "\n\n".join([*blocks, defaults]) + "\n"


HELP = help_text()
"""What ``%live help`` prints."""


def live_completions(line: str, namespace: dict[str, Any] | None = None) -> list[str]:
    """What ``%live ... <TAB>`` offers at the end of ``line`` (the model ids after ``--model``, the
    notebook's functions after ``--tools`` when ``namespace`` is given, ...)."""
    tools = None if namespace is None else (lambda: tool_candidates(namespace))
    found = live_candidates(line, SUBCOMMANDS, tools)
    return found[1] if found else []


# -- extension hooks (called by live_nb.load_ipython_extension / unload_ipython_extension) -------


def load_ipython_extension(ip: InteractiveShell) -> None:
    """Register the magics, the ``%%live`` cell transformer and the completer on ``ip``."""
    if MAGICS_KEY in ip.magics_manager.registry:
        return
    magics = LiveMagics(ip)
    ip.register_magics(magics)
    if transform_live_cells not in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.append(transform_live_cells)
    completer = getattr(ip, "Completer", None)
    if completer is not None and not any(is_ours(m) for m in completer.custom_matchers):
        completer.custom_matchers.append(
            completion_matcher(SUBCOMMANDS, lambda: tool_candidates(ip.user_ns, getattr(ip, "user_ns_hidden", ())))
        )
    magics.registry.bridge()  # the bridge opens its comm to the labextension when it is created


def unload_ipython_extension(ip: InteractiveShell) -> None:
    """Close every session, stop the loop thread, and unregister the magics and the transformer."""
    magics = ip.magics_manager.registry.pop(MAGICS_KEY, None)
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
        completer.custom_matchers[:] = [m for m in completer.custom_matchers if not is_ours(m)]
    from .metadata import close_bridge

    close_bridge(ip)
    _loop.stop()

