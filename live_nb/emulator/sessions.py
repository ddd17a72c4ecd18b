"""The emulator's sessions across connections: the ones in memory and their durable state.

One job: keep track of sessions. ``SessionBook`` creates a session, finds the snapshot behind a
handle, brings a resumed session back into memory, stores a checkpoint and returns its handle, and
lets a session go from memory once its last connection closed (its resumable state stays in the
``Store``). It makes no protocol decisions: whether a setup or a resume is admitted is decided by
``ServerProtocol`` (server_protocol.py), which calls the book; the asyncio layer (server.py) calls
it only when a connection ends.

Rules: nothing here awaits, reads a clock (times come from the caller) or touches a socket. Its
store is a short synchronous SQLite transaction per call (store.py), as before this module existed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from ..protocol.messages import ClientMessage, UsageMetadata
from .engine import ServerEngine, SessionState
from .responder import Turn
from .store import Refusal, SessionRecord, Snapshot, Store, new_session_id

__all__ = ["Attached", "EmulatorSession", "SessionBook"]


class Attached(Protocol):
    """What a session knows of a connection attached to it (the asyncio layer's connection object)."""

    @property
    def engine(self) -> ServerEngine | None:
        """The connection's engine (None before its setup was admitted)."""
        ...


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
        connections: the connections attached now (the asyncio layer's objects).
    """

    def __init__(self, state: SessionState, consumed_offset: int = 0) -> None:
        self.hearing_cmn: str | None = None
        """The channel mean the session's recogniser left (offline speech): a resumed connection's
        recogniser starts from it. Memory only: a session restored from the database starts afresh."""
        self.session_id = state.session_id
        self.model = state.model
        self.state = state
        self.consumed: list[ClientMessage] = []
        self.consumed_offset = consumed_offset
        self._cut: list[ClientMessage] = []
        self._cut_at = -1
        self.handles: list[str] = []
        self.connections: list[Attached] = []
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
        """Set the log to the first ``count`` messages (a resume restored that snapshot).

        Usually a cut. But a client may resume from an older handle and then, once a newer one
        reaches it late (read from the old connection's buffer after it started reconnecting),
        from the newer one: that snapshot holds messages the first resume cut from the log. They
        come back from ``_cut`` (the tail the last cut removed), so the log keeps matching the state.
        """
        have = self.consumed_offset + len(self.consumed)
        if count < self.consumed_offset:
            self.consumed.clear()
            self.consumed_offset = count
            self._cut, self._cut_at = [], count
        elif count <= have:
            tail = self.consumed[count - self.consumed_offset :]
            if tail:
                self._cut, self._cut_at = tail, count
                del self.consumed[count - self.consumed_offset :]
        elif self._cut_at == have and len(self._cut) >= count - have:
            self.consumed.extend(self._cut[: count - have])

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
        engine = self.connections[-1].engine if self.connections else None
        return engine.last_usage if engine is not None else None

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
    if dataclasses.is_dataclass(value):  # the typed messages
        return 16 + sum(_payload_bytes(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    return 16


class SessionBook:
    """Every session of one emulator: ``sessions`` in memory, the rest in its ``Store``.

    Args:
        keep_closed: how many sessions whose last connection closed stay in ``sessions``.
        keep_closed_bytes: also release the oldest closed sessions while their consumed logs hold
            more than this many bytes.
        consumed_limit: keep about this many messages in each session's ``consumed`` log (None: all).
    """

    def __init__(self, keep_closed: int = 16, keep_closed_bytes: int = 16 * 2**20, consumed_limit: int | None = None):
        self.keep_closed = keep_closed
        self.keep_closed_bytes = keep_closed_bytes
        self.consumed_limit = consumed_limit
        self.sessions: dict[str, EmulatorSession] = {}
        """Sessions by id: every one with an open connection, plus the most recently closed ones."""
        self.store: Store | None = None
        """The durable half (set by the asyncio layer while the emulator runs)."""
        self._closed: dict[str, int] = {}  # closed sessions still in ``sessions``, oldest first: id -> payload bytes

    def _db(self) -> Store:
        if self.store is None:
            raise RuntimeError("the emulator's store is not open (start the emulator first)")
        return self.store

    # Opening and resuming.

    def open_new(self, model: str, now: float) -> EmulatorSession:
        """Create a session (in memory and in the store, with one open connection)."""
        state = SessionState(session_id=new_session_id(), model=model)
        self._db().create_session(state.session_id, model, now)
        session = EmulatorSession(state)
        self.sessions[state.session_id] = session
        return session

    def load_snapshot(self, handle: str) -> Snapshot | Refusal:
        """The snapshot a handle names, or the store's refusal (forged, unknown, malformed)."""
        return self._db().load_snapshot(handle)

    def record(self, session_id: str) -> SessionRecord | None:
        """The session's durable row (open connections, when the last one ended)."""
        return self._db().session(session_id)

    def attach(self, snapshot: Snapshot) -> EmulatorSession:
        """Bring a resumed session into memory at its snapshot's state, counting one more connection."""
        state = SessionState.from_json(snapshot.state)
        session = self.sessions.get(snapshot.session_id)
        if session is None:
            session = EmulatorSession(state, consumed_offset=state.consumed_count)
            self.sessions[state.session_id] = session
        self._closed.pop(session.session_id, None)  # open again: no longer a candidate for release
        session.state = state
        session.restore_consumed(state.consumed_count)
        session.resumes += 1
        self._db().connection_opened(state.session_id)
        return session

    def save_snapshot(self, session: EmulatorSession, state: dict[str, Any], now: float) -> str:
        """Store a checkpoint of the session; returns the handle that names it."""
        handle = self._db().save_snapshot(session.session_id, state, now)
        session.handles.append(handle)
        return handle

    def trim(self, session: EmulatorSession) -> None:
        """Apply ``consumed_limit`` to the session's log (after each message)."""
        if self.consumed_limit is not None:
            session.trim_consumed(self.consumed_limit)

    # Closing.

    def abandon(self, session: EmulatorSession, resumed: bool, now: float) -> None:
        """Undo an opening whose setup could not be used, before the connection started.

        A new session leaves no trace (its row had no snapshot yet); a resumed one counts the
        connection as ended, so the store never keeps it marked open.
        """
        if self.store is not None:
            if resumed:
                self.store.connection_closed(session.session_id, now)
            else:
                self.store.forget_session(session.session_id)
        if session.connections:
            return
        if resumed:
            self.retire(session)
        else:
            self.sessions.pop(session.session_id, None)

    def connection_closed(self, session: EmulatorSession, connection: Attached | None, now: float) -> None:
        """A connection of the session ended: count it in the store; retire the session if it was the last."""
        if connection is not None and connection in session.connections:
            session.connections.remove(connection)
        if self.store is not None:
            self.store.connection_closed(session.session_id, now)
        if not session.connections:
            self.retire(session)

    def retire(self, session: EmulatorSession) -> None:
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
