"""LiveModel and LiveSession: the one asyncio layer of the client (style.md rule 2).

A ``LiveSession`` *contains* a sans-I/O ``ClientProtocol`` (indexes, replay buffer, handle,
GoAway deadline) and owns everything with I/O or time in it: the websocket, the reader task,
the GoAway timer and the moves to new connections. Data flow mirrors websockets' asyncio
connection: a send feeds the protocol, then writes ``data_to_send()``; a received frame feeds
``protocol.receive()``, then each message is processed (ledger, transcript, events) and handed to
``receive()`` and the listeners.

Moving to a new connection (GoAway, drop, ``resume_session``), in this order:
1. the old connection is retired and closed first (the service refuses a resume while the old
   socket is open, field.md);
2. a new one is opened with the latest resumable handle;
3. after ``setupComplete`` the protocol replays, in order, every buffered message after the last
   consumed index, and then what was sent meanwhile (sends never wait on the socket: while no
   connection is open they queue in the protocol);
4. ``Resumed(state_restored, replayed, possibly_lost)`` tells the user what happened.
Fatal closes (``reconnect.process_exception``) end the session with ``SessionLost``, raised from
``receive()`` and from later sends.

Pings: we ping every 30 s to keep NATs and proxies from dropping an idle connection, but never
time out on a missing pong: the service answers pings slowly (8-30 s measured, field.md), and a
20 s ping timeout (the websockets default that google-genai keeps) kills healthy sessions. A dead
peer is noticed by TCP and by the GoAway/1011 deadline instead.

Bounded memory: a session may run for hours, and a broken server may flood it. Everything it
keeps is bounded and counts what it let go: ``events`` and ``transcript`` are ``BoundedLog``s
(``dropped_events``, ``dropped_transcript``), one transcript entry (and the reply text gathered
for it) keeps at most ``TURN_CHARS_LIMIT`` characters (``dropped_text``), and the ``receive()``
queue keeps at most ``RECEIVE_QUEUE_LIMIT`` items and about ``RECEIVE_QUEUE_BYTES`` (``dropped_received``).

Hostile servers: no time the server sends reaches a timer unchecked (``ClientProtocol`` clamps a
GoAway's ``timeLeft``; ``_go_away`` checks again), reconnects are budgeted and paced
(``reconnect.AttemptBudget``), and close reasons are scrubbed of every credential header value
before they reach an exception, an event or a log line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import math
import os
import socket
import ssl as ssl_module
import time
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed as WsConnectionClosed
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI, WebSocketException

from ..exceptions import (
    ConfigError,
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
    LiveError,
    LocalProtocolError,
    RemoteProtocolError,
    SessionLost,
    UnsupportedOnBackend,
)
from ..protocol import catalogue, tokens
from ..protocol.client_protocol import CLOSED, DEFAULT_MAX_REPLAY_BYTES, MAX_GO_AWAY_SECONDS, ClientProtocol
from ..protocol.config import LiveGenerationConfig, SessionResumptionConfig
from ..protocol.content import Content, FunctionCall, FunctionResponse, Part, as_turns
from ..protocol.events import Connected, Reconnecting, Resumed, SessionClosed, ToolRun
from ..protocol.ledger import ContextLedger
from ..protocol.messages import (
    ClientContent,
    ClientMessage,
    ContextUpdate,
    GoAway,
    ServerContent,
    ServerMessage,
    SessionResumptionUpdate,
    SetupComplete,
    ToolCall,
    ToolCallCancellation,
    ToolResponse,
    UsageMetadata,
)
from ..protocol.tool_calls import check_tools
from ..protocol.tools import Tool
from .credentials import find_api_key
from .endpoints import EMULATOR_URL_ENV, AuthHeaders, Endpoint, EndpointResolver
from .reconnect import AttemptBudget, ReconnectPolicy, backoff, process_exception
from .tool_loop import DEFAULT_TOOL_TIMEOUT, ToolLoop
from .view import Listener, SessionView

__all__ = ["LiveModel", "LiveSession"]

logger = logging.getLogger("live_nb.client")

PING_INTERVAL = 30.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
RECEIVE_QUEUE_LIMIT = 100_000
"""Items kept for ``receive()`` when nobody iterates it (listeners still see everything)."""
RECEIVE_QUEUE_BYTES = 16 * 1024 * 1024
"""About this much memory (estimated from frame sizes) is kept for ``receive()``: the magics and
widgets listen rather than iterate, so the queue is often full; 16 MiB is minutes of reply audio."""
ITEM_OVERHEAD = 512
"""Estimated bytes of one parsed message or event beyond its share of the frame (measured: a small
``serverContent`` costs about 500 bytes once parsed)."""
EVENTS_LIMIT = 10_000
"""Entries kept in ``session.events`` (lifecycle events, GoAways, resumption updates)."""
EVENTS_BYTES = 8 * 1024 * 1024
"""About this much of ``session.events`` is kept (handles are its only large part)."""
TRANSCRIPT_LIMIT = 10_000
"""Entries kept in ``session.transcript``."""
TRANSCRIPT_CHARS = 4_000_000
"""Characters of text kept across ``session.transcript``."""
TURN_CHARS_LIMIT = 100_000
"""Characters kept of one transcript entry (a reply is gathered up to this; a long spoken reply is
a few thousand)."""
OWED_TURN_GRACE = 20.0
"""Seconds an owed reply turn may keep ``answering`` True while the model is quiet (nothing streams,
no reply asked for, no call running, no answer waiting to go out). The service starts its answer to
a result within a few seconds; if no turn has begun after this long, the turns still owed are
written off (logged): a server that answers in fewer turns than counted cannot hold
``answer_done()`` for ever. The same 20 s as the notebook's wait for a spoken answer
(``notebook._reply.ANSWER_WAIT``). ``LiveSession.owed_turn_grace`` sets it per session."""

# What a client message asks of the model, for re-basing ``answering`` after a transparent resume.
_ASKS_REPLY = 0  # a turn-ending clientContent or realtime text: a reply
_ASKS_NON_BLOCKING = 1  # a final, non-SILENT NON_BLOCKING result: a turn, after the current one
_ASKS_BLOCKING = 2  # a final result to a BLOCKING call: it ends the turn that made the call
_ASKS_KEPT = 1024  # bound of LiveSession._asks (a replay buffer holds far fewer such messages)

_T = TypeVar("_T")


class BoundedLog(list[_T]):
    """A list that keeps its newest entries: at most ``maxlen`` of them and about ``max_size`` in all.

    Why a list: its readers (``history`` views, the dashboard feed, notebooks) index, slice, ``len``
    and iterate it, from other threads too; a deque cannot be sliced. Past a bound the oldest
    quarter goes in one ``del`` (atomic under the GIL, and O(1) per append on average).
    ``append``, ``extend`` and ``clear`` keep the accounting; the log is not meant to be edited
    otherwise.

    Attributes:
        dropped: entries let go so far, oldest first (entry ``i`` here was appended as number
            ``dropped + i``).
        size: the estimated size of what is kept (``sizeof`` summed).
    """

    # Class-level defaults, so a copy made without __init__ (copy, pickle) still works.
    maxlen: int = 2**62
    max_size: float = math.inf
    size: float = 0
    dropped: int = 0
    sizeof: Callable[[Any], float] | None = None

    def __init__(
        self, maxlen: int, max_size: float = math.inf, sizeof: Callable[[_T], float] | None = None
    ) -> None:
        super().__init__()
        self.maxlen = max(1, maxlen)
        self.max_size = max_size
        self.size = 0
        self.dropped = 0
        self.sizeof = sizeof

    def _sizeof(self, item: Any) -> float:
        return 1.0 if self.sizeof is None else self.sizeof(item)

    def append(self, item: _T) -> None:
        super().append(item)
        self.size += self._sizeof(item)
        if len(self) > self.maxlen or self.size > self.max_size:
            self._trim()

    def extend(self, items: Any) -> None:
        for item in list(items):  # list(): extending a log with itself must end
            self.append(item)

    def clear(self) -> None:
        self.dropped += len(self)
        super().clear()
        self.size = 0

    def _trim(self) -> None:
        keep_len, keep_size = self.maxlen * 3 // 4, self.max_size * 3 / 4
        total, size, n = len(self), self.size, 0
        while n < total - 1 and (total - n > keep_len or size > keep_size):
            size -= self._sizeof(self[n])
            n += 1
        del self[:n]
        self.size = size
        self.dropped += n


def _event_size(entry: tuple[float, Any]) -> float:
    item = entry[1]
    if isinstance(item, SessionResumptionUpdate):
        return ITEM_OVERHEAD + len(item.new_handle or "")
    return ITEM_OVERHEAD


def _transcript_size(entry: tuple[float, str, str]) -> float:
    return 100 + len(entry[2])


def _clip_text(text: str) -> tuple[str, int]:
    """``text`` cut to ``TURN_CHARS_LIMIT`` with a note saying so, and the characters cut."""
    if len(text) <= TURN_CHARS_LIMIT:
        return text, 0
    cut = len(text) - TURN_CHARS_LIMIT
    return text[:TURN_CHARS_LIMIT] + f" … [{cut:,} more characters not kept]", cut


class _NoHeaderLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger handed to websockets: never at DEBUG.

    Why: at DEBUG websockets logs every handshake header line, ``x-goog-api-key`` and
    ``Authorization`` included; a user turning on debug logging must not leak a key.
    """

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        return None


_WS_LOGGER = _NoHeaderLogger(logging.getLogger("live_nb.client.websockets"), {})

Item = Any  # a ServerMessage or a lifecycle event


def _closed_from_ws(exc: WsConnectionClosed, redact: Callable[[str], str] = str) -> ConnectionClosed:
    rcvd = exc.rcvd
    code = rcvd.code if rcvd is not None else 1006
    reason = redact(rcvd.reason) if rcvd is not None else ""
    if code in (1000, 1001):
        return ConnectionClosedOK(code, reason)
    return ConnectionClosedError(code, reason)


def default_backend(url: str | None, api_key: str | None) -> str:
    """The backend when none is named: the emulator if there is a URL for it, else Gemini if a key exists.

    Raises:
        ConfigError: neither an emulator URL nor a Gemini key was found.
    """
    if url or os.environ.get(EMULATOR_URL_ENV):
        return "emulator"
    if api_key or find_api_key() is not None:
        return "gemini"
    raise ConfigError(
        "backend",
        None,
        f'"emulator" with url= (or {EMULATOR_URL_ENV}), or "gemini" with GEMINI_API_KEY / GOOGLE_API_KEY, '
        'or "vertex"; none of them was found',
    )


def default_generation_config() -> LiveGenerationConfig:
    """Today's default: AUDIO replies (all current Live models answer in audio) with their transcription."""
    return LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)


_warned_models: set[str] = set()


def _warn_unknown_model(model: str) -> None:
    """Warn once per model id the catalogue does not know: it may be newer than this live_nb, so try it."""
    name = catalogue.bare_model_name(model)
    if name not in _warned_models:
        _warned_models.add(name)
        known = ", ".join(m.id for m in catalogue.CATALOGUE if m.status == catalogue.CURRENT)
        warnings.warn(
            f"live_nb does not know the model {name!r}; trying it anyway (current models: {known})",
            UserWarning,
            stacklevel=3,
        )


def _raise_refusal(refusal: catalogue.Refusal | None) -> None:
    """Turn a catalogue refusal into the error a caller sees before anything is sent."""
    if refusal is None:
        return
    if refusal.kind == "backend":
        raise UnsupportedOnBackend(refusal.advice)
    if refusal.kind == "message":
        raise LocalProtocolError(refusal.advice)
    raise ConfigError(refusal.field, refusal.value, refusal.advice)


class LiveModel:
    """A Live API model on one backend; ``connect()`` opens sessions with it.

    Args:
        model_name: a Live model id (default ``gemini-3.8-live``; ``catalogue.CATALOGUE`` lists them).
            A shut-down model is refused here, naming its replacement; one the catalogue does not
            know is warned about once and tried.
        generation_config: the connection config (``LiveGenerationConfig``); default: AUDIO replies
            with output transcription, what today's models answer in. A config that breaks one of
            the model's rules raises ConfigError here, naming the rule and what to use instead.
        backend: ``"emulator"``, ``"gemini"`` or ``"vertex"``; default: ``emulator`` when a URL is
            given or ``LIVE_NB_EMULATOR_URL`` is set, else ``gemini`` when a key is found (argument,
            environment or ``.env``), else a ConfigError naming both ways.
        url, api_key, project, location, api_version: see ``EndpointResolver``.
        ssl: an ``ssl.SSLContext`` for ``wss://`` (e.g. trusting the emulator's self-signed cert).
        reconnect: the ``ReconnectPolicy`` (``ReconnectPolicy.off()`` for none).
        max_replay_bytes: bound of the transparent-replay buffer.
        open_timeout: seconds allowed for the TCP + WebSocket handshake and ``setupComplete``.
        tools: functions the model may call: Python functions (sync or async; declared from their
            signature, hints and docstring), ``Tool`` objects (``tool_from_callable(fn, behavior=,
            scheduling=, timeout=)``) and/or raw declaration dicts. Same as ``generation_config``'s
            ``tools`` (give them in one place, not both). Each one is checked against the model's
            rules here (e.g. no BLOCKING on extended thinking): a ConfigError names the model, the
            function and the rule.
        auto_tools: run the Python functions when the model calls them and answer with their
            result (``client/tool_loop.py``); False leaves every call to the caller, who answers
            the ``ToolCall`` items of ``receive()`` with ``send_tool_response``. Calls to raw
            declarations are always left to the caller.
        tool_timeout: seconds a call may run before it is answered with a TimeoutError result
            (a ``Tool``'s own ``timeout`` wins; None: no limit).

    Raises:
        ConfigError, CredentialsError: before anything is sent.
    """

    def __init__(
        self,
        model_name: str = catalogue.DEFAULT_MODEL,
        generation_config: LiveGenerationConfig | None = None,
        backend: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        project: str | None = None,
        location: str | None = None,
        api_version: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        reconnect: ReconnectPolicy | None = None,
        max_replay_bytes: int = DEFAULT_MAX_REPLAY_BYTES,
        open_timeout: float = 10.0,
        tools: Sequence[Any] | None = None,
        auto_tools: bool = True,
        tool_timeout: float | None = DEFAULT_TOOL_TIMEOUT,
    ) -> None:
        if generation_config is not None and not isinstance(generation_config, LiveGenerationConfig):
            raise ConfigError("generation_config", type(generation_config).__name__, "a LiveGenerationConfig")
        if tools is not None:
            base = generation_config or default_generation_config()
            if base.tools:
                raise ConfigError(
                    "tools", "both", "tools given once: to LiveModel(tools=) or in generation_config, not both"
                )
            generation_config = dataclasses.replace(base, tools=list(tools))
        if tool_timeout is not None and (
            isinstance(tool_timeout, bool) or not isinstance(tool_timeout, (int, float)) or not tool_timeout > 0
        ):
            raise ConfigError("tool_timeout", tool_timeout, "None or a number of seconds above 0")
        if backend is None:
            backend = default_backend(url, api_key)
        self.model_name = model_name
        self.generation_config = generation_config or default_generation_config()
        self.backend = backend
        self.ssl = ssl
        self.reconnect = reconnect or ReconnectPolicy()
        if max_replay_bytes <= 0:
            raise ConfigError("max_replay_bytes", max_replay_bytes, "a positive number of bytes")
        self.max_replay_bytes = max_replay_bytes
        self.open_timeout = open_timeout
        self.auto_tools = bool(auto_tools)
        """Whether sessions run the Python functions among the tools when the model calls them."""
        self.tool_timeout = tool_timeout
        self.resolver = EndpointResolver(backend, model_name, url, api_key, project, location, api_version)
        self.flavor = catalogue.wire_flavor(backend, self.resolver.url)
        """Whose rules apply: ``gemini``, ``vertex``, or None (a bare emulator URL: the emulator decides)."""
        self.info = catalogue.lookup(model_name)
        """The model's catalogue row (None for a model the catalogue does not know)."""
        if self.info is None:
            _warn_unknown_model(model_name)
        else:
            _raise_refusal(check_tools(self.info, self.generation_config.function_tools))
            _raise_refusal(catalogue.check_setup(self.info, self.flavor, self.generation_config))

    @property
    def tools(self) -> tuple[Tool, ...]:
        """The Python functions the model may call (``generation_config.function_tools``)."""
        return self.generation_config.function_tools

    def __repr__(self) -> str:
        return f"LiveModel({self.model_name!r}, backend={self.backend!r}, url={self.resolver.url!r})"

    @property
    def url(self) -> str:
        """The endpoint URL (never carries a key)."""
        return self.resolver.url

    def connect(self, session_resumption: SessionResumptionConfig | None = None) -> _Connecting:
        """Open a session: ``await model.connect(...)`` or ``async with model.connect(...) as s``.

        Args:
            session_resumption: ``SessionResumptionConfig()`` to get handles, ``handle=h`` to resume
                a session, ``transparent=True`` for replay (emulator and Vertex only).

        Raises:
            UnsupportedOnBackend: transparent resumption on the Gemini Developer API.
            ConnectError: the server could not be reached.
            SessionLost: the server refused the setup or the handle.
        """
        if session_resumption is not None and session_resumption.transparent and self.flavor == "gemini":
            raise UnsupportedOnBackend(
                "transparent session resumption is offered by Vertex AI (and the emulator's Vertex flavour), "
                "not by the Gemini Developer API"
            )
        return _Connecting(self, session_resumption)


class _Connecting:
    """What ``connect()`` returns: awaitable, and an async context manager that closes the session."""

    def __init__(self, model: LiveModel, resumption: SessionResumptionConfig | None) -> None:
        self._model = model
        self._resumption = resumption
        self._session: LiveSession | None = None

    async def _open(self) -> LiveSession:
        session = LiveSession(self._model, self._resumption)
        await session._start()
        self._session = session
        return session

    def __await__(self) -> Generator[Any, None, LiveSession]:
        return self._open().__await__()

    async def __aenter__(self) -> LiveSession:
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()


class LiveSession:
    """One Live session across all its connections. Make it with ``LiveModel.connect``.

    Observable state (current, readable from any thread) is what ``view.SessionView`` names:
    ``state``, ``handle``, ``handle_retention``, ``resumable``, ``go_away_deadline``, ``ledger``,
    ``transcript``, ``events`` and the rest; readers (widgets, the notebook) are typed against
    that Protocol. Besides it, ``loop``: the event loop the session lives on, where its coroutines
    must run (``asyncio.run_coroutine_threadsafe(session.send_audio(b), session.loop)`` from
    another thread).

    ``transcript`` and ``events`` are bounded lists (``BoundedLog``: the newest entries are kept);
    ``dropped_events``, ``dropped_transcript``, ``dropped_text`` and ``dropped_received`` count what
    was let go (module docstring).
    """

    def __init__(self, model: LiveModel, resumption: SessionResumptionConfig | None) -> None:
        self._live_model = model
        self.loop = asyncio.get_running_loop()
        self.backend = model.backend
        self.model = model.resolver.model
        self.policy = model.reconnect
        self._protocol = ClientProtocol(
            model.resolver.model, model.generation_config, resumption, model.max_replay_bytes
        )
        self._info = model.info
        self._flavor = model.flavor
        self._history_gate = catalogue.ClientContentGate(open=not (resumption and resumption.handle))
        config = model.generation_config
        window = model.info.input_window if model.info is not None else catalogue.DEFAULT_INPUT_WINDOW
        self.ledger = ContextLedger(window=window, compression=config.context_window_compression)
        self.transcript: BoundedLog[tuple[float, str, str]] = BoundedLog(
            TRANSCRIPT_LIMIT, TRANSCRIPT_CHARS, _transcript_size
        )
        """(time, role, text) entries, newest kept (``dropped_transcript`` counts the rest)."""
        self.events: BoundedLog[tuple[float, Any]] = BoundedLog(EVENTS_LIMIT, EVENTS_BYTES, _event_size)
        """(time, event or message) entries, newest kept (``dropped_events`` counts the rest)."""
        self.dropped_text = 0
        """Characters of transcript text not kept (a reply or message past ``TURN_CHARS_LIMIT``)."""
        self.dropped_received = 0
        """Items the ``receive()`` queue let go because nobody took them in time (listeners saw them)."""
        self.reconnects = 0
        self.connection_started: float | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._mover: asyncio.Task[None] | None = None
        self._waiter: asyncio.Task[None] | None = None
        self._queue: collections.deque[tuple[Item, int]] = collections.deque()
        self._queue_bytes = 0
        self._wakeup = asyncio.Event()
        self._listeners: list[Listener] = []
        self._error: LiveError | None = None
        self._closed = False
        self._model_text: list[str] = []
        self._model_chars = 0
        self._heard_text: list[str] = []
        self._heard_chars = 0
        self._message_seen = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._budget = AttemptBudget(self.policy)
        self._opened_at = 0.0  # loop time of the current connection's setupComplete
        self._progress_mark = 0  # protocol.progress then
        self._go_away_at: float | None = None  # loop time of the GoAway on the current connection
        self._secrets: collections.deque[AuthHeaders] = collections.deque(maxlen=4)
        self._last_close: tuple[int, str] = (1006, "")
        # Whether the model owes more of its answer (``answering``): a reply asked for and not
        # complete, a turn streaming, IN_PROGRESS (extended thinking), results it has not answered.
        self._awaiting_reply = False
        self._streaming = False
        self._in_progress = False
        self._turns_completed = 0
        self._owed_until = 0  # _turns_completed at which every result sent so far has been answered
        self._owed_mark = 0.0  # loop time the model last did something an owed turn waits on
        self.owed_turn_grace = OWED_TURN_GRACE
        """Seconds an owed turn keeps ``answering`` True while the model is quiet (``OWED_TURN_GRACE``)."""
        # Transparent resumption: what the server replays after a resume is re-run from the
        # snapshot, so what it owes is re-based from those messages (``_rebase_after_resume``).
        self._sent = 0  # client messages handed to the protocol so far (every kind, all connections)
        self._asks: collections.deque[tuple[int, int, int]] = collections.deque(maxlen=_ASKS_KEPT)
        """(number in ``_sent``, _ASKS_*, the turn count that answers it) for messages that ask a reply."""
        self._answer_changed = asyncio.Event()
        self._flushes: set[asyncio.Task[None]] = set()
        self._tool_loop = ToolLoop(
            config.function_tools,
            model.info,
            auto=model.auto_tools,
            timeout=model.tool_timeout,
            emit=self._emit,
            write=self._write_tool_response,
            can_send=lambda: self._protocol.can_send_now,
            replay_covers=self._replay_covers,
            changed=self._answer_changed.set,
            connection=lambda: self._protocol.connections,
            declarations=config.tools,
        )
        if config.system_instruction_text:
            self.ledger.record_system(tokens.text_tokens(config.system_instruction_text), time.time())

    def __repr__(self) -> str:
        handle = "yes" if self.handle else "no"
        return f"<LiveSession {self.model} on {self.backend} state={self.state} handle={handle}>"

    # Observable state.

    @property
    def state(self) -> str:
        """``connecting``, ``active``, ``going_away``, ``reconnecting`` or ``closed``."""
        return self._protocol.state.public_name

    @property
    def handle(self) -> str | None:
        """The latest resumable handle (what a resume would use)."""
        return self._protocol.handle

    @property
    def handle_retention(self) -> float | None:
        """Seconds the service keeps this session's handle, from its backend's rules.

        One source: ``catalogue.BACKEND_OFFERS[flavor].handle_retention_seconds`` (2 h on the
        Gemini Developer API, 24 h on Vertex AI, and the same on the emulator's paths for each).
        None for a bare emulator URL: only the emulator knows which flavour it serves there (and
        an emulator run with a time scale divides the figure; the notebook layer knows that scale).
        """
        flavor = self._flavor
        return None if flavor is None else catalogue.BACKEND_OFFERS[flavor].handle_retention_seconds

    @property
    def flavor(self) -> str | None:
        """Whose rules apply: ``gemini``, ``vertex``, or None (a bare emulator URL: the emulator decides)."""
        return self._flavor

    @property
    def generation_config(self) -> LiveGenerationConfig:
        """The connection's config (what every setup on this session sends)."""
        return self._live_model.generation_config

    @property
    def go_away_deadline(self) -> float | None:
        """When the current connection ends after a GoAway (``time.time()`` seconds), else None."""
        return self._protocol.go_away_deadline

    @property
    def resumable(self) -> bool:
        """The server's latest word on whether the session can be resumed now."""
        return self._protocol.resumable

    @property
    def last_consumed_index(self) -> int | None:
        """The latest ``lastConsumedClientMessageIndex`` (transparent mode)."""
        return self._protocol.last_consumed_index

    @property
    def replay_depth(self) -> int:
        """Client messages buffered for replay or waiting for a connection."""
        return self._protocol.replay_depth

    @property
    def replay_bytes(self) -> int:
        """Bytes held by the replay buffer."""
        return self._protocol.replay_bytes

    @property
    def session_id(self) -> str | None:
        """The server's session id from ``setupComplete``, when it sends one."""
        return self._protocol.session_id

    @property
    def url(self) -> str:
        """The endpoint URL (never carries a key)."""
        return self._live_model.url

    @property
    def closed(self) -> bool:
        """Whether the session has ended (by ``close()`` or a fatal error)."""
        return self._closed

    @property
    def dropped_events(self) -> int:
        """Oldest ``events`` entries let go to keep the log bounded."""
        return self.events.dropped

    @property
    def dropped_transcript(self) -> int:
        """Oldest ``transcript`` entries let go to keep it bounded."""
        return self.transcript.dropped

    @property
    def tools(self) -> tuple[Tool, ...]:
        """The Python functions the model may call (run by the tool loop when ``auto_tools``)."""
        return self._live_model.tools

    @property
    def auto_tools(self) -> bool:
        """Whether the tool loop runs the functions (else every call is the caller's to answer)."""
        return self._live_model.auto_tools

    @property
    def tool_runs(self) -> tuple[ToolRun, ...]:
        """The latest ``ToolRun`` events (``tool_loop.RUNS_KEPT`` of them), oldest first.

        One ``running`` event when a call starts and one final event (``returned``, ``failed``,
        ``cancelled``, ``timed_out``) per call; ``events`` has them too, in the session's order.
        """
        return self._tool_loop.runs

    @property
    def pending_tool_calls(self) -> tuple[FunctionCall, ...]:
        """Function calls not yet finally answered: running in the tool loop, or left to the caller."""
        return self._tool_loop.pending

    @property
    def answering(self) -> bool:
        """Whether the model owes more of its current answer.

        True while a reply asked for has not completed, a model turn streams, a function call is
        not answered (or its answer waits for a connection), a result sent has not been answered
        yet (a SILENT one owes nothing), or the last turn ended with ``interactionStatus:
        IN_PROGRESS`` (extended thinking: a filler; the answer ends with ``IDLE``). A
        ``turnComplete`` ends one *turn*; the whole answer is over when this turns False.
        Listeners read it exactly (it is updated before they are called); a ``receive()``
        consumer reads it later, when it may have moved on: use ``answer_done()``.

        Owed turns are counted (a NON_BLOCKING result sent while the model speaks owes the turn
        under way and then its answer). After a transparent resume the count is re-based on what
        the server re-runs: the messages it replays (``_rebase_after_resume``), so a filler the
        replay makes again never counts as the answer. An owed turn that has not begun
        ``owed_turn_grace`` seconds after the model went quiet (``OWED_TURN_GRACE``, 20 s) is
        written off: a server that answers in fewer turns than counted cannot hold this for ever.
        """
        return bool(
            self._awaiting_reply
            or self._streaming
            or self._in_progress
            or self._tool_loop.pending
            or self._tool_loop.tracker.queued  # answers waiting for a connection
            or self._owes_turns()
        )

    def _owes_turns(self) -> bool:
        """Reply turns still owed to results sent, within ``owed_turn_grace`` of the model's last move."""
        if self._turns_completed >= self._owed_until:
            return False
        return self.loop.time() - self._owed_mark < self.owed_turn_grace

    def _owed_grace_left(self) -> float | None:
        """Seconds until owed turns are written off (None when none are owed)."""
        if self._turns_completed >= self._owed_until:
            return None
        return max(0.0, self._owed_mark + self.owed_turn_grace - self.loop.time())

    def _mark_owed(self, check: bool = True) -> None:
        """The model moved (a turn began or ended, a result went out, a resume): owed turns wait afresh.

        With ``check``, turns the grace already wrote off (the model was quiet too long) stay
        written off: a late turn is not a reason to owe them again. A turn's end is not checked
        when it streamed (the quiet time was before its start, checked then)."""
        if check and self._turns_completed < self._owed_until and not self._owes_turns():
            logger.info(
                "live_nb: %d reply turn(s) owed to tool results never began within %g s; not waiting for them",
                self._owed_until - self._turns_completed, self.owed_turn_grace,
            )
            self._write_off()
        self._owed_mark = self.loop.time()

    def _write_off(self) -> None:
        """Nothing is owed any more (IDLE, a lossy resume, or the grace ran out)."""
        self._owed_until = self._turns_completed
        if self._asks:
            self._asks = collections.deque(
                ((seq, kind, 0) for seq, kind, _ in self._asks), maxlen=_ASKS_KEPT
            )

    async def answer_done(self) -> None:
        """Return once the model's whole answer is over (``answering`` is False) or the session ended.

        Send the user's turn first, then await this: a reply asked for counts from the send. On
        extended thinking it waits for ``interactionStatus: IDLE``, not the first ``turnComplete``;
        with function calls it waits for the calls and the reply to their results (a reply turn
        owed to a result, and not begun, is waited for at most ``owed_turn_grace`` seconds after the
        model last moved: ``answering``).

        Raises:
            SessionLost, RemoteProtocolError: the error that ended the session, if any.
        """
        while self.answering and not self._closed:
            self._answer_changed.clear()
            try:
                # Owed turns alone hold the answer open for at most ``owed_turn_grace`` (``answering``).
                async with asyncio.timeout(self._owed_grace_left()):
                    await self._answer_changed.wait()
            except TimeoutError:
                if not self._owes_turns():
                    self._mark_owed()  # writes them off, and says so
        if self._error is not None:
            raise self._error

    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(item)`` on the session's loop for every item ``receive()`` yields.

        The callback must not block; its exceptions are logged, never raised here.

        Returns:
            A function that removes the listener.
        """
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    # Sending.

    async def send_content(
        self,
        turns: Content | Mapping[str, Any] | str | Sequence[Content | Mapping[str, Any] | str],
        turn_complete: bool = True,
    ) -> None:
        """Append turns to the conversation; ``turn_complete=True`` asks the model to answer.

        Raises:
            LocalProtocolError: the turns are not Content, dicts or strings.
            InvalidState: the session is closed.
            SessionLost: the session ended on a fatal error.
        """
        self._check_open()
        contents = as_turns(turns)
        message = ClientContent(contents, turn_complete)
        self._check_rules(message)
        self._protocol.send_message(message)
        self._sent += 1
        if turn_complete:
            self._awaiting_reply = True
            self._note_ask(_ASKS_REPLY, 0)
        now = time.time()
        for content in contents:
            text = content.text
            role = content.role or "user"
            if role == "system":
                self.ledger.record_system(tokens.text_tokens(text), now)
            elif role == "model":
                self.ledger.record_history("model", tokens.text_tokens(text), now)
            else:
                self.ledger.record_input("TEXT", tokens.text_tokens(text), now)
            if text:
                self._note(now, role, text)
        await self._flush()

    async def send_text(self, text: str) -> None:
        """Send one user turn of text and ask for an answer (``clientContent``, turn complete)."""
        await self.send_content(text, turn_complete=True)

    async def send_realtime_text(self, text: str) -> None:
        """Send text as realtime input (``realtimeInput.text``; the server's VAD ends the turn)."""
        self._check_open()
        self._history_gate.open = False
        self._protocol.send_realtime_text(text)
        self._sent += 1
        self._awaiting_reply = True
        self._note_ask(_ASKS_REPLY, 0)
        now = time.time()
        self.ledger.record_input("TEXT", tokens.text_tokens(text), now)
        self._note(now, "user", text)
        await self._flush()

    async def update_system_instruction(self, text: str) -> None:
        """Replace the system instruction mid-session (a ``role: "system"`` turn).

        Raises:
            UnsupportedOnBackend: on the Gemini Developer API, which does not offer it.
        """
        await self.send_content(Content(role="system", parts=(Part(text=text),)), turn_complete=False)

    async def update_context(
        self, system_instruction: str | Content | None = None, tools: Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        """Replace the system instruction and/or the tools mid-session (``contextUpdate``).

        Raises:
            UnsupportedOnBackend: on the Gemini Developer API, which does not offer it.
            LocalProtocolError: neither was given.
        """
        self._check_open()
        if system_instruction is None and tools is None:
            raise LocalProtocolError("update_context needs a system_instruction, tools, or both")
        si = as_turns(system_instruction)[0] if system_instruction is not None else None
        message = ContextUpdate(si, None if tools is None else tuple(tools))
        self._check_rules(message)
        self._protocol.send_message(message)
        self._sent += 1
        if si is not None:
            self.ledger.record_system(tokens.text_tokens(si.text), time.time())
        await self._flush()

    async def send_audio(self, pcm16: bytes) -> float:
        """Send one chunk of 16 kHz 16-bit mono PCM (the hot path: keep it lean).

        Returns:
            The input tokens the chunk adds to the context estimate (``ledger``): the one count
            of its cost, which a media feed reuses for its token rate instead of counting again.
        """
        protocol = self._protocol
        if self._error is not None or protocol.state is CLOSED:
            self._check_open()
        protocol.send_audio(pcm16)
        self._sent += 1
        self._history_gate.open = False
        cost = len(pcm16) * tokens.INPUT_AUDIO_TOKENS_PER_BYTE
        self.ledger.record_input("AUDIO", cost, time.time())
        await self._flush()
        return cost

    async def send_video(self, jpeg: bytes) -> float:
        """Send one JPEG frame (the service processes about one per second).

        Returns:
            The input tokens the frame adds to the context estimate (``frame_tokens``).
        """
        self._check_open()
        self._protocol.send_video(jpeg)
        self._sent += 1
        self._history_gate.open = False
        cost = self.frame_tokens
        self.ledger.record_input("VIDEO", cost, time.time())
        await self._flush()
        return float(cost)

    async def send_tool_response(
        self, responses: FunctionResponse | Mapping[str, Any] | Sequence[FunctionResponse | Mapping[str, Any]]
    ) -> None:
        """Answer function calls yourself: each response carries the call's ``id``.

        ``tools.response_for(call, value)`` builds one from a ``FunctionCall`` and a value. Calls
        the session saw are answered at most once: an answer to a call already answered or
        cancelled is dropped (logged); an answer given while the session moves to a new connection
        goes out after the resume, and is re-sent from memory if the server asks the call again.

        Raises:
            LocalProtocolError: a response without an ``id`` on the Gemini Developer API (which
                needs it; google-genai raises there too), or one the model's rules refuse.
            InvalidState: the session is closed, or the call is one the tool loop answers (a
                Python function among the tools while ``auto_tools``).
        """
        self._check_open()
        items = [responses] if isinstance(responses, (FunctionResponse, Mapping)) else list(responses)
        parsed = tuple(r if isinstance(r, FunctionResponse) else FunctionResponse.from_wire(r) for r in items)
        if self._flavor == "gemini":
            for response in parsed:
                if response.id is None:
                    raise LocalProtocolError(
                        f"the response to {response.name!r} has no id: the Gemini Developer API needs the call's id "
                        "(FunctionResponse(..., id=call.id), or tools.response_for(call, value))"
                    )
        self._check_rules(ToolResponse(parsed))
        to_send = self._tool_loop.answer(parsed)
        if to_send:
            self._write_tool_response(ToolResponse(tuple(to_send)), flush=False)
            await self._flush()

    def _write_tool_response(self, message: ToolResponse, flush: bool = True) -> None:
        """Hand answers to the protocol (sent now, or after the resume), count them, note what they owe.

        The tool loop calls this with its functions' answers (only while a connection is open);
        ``send_tool_response`` with the caller's. A final, non-SILENT result owes a reply turn:
        the one after the current turn when it arrives while the model speaks (WHEN_IDLE,
        INTERRUPT), else the next (``answering``).
        """
        if flush:  # the tool loop's answers: the caller's were checked by send_tool_response
            try:
                self._check_rules(message)
            except LiveError as exc:
                logger.warning("live_nb: tool response not sent: %s", exc)
                return
        responses = message.function_responses
        self._protocol.send_tool_response(responses)
        self._sent += 1
        self.ledger.record_input("TEXT", sum(tokens.text_tokens(str(r.response)) for r in responses), time.time())
        asks: int | None = None
        for response in responses:
            if response.will_continue:
                continue
            if self._tool_loop.behavior_of(response.name) == "NON_BLOCKING":
                if response.scheduling == "SILENT":
                    continue  # folded into the context without a reply
                # The reply under way (streaming, or asked for and not begun) ends first, then the answer's.
                turns = 2 if (self._streaming or self._awaiting_reply) else 1
                asks = _ASKS_NON_BLOCKING
            else:
                turns = 1  # the model waits for it: its answer ends the current turn
                asks = _ASKS_BLOCKING if asks is None else asks
            self._owed_until = max(self._owed_until, self._turns_completed + turns)
        if asks is not None:
            self._mark_owed(check=False)
            self._note_ask(asks, self._owed_until)
        self._answer_changed.set()
        if flush:
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    def _replay_covers(self) -> bool:
        """Whether the replay re-sends every answer the server lacks (transparent, nothing lost)."""
        report = self._protocol.resume_report()
        return self._protocol.transparent and report is not None and report.possibly_lost == 0

    def _note_ask(self, kind: int, answered_at: int) -> None:
        """Remember a message that asks the model for a turn, while the server may still replay it.

        Only with transparent resumption (nothing is replayed otherwise). Entries the server has
        folded into the snapshot behind the latest handle go, unless they are results whose
        answer has not been heard (the snapshot owes it: ``_rebase_after_resume``)."""
        if not self._protocol.transparent:
            return
        asks = self._asks
        folded = self._sent - self._protocol.replay_depth
        done = self._turns_completed
        while asks and asks[0][0] <= folded and (asks[0][1] == _ASKS_REPLY or asks[0][2] <= done):
            asks.popleft()
        asks.append((self._sent, kind, answered_at))

    def _rebase_after_resume(self) -> None:
        """What the model owes after a transparent resume that lost nothing, from what the server re-runs.

        The server goes back to the snapshot behind the handle, made at a point where it was not
        generating, and then takes the replayed messages (the protocol's buffer: the last
        ``replay_depth`` messages sent) as new. Every turn it had begun after that snapshot is
        gone; what it still owes is:
        - the answer to a result folded into the snapshot but not heard before the drop (the
          snapshot owes it: one turn, after any replayed reply);
        - for each replayed message, in order, what it asks from the model as it stands then: a
          request starts a reply (ending the turn under way first, if any); a NON_BLOCKING result
          is answered at once when nothing is under way, else after the turn under way; a
          BLOCKING result ends the turn of the call it answers.
        So a turn cut by the drop and made again (the filler of a replayed request before the
        answer to a replayed result) is counted again, and never taken for the answer.
        """
        folded = self._sent - self._protocol.replay_depth
        done = self._turns_completed
        ahead = 0  # turns the server will end from now on
        current = 0  # which of them is under way when the next replayed message arrives
        replies = False
        if any(seq <= folded and kind != _ASKS_REPLY and at > done for seq, kind, at in self._asks):
            ahead = 1  # the snapshot owes an answer (given at the next idle point)
        for seq, kind, _ in self._asks:
            if seq <= folded:
                continue
            if kind == _ASKS_REPLY:
                replies = True
                ahead += 1  # the turn under way, if any, is interrupted: its end plus the reply
                current += 1
            elif kind == _ASKS_NON_BLOCKING:
                if ahead == 0:
                    ahead = current = 1  # answered at once
                else:
                    ahead = max(ahead, current + 1)  # after the turn under way
            else:
                ahead = max(ahead, current, 1)
        self._awaiting_reply = replies
        self._owed_until = done + ahead
        self._asks = collections.deque(
            ((seq, kind, done + ahead if kind != _ASKS_REPLY else 0) for seq, kind, _ in self._asks),
            maxlen=_ASKS_KEPT,
        )
        self._mark_owed(check=False)

    def _resumed(self, state_restored: bool) -> None:
        """After a resume: a reply cut by the drop is not coming back unless the replay asks again.

        A transparent resume that lost nothing re-bases what is owed on what the server re-runs
        (``_rebase_after_resume``); any other resume owes nothing (the replay, if any, may have
        lost the messages that asked, and the server's state may be gone)."""
        self._streaming = False
        if state_restored and self._replay_covers():
            self._rebase_after_resume()
        else:
            self._awaiting_reply = False
            self._in_progress = False
            self._write_off()
            self._asks.clear()
        self._answer_changed.set()

    async def send_activity_start(self) -> None:
        """Signal the start of user activity (manual activity detection)."""
        self._check_open()
        self._history_gate.open = False
        self._protocol.send_activity_start()
        self._sent += 1
        await self._flush()

    async def send_activity_end(self) -> None:
        """Signal the end of user activity (manual activity detection)."""
        self._check_open()
        self._protocol.send_activity_end()
        self._sent += 1
        await self._flush()

    async def send_audio_stream_end(self) -> None:
        """Tell the server the microphone paused (automatic activity detection).

        Raises:
            UnsupportedOnBackend: on Vertex AI, which detects the end of speech by itself.
        """
        self._check_open()
        if self._flavor is not None and not catalogue.BACKEND_OFFERS[self._flavor].audio_stream_end:
            raise UnsupportedOnBackend(
                "audioStreamEnd is a Gemini Developer API message; Vertex AI ends a turn by its own voice "
                "activity detection (just stop sending audio)"
            )
        self._protocol.send_audio_stream_end()
        self._sent += 1
        await self._flush()

    # Receiving.

    async def receive(self) -> AsyncIterator[Item]:
        """Yield server messages and lifecycle events for the whole session.

        It does not stop at ``turnComplete``; it ends after ``close()`` and raises the error that
        ended the session otherwise (``SessionLost``, ``RemoteProtocolError``). Iterate it from one
        task (several iterators would split the items; use ``add_listener`` to observe). Items wait
        for the iterator in a queue of at most ``RECEIVE_QUEUE_LIMIT``; past that the oldest go
        (listeners still saw them).

        Function calls: ``ToolCall`` items come whether or not the tool loop answers them (to
        watch), each followed by the loop's ``ToolRun`` events for the calls it runs. Answer only
        the calls left to you (``auto_tools=False``, or raw declarations) with
        ``send_tool_response``. A ``turnComplete`` ends a turn, not necessarily the answer: with
        calls running or extended thinking's ``interactionStatus: IN_PROGRESS`` more follows;
        ``answer_done()`` waits for the whole answer.
        """
        while True:
            while self._queue:
                item, size = self._queue.popleft()
                self._queue_bytes -= size
                yield item
            if self._closed:
                if self._error is not None:
                    raise self._error
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    # Lifecycle.

    async def resume_session(self, session_resumption: SessionResumptionConfig | None = None) -> None:
        """Move this session to a new connection, resuming ``session_resumption.handle``.

        Without a handle, the latest one is used. Buffered messages are replayed as after a GoAway.

        Raises:
            InvalidState: the session is closed.
            SessionLost: the server refused the handle.
        """
        self._check_open()
        if session_resumption is not None:
            if session_resumption.handle:
                self._protocol.set_handle(session_resumption.handle)
            if self._protocol.resumption is None or session_resumption.transparent:
                self._protocol.resumption = session_resumption
                self._protocol.transparent = session_resumption.transparent
        self._cancel_waiter()
        await self._wait_mover()
        self._budget.reset()  # the user asked for this move: a full budget, no pacing
        self._mover = asyncio.get_running_loop().create_task(self._move("manual"))
        await self._wait_mover()
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """End the session: close the connection; ``receive()`` finishes. Idempotent."""
        if self._closed:
            return
        self._finish(SessionClosed(1000, "closed by the client"), None)
        self._cancel_waiter()
        mover = self._mover
        if mover is not None and mover is not asyncio.current_task():
            mover.cancel()
            with contextlib.suppress(BaseException):
                await mover
        await self._drop_connection(wait=True)

    async def __aenter__(self) -> LiveSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # Private: connections.

    async def _start(self) -> None:
        """Open the first connection.

        A resume (``connect`` with a handle) is retried with backoff when the server closes during
        setup with a retryable code: the service refuses a resume while the session's previous
        socket is still open (1011), e.g. right after a kernel restart. A fresh session is not
        retried: a refusal there is better reported at once.
        """
        policy = self.policy
        delays = backoff(policy.initial_delay, policy.min_delay, policy.max_delay, policy.factor)
        attempts = policy.max_attempts if self._protocol.handle else 1
        for attempt in range(1, attempts + 1):
            try:
                await self._open_connection()
                break
            except BaseException as exc:
                await self._drop_connection(wait=False)
                retry = isinstance(exc, ConnectionClosed) and process_exception(exc) is None
                if retry and attempt < attempts:
                    self._protocol.connection_lost()
                    self._protocol.connection_made()
                    await asyncio.sleep(next(delays) or policy.min_delay)
                    continue
                self._protocol.close()
                self._closed = True
                if isinstance(exc, ConnectionClosed):
                    fatal = process_exception(exc)
                    if fatal is None:
                        fatal = SessionLost(exc.code, exc.reason, "the server closed the connection during setup")
                    raise fatal from None
                raise
        self._emit(
            Connected(self.url, resumed=bool(self._protocol.resumed_with_handle), connection=self._protocol.connections)
        )
        self._tool_loop.flush()

    async def _open_connection(self) -> None:
        """Open a websocket, send setup, wait for setupComplete, then write the replay.

        Raises:
            ConnectError: the websocket could not be opened (naming the URL), or no setupComplete in time.
            CredentialsError: the Vertex token could not be refreshed.
            ConnectionClosed: the server closed during setup.
        """
        resolver = self._live_model.resolver
        endpoint = await asyncio.to_thread(resolver.resolve) if resolver.needs_io else resolver.resolve()
        if not self._secrets or self._secrets[-1] != endpoint.headers:
            self._secrets.append(endpoint.headers)  # a few, so a refreshed token's old value is still scrubbed
        ws = await self._dial(endpoint)
        self._ws = ws
        protocol = self._protocol
        # What the budget compares when this connection ends (a GoAway may come with setupComplete).
        self._opened_at = asyncio.get_running_loop().time()
        self._progress_mark = protocol.progress
        self._go_away_at = None
        try:
            protocol.send_setup()
            for frame in protocol.data_to_send():
                await ws.send(frame)
            async with asyncio.timeout(self._live_model.open_timeout):
                while protocol.state is not CLOSED:
                    raw = await ws.recv(decode=False)
                    self._handle_frame(raw)
                    if protocol.can_send_now:
                        break
            self.connection_started = time.time()
            # The replay and whatever waited for this connection, in order, before anything new.
            async with self._flush_lock:
                for frame in protocol.data_to_send():
                    await ws.send(frame)
        except WsConnectionClosed as exc:
            raise _closed_from_ws(exc, self._redact) from None
        except TimeoutError:
            raise ConnectError(endpoint.url, "no setupComplete in time") from None
        self._reader = asyncio.get_running_loop().create_task(self._read(ws))

    async def _dial(self, endpoint: Endpoint) -> ClientConnection:
        """Open the websocket to ``endpoint``; every failure is a ConnectError naming the URL.

        The ConnectError is raised after the ``except`` block, not in it: the raw error then is not
        its ``__context__``, so neither it nor the websockets frames under it (whose locals hold the
        handshake headers) travel with what the user sees.

        Raises:
            ConnectError: TLS not trusted or failed, refused, DNS failure, timeout, HTTP status at
                the upgrade (``status`` kept; redirects are not followed), invalid URI.
        """
        try:
            tls: dict[str, Any] = {}  # ws:// gets no ssl argument at all
            if endpoint.url.startswith("wss:"):
                given = self._live_model.ssl
                tls["ssl"] = given if given is not None else self._live_model.resolver.ssl_context()
            return await _ConnectNoRedirect(
                endpoint.url,
                additional_headers=endpoint.headers,  # AuthHeaders: a repr that hides the values
                compression=None,  # audio does not compress; deflate costs 3-4x (live-protocol.md 7)
                ping_interval=PING_INTERVAL,
                ping_timeout=None,  # see the module docstring: slow pongs must not kill the session
                max_size=MAX_MESSAGE_BYTES,
                open_timeout=self._live_model.open_timeout,
                user_agent_header="live_nb/0.1",
                logger=_WS_LOGGER,
                **tls,
            )
        except (OSError, TimeoutError, ValueError, WebSocketException) as exc:
            failure = _connect_failure(endpoint, exc, self._live_model.open_timeout)
        raise failure from None

    async def _read(self, ws: ClientConnection) -> None:
        try:
            while True:
                raw = await ws.recv(decode=False)
                if ws is not self._ws:
                    return
                self._handle_frame(raw)
        except WsConnectionClosed as exc:
            if ws is self._ws and not self._closed:
                self._connection_failed(_closed_from_ws(exc, self._redact))
        except RemoteProtocolError as exc:
            if ws is self._ws:
                refused = RemoteProtocolError(self._redact(exc.reason), self._redact(exc.excerpt))
                logger.warning("live_nb: malformed server frame, closing the session: %s", refused)
                self._finish(SessionClosed(1007, "malformed server frame", str(refused)), refused)
                await self._drop_connection(wait=True, code=1007, reason="malformed server frame")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a listener gone wrong: end the session loudly
            logger.exception("live_nb: session reader failed")
            if ws is self._ws:
                error = SessionLost(1011, "", f"the client's reader failed: {type(exc).__name__}: {exc}")
                self._finish(SessionClosed(1011, "", str(error)), error)
                await self._drop_connection(wait=False)

    def _connection_failed(self, closed: ConnectionClosed) -> None:
        """The current connection ended without our asking: move, or end the session."""
        self._last_close = (closed.code, closed.reason)
        fatal = process_exception(closed)
        if fatal is None and not self.policy.on_drop and self._protocol.state.name != "GOING_AWAY":
            fatal = SessionLost(
                closed.code, closed.reason, "the connection dropped and automatic resumption is off"
            )
        if fatal is None and self._protocol.state.name == "GOING_AWAY" and not self.policy.on_go_away:
            fatal = SessionLost(
                closed.code, closed.reason, "the connection ended after a GoAway and automatic resumption is off"
            )
        if fatal is not None:
            error = fatal if isinstance(fatal, LiveError) else SessionLost(closed.code, closed.reason, str(fatal))
            self._finish(SessionClosed(closed.code, closed.reason, str(error)), error)
            self._protocol.connection_lost()
            self._ws = None
            return
        self._cancel_waiter()
        if self._mover is None or self._mover.done():
            self._mover = asyncio.get_running_loop().create_task(self._move("dropped"))

    async def _move(self, reason: str) -> None:
        """Leave the current connection (closing it first) and resume on a new one.

        The attempts are budgeted and paced across moves (``reconnect.AttemptBudget``): a server
        that ends every connection before any progress gets ``max_attempts`` of them, spaced by the
        backoff, and then ``SessionLost`` saying so.
        """
        # Retire the old connection first: sends from now on wait in the protocol for the new one.
        ws = self._ws
        self._account_connection(reason, had_connection=ws is not None)
        self._protocol.connection_lost()
        await self._drop_connection(wait=reason != "dropped" and ws is not None)
        budget = self._budget
        last_error: BaseException | None = None
        attempt = 0
        while not budget.exhausted:
            attempt += 1
            delay = budget.next_delay()
            self._emit(Reconnecting(reason, attempt, delay))
            if delay:
                await asyncio.sleep(delay)
            if self._closed:
                return
            budget.attempt_started()
            self._protocol.connection_made()
            try:
                await self._open_connection()
            except (ConnectionClosed, ConnectError, OSError, TimeoutError) as exc:
                last_error = exc
                budget.attempt_failed()
                await self._drop_connection(wait=False)
                self._protocol.connection_lost()
                fatal = process_exception(exc)
                if fatal is not None:
                    error = fatal if isinstance(fatal, LiveError) else SessionLost(1011, "", str(fatal))
                    code = exc.code if isinstance(exc, ConnectionClosed) else 1011
                    why = exc.reason if isinstance(exc, ConnectionClosed) else ""
                    self._finish(SessionClosed(code, why, str(error)), error)
                    return
                continue
            except LiveError as exc:
                await self._drop_connection(wait=False)
                self._finish(SessionClosed(1011, "", str(exc)), exc)
                return
            self.reconnects += 1
            report = self._protocol.resume_report()
            self._emit(
                Connected(self.url, resumed=bool(self._protocol.resumed_with_handle),
                          connection=self._protocol.connections)
            )
            if report is not None:
                if not report.state_restored or report.possibly_lost:
                    logger.warning(
                        "live_nb: session resumed %s; %d client message(s) may be lost",
                        "with its context" if report.state_restored else "WITHOUT its context (fresh session)",
                        report.possibly_lost,
                    )
                self._emit(Resumed(report.state_restored, report.replayed, report.possibly_lost))
                self._resumed(report.state_restored)
            self._tool_loop.flush()  # answers finished while no connection was open
            await self._flush()
            return
        code = getattr(last_error, "code", None) or self._last_close[0]
        why = getattr(last_error, "reason", None) or self._last_close[1] or (
            _describe(last_error) if last_error is not None else ""
        )
        error = SessionLost(code, self._redact(why), budget.explanation())
        logger.warning("live_nb: %s", error)
        self._finish(SessionClosed(error.code, error.reason, str(error)), error)

    def _account_connection(self, reason: str, had_connection: bool) -> None:
        """Tell the budget how the connection being left went (before ``_move`` opens another)."""
        if reason == "manual":
            self._budget.reset()
            return
        if not had_connection and self._protocol.state.name == "DISCONNECTED":
            return  # already accounted (a drop noticed twice)
        ended = self._go_away_at if self._go_away_at is not None else asyncio.get_running_loop().time()
        self._budget.connection_ended(
            progressed=self._protocol.progress != self._progress_mark,
            lived=ended - self._opened_at,
            went_away=self._go_away_at is not None,
        )

    async def _go_away(self, time_left: float | None) -> None:
        """After a GoAway: let the turn in flight finish (bounded), then move.

        ``time_left`` was clamped by the protocol; it is checked again here because it arms a
        timer on the loop every session shares, where NaN corrupts the timer heap and inf never fires.
        """
        if time_left is not None and not 0.0 <= time_left <= MAX_GO_AWAY_SECONDS:
            time_left = 0.0
        if time_left is not None and self.policy.go_away_wait > 0:
            deadline = asyncio.get_running_loop().time() + time_left * self.policy.go_away_wait
            while not self._protocol.at_clean_point and not self._closed:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                self._message_seen.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._message_seen.wait()
        # A GoAway that came with setupComplete arrives while the move that opened this connection
        # is still finishing: let it finish, then move again.
        await self._wait_mover()
        if self._closed or self._protocol.state.name != "GOING_AWAY":
            return
        if self._mover is None or self._mover.done():
            self._mover = asyncio.get_running_loop().create_task(self._move("go_away"))

    async def _drop_connection(self, wait: bool, code: int = 1000, reason: str = "") -> None:
        ws, self._ws = self._ws, None
        reader, self._reader = self._reader, None
        if ws is not None:
            if wait:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2.0):
                        await ws.close(code, reason)
            ws.transport.abort() if ws.transport is not None else None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()

    async def _wait_mover(self) -> None:
        mover = self._mover
        if mover is not None and not mover.done() and mover is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(mover)

    # Private: sending.

    @property
    def history_open(self) -> bool:
        """Whether clientContent may still go as initial history on a model that takes it only so.

        It closes at the first realtime input, tool response or completed turn, and is closed on a
        resumed session (catalogue.ClientContentGate).
        """
        return self._history_gate.open

    @property
    def offers_audio_stream_end(self) -> bool:
        """Whether ``send_audio_stream_end`` may be used here (not on Vertex AI)."""
        return self._flavor is None or catalogue.BACKEND_OFFERS[self._flavor].audio_stream_end

    @property
    def frame_tokens(self) -> int:
        """Tokens one video frame costs on this model at the configured media resolution."""
        resolution = self._live_model.generation_config.media_resolution
        return self._info.frame_tokens(resolution) if self._info else tokens.VIDEO_TOKENS_PER_FRAME

    def _check_rules(self, message: ClientMessage) -> None:
        """Refuse a message the model or backend would close the session for, before it is sent."""
        _raise_refusal(
            catalogue.check_client_message(
                self._info, self._flavor, self._live_model.generation_config, message, self._history_gate
            )
        )
        self._history_gate.observe(message)

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed or self._protocol.state is CLOSED:
            raise InvalidState("cannot send: the session is closed (open a new one, or resume it with its handle)")

    async def _flush(self) -> None:
        """Write what the protocol has for the current connection, in order."""
        ws = self._ws
        if ws is None:
            return  # no connection: the protocol keeps the messages for the next one
        async with self._flush_lock:
            frames = self._protocol.data_to_send()
            try:
                for frame in frames:
                    await ws.send(frame)
            except WsConnectionClosed:
                pass  # buffered in the protocol (transparent) or counted; the reader moves the session

    # Private: receiving.

    def _handle_frame(self, raw: str | bytes) -> None:
        now = time.time()
        messages = self._protocol.receive(raw, now)
        self._protocol.events_received()
        size = ITEM_OVERHEAD + len(raw) // max(1, len(messages))
        for message in messages:
            self._process(message, now, size)
        self._message_seen.set()

    def _process(self, message: ServerMessage, now: float, size: int = ITEM_OVERHEAD) -> None:
        if isinstance(message, ServerContent):
            turn = message.model_turn
            if turn is not None:
                for part in turn.parts:
                    if part.text and not part.thought:
                        self.ledger.record_output("TEXT", tokens.text_tokens(part.text), now)
                        self._gather(part.text)
                    elif part.inline_data is not None and part.inline_data.mime_type.startswith("audio/"):
                        self.ledger.record_output(
                            "AUDIO", tokens.audio_tokens(len(part.inline_data.data), tokens.OUTPUT_AUDIO_RATE), now
                        )
            spoken = message.output_transcription
            if spoken is not None and spoken.text and (turn is None or not turn.text):
                self._gather(spoken.text)
            heard = message.input_transcription
            if heard is not None and heard.text:
                self._gather_heard(heard.text)
            if heard is not None and heard.finished:
                self._flush_heard(now)
            if (turn is not None or spoken is not None) and not self._streaming:
                self._flush_heard(now)  # the model answers: what was heard so far is the user's line
                self._mark_owed()  # a turn begins (after a quiet spell the grace may have ended)
                self._streaming = True
            if message.turn_complete or message.interrupted:
                self._mark_owed(check=not self._streaming)
                self._awaiting_reply = False
                self._streaming = False
            if message.turn_complete:
                self._turns_completed += 1
                status = message.interaction_status
                if status is not None:
                    self._in_progress = status == "IN_PROGRESS"
                    if status == "IDLE":
                        self._write_off()  # the model says its answer is over
            if message.turn_complete:
                self._flush_heard(now)
            if (message.turn_complete or message.interrupted) and self._model_text:
                text = "".join(self._model_text)
                if self._model_chars > len(text):
                    text += f" … [{self._model_chars - len(text):,} more characters not kept]"
                self.transcript.append((now, "model", text))
                self._model_text.clear()
                self._model_chars = 0
        elif isinstance(message, UsageMetadata):
            self.ledger.record_usage(message, now)
        elif isinstance(message, ToolCall):
            for call in message.function_calls:
                self._note(now, "tool call", f"{call.name}({dict(call.args)})")
        elif isinstance(message, SessionResumptionUpdate):
            self.events.append((now, message))
        elif isinstance(message, GoAway):
            self.events.append((now, message))
            clamped = self._protocol.go_away_clamped_from
            if clamped is not None:
                logger.warning(
                    "live_nb: the server's GoAway said timeLeft=%r s; using %g s (a GoAway's time left is "
                    "0 to %g s)", clamped, message.time_left, MAX_GO_AWAY_SECONDS,
                )
            if self._go_away_at is None:
                self._go_away_at = asyncio.get_running_loop().time()
            self._last_close = (1001, "goAway")  # what ended it, should the session give up
            if self.policy.on_go_away and (self._waiter is None or self._waiter.done()):
                self._waiter = asyncio.get_running_loop().create_task(self._go_away(message.time_left))
        elif isinstance(message, SetupComplete):
            return  # internal to the connection; Connected / Resumed tell the user
        self._deliver(message, size)
        # After the message itself, so a receive() consumer sees the ToolCall before its ToolRuns.
        if isinstance(message, ToolCall):
            self._tool_loop.on_tool_call(message)
        elif isinstance(message, ToolCallCancellation):
            self._tool_loop.on_cancellation(message)

    def _gather(self, text: str) -> None:
        """Add reply text for the transcript, up to ``TURN_CHARS_LIMIT`` characters a turn."""
        room = TURN_CHARS_LIMIT - self._model_chars
        kept = text if len(text) <= room else text[: max(room, 0)]
        if kept:
            parts = self._model_text
            parts.append(kept)
            if len(parts) >= 1024:  # a reply of many tiny chunks: one string costs far less than thousands
                parts[:] = ["".join(parts)]
        self._model_chars += len(text)
        self.dropped_text += len(text) - len(kept)

    def _gather_heard(self, text: str) -> None:
        """Add an ``inputTranscription`` piece to the user's line being heard (up to ``TURN_CHARS_LIMIT``).

        Pieces come a few words at a time while the user speaks; they join into one
        ``"user (heard)"`` transcript entry per user turn, not one entry per piece.
        """
        room = TURN_CHARS_LIMIT - self._heard_chars
        kept = text if len(text) <= room else text[: max(room, 0)]
        if kept:
            parts = self._heard_text
            parts.append(kept)
            if len(parts) >= 1024:
                parts[:] = ["".join(parts)]
        self._heard_chars += len(text)
        self.dropped_text += len(text) - len(kept)

    def _flush_heard(self, now: float) -> None:
        """The user's heard line is complete (finished, the model answers, or the turn ends): note it."""
        if not self._heard_text:
            return
        text = "".join(self._heard_text).strip()
        if self._heard_chars > TURN_CHARS_LIMIT:
            text += f" … [{self._heard_chars - TURN_CHARS_LIMIT:,} more characters not kept]"
        self._heard_text.clear()
        self._heard_chars = 0
        if text:
            self.transcript.append((now, "user (heard)", text))

    def _note(self, now: float, role: str, text: str) -> None:
        """Add a transcript entry, its text cut to ``TURN_CHARS_LIMIT`` (and counted)."""
        text, cut = _clip_text(text)
        self.dropped_text += cut
        self.transcript.append((now, role, text))

    def _redact(self, text: str) -> str:
        """``text`` with every credential header value this session used replaced (``AuthHeaders.redact``)."""
        for headers in self._secrets:
            text = headers.redact(text)
        return text

    def _emit(self, event: Item) -> None:
        self.events.append((time.time(), event))
        self._deliver(event)

    def _cancel_waiter(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done() and waiter is not asyncio.current_task():
            waiter.cancel()

    def _deliver(self, item: Item, size: int = ITEM_OVERHEAD) -> None:
        queue = self._queue
        queue.append((item, size))
        self._queue_bytes += size
        while len(queue) > RECEIVE_QUEUE_LIMIT or (self._queue_bytes > RECEIVE_QUEUE_BYTES and len(queue) > 1):
            self._queue_bytes -= queue.popleft()[1]
            self.dropped_received += 1
        self._wakeup.set()
        self._answer_changed.set()
        for listener in tuple(self._listeners):
            try:
                listener(item)
            except Exception:
                logger.exception("live_nb: a session listener failed on %s", type(item).__name__)

    def _finish(self, event: SessionClosed, error: LiveError | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._tool_loop.close()
        self._protocol.close()
        self._emit(event)
        self._wakeup.set()
        self._answer_changed.set()


class _ConnectNoRedirect(ws_connect):
    """websockets' ``connect`` without redirects: a 3xx is a ConnectError keeping its status.

    Why: on a cross-origin redirect websockets drops ``Authorization`` but keeps every other
    header, so ``x-goog-api-key`` would go to whatever host the redirect names.
    """

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


def _connect_failure(endpoint: Endpoint, exc: BaseException, open_timeout: float) -> ConnectError:
    """The ConnectError for a failed websocket open: plain words, the URL, never a header value."""
    status: int | None = None
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        reason = f"HTTP {status} at the WebSocket upgrade"
        if 300 <= status < 400:
            reason += " (a redirect: not followed, so the key goes to no other server)"
    elif isinstance(exc, InvalidURI):
        reason = f"invalid URI ({_describe(exc)})"
    elif isinstance(exc, ssl_module.SSLCertVerificationError):
        reason = (
            f"TLS certificate not trusted ({exc.verify_message or exc.reason}); set SSL_CERT_FILE "
            "(or SSL_CERT_DIR) to a CA bundle that includes it, or pass ssl= to LiveModel"
        )
    elif isinstance(exc, ssl_module.SSLError):
        reason = f"TLS handshake failed ({exc.reason or _describe(exc)}); is the server speaking TLS?"
    elif isinstance(exc, UnicodeError):  # the host name cannot be encoded (IDNA), e.g. a label over 63
        reason = f"invalid host name ({_describe(exc)})"
    elif isinstance(exc, socket.gaierror):
        reason = f"host not found (DNS: {exc.strerror or _describe(exc)})"
    elif isinstance(exc, ConnectionRefusedError):
        reason = "connection refused (nothing is listening there)"
    elif isinstance(exc, TimeoutError):
        reason = f"timed out after {open_timeout:g} s opening the connection"
    elif isinstance(exc, (ConnectionResetError, ConnectionAbortedError)):
        reason = "connection reset during the opening handshake"
        if endpoint.url.startswith("wss:"):
            reason += " (does the server speak TLS? a wss:// URL needs it)"
    elif isinstance(exc, OSError):
        reason = exc.strerror or _describe(exc)
    elif isinstance(exc, InvalidHandshake):
        reason = f"WebSocket handshake failed ({_describe(exc)})"
    else:
        reason = _describe(exc)
    return ConnectError(endpoint.url, endpoint.headers.redact(reason), status)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "…"


def _is_a_view(session: LiveSession) -> SessionView:
    """Never called: mypy checks here that ``LiveSession`` offers everything ``SessionView`` names."""
    return session
