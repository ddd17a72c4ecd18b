"""The emulator's asyncio layer: websockets server, TLS, timers, faults, and the CLI.

This is the only module of the emulator that does I/O. Each connection feeds client frames to a
sans-I/O ``ServerEngine`` (engine.py) and carries out the actions it returns; timers (GoAway and
the connection deadline, periodic resumption updates) and the reply stream's pacing live here.

What it reproduces of the service (live-protocol.md sections 1, 3, 5 and field.md):

* Paths: the Gemini path (``v1``, ``v1beta``, ``v1alpha``, with or without a leading ``//``), the
  Constrained (ephemeral token) path, the Vertex path, and any path under ``/vertex`` (gateway
  mode). ``/`` is accepted too (as the Gemini path) so ``Emulator.url`` works as given.
* Auth: ``x-goog-api-key``, ``?key=``, ``?access_token=``, ``Authorization: Bearer|Token``. Any
  non-empty credential is accepted (it is an emulator) unless ``api_key`` names the only one; a
  missing one is refused at the HTTP upgrade with 401, an empty or wrong one with 403.
  Credentials are never logged or stored.
* Server JSON in binary frames (``text_frames=True`` for text), no permessage-deflate unless
  ``compression=True``, every frame far below the SDK's 1 MiB limit.
* Connection lifetime with a GoAway ``go_away_before`` seconds before the end, then close 1011
  "Deadline expired before operation could complete."; ``time_scale`` divides every duration and
  what goes on the wire is in real (scaled) seconds.
* Resumption handles backed by SQLite (store.py); an old connection of the session still open
  when a resume arrives: refused with 1011, after a short grace period (``resume_grace``, wall
  seconds) in which a connection that is already going away may finish closing.

Hardening (the emulator may meet any client, and anything from the wire is untrusted):

* Input it cannot read (not JSON, nested too deeply, a field of the wrong type, bad base64, a setup
  whose config the engine cannot use, a model name above ``MAX_MODEL_NAME_CHARS``) is closed 1007
  "Request contains an invalid argument: ..." with a short reason, never 1011 with a traceback, and
  never leaves a session marked open in the store (``BAD_INPUT``). A frame above ``MAX_FRAME_BYTES``
  is closed by websockets with 1009 before it is parsed (recorded in ``refused``, no traceback). A
  bug of ours past parsing is logged with its traceback; the client hears 1011 "Internal error
  encountered." and the session's state is cleaned up as after any close.
* Memory: a session's ``EmulatorSession`` (and its consumed log) is released once its last
  connection has closed and newer closed sessions push it out (``keep_closed``,
  ``keep_closed_bytes``); SQLite keeps what a resume needs.
* Logs: what came from the wire (model names, reasons, paths) is logged as a short excerpt (``for_log``).
* Binding: loopback only, unless ``allow_remote=True`` (``--allow-remote``) with an ``api_key``
  (``--api-key-env NAME``), checked at the upgrade; a warning says so at start-up.
* Files: the database (and its -wal/-shm), the temp dir, the TLS key and cert are owner-only from
  creation (store.py, ``generate_certificate``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hmac
import ipaddress
import json
import logging
import os
import re
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..exceptions import ConfigError, ProtocolError
from ..protocol.config import CONNECTION_LIFETIME_SECONDS, GO_AWAY_LEAD_SECONDS, HANDLE_RETENTION_SECONDS
from ..protocol.messages import (
    ClientMessage,
    GoAway,
    ServerMessage,
    SessionResumptionUpdate,
    Setup,
    UsageMetadata,
    encode_server_frame,
    parse_client_frame,
)
from .engine import (
    KNOWN_MODELS,
    Action,
    Checkpoint,
    Close,
    EngineSettings,
    ReplyPlan,
    Send,
    ServerEngine,
    SessionState,
    Stream,
    bare_model_name,
    check_setup,
    parse_frame,
)
from .responder import ContextResponder, Responder, Turn
from .store import (
    Refusal,
    Snapshot,
    Store,
    default_db_path,
    make_private_dirs,
    new_session_id,
    tighten_mode,
    write_private_file,
)

__all__ = ["Emulator", "EmulatorSession", "main"]

logger = logging.getLogger("live_nb.emulator")

_SECRET_QUERY = re.compile(r"\b(key|access_token)=[^&\s]*", re.IGNORECASE)
_SECRET_HEADER = re.compile(r"^([<>] *(?:x-goog-api-key|authorization|x-goog-user-project)):.*$", re.IGNORECASE)


class _RedactCredentials(logging.Filter):
    """Blank out keys and tokens in websockets' debug log of the HTTP upgrade.

    Why: with DEBUG logging on, websockets logs the request line (``?key=...``) and every header
    (``x-goog-api-key``, ``Authorization``). Credentials must never reach a log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = _SECRET_HEADER.sub(r"\1: <redacted>", _SECRET_QUERY.sub(r"\1=<redacted>", text))
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


ws_logger = logging.getLogger("live_nb.emulator.websockets")
ws_logger.addFilter(_RedactCredentials())

RETENTION_SECONDS = HANDLE_RETENTION_SECONDS
EMPTY_FRAME_EVERY = 4
FLAVOR_NAMES = {
    "vertex": "Vertex AI (transparent resumption, system-instruction updates, 24 h handles)",
    "gemini": "Gemini Developer API (no transparent resumption or system-instruction updates, 2 h handles)",
}
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: the close reason fits in a 125-byte control frame
MAX_FRAME_BYTES = 16 * 2**20
"""The largest client frame read; a bigger one is closed by websockets with 1009 ("frame with N bytes
exceeds limit of 16777216 bytes"), before any of it is parsed."""
MAX_MODEL_NAME_CHARS = 512
"""A setup naming a longer model is refused 1007 (the catalogue's ids are under 64 characters)."""
LOG_EXCERPT_CHARS = 120
"""How much of a wire value (model name, reason, path) reaches a log line."""
MAX_KEPT_REASON_CHARS = 4096
"""How much of each reason ``Emulator.refused`` keeps (tests compare whole reasons; a 1 MB model name
inside one would otherwise be kept whole)."""
MAX_KEPT_RECORDS = 1000
"""``Emulator.refused`` and ``Emulator.paths`` keep about this many latest entries."""
INTERNAL_ERROR = "Internal error encountered."
"""The service's reason for a failure on its side (close 1011)."""
INTERNAL_ERROR_CODE = 1011

BAD_INPUT: tuple[type[BaseException], ...] = (
    ProtocolError,
    ConfigError,
    RecursionError,
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
)
"""What reading a client frame (JSON, fields, base64) or building a connection from its setup may
raise on input it cannot use: answered with close 1007 and a reason, never 1011 and a traceback.
Past that boundary (folding a parsed message into the session) an exception is a bug of ours:
logged with its traceback, answered 1011 "Internal error encountered.", its state cleaned up."""

_GEMINI_PATH = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\.GenerativeService\."
    r"BidiGenerateContent(Constrained)?$"
)
_VERTEX_PATH = re.compile(r"^/ws/google\.cloud\.aiplatform\.(v1|v1beta1)\.LlmBidiService/BidiGenerateContent$")


@dataclass(frozen=True, slots=True)
class Route:
    """What a request path says about the client: backend flavour, API version, ephemeral token."""

    flavor: str
    api_version: str
    constrained: bool = False


def path_only(target: str) -> str:
    """The path of a request target without its query (which may hold a key).

    Not ``urlsplit``: it would read ``//ws/...`` (what the SDK dials) as a host named ``ws``.
    """
    return target.split("?", 1)[0]


def route(path: str, bare_flavor: str = "gemini") -> Route | None:
    """Map a request path (query ignored) to a Route, or None for a path the service lacks.

    The bare path ``/`` (what ``Emulator.url`` dials as given) gets ``bare_flavor``, the emulator's mode.
    """
    clean = "/" + path_only(path).lstrip("/")
    match = _GEMINI_PATH.match(clean)
    if match:
        return Route("gemini", match.group(1), bool(match.group(2)))
    match = _VERTEX_PATH.match(clean)
    if match:
        return Route("vertex", match.group(1))
    if clean == "/vertex" or clean.startswith("/vertex/") or clean.startswith("/vertex-"):
        return Route("vertex", "v1beta1")
    if clean == "/":
        return Route(bare_flavor, "v1beta" if bare_flavor == "gemini" else "v1beta1")
    return None


def credential(request: Request) -> str | None:
    """The credential a request carries ('' when present but empty, None when absent). Never logged."""
    key = request.headers.get("x-goog-api-key")
    if key is not None:
        return key.strip()
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "token") else ""
    query = parse_qs(request.path.partition("?")[2], keep_blank_values=True)
    for name in ("key", "access_token"):
        if name in query:
            return query[name][0].strip()
    return None


def clip_reason(reason: str) -> str:
    """Cut a close reason to the 123 bytes a close frame can carry (as the service's are cut)."""
    data = reason.encode("utf-8")
    if len(data) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return data[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


def for_log(text: str, limit: int = LOG_EXCERPT_CHARS) -> str:
    """A short, single-line excerpt of text that came from the wire (a model name, a reason, a path).

    Why: a client chooses these; a 1 MB model name must not become a 1 MB log line, and a newline in
    one must not forge a second log record. Control characters are escaped, the rest cut to ``limit``.
    """
    cut = text[:limit]
    if not cut.isprintable():
        cut = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in cut)
    return cut if len(text) <= limit else f"{cut}... ({len(text)} characters)"


def _keep_reason(reason: str) -> str:
    """A reason as ``Emulator.refused`` keeps it: whole, up to ``MAX_KEPT_REASON_CHARS``."""
    return reason if len(reason) <= MAX_KEPT_REASON_CHARS else reason[:MAX_KEPT_REASON_CHARS] + "..."


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` binds only the loopback interface (``localhost``, 127.0.0.0/8, ``::1``).

    ``None``, ``""``, ``0.0.0.0``, ``::`` and every other name or address count as remote: a name is
    not resolved here, so only the loopback spellings above are trusted.
    """
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def invalid_argument_detail(exc: BaseException) -> str:
    """What was wrong with a frame that could not be read, for a 1007 reason (short and plain).

    Args:
        exc: one of ``BAD_INPUT``: live_nb's parse errors carry their own words; a RecursionError is
            JSON nested deeper than anyone needs; the other builtins come from a field of the wrong
            type or value reaching code that assumed the right one.
    """
    if isinstance(exc, RecursionError):
        return "the message is nested too deeply."
    if isinstance(exc, (ProtocolError, ConfigError)):
        return for_log(str(exc), 200)
    return f"a field has the wrong type or value ({type(exc).__name__}: {for_log(str(exc), 60)})."


class EmulatorSession:
    """One emulated session, across its connections (what ``Emulator.sessions`` holds).

    Its memory is released when its last connection closes, after a short stay among the recently
    closed sessions (``Emulator(keep_closed=..., keep_closed_bytes=...)``); its resumable state lives
    on in SQLite, and a resume after that builds a new ``EmulatorSession`` from the snapshot (its
    ``consumed`` log then starts empty at ``consumed_offset``, as after an emulator restart).

    Attributes:
        session_id: the id sent in ``setupComplete.sessionId`` (and inside handles).
        model: the bare model name; a resume may not change it.
        state: the live session state (context, system instruction, ...).
        consumed: client messages folded into the session, in order, setup excluded. A resume
            truncates it to the snapshot's length, so it always matches the state.
        consumed_offset: messages consumed before the first one in ``consumed``: those folded in
            before this emulator process restored the session from the database, and those
            trimmed by ``Emulator(consumed_limit=...)``. ``consumed_offset + len(consumed)`` is
            always the session's total.
        handles: every handle issued, oldest first.
    """

    def __init__(self, state: SessionState, consumed_offset: int = 0) -> None:
        self.session_id = state.session_id
        self.model = state.model
        self.state = state
        self.consumed: list[ClientMessage] = []
        self.consumed_offset = consumed_offset
        self.handles: list[str] = []
        self.connections: list[_Connection] = []
        self.resumes = 0

    def payload_bytes(self) -> int:
        """About how many bytes the consumed log holds (media, text): what keeping the session costs."""
        return sum(_payload_bytes(message) for message in self.consumed)

    @property
    def consumed_total(self) -> int:
        """How many client messages the session has folded in (setup excluded), kept or trimmed."""
        return self.consumed_offset + len(self.consumed)

    def trim_consumed(self, limit: int) -> None:
        """Keep only the last ``limit`` consumed messages (in batches, so trimming stays cheap)."""
        excess = len(self.consumed) - limit
        if excess > max(16, limit // 4):
            del self.consumed[:excess]
            self.consumed_offset += excess

    def restore_consumed(self, count: int) -> None:
        """Cut the log back to the first ``count`` messages (a resume restored that snapshot)."""
        if count < self.consumed_offset:
            self.consumed.clear()
            self.consumed_offset = count
        else:
            del self.consumed[count - self.consumed_offset :]

    @property
    def context(self) -> list[tuple[str, str, float]]:
        """The context window as (role, text summary, tokens), system instruction first when set."""
        out = [("system", self.state.system_instruction, float(self.state.system_tokens))] if (
            self.state.system_instruction
        ) else []
        return out + [(t.role, t.text, t.tokens) for t in self.state.turns]

    @property
    def turns(self) -> list[Turn]:
        """The context's turns as rich objects (numbered across the whole session)."""
        return list(self.state.turns)

    @property
    def context_tokens(self) -> float:
        """Tokens in the window now (system instruction, turns, half-built user turn)."""
        return self.state.context_tokens

    @property
    def open(self) -> bool:
        """Whether a connection of this session is open now."""
        return bool(self.connections)

    @property
    def last_usage(self) -> UsageMetadata | None:
        """The usage sent with the latest turnComplete on the current connection."""
        return self.connections[-1].engine.last_usage if self.connections else None

    def __repr__(self) -> str:
        return f"<EmulatorSession {self.session_id} {self.model} turns={len(self.state.turns)} open={self.open}>"


def _payload_bytes(value: object, depth: int = 0) -> int:
    """The bytes and characters inside a parsed client message (a cheap size estimate, bounded depth)."""
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return len(value)
    if depth > 16 or value is None or isinstance(value, (bool, int, float)):
        return 8
    if isinstance(value, Mapping):
        return sum(_payload_bytes(k, depth + 1) + _payload_bytes(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_payload_bytes(item, depth + 1) for item in value)
    names = getattr(value, "__slots__", None) or getattr(value, "__dict__", {})
    return 16 + sum(_payload_bytes(getattr(value, name, None), depth + 1) for name in names)


@dataclass(eq=False)
class _Connection:
    ws: ServerConnection
    session: EmulatorSession
    engine: ServerEngine
    route: Route
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    deadline_task: asyncio.Task[None] | None = None
    started: float = field(default_factory=time.time)


def generate_certificate(cert_dir: str) -> tuple[str, str]:
    """Write a self-signed cert (and key) for 127.0.0.1 and localhost into ``cert_dir``.

    Why: google-genai always dials ``wss://`` (live-protocol.md section 6), so the emulator speaks
    TLS with a certificate the client is told to trust. Existing files are reused (a key readable by
    others is tightened to 0600 first). New files are owner-only from their first byte (0600, in a
    directory made 0700 when missing) and written atomically: never a window at a wider mode.

    Returns:
        (cert.pem path, key.pem path).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    make_private_dirs(cert_dir)
    cert_path = os.path.join(cert_dir, "cert.pem")
    key_path = os.path.join(cert_dir, "key.pem")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        tighten_mode(key_path)
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private_file(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    write_private_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


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
        models: model names the emulator knows (default ``engine.KNOWN_MODELS``).
        consumed_limit: keep at most about this many messages in each session's ``consumed`` log
            (None = all: tests compare whole logs; an hour of 100 ms audio is ~115 MB, so long
            notebook sessions should set a limit).
        keep_closed: how many sessions whose last connection closed stay in ``sessions`` (with their
            ``consumed`` logs, for tests to read); older ones are released from memory (their
            resumable state stays in SQLite: a resume reloads it).
        keep_closed_bytes: also release the oldest closed sessions while the closed ones' consumed
            logs hold more than this many bytes (0 = release every session as it closes).
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
        if mode not in RETENTION_SECONDS:
            raise ConfigError("mode", mode, '"gemini" or "vertex"')
        if time_scale <= 0:
            raise ConfigError("time_scale", time_scale, "a number above 0")
        if go_away_before >= connection_lifetime:
            raise ConfigError("go_away_before", go_away_before, f"below connection_lifetime ({connection_lifetime})")
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
        self.retention = retention if retention is not None else RETENTION_SECONDS[mode]
        """Handle retention on the bare URL (service seconds); ``retention_for`` gives each path's."""
        self._retention_override = retention
        self.resume_grace = resume_grace
        self.models = frozenset(models) if models is not None else KNOWN_MODELS
        self.consumed_limit = consumed_limit
        self.keep_closed = keep_closed
        self.keep_closed_bytes = keep_closed_bytes
        self.allow_remote = allow_remote
        self._api_key = api_key.strip() if api_key is not None else None
        self.settings = EngineSettings(context_window=context_window, vad_threshold=vad_threshold)
        self.sessions: dict[str, EmulatorSession] = {}
        """Sessions by id: every one with an open connection, plus the most recently closed ones
        (``keep_closed``, ``keep_closed_bytes``). Older closed sessions live only in SQLite."""
        self._closed: dict[str, int] = {}  # closed sessions still in ``sessions``, oldest first: id -> payload bytes
        self.cert_path: str | None = None
        self.key_path: str | None = None
        self.refused: list[tuple[int, str]] = []
        """Close codes and reasons the emulator closed connections with (for tests), in order."""
        self.paths: list[tuple[str, str]] = []
        """(path without query, flavour) of every accepted upgrade, in order (the query may hold a key)."""
        self._server: Server | None = None
        self._store: Store | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        scale = f"time_scale={self.time_scale:g}"
        return f"<Emulator {self.url} {state} mode={self.mode} {scale} sessions={len(self.sessions)}>"

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
        self._store = Store(self.db_path)
        now = time.time()
        self._store.close_all_connections(now)
        # Keep expired sessions one more retention period, so a late resume hears "expired", not "not found".
        self._store.purge_expired(now - 2 * self.scaled(max(map(self.retention_for, RETENTION_SECONDS))))
        ssl_context: ssl.SSLContext | None = None
        if self.tls:
            assert self.cert_dir is not None
            self.cert_path, self.key_path = generate_certificate(self.cert_dir)
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(self.cert_path, self.key_path)
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

    async def stop(self) -> None:
        """Close every connection (1001) and stop listening. The database file is kept."""
        server, self._server = self._server, None
        if server is not None:
            server.close(close_connections=True)
            await server.wait_closed()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        if self._store is not None:
            self._store.close()
            self._store = None

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
        ]

    async def drop_connections(self, session_id: str | None = None) -> int:
        """Cut connections (of one session, or all) at the TCP level: no close frame, like a network drop.

        Returns:
            how many connections were cut. Waits (briefly) until the server has seen them end.
        """
        conns = self._connections(session_id)
        for conn in conns:
            transport = conn.ws.transport
            transport.abort()
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

    # HTTP upgrade: path and auth.

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if route(request.path) is None:
            logger.info("refused unknown path %s", for_log(path_only(request.path)))
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found: not a Live API path\n")
        cred = credential(request)
        if cred is None:
            return connection.respond(
                HTTPStatus.UNAUTHORIZED,
                "Unauthorized: send an API key (x-goog-api-key header or ?key=), an ephemeral token "
                "(?access_token= or Authorization: Token) or Authorization: Bearer.\n",
            )
        if not cred:
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden: the credential is empty.\n")
        if self._api_key is not None and not hmac.compare_digest(cred.encode(), self._api_key.encode()):
            logger.info("refused a credential that is not this emulator's key (403)")
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden: the credential is not this emulator's key.\n")
        return None

    # Connections.

    async def _handle(self, ws: ServerConnection) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve_connection(ws)
        except Exception:
            # A bug of ours (bad input was answered 1007 further down): log it whole, tell the
            # client only what the service would, and never let websockets log "handler failed".
            path = path_only(ws.request.path) if ws.request is not None else ""
            logger.exception("internal error on a connection to %s", for_log(path))
            await self._refuse(ws, INTERNAL_ERROR_CODE, INTERNAL_ERROR)
        finally:
            self._handlers.discard(task)

    def _record(self, code: int, reason: str) -> None:
        self.refused.append((code, _keep_reason(reason)))
        if len(self.refused) > MAX_KEPT_RECORDS + MAX_KEPT_RECORDS // 4:
            del self.refused[:-MAX_KEPT_RECORDS]

    async def _refuse(self, ws: ServerConnection, code: int, reason: str) -> None:
        self._record(code, reason)
        logger.info("refused: %s %s", code, for_log(reason))
        with contextlib.suppress(ConnectionClosed):
            await ws.close(code, clip_reason(reason))

    async def _serve_connection(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        path_route = route(ws.request.path, bare_flavor=self.mode)
        assert path_route is not None
        self.paths.append((path_only(ws.request.path), path_route.flavor))
        if len(self.paths) > MAX_KEPT_RECORDS + MAX_KEPT_RECORDS // 4:
            del self.paths[:-MAX_KEPT_RECORDS]
        try:
            first = await asyncio.wait_for(ws.recv(), timeout=max(30.0, self.scaled(60.0)))
        except ConnectionClosed as exc:
            return self._closed_by_websockets(exc)  # the client left before its setup, or sent too much
        except asyncio.TimeoutError:
            return await self._refuse(ws, 1007, "Request contains an invalid argument: no setup message.")
        # Everything up to the engine's construction reads client input: whatever it raises is a 1007.
        try:
            setup = parse_client_frame(first)
            if not isinstance(setup, Setup):
                return await self._refuse(
                    ws, 1007, "Request contains an invalid argument: the first message must be setup."
                )
            if len(setup.model) > MAX_MODEL_NAME_CHARS:
                return await self._refuse(
                    ws, 1007, f"Request contains an invalid argument: setup.model is too long "
                    f"({len(setup.model)} characters; model names are under {MAX_MODEL_NAME_CHARS}).",
                )
            refusal = check_setup(setup, path_route.flavor, path_route.api_version, self.models)
        except BAD_INPUT as exc:
            return await self._refuse(ws, 1007, f"Request contains an invalid argument: {invalid_argument_detail(exc)}")
        del first  # a big setup frame need not live as long as the connection
        if refusal is not None:
            return await self._refuse(ws, refusal.code, refusal.reason)
        opened = await self._open_session(ws, setup, path_route.flavor)
        if isinstance(opened, Close):
            return await self._refuse(ws, opened.code, opened.reason)
        session, state, resumed = opened
        try:
            engine = ServerEngine(
                setup, state, session.consumed, self.responder, self.settings, resumed=resumed,
                flavor=path_route.flavor,
            )
        except BaseException as exc:
            self._abandon(session, resumed)
            if not isinstance(exc, BAD_INPUT):
                raise
            return await self._refuse(ws, 1007, f"Request contains an invalid argument: {invalid_argument_detail(exc)}")
        conn = _Connection(ws, session, engine, path_route)
        session.connections.append(conn)
        logger.info(
            "%s session %s (%s, %s path)", "resumed" if resumed else "new", session.session_id,
            for_log(session.model), path_route.flavor,
        )
        try:
            await self._apply(conn, engine.start())
            until_go_away = self.connection_lifetime - self.go_away_before
            conn.deadline_task = self._spawn(conn, self._deadline(conn, until_go_away, self.go_away_before))
            if engine.resumption:
                self._spawn(conn, self._periodic(conn))
            async for frame in ws:
                try:
                    message = parse_frame(frame)
                except BAD_INPUT as exc:
                    await self._apply(conn, engine.invalid_message(invalid_argument_detail(exc)))
                    break
                del frame
                await self._apply(conn, engine.receive(message))
                if self.consumed_limit is not None:
                    session.trim_consumed(self.consumed_limit)
                if engine.closed:
                    break
        except ConnectionClosed as exc:
            if not engine.closed:  # else the close was ours, and recorded when sent
                self._closed_by_websockets(exc)
        except Exception:
            logger.exception("internal error in session %s", session.session_id)
            engine.closed = True
            await self._apply(conn, [Close(INTERNAL_ERROR_CODE, INTERNAL_ERROR)])
        finally:
            for task in list(conn.tasks):
                task.cancel()
            if conn.tasks:
                await asyncio.wait(list(conn.tasks), timeout=1)
            with contextlib.suppress(ValueError):
                session.connections.remove(conn)
            if self._store is not None:
                self._store.connection_closed(session.session_id, time.time())
            if not session.connections:
                self._retire(session)

    def _closed_by_websockets(self, exc: ConnectionClosed) -> None:
        """Note a close websockets itself sent: 1009 for a frame above ``MAX_FRAME_BYTES``, 1007 for a
        text frame that is not UTF-8, 1002 for broken framing (no traceback: these are the client's doing)."""
        sent = exc.sent
        if sent is not None and sent.code in (1002, 1007, 1009) and not exc.rcvd_then_sent:
            self._record(sent.code, sent.reason)
            logger.info("closed: %s %s", sent.code, for_log(sent.reason))

    def _abandon(self, session: EmulatorSession, resumed: bool) -> None:
        """Undo ``_open_session`` for a connection refused before it started (its setup could not be used).

        A new session leaves no trace (its row had no snapshot yet); a resumed one counts the
        connection as ended, so the store never keeps it marked open.
        """
        if self._store is not None:
            if resumed:
                self._store.connection_closed(session.session_id, time.time())
            else:
                self._store.forget_session(session.session_id)
        if session.connections:
            return
        if resumed:
            self._retire(session)
        else:
            self.sessions.pop(session.session_id, None)

    def _retire(self, session: EmulatorSession) -> None:
        """The session's last connection closed: keep it among the recently closed, release the oldest.

        Why: ``sessions`` held every session ever seen, each with its whole consumed log (RSS grew by
        the size of every frame ever received). The state a resume needs is in SQLite already.
        """
        if self.sessions.get(session.session_id) is not session:
            return
        self._closed.pop(session.session_id, None)
        self._closed[session.session_id] = session.payload_bytes()
        total = sum(self._closed.values())
        while self._closed and (len(self._closed) > self.keep_closed or total > self.keep_closed_bytes):
            oldest = next(iter(self._closed))
            total -= self._closed.pop(oldest)
            gone = self.sessions.get(oldest)
            if gone is not None and not gone.connections:
                del self.sessions[oldest]

    async def _open_session(
        self, ws: ServerConnection, setup: Setup, flavor: str
    ) -> tuple[EmulatorSession, SessionState, bool] | Close:
        assert self._store is not None
        resumption = setup.session_resumption
        model = bare_model_name(setup.model)
        if resumption is None or not resumption.handle:
            state = SessionState(session_id=new_session_id(), model=model)
            self._store.create_session(state.session_id, model, time.time())
            session = EmulatorSession(state)
            self.sessions[state.session_id] = session
            return session, state, False
        snapshot = self._store.load_snapshot(resumption.handle)
        if isinstance(snapshot, Refusal):
            return Close(snapshot.code, snapshot.reason)
        refusal = await self._check_resume(snapshot, model, flavor)
        if refusal is not None:
            return refusal
        state = SessionState.from_json(snapshot.state)
        known = self.sessions.get(snapshot.session_id)
        if known is None:
            session = EmulatorSession(state, consumed_offset=state.consumed_count)
            self.sessions[state.session_id] = session
        else:
            session = known
        self._closed.pop(session.session_id, None)  # open again: no longer a candidate for release
        session.state = state
        session.restore_consumed(state.consumed_count)
        session.resumes += 1
        self._store.connection_opened(state.session_id)
        return session, state, True

    def retention_for(self, flavor: str) -> float:
        """Service seconds a handle lives on a path of this flavour (``retention`` when given, else the backend's)."""
        return self._retention_override if self._retention_override is not None else RETENTION_SECONDS[flavor]

    async def _check_resume(self, snapshot: Snapshot, model: str, flavor: str) -> Close | None:
        assert self._store is not None
        record = self._store.session(snapshot.session_id)
        if record is None:  # pragma: no cover - snapshots always have a session row
            return Close(1008, "BidiGenerateContent session not found")
        if snapshot.state.get("model") != model:
            return Close(
                1007,
                f"Request contains an invalid argument: the model cannot change on resume "
                f"(session uses {snapshot.state.get('model')}, setup asks for {model}).",
            )
        # A connection that is going away may still be closing: give it a moment, then refuse.
        deadline = time.monotonic() + self.resume_grace
        while record.open_connections > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            record = self._store.session(snapshot.session_id) or record
        if record.open_connections > 0:
            return Close(
                1011,
                "Internal error encountered: the session is still open on another connection; "
                "close it before resuming.",
            )
        retention = self.retention_for(flavor)
        if record.last_end is not None and time.time() - record.last_end > self.scaled(retention):
            hours = retention / 3600
            return Close(
                1008,
                f"BidiGenerateContent session not found: the resumption handle expired ({hours:g} h after the "
                "session's last connection).",
            )
        return None

    # Actions, streams and timers.

    def _spawn(self, conn: _Connection, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._guard(conn, coro))
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)
        return task

    async def _guard(self, conn: _Connection, coro: Any) -> None:
        """Run a connection's background task; a bug in it is logged and closes the connection 1011."""
        try:
            await coro
        except ConnectionClosed:
            return
        except Exception:
            logger.exception("internal error in session %s", conn.session.session_id)
            conn.engine.closed = True
            with contextlib.suppress(Exception):
                await self._apply(conn, [Close(INTERNAL_ERROR_CODE, INTERNAL_ERROR)])

    def _encode(self, conn: _Connection, message: ServerMessage, usage: UsageMetadata | None = None) -> str | bytes:
        frame = encode_server_frame(message, usage)
        if usage is not None and conn.route.flavor == "vertex":
            # Vertex spells the response side candidatesTokenCount / candidatesTokensDetails.
            body = json.loads(frame)
            meta = body["usageMetadata"]
            for old, new in (("responseTokenCount", "candidatesTokenCount"),
                             ("responseTokensDetails", "candidatesTokensDetails")):
                if old in meta:
                    meta[new] = meta.pop(old)
            frame = json.dumps(body, separators=(",", ":")).encode()
        return frame.decode("utf-8") if self.text_frames else frame

    async def _send(self, conn: _Connection, message: ServerMessage, usage: UsageMetadata | None = None) -> None:
        frame = self._encode(conn, message, usage)
        async with conn.lock:
            await conn.ws.send(frame)

    async def _apply(self, conn: _Connection, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                await self._send(conn, action.message, action.usage)
            elif isinstance(action, Stream):
                self._spawn(conn, self._stream(conn, action.plan))
            elif isinstance(action, Checkpoint):
                assert self._store is not None
                handle = self._store.save_snapshot(conn.session.session_id, dict(action.state), time.time())
                conn.session.handles.append(handle)
                await self._send(
                    conn,
                    SessionResumptionUpdate(
                        new_handle=handle, resumable=True, last_consumed_client_message_index=action.index
                    ),
                )
            elif isinstance(action, Close):
                self._record(action.code, action.reason)
                logger.info(
                    "closing session %s: %s %s", conn.session.session_id, action.code, for_log(action.reason)
                )
                async with conn.lock:
                    with contextlib.suppress(ConnectionClosed):
                        await conn.ws.close(action.code, clip_reason(action.reason))
                return

    async def _stream(self, conn: _Connection, plan: ReplyPlan) -> None:
        delay = self.scaled(self.chunk_delay)
        info = conn.engine.info
        # gemini-3.x sends empty {} frames between content messages (models.md section 2): so do we,
        # every few chunks, so clients meet them in every reply.
        empty: str | bytes | None = None
        if info is not None and info.empty_frames:
            empty = "{}" if self.text_frames else b"{}"
        try:
            for number, chunk in enumerate(plan.chunks):
                frame = self._encode(conn, chunk)
                async with conn.lock:
                    if plan.cancelled or conn.engine.closed:
                        return
                    await conn.ws.send(frame)
                    conn.engine.chunk_sent(plan)
                    if empty is not None and number % EMPTY_FRAME_EVERY == EMPTY_FRAME_EVERY - 1:
                        await conn.ws.send(empty)
                await asyncio.sleep(delay)
            await self._apply(conn, conn.engine.finish_reply(plan))
        except ConnectionClosed:
            return

    async def _go_away(self, conn: _Connection, time_left: float) -> None:
        # A fresh handle first, when there is a resumable point: the client resumes from the latest state.
        await self._apply(conn, conn.engine.periodic())
        await self._send(conn, GoAway(time_left=round(self.scaled(time_left), 3)))
        logger.info("GoAway to session %s (%.3f s left)", conn.session.session_id, self.scaled(time_left))

    async def _deadline(self, conn: _Connection, until_go_away: float | None, time_left: float) -> None:
        try:
            if until_go_away is not None:
                await asyncio.sleep(self.scaled(until_go_away))
                await self._go_away(conn, time_left)
            await asyncio.sleep(self.scaled(time_left))
            conn.engine.closed = True
            await self._apply(conn, [Close(1011, "Deadline expired before operation could complete.")])
        except ConnectionClosed:
            return

    async def _periodic(self, conn: _Connection) -> None:
        interval = self.scaled(self.resumption_update_interval)
        try:
            while True:
                await asyncio.sleep(interval)
                await self._apply(conn, conn.engine.periodic())
        except ConnectionClosed:
            return


def remote_warning(url: str, key_source: str | None = None) -> str:
    """What the emulator says at start-up when it listens on more than loopback."""
    where = f"the key in ${key_source}" if key_source else "the configured api_key"
    return (
        f"WARNING: the live_nb emulator at {url} is reachable from other machines. Only clients sending "
        f"{where} get in. It is a test server: handles and context are kept in its database, and without "
        "--tls the traffic (the key included) is not encrypted."
    )


# CLI.


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m live_nb.emulator`` argument parser (every flag documented)."""
    parser = argparse.ArgumentParser(
        prog="python -m live_nb.emulator",
        description=(
            "Run the live_nb emulator of the Gemini Live API (BidiGenerateContent over WebSocket). "
            "It accepts the Gemini, Constrained (ephemeral token), Vertex and /vertex gateway paths; any "
            "non-empty credential is accepted unless --api-key-env names the only one. It binds loopback only "
            "unless --allow-remote. Durations are service seconds divided by --time-scale."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="interface to bind (default 127.0.0.1); anything but loopback (127.0.0.1, ::1, localhost) needs "
        "--allow-remote and --api-key-env",
    )
    parser.add_argument(
        "--allow-remote", action="store_true",
        help="allow a non-loopback --host, reachable from other machines (then --api-key-env is required)",
    )
    parser.add_argument(
        "--api-key-env", metavar="NAME", default=None,
        help="accept only the API key held in environment variable NAME (401 without a key, 403 with another); "
        "required with --allow-remote. A key is never taken on the command line",
    )
    parser.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default 8765)")
    parser.add_argument("--tls", action="store_true", help="speak wss:// with a generated self-signed certificate")
    parser.add_argument(
        "--cert-dir", default=None,
        help="with --tls: directory for cert.pem and key.pem (reused when present; default a temp dir)",
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0,
        help="divide lifetime, GoAway lead, retention, update interval and reply pacing (60: 10 min -> 10 s)",
    )
    parser.add_argument(
        "--mode", choices=("gemini", "vertex"), default="vertex",
        help="the flavour served on the bare URL: vertex (transparent resumption, system-instruction updates, "
        "24 h handles) or gemini (the Developer API's rules: those refused, 2 h handles)",
    )
    parser.add_argument("--db", default=None, help="SQLite file for resumable state (default a temp file)")
    parser.add_argument(
        "--context-window", type=int, default=None,
        help="context window in tokens (default: each model's input window: 131072 on 3.x, 128000 on 2.5)",
    )
    parser.add_argument(
        "--connection-lifetime", type=float, default=600.0, help="service seconds a connection lives (600)"
    )
    parser.add_argument(
        "--go-away-before", type=float, default=60.0, help="service seconds before the end to send GoAway (60)"
    )
    parser.add_argument(
        "--resumption-update-interval", type=float, default=10.0,
        help="service seconds between periodic SessionResumptionUpdates (10)",
    )
    parser.add_argument(
        "--chunk-delay", type=float, default=0.015, help="service seconds between reply chunks (0.015; 0 = none)"
    )
    parser.add_argument(
        "--retention", type=float, default=None,
        help="service seconds a handle lives after the session's last connection (default 7200 gemini, 86400 vertex)",
    )
    parser.add_argument(
        "--resume-grace", type=float, default=0.5,
        help="wall seconds a resume waits for the session's old connection to close before refusing 1011 (0.5)",
    )
    parser.add_argument(
        "--vad-threshold", type=float, default=500.0,
        help="RMS of 16-bit input audio above which a chunk counts as speech (500)",
    )
    parser.add_argument(
        "--consumed-limit", type=int, default=None,
        help="keep about this many consumed client messages per session in memory (default all)",
    )
    parser.add_argument(
        "--keep-closed", type=int, default=16,
        help="closed sessions kept in memory with their consumed logs (16); older ones are released "
        "(their resumable state stays in the database)",
    )
    parser.add_argument(
        "--keep-closed-mb", type=float, default=16.0,
        help="also release the oldest closed sessions while their consumed logs hold more than this many MiB (16)",
    )
    parser.add_argument("--text-frames", action="store_true", help="send server JSON in text frames, not binary")
    parser.add_argument("--compression", action="store_true", help="accept permessage-deflate (off by default)")
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="logging level (INFO)"
    )
    return parser


def _api_key(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str | None:
    """The key named by ``--api-key-env`` (never from the command line), after the remote-bind rules."""
    remote = not is_loopback(args.host)
    if remote and not args.allow_remote:
        parser.error(
            f"--host {for_log(args.host)} is not a loopback address: the emulator would be reachable from other "
            "machines. Pass --allow-remote (with --api-key-env NAME) if that is what you want."
        )
    if args.allow_remote and remote and not args.api_key_env:
        parser.error("--allow-remote needs --api-key-env NAME: the environment variable holding the only key accepted")
    if args.api_key_env is None:
        return None
    key = os.environ.get(args.api_key_env, "").strip()
    if not key:
        parser.error(f"--api-key-env {for_log(args.api_key_env)}: that environment variable is unset or empty")
    return key


async def _run(args: argparse.Namespace, api_key: str | None) -> None:
    emulator = Emulator(
        host=args.host,
        port=args.port,
        tls=args.tls,
        cert_dir=args.cert_dir,
        time_scale=args.time_scale,
        mode=args.mode,
        db_path=args.db,
        context_window=args.context_window,
        connection_lifetime=args.connection_lifetime,
        go_away_before=args.go_away_before,
        resumption_update_interval=args.resumption_update_interval,
        text_frames=args.text_frames,
        compression=args.compression,
        chunk_delay=args.chunk_delay,
        retention=args.retention,
        resume_grace=args.resume_grace,
        vad_threshold=args.vad_threshold,
        consumed_limit=args.consumed_limit,
        keep_closed=args.keep_closed,
        keep_closed_bytes=int(args.keep_closed_mb * 2**20),
        allow_remote=args.allow_remote,
        api_key=api_key,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await emulator.start()
    print(f"live_nb emulator listening on {emulator.url}", flush=True)
    print(f"flavour on the bare URL: {FLAVOR_NAMES[emulator.mode]} (--mode)", flush=True)
    if emulator.cert_path:
        print(f"certificate: {emulator.cert_path}", flush=True)
    print(f"database: {emulator.db_path}", flush=True)
    if api_key is not None:
        print(f"only the key in ${args.api_key_env} is accepted", flush=True)
    if not is_loopback(emulator.host):
        print(remote_warning(emulator.url, args.api_key_env), file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await emulator.stop()
        emulator.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m live_nb.emulator`` and ``live-nb-emulator``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    api_key = _api_key(args, parser)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        with contextlib.suppress(KeyboardInterrupt):  # the signal handler normally catches it first
            asyncio.run(_run(args, api_key))
    except ConfigError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
