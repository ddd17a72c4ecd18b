"""The server side of one Live API connection, sans-I/O: the mirror image of ``ClientProtocol``.

Rule 1: every decision the service makes about a connection lives here: whether its setup is
admitted (parse, model, catalogue rules), whether a resume is admitted (handle, model, another
connection still open, retention), which checkpoint becomes which handle, and how each server
message is spelled on the wire for the path's flavour. The asyncio layer (server.py) owns the
socket, the clock and the timers; it tells this object what happened (``receive``, ``periodic``,
``send_go_away``, ``expire``, ``fail``, ``send_chunk``/``finish_reply`` for the paced reply) and
carries out what it says (``data_to_send``, ``events_received``).

Rule 2: nothing here awaits or reads a clock: every call that may store a checkpoint or check
retention takes ``now`` (``time.time()`` seconds) from the caller. Durable state goes through the
``SessionBook`` it is given (sessions.py; its SQLite calls are short synchronous transactions).

How a connection moves::

    AWAITING_SETUP --setup admitted, new or resumed--> OPEN --close (ours or the engine's)--> CLOSED
          |                                                                                   ^
          +--resume while another connection is open--> AWAITING_RESUME --retry_resume--------+
          +--setup refused (1007, 1008, ...)--------------------------------------------------+

Session logic (context window, VAD, replies, barge-in, when to checkpoint) is ``ServerEngine``'s
(engine.py): this object builds the engine once the setup is admitted, feeds it each message and
turns its actions into frames and events. Why two layers: the engine is the session's model (it
survives as ``SessionState`` across connections and is tested on its own), this is the connection's
protocol (frames in, frames out, admission, handles).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

from ..exceptions import ConfigError, InvalidState, ProtocolError
from ..protocol import _wire as w
from ..protocol import catalogue
from ..protocol.catalogue import bare_model_name
from ..protocol.content import Blob
from ..protocol.messages import (
    ClientMessage,
    GoAway,
    RealtimeInput,
    ServerMessage,
    SessionResumptionUpdate,
    Setup,
    UnknownMessage,
    UsageMetadata,
    encode_server_frame,
    parse_client_frame,
)
from .engine import (
    Action,
    Checkpoint,
    Close,
    EndListening,
    EngineSettings,
    Listen,
    ReplyPlan,
    Send,
    ServerEngine,
    Stream,
)
from .responder import Responder
from .sessions import EmulatorSession, SessionBook
from .store import Refusal, SessionRecord, Snapshot

__all__ = [
    "AWAITING_RESUME",
    "AWAITING_SETUP",
    "BAD_INPUT",
    "CLOSED",
    "OPEN",
    "Closing",
    "EndListening",
    "Listen",
    "Phase",
    "ReplyStarted",
    "ServerEvent",
    "ServerProtocol",
    "check_setup",
    "clip_reason",
    "for_log",
    "invalid_argument_detail",
    "parse_frame",
    "usage_to_wire",
]

EMPTY_FRAME_EVERY = 4
"""gemini-3.x sends empty ``{}`` frames between content messages (models.md section 2): so do we,
after every fourth reply chunk, so clients meet them in every reply."""
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: the close reason fits in a 125-byte control frame
MAX_MODEL_NAME_CHARS = 512
"""A setup naming a longer model is refused 1007 (the catalogue's ids are under 64 characters)."""
LOG_EXCERPT_CHARS = 120
"""How much of a wire value (model name, reason, path) reaches a log line."""
INTERNAL_ERROR = "Internal error encountered."
"""The service's reason for a failure on its side (close 1011)."""
INTERNAL_ERROR_CODE = 1011
DEADLINE_EXPIRED = "Deadline expired before operation could complete."
"""The service's reason when a connection's lifetime runs out (close 1011, after the GoAway)."""
STILL_OPEN = (
    "Internal error encountered: the session is still open on another connection; close it before resuming."
)
VERTEX_USAGE_NAMES = {"responseTokenCount": "candidatesTokenCount", "responseTokensDetails": "candidatesTokensDetails"}
"""Vertex spells the response side of usageMetadata after its candidates (live-protocol.md section 4)."""

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
Past that boundary (folding a parsed message into the session) an exception is a bug of ours: it
propagates to the asyncio layer, which logs its traceback and answers 1011 "Internal error encountered."."""


class Phase(enum.IntEnum):
    """Where a connection is (module docstring)."""

    AWAITING_SETUP = 0
    AWAITING_RESUME = 1
    OPEN = 2
    CLOSED = 3


AWAITING_SETUP = Phase.AWAITING_SETUP
AWAITING_RESUME = Phase.AWAITING_RESUME
OPEN = Phase.OPEN
CLOSED = Phase.CLOSED


@dataclass(frozen=True, slots=True)
class ReplyStarted:
    """A reply is ready: pace it with ``send_chunk`` (one chunk per interval), then ``finish_reply``."""

    plan: ReplyPlan


@dataclass(frozen=True, slots=True)
class Closing:
    """Close the connection with this code and reason, after writing the frames queued before it.

    ``reason`` is whole (``Emulator.refused`` keeps it); ``wire_reason`` fits a close frame.
    """

    code: int
    reason: str

    @property
    def wire_reason(self) -> str:
        """The reason cut to what a close frame can carry."""
        return clip_reason(self.reason)


ServerEvent = Union[ReplyStarted, Closing, Listen, EndListening]  # noqa: UP007 - a runtime alias, py3.10 target
"""``Listen``/``EndListening`` (offline speech on): feed audio to the session's recogniser off the
loop; after an ``EndListening`` (not ``discard``) call ``heard`` before feeding the next frame."""


# Admission rules and wire helpers (pure functions).


def check_setup(
    setup: Setup, flavor: str, api_version: str, models: frozenset[str] | None = None
) -> Close | None:
    """Refuse a setup the service would refuse, with the service's code and reason (catalogue rules).

    Args:
        setup: the parsed setup.
        flavor: ``gemini`` or ``vertex`` (which path the client dialled: decides the backend rules
            and the wording of a 1008).
        api_version: ``v1beta`` etc., quoted in the unknown-model reason as the service does.
        models: the model ids this emulator serves (a subset of the catalogue); None: every
            model of the catalogue (shut-down ones too: they are refused by rule, with their reason).
    """
    info = catalogue.lookup(setup.model)
    if info is None or (models is not None and info.id not in models):
        return Close(1008, catalogue.unknown_model_reason(setup.model, flavor, api_version))
    refusal = catalogue.check_setup(info, flavor, setup.config, setup.session_resumption, setup.model, api_version)
    if refusal is not None:
        return Close(refusal.code, refusal.reason)
    cwc = setup.config.context_window_compression
    if cwc is not None and cwc.sliding_window is None:
        return Close(1007, "Request contains an invalid argument: contextWindowCompression needs slidingWindow.")
    return None


def parse_frame(frame: str | bytes) -> ClientMessage:
    """Parse a client frame, with a fast path for the hot one: a realtime audio chunk.

    Why: an audio stream sends 10 chunks a second per user, and the benchmark thousands a second;
    the general parser walks every field in both casings (~50 us), while this reads the two
    fields of ``{"realtimeInput": {"audio": {"data", "mimeType"}}}`` directly (~15 us, most of it
    base64). Anything else (or anything unusual in this shape) goes to ``parse_client_frame``.

    Raises:
        RemoteProtocolError, ConfigError: as ``parse_client_frame``.
    """
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):
        return parse_client_frame(frame)  # raises the general parser's error (RemoteProtocolError)
    if isinstance(data, dict) and len(data) == 1:
        body = data.get("realtimeInput") or data.get("realtime_input")
        if isinstance(body, dict) and len(body) == 1:
            audio = body.get("audio")
            if isinstance(audio, dict) and len(audio) == 2:
                payload = audio.get("data")
                mime = audio.get("mimeType") or audio.get("mime_type")
                if isinstance(payload, str) and isinstance(mime, str):
                    return RealtimeInput(audio=Blob(w.b64decode(payload, "realtimeInput.audio.data"), mime))
    return parse_client_frame(frame)


def usage_to_wire(usage: UsageMetadata, flavor: str) -> dict[str, Any]:
    """usageMetadata as the path's flavour spells it (typed in, one dict out; no JSON round trip)."""
    wire = usage.to_wire()
    if flavor != "vertex":
        return wire
    return {VERTEX_USAGE_NAMES.get(name, name): value for name, value in wire.items()}


def encode_frame(message: ServerMessage, usage: UsageMetadata | None, flavor: str) -> bytes:
    """One server frame: the message, with usage riding along in the flavour's spelling."""
    if usage is None or flavor != "vertex" or isinstance(message, (UnknownMessage, UsageMetadata)):
        return encode_server_frame(message, usage)
    return w.dumps_bytes({message.KEY: message.to_wire(), "usageMetadata": usage_to_wire(usage, flavor)})


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


def _invalid(detail: str) -> str:
    return f"Request contains an invalid argument: {detail}"


class ServerProtocol:
    """The server side of one connection, without I/O (module docstring).

    Args:
        book: the emulator's sessions (new ones are made there, resumed ones found there).
        flavor: ``gemini`` or ``vertex``: the backend the dialled path stands for.
        api_version: the path's API version (quoted in an unknown-model reason).
        responder: the model.
        settings: emulator-wide engine knobs.
        models: model ids served (None: the whole catalogue).
        retention: service seconds a handle lives after its session's last connection ends.
        time_scale: divides service seconds into the caller's clock (``now``) seconds.
        text_frames: frames out as ``str`` (text frames) instead of ``bytes`` (binary frames).
    """

    def __init__(
        self,
        book: SessionBook,
        flavor: str,
        api_version: str,
        responder: Responder,
        settings: EngineSettings,
        models: frozenset[str] | None = None,
        retention: float | None = None,
        time_scale: float = 1.0,
        text_frames: bool = False,
    ) -> None:
        self.book = book
        self.flavor = flavor
        self.api_version = api_version
        self.responder = responder
        self.settings = settings
        self.models = models
        self.retention = catalogue.BACKEND_OFFERS[flavor].handle_retention_seconds if retention is None else retention
        """Service seconds a handle of this connection's session lives after its last connection."""
        self.time_scale = time_scale
        self.text_frames = text_frames
        self.phase = AWAITING_SETUP
        self.setup: Setup | None = None
        self.session: EmulatorSession | None = None
        """The session, once the setup is admitted (None while refused or waiting)."""
        self.engine: ServerEngine | None = None
        self.resumed = False
        self._waiting: Snapshot | None = None  # AWAITING_RESUME: the snapshot to resume
        self._out: list[str | bytes] = []
        self._events: list[ServerEvent] = []
        self._empty: str | bytes = "{}" if text_frames else b"{}"

    # Public methods for reading state.

    @property
    def closed(self) -> bool:
        """The connection is closing or closed (no more frames will be queued)."""
        return self.phase is CLOSED

    @property
    def has_output(self) -> bool:
        """Frames or events wait to be drained (cheap: the asyncio layer asks after every frame)."""
        return bool(self._out or self._events)

    @property
    def resume_blocked(self) -> bool:
        """A resume waits for the session's other connection to end (call ``retry_resume``)."""
        return self.phase is AWAITING_RESUME

    # Public methods for receiving.

    def receive(self, frame: str | bytes, now: float) -> None:
        """Feed one client frame: the setup first, then any client message.

        Input the service would refuse ends in a ``Closing`` event (1007 for what cannot be read,
        the catalogue's code for what a model or backend refuses), never an exception.

        Raises:
            InvalidState: a frame fed while a resume waits (``retry_resume`` first).
            Exception: anything else is a bug of ours (the caller answers 1011).
        """
        if self.phase is OPEN:
            engine = self.engine
            assert engine is not None and self.session is not None
            try:
                message = parse_frame(frame)
            except BAD_INPUT as exc:
                self._apply(engine.invalid_message(invalid_argument_detail(exc)), now)
                return
            self._apply(engine.receive(message), now)
            self.book.trim(self.session)
        elif self.phase is AWAITING_SETUP:
            self._receive_setup(frame, now)
        elif self.phase is AWAITING_RESUME:
            raise InvalidState("a resume is waiting for the session's other connection: call retry_resume first")

    def retry_resume(self, now: float, give_up: bool = False) -> None:
        """Check again whether the session's other connection ended; with ``give_up``, refuse 1011 if not.

        Why the caller waits and retries: a connection that is going away may still be closing when
        its client resumes on a new one (the asyncio layer gives it ``resume_grace`` wall seconds).
        """
        if self.phase is not AWAITING_RESUME:
            return
        snapshot = self._waiting
        assert snapshot is not None
        record = self.book.record(snapshot.session_id)
        if record is None:  # pragma: no cover - a snapshot always has a session row
            return self._refuse(1008, "BidiGenerateContent session not found")
        if record.open_connections > 0:
            if give_up:
                self._refuse(1011, STILL_OPEN)
            return
        self._finish_resume(snapshot, record, now)

    def events_received(self) -> list[ServerEvent]:
        """Drain what the asyncio layer must act on besides writing frames (a reply to pace, a close)."""
        out, self._events = self._events, []
        return out

    # Public methods for sending.

    def data_to_send(self) -> list[str | bytes]:
        """Drain the frames to write, in order."""
        out, self._out = self._out, []
        return out

    def send_chunk(self, plan: ReplyPlan) -> bool:
        """Queue the reply's next chunk (and the model's empty frame habit).

        Returns:
            False when there is nothing more to send: the reply was interrupted, ended, or the
            connection is closing.
        """
        engine = self.engine
        if engine is None or self.phase is not OPEN or engine.closed or plan.cancelled or plan.sent >= len(plan.chunks):
            return False
        number = plan.sent
        self._out.append(self._encode(plan.chunks[number]))
        engine.chunk_sent(plan)
        info = engine.info
        if info is not None and info.empty_frames and number % EMPTY_FRAME_EVERY == EMPTY_FRAME_EVERY - 1:
            self._out.append(self._empty)
        return True

    def voice(self, plan: ReplyPlan, pieces: Sequence[tuple[bytes, str]]) -> None:
        """A sentence of ``plan`` was synthesised: its chunks (24 kHz PCM16, words started in each) join the plan."""
        if self.engine is not None and self.phase is OPEN:
            self.engine.voice(plan, pieces)

    def partial(self, turn: int, text: str, now: float) -> None:
        """The recogniser's partial text for listening turn ``turn`` (maybe an ``inputTranscription`` piece)."""
        if self.engine is not None and self.phase is OPEN:
            self._apply(self.engine.partial(turn, text), now)

    def heard(self, text: str, now: float) -> None:
        """The recogniser's final text for the spoken turn that ended (``EndListening``): the reply starts."""
        if self.engine is not None and self.phase is OPEN:
            self._apply(self.engine.heard(text), now)
            if self.session is not None:
                self.book.trim(self.session)

    def finish_reply(self, plan: ReplyPlan, now: float) -> None:
        """The reply's chunks all went out: ``generationComplete``, ``turnComplete`` with usage, a handle."""
        if self.engine is not None and self.phase is OPEN:
            self._apply(self.engine.finish_reply(plan), now)

    def periodic(self, now: float) -> None:
        """A periodic resumption update (every ``resumption_update_interval``): a handle if anything new came."""
        if self.engine is not None and self.phase is OPEN:
            self._apply(self.engine.periodic(), now)

    def send_go_away(self, time_left: float, now: float) -> None:
        """A fresh handle first (when there is a resumable point), then ``goAway`` with ``time_left`` (wire seconds)."""
        if self.engine is None or self.phase is not OPEN:
            return
        self._apply(self.engine.periodic(), now)
        if self.phase is OPEN:
            self._out.append(self._encode(GoAway(time_left=time_left)))

    def expire(self) -> None:
        """The connection's lifetime ran out: close 1011 as the service does."""
        self.fail(INTERNAL_ERROR_CODE, DEADLINE_EXPIRED)

    def fail(self, code: int = INTERNAL_ERROR_CODE, reason: str = INTERNAL_ERROR) -> None:
        """Close from our side (a deadline, a bug of ours): the engine stops, a ``Closing`` event follows."""
        if self.engine is not None:
            self.engine.closed = True
        self._refuse(code, reason)

    # Private methods: admission.

    def _refuse(self, code: int, reason: str) -> None:
        if self.phase is CLOSED:
            return
        self.phase = CLOSED
        self._events.append(Closing(code, reason))

    def _receive_setup(self, frame: str | bytes, now: float) -> None:
        # Everything up to the engine's construction reads client input: whatever it raises is a 1007.
        try:
            setup = parse_client_frame(frame)
            if not isinstance(setup, Setup):
                return self._refuse(1007, _invalid("the first message must be setup."))
            if len(setup.model) > MAX_MODEL_NAME_CHARS:
                return self._refuse(
                    1007, _invalid(f"setup.model is too long ({len(setup.model)} characters; model names are "
                                   f"under {MAX_MODEL_NAME_CHARS})."),
                )
            refusal = check_setup(setup, self.flavor, self.api_version, self.models)
        except BAD_INPUT as exc:
            return self._refuse(1007, _invalid(invalid_argument_detail(exc)))
        if refusal is not None:
            return self._refuse(refusal.code, refusal.reason)
        self.setup = setup
        model = bare_model_name(setup.model)
        resumption = setup.session_resumption
        if resumption is None or not resumption.handle:
            return self._start(self.book.open_new(model, now), resumed=False, now=now)
        snapshot = self.book.load_snapshot(resumption.handle)
        if isinstance(snapshot, Refusal):
            return self._refuse(snapshot.code, snapshot.reason)
        record = self.book.record(snapshot.session_id)
        if record is None:  # pragma: no cover - a snapshot always has a session row
            return self._refuse(1008, "BidiGenerateContent session not found")
        if snapshot.state.get("model") != model:
            return self._refuse(
                1007, _invalid(f"the model cannot change on resume (session uses {snapshot.state.get('model')}, "
                               f"setup asks for {model})."),
            )
        if record.open_connections > 0:
            self.phase = AWAITING_RESUME
            self._waiting = snapshot
            return None
        return self._finish_resume(snapshot, record, now)

    def _finish_resume(self, snapshot: Snapshot, record: SessionRecord, now: float) -> None:
        self._waiting = None
        if record.last_end is not None and now - record.last_end > self.retention / self.time_scale:
            return self._refuse(
                1008,
                f"BidiGenerateContent session not found: the resumption handle expired "
                f"({self.retention / 3600:g} h after the session's last connection).",
            )
        self._start(self.book.attach(snapshot), resumed=True, now=now)

    def _start(self, session: EmulatorSession, resumed: bool, now: float) -> None:
        assert self.setup is not None
        try:
            engine = ServerEngine(
                self.setup, session.state, session.consumed, self.responder, self.settings,
                resumed=resumed, flavor=self.flavor,
            )
        except BaseException as exc:
            self.book.abandon(session, resumed, now)
            if not isinstance(exc, BAD_INPUT):
                raise
            return self._refuse(1007, _invalid(invalid_argument_detail(exc)))
        self.session, self.engine, self.resumed = session, engine, resumed
        self.phase = OPEN
        self._apply(engine.start(), now)

    # Private methods: actions into frames.

    def _apply(self, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._out.append(self._encode(action.message, action.usage))
            elif isinstance(action, Stream):
                self._events.append(ReplyStarted(action.plan))
            elif isinstance(action, (Listen, EndListening)):
                self._events.append(action)
            elif isinstance(action, Checkpoint):
                assert self.session is not None
                handle = self.book.save_snapshot(self.session, dict(action.state), now)
                update = SessionResumptionUpdate(
                    new_handle=handle, resumable=True, last_consumed_client_message_index=action.index
                )
                self._out.append(self._encode(update))
            elif isinstance(action, Close):
                self._refuse(action.code, action.reason)
                return

    def _encode(self, message: ServerMessage, usage: UsageMetadata | None = None) -> str | bytes:
        frame = encode_frame(message, usage, self.flavor)
        return frame.decode("utf-8") if self.text_frames else frame
