"""The emulator's asyncio layer: the websockets server, its connections and their timers.

One job: sockets and time. Each connection feeds client frames to a sans-I/O ``ServerProtocol``
(server_protocol.py), writes the frames it queues (``data_to_send``) and acts on its events (pace a
reply, close). The decisions are made elsewhere: the protocol admits setups and resumes and issues
handles, ``routes`` decides paths and credentials at the upgrade, ``sessions`` keeps the sessions,
``store`` their durable state, ``tls`` the certificate, ``cli`` the command line. What stays here:
the upgrade hook, the read loop, the reply's pacing, the GoAway and connection deadlines, periodic
resumption updates, the resume grace period, the fault controls (``drop_connections``,
``go_away_now``) and the hardening that needs a socket.

What it reproduces of the service (live-protocol.md sections 1, 3, 5 and field.md):

* Server JSON in binary frames (``text_frames=True`` for text), no permessage-deflate unless
  ``compression=True``, every frame far below the SDK's 1 MiB limit.
* Connection lifetime with a GoAway ``go_away_before`` seconds before the end, then close 1011
  "Deadline expired before operation could complete."; ``time_scale`` divides every duration and
  what goes on the wire is in real (scaled) seconds.
* An old connection of the session still open when a resume arrives: refused with 1011, after a
  short grace period (``resume_grace``, wall seconds) in which a connection that is already going
  away may finish closing.

Hardening (the emulator may meet any client, and anything from the wire is untrusted):

* Input it cannot read is closed 1007 by the protocol (``server_protocol.BAD_INPUT``). A frame
  above ``MAX_FRAME_BYTES`` is closed by websockets with 1009 before it is parsed (recorded in
  ``refused``, no traceback). A bug of ours past parsing is logged with its traceback; the client
  hears 1011 "Internal error encountered." and the session's state is cleaned up as after any close.
* Memory: a session's ``EmulatorSession`` (and its consumed log) is released once its last
  connection has closed and newer closed sessions push it out (``keep_closed``,
  ``keep_closed_bytes``); SQLite keeps what a resume needs.
* Logs: what came from the wire (model names, reasons, paths) is logged as a short excerpt (``for_log``).
* Binding: loopback only, unless ``allow_remote=True`` (``--allow-remote``) with an ``api_key``
  (``--api-key-env NAME``), checked at the upgrade; a warning says so at start-up.
* Files: the database (and its -wal/-shm), the temp dir, the TLS key and cert are owner-only from
  creation (store.py, tls.py).

Offline speech (``speech=True``, the default; speech.py): recognition and synthesis are blocking CPU
work (about 0.23 s of CPU per second of speech heard, 6 ms per second spoken), so they run here, in
the emulator's own thread pool (``speech_workers`` threads), never on the event loop and never in
the sans-I/O layers, which only say what to hear and say (``Listen``/``EndListening`` events, a
plan's ``to_voice`` sentences) and are told the results (``partial``, ``heard``, ``voice``):

* Each connection has a listening task and a ``Recognizer`` (its channel mean carried over from
  the session's previous connection). Audio chunks are fed in order, several per thread hop; partial
  text goes back to the protocol as it comes (``inputTranscription`` pieces). At a turn's end the
  read loop waits for the final text and hands it over (``heard``) *before it reads the next
  frame*: the reply then starts from the same client messages whatever the recogniser's timing
  (message indexes, snapshots and barge-in decisions are as without speech). Streaming recognition
  has done its work by then: the wait is a few milliseconds.
* A reply is voiced sentence by sentence (the next one synthesised while the current one streams),
  so the first audio goes out after the first sentence's few milliseconds, paced as before.
* Without the engines (not installed) or with ``speech=False`` (``--no-speech``), replies are the
  tone and spoken turns are answered from their length; the emulator says so once (a warning in the
  log; the CLI prints it at start-up). Load runs of hundreds of sessions should turn speech off.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..exceptions import ConfigError
from ..protocol import catalogue
from ..protocol.config import CONNECTION_LIFETIME_SECONDS, GO_AWAY_LEAD_SECONDS
from . import speech as speech_engines
from .engine import SPEECH_CHUNK_SECONDS, EndListening, EngineSettings, Listen, ReplyPlan, ServerEngine, tone_pieces
from .responder import ContextResponder, Responder
from .routes import FLAVOR_NAMES, RedactCredentials, Route, authorize, is_loopback, path_only, remote_warning, route
from .server_protocol import (
    INTERNAL_ERROR,
    INTERNAL_ERROR_CODE,
    Closing,
    ReplyStarted,
    ServerProtocol,
    clip_reason,
    for_log,
)
from .sessions import EmulatorSession, SessionBook
from .store import Store, default_db_path
from .tls import generate_certificate, server_context

__all__ = ["Emulator", "EmulatorSession", "clip_reason"]

logger = logging.getLogger("live_nb.emulator")
ws_logger = logging.getLogger("live_nb.emulator.websockets")
ws_logger.addFilter(RedactCredentials())

MAX_FRAME_BYTES = 16 * 2**20
"""The largest client frame read; a bigger one is closed by websockets with 1009 ("frame with N bytes
exceeds limit of 16777216 bytes"), before any of it is parsed."""
MAX_KEPT_REASON_CHARS = 4096
"""How much of each reason ``Emulator.refused`` keeps (tests compare whole reasons; a 1 MB model name
inside one would otherwise be kept whole)."""
MAX_KEPT_RECORDS = 1000
"""``Emulator.refused`` and ``Emulator.paths`` keep about this many latest entries."""
RESUME_POLL_SECONDS = 0.01
"""How often a waiting resume checks whether the session's other connection has ended."""
VOICED_CACHE_BYTES = 16 * 2**20
"""Voiced sentences kept for reuse (about 5 minutes of 24 kHz speech)."""
LISTEN_BATCH = 20
"""At most this many queued audio chunks are fed to a recogniser in one trip to a worker thread."""
SPEECH_OFF = (
    "offline speech is off (speech=False, --no-speech): spoken turns are answered from their length, replies are a tone"
)


class _VoicedCache:
    """Sentences voiced lately in this process, least recently said dropped first (``VOICED_CACHE_BYTES``).

    Why: fillers ("Let me check that for you."), "Turn 3." and a reply said again after a resume
    come back at once instead of being synthesised again, and a sentence sounds the same every time
    within a process. eSpeak NG's timing jitters by a few milliseconds from call to call, which
    would otherwise change a reply's audio tokens by one between two runs of the same script.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()  # emulators on several event loops (threads) share it
        self._items: OrderedDict[tuple[str, str | None, str | None], list[tuple[bytes, str]]] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, str | None, str | None]) -> list[tuple[bytes, str]] | None:
        with self._lock:
            pieces = self._items.get(key)
            if pieces is not None:
                self._items.move_to_end(key)
            return pieces

    def put(self, key: tuple[str, str | None, str | None], pieces: list[tuple[bytes, str]]) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = pieces
            self._bytes += sum(len(pcm) for pcm, _ in pieces)
            while self._bytes > self.limit and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= sum(len(pcm) for pcm, _ in dropped)


_VOICED = _VoicedCache(VOICED_CACHE_BYTES)


def _feed(rec: speech_engines.Recognizer, batch: Sequence[Listen]) -> tuple[int, str | None]:
    """(worker thread) Feed chunks to a recogniser: the last turn fed and its newest partial text (None: unchanged)."""
    partial: str | None = None
    for item in batch:
        pcm = item.pcm if item.rate == rec.rate else speech_engines.resample(item.pcm, item.rate, rec.rate)
        text = rec.feed(pcm)
        if text is not None:
            partial = text
    return batch[-1].turn, partial


def _keep_reason(reason: str) -> str:
    """A reason as ``Emulator.refused`` keeps it: whole, up to ``MAX_KEPT_REASON_CHARS``."""
    return reason if len(reason) <= MAX_KEPT_REASON_CHARS else reason[:MAX_KEPT_REASON_CHARS] + "..."


@dataclass(eq=False)
class _Connection:
    """One socket and the protocol it feeds; the lock keeps writers (reader, reply, timers) in order."""

    ws: ServerConnection
    protocol: ServerProtocol
    route: Route
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    deadline_task: asyncio.Task[None] | None = None
    started: float = field(default_factory=time.time)
    close_sent: bool = False
    listen_queue: asyncio.Queue[tuple[Listen | EndListening, asyncio.Future[str] | None]] | None = None
    """Audio for the recogniser and turn ends, in order (offline speech on)."""
    hearings: deque[asyncio.Future[str]] = field(default_factory=deque)
    """Final texts of ended spoken turns the read loop waits for before its next frame."""
    recognizer: speech_engines.Recognizer | None = None

    @property
    def engine(self) -> ServerEngine | None:
        """The protocol's engine (what ``EmulatorSession.last_usage`` reads)."""
        return self.protocol.engine

    @property
    def session(self) -> EmulatorSession:
        """The admitted session (only asked of connections attached to one)."""
        session = self.protocol.session
        assert session is not None
        return session


class Emulator:
    """A Live API server for tests, notebooks and benchmarks (docs/architecture.md, "Emulator").

    Args:
        host: interface to bind (127.0.0.1 by default: never exposed by accident). Anything but a
            loopback address (``localhost``, 127.0.0.0/8, ``::1``) is refused with ConfigError unless
            ``allow_remote`` is True.
        port: TCP port; 0 picks a free one (read ``port`` or ``url`` after ``start``).
        tls: speak ``wss://`` with a generated self-signed certificate (needed by google-genai).
        cert_dir: where the certificate goes (a temp dir when None); ``cert_path`` names it.
        time_scale: divides every duration (lifetime, GoAway lead, retention, update interval,
            reply pacing): 60 turns the 10-minute connection into 10 s.
        mode: the flavour served on the bare URL (``Emulator.url``, path ``/``): ``vertex`` (the
            default: transparent resumption, system-instruction updates, handles kept 24 h) or
            ``gemini`` (the Developer API's rules: those refused, handles kept 2 h). The service's
            own paths always get their own flavour's rules.
        db_path: SQLite file; None = a fresh temp file, kept across stop/start of this object.
        context_window: the context window in tokens (None: each model's input window, from the catalogue).
        connection_lifetime: service seconds a connection lives.
        go_away_before: service seconds before the end at which GoAway is sent.
        resumption_update_interval: service seconds between periodic resumption updates.
        responder: the model (``ContextResponder`` by default).
        text_frames: send server JSON in text frames instead of binary ones.
        compression: accept permessage-deflate (off by default: it costs 3-4x on audio).
        chunk_delay: service seconds between reply chunks (0 for benchmarks).
        retention: service seconds a handle lives after the session's last connection ends, on
            every path (default by flavour: 2 h on the Developer API's paths, 24 h on Vertex's; the
            bare URL's by mode).
        resume_grace: wall seconds a resume waits for the session's old connection to finish
            closing before it is refused with 1011.
        vad_threshold: RMS (int16 scale) above which input audio counts as speech.
        models: model ids the emulator serves (default: every model of ``protocol.catalogue``).
        consumed_limit: keep at most about this many messages in each session's ``consumed`` log
            (None = all: tests compare whole logs; an hour of 100 ms audio is ~115 MB, so long
            notebook sessions should set a limit).
        keep_closed: how many sessions whose last connection closed stay in ``sessions`` (with their
            ``consumed`` logs, for tests to read); older ones are released from memory (their
            resumable state stays in SQLite: a resume reloads it).
        keep_closed_bytes: also release the oldest closed sessions while the closed ones' consumed
            logs hold more than this many bytes (0 = release every session as it closes).
        speech: hear and speak offline (speech.py: PocketSphinx recognition, eSpeak NG voices):
            spoken turns are transcribed (``inputTranscription``, and the reply says what was heard)
            and AUDIO replies are synthesised speech. False (CLI ``--no-speech``), or the engines
            not installed: replies are a tone, and the emulator says so once. Turn it off for load
            runs: recognition costs about a quarter of a core per speaking session.
        speech_workers: threads for recognition and synthesis (default: the number of cores).
        allow_remote: allow a non-loopback ``host``. The emulator then needs ``api_key``, and says
            loudly at start-up that it is reachable from other machines.
        api_key: the only credential accepted (x-goog-api-key, ``?key=``, ``?access_token=``,
            ``Authorization: Bearer|Token``): a missing one is refused at the upgrade with 401, any
            other with 403. None (loopback only) accepts any non-empty credential. Never logged.

    Raises:
        ConfigError: a bad mode, time scale or GoAway lead; a non-loopback host without
            ``allow_remote``; ``allow_remote`` without ``api_key``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        cert_dir: str | None = None,
        time_scale: float = 1.0,
        mode: str = "vertex",
        db_path: str | None = None,
        context_window: int | None = None,
        connection_lifetime: float = CONNECTION_LIFETIME_SECONDS,
        go_away_before: float = GO_AWAY_LEAD_SECONDS,
        resumption_update_interval: float = 10.0,
        responder: Responder | None = None,
        text_frames: bool = False,
        compression: bool = False,
        chunk_delay: float = 0.015,
        retention: float | None = None,
        resume_grace: float = 0.5,
        vad_threshold: float = 500.0,
        models: Sequence[str] | None = None,
        consumed_limit: int | None = None,
        keep_closed: int = 16,
        keep_closed_bytes: int = 16 * 2**20,
        allow_remote: bool = False,
        api_key: str | None = None,
        speech: bool = True,
        speech_workers: int | None = None,
    ) -> None:
        if not is_loopback(host):
            if not allow_remote:
                raise ConfigError(
                    "host", for_log(str(host)), "a loopback address (127.0.0.1, ::1, localhost); to serve other "
                    "machines pass allow_remote=True (CLI: --allow-remote) with an api_key (CLI: --api-key-env)",
                )
            if not api_key:
                raise ConfigError(
                    "api_key", "<unset>", "a key every client must send: a non-loopback host "
                    f"({for_log(str(host))}) with allow_remote=True needs one (CLI: --api-key-env NAME)",
                )
        if api_key is not None and not api_key.strip():
            raise ConfigError("api_key", "<empty>", "a non-empty key, or None")
        if keep_closed < 0 or keep_closed_bytes < 0:
            raise ConfigError("keep_closed", (keep_closed, keep_closed_bytes), "counts of 0 or more")
        if mode not in catalogue.BACKEND_OFFERS:
            raise ConfigError("mode", mode, '"gemini" or "vertex"')
        if time_scale <= 0:
            raise ConfigError("time_scale", time_scale, "a number above 0")
        if go_away_before >= connection_lifetime:
            raise ConfigError("go_away_before", go_away_before, f"below connection_lifetime ({connection_lifetime})")
        self._retention_override = retention
        self.host = host
        self.port = port
        self.tls = tls
        self.cert_dir = cert_dir
        self.time_scale = float(time_scale)
        self.mode = mode
        self.db_path = db_path
        self.context_window = context_window
        self.connection_lifetime = connection_lifetime
        self.go_away_before = go_away_before
        self.resumption_update_interval = resumption_update_interval
        self.responder: Responder = responder or ContextResponder()
        self.text_frames = text_frames
        self.compression = compression
        self.chunk_delay = chunk_delay
        self.retention = self.retention_for(mode) if retention is None else retention
        """Handle retention on the bare URL (service seconds); ``retention_for`` gives each path's."""
        self.resume_grace = resume_grace
        self.models: frozenset[str] | None = frozenset(models) if models is not None else None
        """Model ids served; None: every model of the catalogue."""
        self.allow_remote = allow_remote
        self._api_key = api_key.strip() if api_key is not None else None
        self.settings = EngineSettings(context_window=context_window, vad_threshold=vad_threshold)
        self.book = SessionBook(keep_closed, keep_closed_bytes, consumed_limit)
        self.cert_path: str | None = None
        self.key_path: str | None = None
        self.refused: list[tuple[int, str]] = []
        """Close codes and reasons the emulator closed connections with (for tests), in order."""
        self.paths: list[tuple[str, str]] = []
        """(path without query, flavour) of every accepted upgrade, in order (the query may hold a key)."""
        self._server: Server | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.speech = speech
        """Offline speech asked for (``hearing``/``speaking`` say what runs, after ``start``)."""
        self.speech_status = ""
        """One line on offline speech, set by ``start`` (what the CLI prints): on, or off and why."""
        self.speech_workers = speech_workers or os.cpu_count() or 2
        self._executor: ThreadPoolExecutor | None = None
        self._speech_said = False
        self._voice_failed = False

    @property
    def hearing(self) -> bool:
        """Spoken turns are recognised offline (after ``start``)."""
        return self.settings.hearing

    @property
    def speaking(self) -> bool:
        """AUDIO replies are synthesised speech, not a tone (after ``start``)."""
        return self.settings.speaking


    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        scale = f"time_scale={self.time_scale:g}"
        return f"<Emulator {self.url} {state} mode={self.mode} {scale} sessions={len(self.sessions)}>"

    # State read by tests and notebooks.

    @property
    def sessions(self) -> dict[str, EmulatorSession]:
        """Sessions by id: every one with an open connection, plus the most recently closed ones
        (``keep_closed``, ``keep_closed_bytes``). Older closed sessions live only in SQLite."""
        return self.book.sessions

    @property
    def consumed_limit(self) -> int | None:
        """About how many consumed messages each session keeps in memory (None: all)."""
        return self.book.consumed_limit

    @property
    def keep_closed(self) -> int:
        """How many closed sessions stay in ``sessions``."""
        return self.book.keep_closed

    @property
    def keep_closed_bytes(self) -> int:
        """The consumed-log bytes closed sessions may keep in memory."""
        return self.book.keep_closed_bytes

    def retention_for(self, flavor: str) -> float:
        """Service seconds a handle lives on a path of this flavour (``retention`` when given, else the backend's)."""
        if self._retention_override is not None:
            return self._retention_override
        return catalogue.BACKEND_OFFERS[flavor].handle_retention_seconds

    # Lifecycle.

    @property
    def url(self) -> str:
        """``ws://host:port`` (``wss://`` with TLS); valid after ``start``."""
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

    def scaled(self, seconds: float) -> float:
        """Service seconds -> wall seconds under ``time_scale``."""
        return seconds / self.time_scale

    async def start(self) -> Emulator:
        """Open the database and start listening. Returns self."""
        if self._server is not None:
            return self
        if self.db_path is None or (self.tls and self.cert_dir is None):
            if self._tmpdir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="live_nb_emulator_")
            if self.db_path is None:
                self.db_path = default_db_path(self._tmpdir.name)
            if self.tls and self.cert_dir is None:
                self.cert_dir = self._tmpdir.name
        await self._start_speech()
        store = self.book.store = Store(self.db_path)
        now = time.time()
        store.close_all_connections(now)
        # Keep expired sessions one more retention period, so a late resume hears "expired", not "not found".
        longest = max(map(self.retention_for, catalogue.BACKEND_OFFERS))
        store.purge_expired(now - 2 * self.scaled(longest))
        ssl_context = None
        if self.tls:
            assert self.cert_dir is not None
            self.cert_path, self.key_path = generate_certificate(self.cert_dir)
            ssl_context = server_context(self.cert_path, self.key_path)
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            compression="deflate" if self.compression else None,
            ssl=ssl_context,
            max_size=MAX_FRAME_BYTES,
            max_queue=64,
            # The service answers pings slowly and never pings first; clients ping us.
            ping_interval=None,
            logger=ws_logger,
        )
        sockname = next(iter(self._server.sockets)).getsockname()
        self.port = int(sockname[1])
        if not is_loopback(self.host):
            logger.warning("%s", remote_warning(self.url))
        logger.info(
            "emulator listening on %s (serving %s, time_scale=%s)", self.url, FLAVOR_NAMES[self.mode], self.time_scale
        )
        return self

    async def _start_speech(self) -> None:
        """Load the offline speech engines (off the loop), or say once why replies are a tone."""
        hearing = speaking = False
        if self.speech:
            hearing = await asyncio.to_thread(speech_engines.recognition_available)
            speaking = await asyncio.to_thread(speech_engines.synthesis_available)
        self.settings = dataclasses.replace(self.settings, hearing=hearing, speaking=speaking)
        if hearing and speaking:
            self.speech_status = "offline speech is on: PocketSphinx hears, eSpeak NG speaks (--no-speech turns it off)"
        elif not self.speech:
            self.speech_status = SPEECH_OFF
        else:
            what = "spoken turns are answered from their length" if not hearing else "spoken turns are recognised"
            what += ", replies are a tone" if not speaking else ", replies are speech"
            self.speech_status = f"{speech_engines.unavailable_reason()}: {what}"
        if (hearing or speaking) and self._executor is None:
            self._executor = ThreadPoolExecutor(self.speech_workers, thread_name_prefix="live_nb-speech")
        if not self._speech_said:
            self._speech_said = True
            if hearing and speaking:
                logger.info("%s", self.speech_status)
            else:
                logger.warning("%s", self.speech_status)

    async def stop(self) -> None:
        """Close every connection (1001) and stop listening. The database file is kept."""
        server, self._server = self._server, None
        if server is not None:
            server.close(close_connections=True)
            await server.wait_closed()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if self.book.store is not None:
            self.book.store.close()
            self.book.store = None

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Leaving the block is the end of this emulator: its temp dir (db, cert) goes too.
        await self.stop()
        self.cleanup()

    def cleanup(self) -> None:
        """Remove the temp dir (db and cert) made for this emulator, if any. Call after ``stop``."""
        if self._tmpdir is not None and self._server is None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    # Faults and controls (for tests and teaching notebooks).

    def _connections(self, session_id: str | None) -> list[_Connection]:
        return [
            conn
            for sess in self.sessions.values()
            if session_id is None or sess.session_id == session_id
            for conn in list(sess.connections)
            if isinstance(conn, _Connection)
        ]

    async def drop_connections(self, session_id: str | None = None) -> int:
        """Cut connections (of one session, or all) at the TCP level: no close frame, like a network drop.

        Returns:
            how many connections were cut. Waits (briefly) until the server has seen them end.
        """
        conns = self._connections(session_id)
        for conn in conns:
            conn.ws.transport.abort()
        for _ in range(200):
            if not any(c in c.session.connections for c in conns):
                break
            await asyncio.sleep(0.005)
        return len(conns)

    async def go_away_now(self, session_id: str | None = None, time_left: float | None = None) -> int:
        """Send GoAway now and close 1011 when ``time_left`` (service seconds) runs out.

        Returns:
            how many connections were told.
        """
        left = self.go_away_before if time_left is None else time_left
        told = 0
        for conn in self._connections(session_id):
            if conn.deadline_task is not None:
                conn.deadline_task.cancel()
            try:
                await self._go_away(conn, left)
            except ConnectionClosed:  # it was closing anyway
                continue
            if conn in conn.session.connections:
                conn.deadline_task = self._spawn(conn, self._deadline(conn, None, left))
                told += 1
        return told

    # HTTP upgrade: path and auth (routes.py decides).

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        refusal = authorize(request.path, request.headers, self._api_key)
        if refusal is None:
            return None
        status, body = refusal
        if route(request.path) is None:
            logger.info("refused unknown path %s", for_log(path_only(request.path)))
        elif self._api_key is not None and status == 403 and "not this emulator's key" in body:
            logger.info("refused a credential that is not this emulator's key (403)")
        return connection.respond(status, body)

    # Connections.

    async def _handle(self, ws: ServerConnection) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve_connection(ws)
        except Exception:
            # A bug of ours (bad input was answered 1007 by the protocol): log it whole, tell the
            # client only what the service would, and never let websockets log "handler failed".
            path = path_only(ws.request.path) if ws.request is not None else ""
            logger.exception("internal error on a connection to %s", for_log(path))
            self._record(INTERNAL_ERROR_CODE, INTERNAL_ERROR)
            with contextlib.suppress(ConnectionClosed):
                await ws.close(INTERNAL_ERROR_CODE, INTERNAL_ERROR)
        finally:
            self._handlers.discard(task)

    def _record(self, code: int, reason: str) -> None:
        self.refused.append((code, _keep_reason(reason)))
        if len(self.refused) > MAX_KEPT_RECORDS + MAX_KEPT_RECORDS // 4:
            del self.refused[:-MAX_KEPT_RECORDS]

    def _new_protocol(self, path_route: Route) -> ServerProtocol:
        return ServerProtocol(
            self.book, path_route.flavor, path_route.api_version, self.responder, self.settings,
            models=self.models, retention=self.retention_for(path_route.flavor), time_scale=self.time_scale,
            text_frames=self.text_frames,
        )

    async def _serve_connection(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path_route = route(ws.request.path, bare_flavor=self.mode)
        assert path_route is not None
        self.paths.append((path_only(ws.request.path), path_route.flavor))
        if len(self.paths) > MAX_KEPT_RECORDS + MAX_KEPT_RECORDS // 4:
            del self.paths[:-MAX_KEPT_RECORDS]
        protocol = self._new_protocol(path_route)
        conn = _Connection(ws, protocol, path_route)
        try:
            first = await asyncio.wait_for(ws.recv(), timeout=max(30.0, self.scaled(60.0)))
        except ConnectionClosed as exc:
            return self._closed_by_websockets(exc)  # the client left before its setup, or sent too much
        except asyncio.TimeoutError:
            protocol.fail(1007, "Request contains an invalid argument: no setup message.")
            return await self._flush(conn)
        try:
            await self._admit(conn, first)
            del first  # a big setup frame need not live as long as the connection
            if protocol.session is None:  # refused: the protocol queued the close
                return await self._flush(conn)
            session = protocol.session
            logger.info(
                "%s session %s (%s, %s path)", "resumed" if protocol.resumed else "new", session.session_id,
                for_log(session.model), path_route.flavor,
            )
            await self._flush(conn)
            until_go_away = self.connection_lifetime - self.go_away_before
            conn.deadline_task = self._spawn(conn, self._deadline(conn, until_go_away, self.go_away_before))
            if protocol.engine is not None and protocol.engine.resumption:
                self._spawn(conn, self._periodic(conn))
            receive, flush = protocol.receive, self._flush
            async for frame in ws:
                receive(frame, time.time())
                del frame
                await flush(conn)
                if conn.hearings:
                    # A spoken turn ended: its reply starts before the next frame is read (engine.py).
                    await self._hear(conn)
                if protocol.closed:
                    break
        except ConnectionClosed as exc:
            if not conn.close_sent:  # else the close was ours, and recorded when sent
                self._closed_by_websockets(exc)
        except Exception:
            if protocol.session is None:
                raise  # before a session existed: _handle logs it and answers 1011
            logger.exception("internal error in session %s", protocol.session.session_id)
            protocol.fail()
            await self._flush(conn)
        finally:
            for task in list(conn.tasks):
                task.cancel()
            if conn.tasks:
                await asyncio.wait(list(conn.tasks), timeout=1)
            await self._stop_listening(conn)
            if protocol.session is not None:
                self.book.connection_closed(protocol.session, conn, time.time())

    async def _admit(self, conn: _Connection, first: str | bytes) -> None:
        """Feed the setup; a resume waiting on another connection retries for ``resume_grace`` seconds."""
        protocol = conn.protocol
        protocol.receive(first, time.time())
        deadline = time.monotonic() + self.resume_grace
        while protocol.resume_blocked:
            if time.monotonic() < deadline:
                await asyncio.sleep(RESUME_POLL_SECONDS)
            protocol.retry_resume(time.time(), give_up=time.monotonic() >= deadline)
        if protocol.session is not None:
            protocol.session.connections.append(conn)

    def _closed_by_websockets(self, exc: ConnectionClosed) -> None:
        """Note a close websockets itself sent: 1009 for a frame above ``MAX_FRAME_BYTES``, 1007 for a
        text frame that is not UTF-8, 1002 for broken framing (no traceback: these are the client's doing)."""
        sent = exc.sent
        if sent is not None and sent.code in (1002, 1007, 1009) and not exc.rcvd_then_sent:
            self._record(sent.code, sent.reason)
            logger.info("closed: %s %s", sent.code, for_log(sent.reason))

    # Writing what the protocol queued; streams and timers.

    async def _flush(self, conn: _Connection) -> None:
        """Write the protocol's frames in order, then act on its events (start a reply, close).

        Drained under the lock, so frames queued by the reader, the reply and the timers go out in
        the order the protocol queued them.
        """
        protocol = conn.protocol
        if not protocol.has_output:  # the hot path: an audio chunk that says nothing back
            return
        async with conn.lock:
            frames = protocol.data_to_send()
            events = protocol.events_received()
            for frame in frames:
                await conn.ws.send(frame)
            for event in events:
                if isinstance(event, ReplyStarted):
                    self._spawn(conn, self._stream(conn, event.plan))
                elif isinstance(event, (Listen, EndListening)):
                    self._listen(conn, event)
                elif isinstance(event, Closing) and not conn.close_sent:
                    await self._close(conn, event)

    async def _close(self, conn: _Connection, closing: Closing) -> None:
        conn.close_sent = True
        self._record(closing.code, closing.reason)
        session = conn.protocol.session
        if session is None:
            logger.info("refused: %s %s", closing.code, for_log(closing.reason))
        else:
            logger.info("closing session %s: %s %s", session.session_id, closing.code, for_log(closing.reason))
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.close(closing.code, closing.wire_reason)

    def _spawn(self, conn: _Connection, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._guard(conn, coro))
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)
        # A task cancelled before it first ran (its connection closed at once) never started ``coro``:
        # close it, or Python warns "coroutine ... was never awaited". A no-op once it ran.
        task.add_done_callback(lambda _: coro.close())
        return task

    async def _guard(self, conn: _Connection, coro: Coroutine[Any, Any, None]) -> None:
        """Run a connection's background task; a bug in it is logged and closes the connection 1011."""
        try:
            await coro
        except ConnectionClosed:
            return
        except Exception:
            logger.exception("internal error in session %s", conn.session.session_id)
            conn.protocol.fail()
            with contextlib.suppress(Exception):
                await self._flush(conn)

    async def _stream(self, conn: _Connection, plan: ReplyPlan) -> None:
        """Pace a reply's chunks; a voiced reply is synthesised a sentence ahead of what streams."""
        delay = self.scaled(self.chunk_delay)
        protocol = conn.protocol
        ahead: asyncio.Future[list[tuple[bytes, str]]] | None = None
        try:
            while True:
                if protocol.send_chunk(plan):
                    await self._flush(conn)
                    await asyncio.sleep(delay)
                    continue
                if plan.cancelled or protocol.closed:
                    return
                if ahead is None:
                    ahead = self._synthesize(plan)
                    if ahead is None:
                        break  # every chunk made and sent
                pieces = await ahead
                ahead = self._synthesize(plan)  # the next sentence, while this one streams
                protocol.voice(plan, pieces)
            if plan.complete:
                protocol.finish_reply(plan, time.time())
                await self._flush(conn)
        except ConnectionClosed:
            return

    # Offline speech: recognition and synthesis in the emulator's worker threads.

    def _synthesize(self, plan: ReplyPlan) -> asyncio.Future[list[tuple[bytes, str]]] | None:
        """Start voicing the plan's next sentence in a worker thread (None: nothing left to voice)."""
        sentence = plan.next_sentence()
        if sentence is None:
            return None
        loop = asyncio.get_running_loop()
        key = (sentence, plan.voice, plan.language)
        cached = _VOICED.get(key)
        if cached is not None or self._executor is None:  # said before, or stopped meanwhile
            future: asyncio.Future[list[tuple[bytes, str]]] = loop.create_future()
            future.set_result(cached if cached is not None else tone_pieces(sentence))
            return future
        future = loop.run_in_executor(self._executor, self._voice_sentence, sentence, plan.voice, plan.language)
        future.add_done_callback(
            lambda done: None if done.cancelled() or done.exception() else _VOICED.put(key, done.result())
        )
        return future

    def _voice_sentence(self, text: str, voice: str | None, language: str | None) -> list[tuple[bytes, str]]:
        """(worker thread) ``text`` spoken at 24 kHz, in ``SPEECH_CHUNK_SECONDS`` chunks with the words
        started in each; the tone if synthesis fails (logged once)."""
        try:
            spoken = speech_engines.speak(text, voice, speech_engines.OUTPUT_RATE, language)
        except Exception:
            if not self._voice_failed:
                self._voice_failed = True
                logger.exception("speech synthesis failed; this sentence (and any later failure) is a tone")
            return tone_pieces(text)
        pieces = [(c.pcm, c.text) for c in spoken.chunks(SPEECH_CHUNK_SECONDS)]
        if pieces and not pieces[-1][0] and len(pieces) > 1:  # an empty tail: its words join the chunk before
            said = pieces.pop()[1]
            pieces[-1] = (pieces[-1][0], pieces[-1][1] + said)
        return [p for p in pieces if p[0]]

    def _listen(self, conn: _Connection, event: Listen | EndListening) -> None:
        """Queue audio (or a turn's end) for the connection's recogniser; start its listening task."""
        future: asyncio.Future[str] | None = None
        if isinstance(event, EndListening) and not event.discard:
            future = asyncio.get_running_loop().create_future()
            conn.hearings.append(future)
        if conn.listen_queue is None:
            conn.listen_queue = asyncio.Queue()
            self._spawn(conn, self._listening(conn, conn.listen_queue))
        conn.listen_queue.put_nowait((event, future))

    async def _listening(
        self, conn: _Connection, queue: asyncio.Queue[tuple[Listen | EndListening, asyncio.Future[str] | None]]
    ) -> None:
        """A connection's recognition, in order: chunks fed in batches, partials and final texts handed back."""
        session = conn.session
        rec = conn.recognizer = speech_engines.Recognizer(speech_engines.ASR_RATE, cmn=session.hearing_cmn)
        try:
            await self._listen_loop(conn, queue, rec)
        finally:
            # However this ends, a read loop waiting for a turn's text must not wait forever.
            for waiting in conn.hearings:
                if not waiting.done():
                    waiting.set_result("")

    async def _listen_loop(
        self,
        conn: _Connection,
        queue: asyncio.Queue[tuple[Listen | EndListening, asyncio.Future[str] | None]],
        rec: speech_engines.Recognizer,
    ) -> None:
        loop = asyncio.get_running_loop()
        session = conn.session
        while True:
            batch: list[Listen] = []
            end: tuple[EndListening, asyncio.Future[str] | None] | None = None
            event, future = await queue.get()
            while True:
                if isinstance(event, Listen):
                    batch.append(event)
                else:
                    end = (event, future)
                    break
                if queue.empty() or len(batch) >= LISTEN_BATCH:
                    break
                event, future = queue.get_nowait()
            executor = self._executor
            if batch and executor is not None:
                turn, partial = await loop.run_in_executor(executor, _feed, rec, batch)
                if partial is not None:
                    conn.protocol.partial(turn, partial, time.time())
                    await self._flush(conn)
            if end is not None:
                ending, waiting = end
                text = ""
                if executor is not None:
                    try:
                        text = await loop.run_in_executor(executor, rec.finish)
                    except Exception:
                        logger.exception("offline recognition failed in session %s", session.session_id)
                    session.hearing_cmn = rec.cmn
                if waiting is not None and not waiting.done():
                    waiting.set_result("" if ending.discard else text)

    async def _hear(self, conn: _Connection) -> None:
        """Hand each ended spoken turn's final text to the protocol, in order (its reply starts)."""
        while conn.hearings:
            text = await conn.hearings[0]
            conn.hearings.popleft()
            conn.protocol.heard(text, time.time())
            await self._flush(conn)

    async def _stop_listening(self, conn: _Connection) -> None:
        """The connection ended: drop its recogniser's unfinished turn (the decoder goes back to the pool)."""
        for waiting in conn.hearings:
            if not waiting.done():
                waiting.set_result("")
        rec, conn.recognizer = conn.recognizer, None
        if rec is not None and self._executor is not None:
            with contextlib.suppress(Exception):
                await asyncio.get_running_loop().run_in_executor(self._executor, rec.reset)

    async def _go_away(self, conn: _Connection, time_left: float) -> None:
        conn.protocol.send_go_away(round(self.scaled(time_left), 3), time.time())
        await self._flush(conn)
        logger.info("GoAway to session %s (%.3f s left)", conn.session.session_id, self.scaled(time_left))

    async def _deadline(self, conn: _Connection, until_go_away: float | None, time_left: float) -> None:
        try:
            if until_go_away is not None:
                await asyncio.sleep(self.scaled(until_go_away))
                await self._go_away(conn, time_left)
            await asyncio.sleep(self.scaled(time_left))
            conn.protocol.expire()
            await self._flush(conn)
        except ConnectionClosed:
            return

    async def _periodic(self, conn: _Connection) -> None:
        interval = self.scaled(self.resumption_update_interval)
        try:
            while True:
                await asyncio.sleep(interval)
                conn.protocol.periodic(time.time())
                await self._flush(conn)
        except ConnectionClosed:
            return

