"""Session lifecycle events: what the client tells its user besides the server's own messages.

``session.receive()`` yields these alongside the typed server messages, so one ``async for`` sees
the whole story: a ``GoingAwayNotice`` (the server's ``goAway``), then ``Reconnecting``, then
``Resumed`` saying honestly whether the context came back and what was replayed or may be lost.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TOOL_RUN_STATUSES", "Connected", "Reconnecting", "Resumed", "SessionClosed", "SessionEvent", "ToolRun"]


@dataclass(frozen=True, slots=True)
class Connected:
    """A connection is open and its setup accepted. ``url`` never carries a key."""

    url: str
    resumed: bool
    connection: int
    """How many connections this session has had, this one included."""


@dataclass(frozen=True, slots=True)
class Reconnecting:
    """The session is moving to a new connection.

    Attributes:
        reason: ``"go_away"``, ``"dropped"`` (network fault) or ``"manual"`` (``resume_session``).
        attempt: 1 for the first try after this fault.
        delay: seconds waited before this attempt (backoff).
    """

    reason: str
    attempt: int
    delay: float


@dataclass(frozen=True, slots=True)
class Resumed:
    """The session continues on a new connection.

    Attributes:
        state_restored: the server accepted the resumption handle, so the context came back.
            False means a fresh session was opened: the model has forgotten the conversation.
        replayed: client messages re-sent because the server had not folded them in.
        possibly_lost: client messages that may not have reached the context (0 in transparent
            mode; without it, the messages sent since the last resumable handle, which the
            client cannot tell apart from those the server kept).
    """

    state_restored: bool
    replayed: int
    possibly_lost: int


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session has ended for good. ``error`` says why when it was not the user's ``close()``."""

    code: int
    reason: str
    error: str | None = None


TOOL_RUN_STATUSES = ("running", "returned", "failed", "cancelled", "timed_out")


@dataclass(frozen=True, slots=True)
class ToolRun:
    """The session's tool loop ran (or is running) a function the model called.

    One event when the call starts (``status="running"``) and one when it ends. Arguments and the
    result are untrusted text (they come from the model and the user's function): show them as
    text, never as HTML.

    Attributes:
        call_id: the call's ``id`` (the response carries it back).
        name: the function's name as declared.
        args: the arguments the model sent, as JSON text (cut to a readable length).
        status: one of ``TOOL_RUN_STATUSES``.
        seconds: how long the function ran (0.0 while running).
        result: what it returned or raised, as text (cut to a readable length); "" while running.
        behavior: ``"BLOCKING"`` or ``"NON_BLOCKING"`` as the model runs this call (None: unknown).
        scheduling: the ``scheduling`` sent with the response (None: the service's default).
    """

    call_id: str
    name: str
    args: str
    status: str
    seconds: float = 0.0
    result: str = ""
    behavior: str | None = None
    scheduling: str | None = None


SessionEvent = Connected | Reconnecting | Resumed | SessionClosed | ToolRun
