"""Client session state, sans-I/O: message indexes, replay buffer, handle, GoAway deadline.

Rule 1: everything that changes the client's connection state lives in this file, in
``TRANSITIONS``. The asyncio layer (``live_nb/client/session.py``) owns sockets, tasks and
clocks; it tells this object what happened (``send_*``, ``receive``, ``connection_made``,
``connection_lost``, ``close``) and carries out what it says (``data_to_send``,
``events_received``, ``go_away_deadline``).

Rule 2: nothing here reads a clock or awaits. ``receive(frame, now)`` takes the time from the
caller, so a GoAway deadline is ``now + timeLeft`` on whatever clock the caller uses.

How a session moves (one ``ClientProtocol`` per *session*, across all its connections)::

    CONNECTING --setup sent--> SETUP_SENT --setupComplete--> ACTIVE --goAway--> GOING_AWAY
        ^                          |                           |                    |
        +------- connection_made --+---- connection_lost ------+--------------------+--> DISCONNECTED
                                                                                          |
    any state --close()--> CLOSED                                  connection_made -------+

Message indexes (live-protocol.md section 8): ``setup`` is index 0 of every connection, the first
message after it is 1, and indexes restart on each new connection. The server's
``lastConsumedClientMessageIndex`` names the last message *of the current connection* folded into
the state behind the handle it comes with.

The replay buffer (transparent mode only) holds every client message the server has not yet
confirmed as consumed, in order. It is trimmed whenever a resumable update arrives. On a new
connection every buffered message is re-sent, in order, right after ``setupComplete`` and before
anything sent later. Messages sent while no connection is active wait in the same buffer (in both
modes) and go out after the replay.

The bound: the buffer holds at most ``max_replay_bytes`` of frames. Past it, the oldest message
is dropped (sent messages always come before those still waiting for a connection, so a message
never sent is dropped only when nothing sent is left; it is then certainly lost). A dropped sent
message is *possibly lost*: if a later ``lastConsumedClientMessageIndex`` covers it, the server
had it after all and it is forgotten; otherwise it is counted in the next
``Resumed.possibly_lost``. ``dropped_total`` counts every drop for the curious.

Without transparent mode the server says nothing about which messages it kept. The honest count
of what may be lost after a resume is then every message sent on the old connection since the
last resumable handle arrived.

What a server may not do to us (defence in depth; the parser in ``messages.py`` refuses most of it
first, but this object is also fed messages built in code):
- A GoAway's ``timeLeft`` becomes a deadline and a timer. NaN, infinite, negative or longer than
  a connection's whole life (``CONNECTION_LIFETIME_SECONDS``) is clamped into 0 .. that lifetime:
  NaN and negatives to 0 (the server is leaving; move now), the rest to the lifetime (no
  connection outlives it). ``go_away_clamped_from`` keeps the server's value for the log. Why
  clamp and not refuse: the GoAway still says something true (this connection is ending), and
  moving early loses nothing.
- A resumption handle goes back in every resume's ``setup`` and is shown by the dashboard; one
  longer than ``MAX_HANDLE_CHARS`` is refused (``RemoteProtocolError``) rather than kept.

``progress`` counts what the session gained (new handles, newer consumed indexes, completed
turns); the asyncio layer compares it across a connection to tell a useful connection from one a
broken server ended at once (``reconnect.AttemptBudget``).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import InvalidState, LocalProtocolError, RemoteProtocolError
from .audio import INPUT_AUDIO_MIME
from .config import CONNECTION_LIFETIME_SECONDS, LiveGenerationConfig, SessionResumptionConfig
from .content import Blob, Content, FunctionResponse, as_turns
from .messages import (
    ActivityEnd,
    ActivityStart,
    AudioStreamEnd,
    ClientContent,
    ClientMessage,
    ContextUpdate,
    GoAway,
    RealtimeInput,
    ServerContent,
    ServerMessage,
    SessionResumptionUpdate,
    Setup,
    SetupComplete,
    ToolCall,
    ToolResponse,
    encode_client_frame,
    encode_realtime_audio,
    excerpt,
    parse_server_frame,
)

__all__ = [
    "ACTIVE",
    "CLOSED",
    "CONNECTING",
    "DEFAULT_MAX_REPLAY_BYTES",
    "DISCONNECTED",
    "GOING_AWAY",
    "MAX_HANDLE_CHARS",
    "SETUP_SENT",
    "ClientProtocol",
    "ResumeReport",
    "State",
]

DEFAULT_MAX_REPLAY_BYTES = 16 * 1024 * 1024
"""16 MiB: about six minutes of 16 kHz audio as base64 JSON; the server confirms far more often."""

MAX_HANDLE_CHARS = 64 * 1024
"""Longest resumption handle accepted. Real handles are short ids (well under a kilobyte); this one
is sent back in every resume's setup and shown live by the dashboard, so a megabyte one is a broken
server, not a session to keep."""

MAX_GO_AWAY_SECONDS = CONNECTION_LIFETIME_SECONDS
"""Longest ``timeLeft`` a GoAway may promise: a connection's whole life (about 10 minutes)."""


class State(enum.IntEnum):
    """Where the session is. Public names match ``LiveSession.state`` via ``public_name``."""

    CONNECTING = 0
    SETUP_SENT = 1
    ACTIVE = 2
    GOING_AWAY = 3
    DISCONNECTED = 4
    CLOSED = 5

    @property
    def public_name(self) -> str:
        """The name ``LiveSession.state`` shows (architecture.md)."""
        return _PUBLIC_NAMES[self]


CONNECTING = State.CONNECTING
SETUP_SENT = State.SETUP_SENT
ACTIVE = State.ACTIVE
GOING_AWAY = State.GOING_AWAY
DISCONNECTED = State.DISCONNECTED
CLOSED = State.CLOSED

_PUBLIC_NAMES = {
    CONNECTING: "connecting",
    SETUP_SENT: "connecting",
    ACTIVE: "active",
    GOING_AWAY: "going_away",
    DISCONNECTED: "reconnecting",
    CLOSED: "closed",
}


class _Trigger(enum.Enum):
    SEND_SETUP = "send_setup"
    SETUP_COMPLETE = "setup_complete"
    GO_AWAY = "go_away"
    CONNECTION_LOST = "connection_lost"
    CONNECTION_MADE = "connection_made"
    CLOSE = "close"


# Every transition of the client state machine (Rule 1). A trigger missing for a state is an error,
# except CLOSE, which is allowed (and idempotent) everywhere.
TRANSITIONS: Mapping[State, Mapping[_Trigger, State]] = {
    CONNECTING: {_Trigger.SEND_SETUP: SETUP_SENT, _Trigger.CONNECTION_LOST: DISCONNECTED},
    SETUP_SENT: {_Trigger.SETUP_COMPLETE: ACTIVE, _Trigger.CONNECTION_LOST: DISCONNECTED},
    ACTIVE: {_Trigger.GO_AWAY: GOING_AWAY, _Trigger.CONNECTION_LOST: DISCONNECTED},
    GOING_AWAY: {_Trigger.GO_AWAY: GOING_AWAY, _Trigger.CONNECTION_LOST: DISCONNECTED},
    DISCONNECTED: {_Trigger.CONNECTION_MADE: CONNECTING, _Trigger.CONNECTION_LOST: DISCONNECTED},
    CLOSED: {},
}


@dataclass(frozen=True, slots=True)
class ResumeReport:
    """What happened to the client's messages across one resume (becomes ``events.Resumed``)."""

    state_restored: bool
    replayed: int
    possibly_lost: int


class _Entry:
    """One buffered client message. Mutable on purpose: its index changes on each connection."""

    __slots__ = ("frame", "index", "sent_before", "size")

    def __init__(self, frame: str, index: int | None) -> None:
        self.frame = frame
        self.size = len(frame)
        self.index = index  # index on the current connection; None = not sent on it yet
        self.sent_before = index is not None  # went out on some connection at least once


class ClientProtocol:
    """The client side of one Live session, across its connections, without I/O.

    Args:
        model: the full model name as the backend wants it (``models/...``).
        config: the connection config carried by every ``setup``.
        resumption: ``SessionResumptionConfig`` to ask for handle updates (``transparent=True``
            for ``lastConsumedClientMessageIndex`` and replay), or None for a plain session.
        max_replay_bytes: the bound of the replay buffer (see the module docstring).
    """

    def __init__(
        self,
        model: str,
        config: LiveGenerationConfig,
        resumption: SessionResumptionConfig | None = None,
        max_replay_bytes: int = DEFAULT_MAX_REPLAY_BYTES,
    ) -> None:
        if max_replay_bytes <= 0:
            raise LocalProtocolError("max_replay_bytes must be positive")
        self.model = model
        self.config = config
        self.resumption = resumption
        self.transparent = bool(resumption and resumption.transparent)
        self.max_replay_bytes = max_replay_bytes
        self.state = CONNECTING

        # Resumption facts (Rule 5 of style.md: protocol state, not UI state).
        self.handle: str | None = resumption.handle if resumption else None
        """The latest resumable handle; what the next connection resumes with."""
        self.resumable = False
        """The server's latest word: can the session be resumed right now?"""
        self.last_consumed_index: int | None = None
        """The server's latest ``lastConsumedClientMessageIndex`` on the current connection."""
        self.go_away_deadline: float | None = None
        """``now + timeLeft`` of the latest GoAway, on the caller's clock; None without one."""
        self.go_away_time_left: float | None = None
        self.go_away_clamped_from: float | None = None
        """The server's ``timeLeft`` when it was out of range and clamped (module docstring), else None."""
        self.progress = 0
        """New handles, newer consumed indexes and completed turns received so far (all connections)."""
        self.session_id: str | None = None
        self.connections = 0
        """Connections opened so far (setup sent), this one included."""
        self.generating = False
        """A turn was requested or output is streaming and no turnComplete has come yet."""
        self.handle_after_turn = True
        """The latest handle arrived after the last turn ended (a clean point to move connections)."""

        # Per-connection counters.
        self.index = 0
        """Index of the last client message sent on the current connection (setup = 0)."""
        self.resumed_with_handle = False
        self._sent_since_handle = 0

        # Replay buffer (transparent) / pending queue (both modes).
        self._buffer: deque[_Entry] = deque()
        self._buffer_bytes = 0
        self._dropped: deque[int] = deque()  # indexes (current connection) of dropped, unconfirmed entries
        self._lost_pending = 0  # counted at connection loss, reported by the next resume
        self.dropped_total = 0

        self._out: list[str] = []
        self._events: list[ServerMessage] = []
        self._last_report: ResumeReport | None = None

    # Public methods for reading state.

    @property
    def replay_depth(self) -> int:
        """Messages in the buffer (sent but unconfirmed, plus waiting to be sent)."""
        return len(self._buffer)

    @property
    def replay_bytes(self) -> int:
        """Bytes of frames in the buffer."""
        return self._buffer_bytes

    @property
    def can_send_now(self) -> bool:
        """Whether a send goes straight out (else it waits in the buffer for the next connection)."""
        return self.state is ACTIVE or self.state is GOING_AWAY

    @property
    def at_clean_point(self) -> bool:
        """No turn in flight and the handle is newer than the last turn: a move loses nothing."""
        return not self.generating and self.handle_after_turn and self.resumable

    def resume_report(self) -> ResumeReport | None:
        """The report of the latest ``setupComplete`` on a connection after the first, else None."""
        return self._last_report

    # Public methods for connection lifecycle.

    def send_setup(self) -> None:
        """Queue the ``setup`` message (index 0) for a new connection.

        The setup resumes ``self.handle`` when there is one; the caller may replace the handle
        first (``resume_session``).

        Raises:
            InvalidState: not in CONNECTING (call ``connection_made`` after a loss first).
        """
        self._transition(_Trigger.SEND_SETUP)
        self.connections += 1
        self.index = 0
        self.last_consumed_index = None
        self.go_away_deadline = None
        self.go_away_time_left = None
        self.resumable = False
        self.resumed_with_handle = bool(self.handle)
        resumption = None
        if self.resumption is not None:
            resumption = SessionResumptionConfig(handle=self.handle, transparent=self.resumption.transparent)
        self._out.append(encode_client_frame(Setup(self.model, self.config, resumption)))

    def connection_made(self) -> None:
        """A new connection is about to be opened after a loss (DISCONNECTED -> CONNECTING)."""
        self._transition(_Trigger.CONNECTION_MADE)

    def connection_lost(self) -> None:
        """The current connection is gone (dropped, closed, or left after a GoAway).

        Every buffered message becomes "not sent on the current connection", so the next
        ``setupComplete`` replays it. In plain mode, what was sent since the last handle is
        counted as possibly lost.
        """
        if self.state is CLOSED:
            return
        was_open = self.state is not DISCONNECTED
        self._transition(_Trigger.CONNECTION_LOST)
        if not was_open:
            return
        self._out.clear()  # frames not yet written are still in the buffer (or were never owed)
        if self.transparent:
            self._lost_pending += len(self._dropped)
        else:
            self._lost_pending += self._sent_since_handle
        self._dropped.clear()
        self._sent_since_handle = 0
        for entry in self._buffer:
            entry.index = None
        self.go_away_deadline = None
        self.generating = False

    def close(self) -> None:
        """The session ends for good; later sends raise InvalidState."""
        self.state = CLOSED
        self._out.clear()

    def set_handle(self, handle: str | None) -> None:
        """Resume with ``handle`` on the next connection (``resume_session``, or a stored handle)."""
        self.handle = handle or None
        self.handle_after_turn = True

    # Public methods for sending.

    def send_content(
        self,
        turns: Content | Mapping[str, Any] | str | Sequence[Content | Mapping[str, Any] | str],
        turn_complete: bool = True,
    ) -> None:
        """Queue a ``clientContent`` message (turns appended to the conversation)."""
        content = ClientContent(as_turns(turns), turn_complete)
        if turn_complete:
            self.generating = True
            self.handle_after_turn = False
        self._send(encode_client_frame(content))

    def send_message(self, message: ClientMessage) -> None:
        """Queue any client message except ``setup`` (which ``send_setup`` owns)."""
        if isinstance(message, Setup):
            raise LocalProtocolError("setup is sent by send_setup(), once per connection")
        if isinstance(message, ClientContent) and message.turn_complete:
            self.generating = True
            self.handle_after_turn = False
        self._send(encode_client_frame(message))

    def send_audio(self, pcm: bytes, mime_type: str = INPUT_AUDIO_MIME) -> None:
        """Queue one realtime audio chunk (the lean path: one string build, no dataclass)."""
        self._send(encode_realtime_audio(pcm, mime_type))

    def send_video(self, jpeg: bytes, mime_type: str = "image/jpeg") -> None:
        """Queue one video frame."""
        self._send(encode_client_frame(RealtimeInput(video=Blob(jpeg, mime_type))))

    def send_realtime_text(self, text: str) -> None:
        """Queue realtime text (``realtimeInput.text``)."""
        self._send(encode_client_frame(RealtimeInput(text=text)))

    def send_activity_start(self) -> None:
        """Queue ``activityStart`` (manual activity detection)."""
        self._send(encode_client_frame(ActivityStart))

    def send_activity_end(self) -> None:
        """Queue ``activityEnd`` (manual activity detection)."""
        self._send(encode_client_frame(ActivityEnd))

    def send_audio_stream_end(self) -> None:
        """Queue ``audioStreamEnd`` (automatic activity detection)."""
        self._send(encode_client_frame(AudioStreamEnd))

    def send_tool_response(self, responses: Sequence[FunctionResponse]) -> None:
        """Queue answers to function calls."""
        self.generating = True
        self.handle_after_turn = False
        self._send(encode_client_frame(ToolResponse(tuple(responses))))

    def send_context_update(self, system_instruction: Content | None = None) -> None:
        """Queue a ``contextUpdate`` message."""
        self._send(encode_client_frame(ContextUpdate(system_instruction=system_instruction)))

    def data_to_send(self) -> list[str]:
        """Drain the frames to write, in order."""
        out, self._out = self._out, []
        return out

    # Public methods for receiving.

    def receive(self, frame: str | bytes, now: float) -> list[ServerMessage]:
        """Feed one server frame; returns its messages (also kept for ``events_received``).

        Args:
            frame: the frame as received (text or binary).
            now: the caller's clock, used for the GoAway deadline.

        Raises:
            RemoteProtocolError: the frame is not a valid server message.
        """
        try:
            messages = parse_server_frame(frame)
        except RemoteProtocolError as exc:
            # Field errors carry the bad value; the caller also wants to see the frame it came in.
            shown = excerpt(frame)
            if exc.excerpt == shown:
                raise
            reason = f"{exc.reason} (got {exc.excerpt})" if exc.excerpt else exc.reason
            raise RemoteProtocolError(reason, shown) from None
        except RecursionError:  # a parser without a nesting bound, fed a deeply nested frame
            raise RemoteProtocolError("the frame nests too deeply to parse", excerpt(frame)) from None
        # Check the whole frame before any of it changes state.
        for i, message in enumerate(messages):
            if isinstance(message, SessionResumptionUpdate):
                _check_handle(message)
            elif isinstance(message, GoAway):
                messages[i] = self._bounded_go_away(message)
        for message in messages:
            self._process(message, now)
        self._events.extend(messages)
        return messages

    def events_received(self) -> list[ServerMessage]:
        """Drain the server messages received since the last call."""
        out, self._events = self._events, []
        return out

    # Private methods.

    def _transition(self, trigger: _Trigger) -> None:
        new = TRANSITIONS[self.state].get(trigger)
        if new is None:
            if self.state is CLOSED:
                raise InvalidState("the session is closed")
            raise InvalidState(f"cannot {trigger.value} in state {self.state.name}")
        self.state = new

    def _send(self, frame: str) -> None:
        state = self.state
        if state is ACTIVE or state is GOING_AWAY:
            self.index += 1
            self._out.append(frame)
            if self.transparent:
                self._append(_Entry(frame, self.index))
            else:
                self._sent_since_handle += 1
        elif state is CLOSED:
            raise InvalidState("cannot send: the session is closed (open a new one, or resume it with its handle)")
        else:
            # No open connection: wait for the next one, after the replay.
            self._append(_Entry(frame, None))

    def _append(self, entry: _Entry) -> None:
        self._buffer.append(entry)
        self._buffer_bytes += entry.size
        while self._buffer_bytes > self.max_replay_bytes and len(self._buffer) > 1:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        # Messages sent on this connection always precede those waiting for one (a connection
        # sends everything buffered), so the oldest is a sent one whenever any is: the server
        # may still have it, and a later lastConsumedClientMessageIndex can clear it.
        entry = self._buffer.popleft()
        if entry.index is not None:
            self._dropped.append(entry.index)
        else:
            self._lost_pending += 1  # never reached any server: certainly lost
        self._buffer_bytes -= entry.size
        self.dropped_total += 1

    def _bounded_go_away(self, message: GoAway) -> GoAway:
        """The GoAway with its ``timeLeft`` clamped (module docstring); notes the server's value if changed."""
        left = message.time_left
        bounded = _bounded_time_left(left)
        self.go_away_clamped_from = None if bounded == left else left  # NaN != NaN: noted too
        return message if self.go_away_clamped_from is None else GoAway(time_left=bounded)

    def _process(self, message: ServerMessage, now: float) -> None:
        if isinstance(message, SetupComplete):
            self._setup_complete(message)
        elif isinstance(message, ServerContent):
            if message.turn_complete:
                self.progress += 1
                self.generating = False
            elif message.model_turn is not None:
                self.generating = True
                self.handle_after_turn = False
        elif isinstance(message, ToolCall):
            self.generating = True
            self.handle_after_turn = False
        elif isinstance(message, SessionResumptionUpdate):
            self._resumption_update(message)
        elif isinstance(message, GoAway):
            if self.state is ACTIVE or self.state is GOING_AWAY:
                self._transition(_Trigger.GO_AWAY)
            left = _bounded_time_left(message.time_left)  # again: a GoAway built in code skips receive()
            self.go_away_time_left = left
            deadline = None if left is None else now + left
            self.go_away_deadline = deadline if deadline is None or math.isfinite(deadline) else None

    def _setup_complete(self, message: SetupComplete) -> None:
        if self.state is not SETUP_SENT:
            return  # a stray duplicate; harmless
        self._transition(_Trigger.SETUP_COMPLETE)
        self.session_id = message.session_id or self.session_id
        # Replay, in order, everything the server has not confirmed; then what waited for us.
        replayed = 0
        for entry in self._buffer:
            self.index += 1
            entry.index = self.index
            if entry.sent_before:
                replayed += 1
            entry.sent_before = True
            self._out.append(entry.frame)
        if not self.transparent:
            self._sent_since_handle = len(self._buffer)
            self._buffer.clear()
            self._buffer_bytes = 0
        if self.connections > 1:
            self._last_report = ResumeReport(
                state_restored=self.resumed_with_handle, replayed=replayed, possibly_lost=self._lost_pending
            )
            self._lost_pending = 0

    def _resumption_update(self, update: SessionResumptionUpdate) -> None:
        self.resumable = update.resumable
        if not (update.resumable and update.new_handle):
            return
        if update.new_handle != self.handle:
            self.progress += 1
        self.handle = update.new_handle
        self.handle_after_turn = not self.generating
        self._sent_since_handle = 0
        lci = update.last_consumed_client_message_index
        if lci is None:
            return
        if lci > (self.last_consumed_index or 0):
            self.progress += 1
        self.last_consumed_index = lci
        # Trim what the snapshot behind this handle already holds.
        buffer = self._buffer
        while buffer and buffer[0].index is not None and buffer[0].index <= lci:
            self._buffer_bytes -= buffer.popleft().size
        while self._dropped and self._dropped[0] <= lci:
            self._dropped.popleft()


def _check_handle(update: SessionResumptionUpdate) -> None:
    handle = update.new_handle
    if handle is not None and len(handle) > MAX_HANDLE_CHARS:
        raise RemoteProtocolError(
            f"sessionResumptionUpdate.newHandle is {len(handle):,} characters long; live_nb accepts "
            f"handles up to {MAX_HANDLE_CHARS:,} (a handle goes back to the server in every resume)",
            excerpt(handle),
        )


def _bounded_time_left(left: float | None) -> float | None:
    """``left`` clamped into 0 .. ``MAX_GO_AWAY_SECONDS``: NaN and negatives to 0 (leave now)."""
    if left is None or 0.0 <= left <= MAX_GO_AWAY_SECONDS:  # False for NaN
        return left
    return MAX_GO_AWAY_SECONDS if left > MAX_GO_AWAY_SECONDS else 0.0
