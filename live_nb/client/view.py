"""What a session lets others see: the typed, read-only view the widgets and the notebook read.

Why a Protocol and not a wrapper object: ``LiveSession`` already keeps this state as plain
attributes and properties that are safe to read from any thread (architecture.md, "Observable
state"), and the dashboard samples it a few times a second; a wrapper would add an indirection to
every read and a second object to keep alive. The Protocol names the contract instead: readers
are typed against ``SessionView`` (not ``Any``), ``LiveSession`` satisfies it structurally (mypy
checks that in session.py), and so does anything forwarding the same attributes (the notebook's
``KernelSession``, a test's stand-in).

Read-only means the view offers no sender and no setter: a reader cannot change the session
through it. ``add_listener`` is part of it because observing *is* reading: a listener sees each
item ``receive()`` yields, on the session's loop, and cannot alter it (frozen messages).

This module imports nothing from the notebook or widget layers, and nothing with I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..protocol.config import LiveGenerationConfig
from ..protocol.content import FunctionCall
from ..protocol.events import ToolRun
from ..protocol.ledger import ContextLedger

__all__ = ["Listener", "SessionView"]

Listener = Callable[[Any], None]
"""Called with each item ``receive()`` yields (a ServerMessage or a lifecycle event)."""


class SessionView(Protocol):
    """The observable state of one Live session, across all its connections.

    Every member is current when read and may be read from any thread (the session's loop
    writes them; each read is one attribute or one slice).
    """

    @property
    def state(self) -> str:
        """``connecting``, ``active``, ``going_away``, ``reconnecting`` or ``closed``."""
        ...

    @property
    def backend(self) -> str:
        """``emulator``, ``gemini`` or ``vertex``."""
        ...

    @property
    def model(self) -> str:
        """The model as the service names it (``models/gemini-3.8-live``)."""
        ...

    @property
    def flavor(self) -> str | None:
        """Whose rules apply: ``gemini``, ``vertex``, or None (a bare emulator URL)."""
        ...

    @property
    def url(self) -> str:
        """The endpoint URL (never carries a key)."""
        ...

    @property
    def generation_config(self) -> LiveGenerationConfig:
        """The connection's config (frozen)."""
        ...

    @property
    def handle(self) -> str | None:
        """The latest resumable handle."""
        ...

    @property
    def handle_retention(self) -> float | None:
        """Seconds the service keeps the current handle, or None when the backend is unknown."""
        ...

    @property
    def resumable(self) -> bool:
        """The server's latest word on whether the session can be resumed now."""
        ...

    @property
    def go_away_deadline(self) -> float | None:
        """When the current connection ends after a GoAway (``time.time()`` seconds), else None."""
        ...

    @property
    def connection_started(self) -> float | None:
        """When the current connection's setup completed (``time.time()`` seconds)."""
        ...

    @property
    def reconnects(self) -> int:
        """Moves to a new connection so far."""
        ...

    @property
    def last_consumed_index(self) -> int | None:
        """The latest ``lastConsumedClientMessageIndex`` (transparent mode)."""
        ...

    @property
    def replay_depth(self) -> int:
        """Client messages buffered for replay or waiting for a connection."""
        ...

    @property
    def frame_tokens(self) -> int:
        """Tokens one video frame costs on this model at the configured resolution."""
        ...

    @property
    def offers_audio_stream_end(self) -> bool:
        """Whether ``audioStreamEnd`` may be sent here (not on Vertex AI)."""
        ...

    @property
    def ledger(self) -> ContextLedger:
        """The context estimate, usage reports by modality and compressions."""
        ...

    @property
    def transcript(self) -> Sequence[tuple[float, str, str]]:
        """(time, role, text) entries, newest kept (a ``BoundedLog``: ``dropped`` counts the rest)."""
        ...

    @property
    def events(self) -> Sequence[tuple[float, Any]]:
        """(time, event or message) entries, newest kept (a ``BoundedLog``)."""
        ...

    @property
    def dropped_text(self) -> int:
        """Characters of transcript text not kept."""
        ...

    @property
    def closed(self) -> bool:
        """Whether the session has ended."""
        ...

    @property
    def tool_runs(self) -> Sequence[ToolRun]:
        """The latest ``ToolRun`` events, oldest first (bounded): which function ran with which
        arguments, its status (``running``, ``returned``, ``failed``, ``cancelled``, ``timed_out``),
        how long and what it returned, as untrusted text (never HTML)."""
        ...

    @property
    def pending_tool_calls(self) -> Sequence[FunctionCall]:
        """Function calls not yet finally answered (running in the tool loop or left to the caller)."""
        ...

    @property
    def answering(self) -> bool:
        """Whether the model owes more of its current answer (a turn streaming, calls running,
        results not yet answered, extended thinking's IN_PROGRESS); False once the whole answer is over."""
        ...

    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Observe every item ``receive()`` yields; returns the function that stops it."""
        ...
