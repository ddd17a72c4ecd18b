"""Which media streamer feeds which session: one explicit registry inside the widgets layer.

Why a module of its own, with no widget imports: the dashboard shows what the session's
microphone and camera do, so it must find the session's streamer; the streamer is made by
``media.start_media`` (``%live mic on``, the notebook's ``stream``). Both import this small
module, so the link is one the import graph shows, and a dashboard still does not load the media
widget stack (ipywebrtc) for a session nothing streams into.

Keys are the session objects themselves, held weakly (a closed, forgotten session takes its
entry with it). The notebook passes its real ``LiveSession`` to widget code; an object standing
in for one is a different key (nothing here looks behind it).

``StreamerState`` names what a reader (``_feed.media_state``) reads of a streamer: its switches
and published traits, and its ``feed``'s exact counters when it has one.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Protocol

__all__ = ["StreamerState", "all_streamers", "forget", "lookup", "register"]


class StreamerState(Protocol):
    """What the dashboard reads of a ``MediaStreamer`` (its traits are plain attributes)."""

    audio: bool
    video: bool
    muted: bool
    audio_on: bool
    video_on: bool
    frame_interval: float
    capture_state: str
    level: float
    token_rate: float
    error: str
    chunks_received: int
    frames_received: int
    gaps: int
    missing_chunks: int

    @property
    def comm(self) -> Any:
        """The widget's comm: None once the widget is closed."""
        ...


_lock = threading.Lock()
_by_session: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_by_id: dict[int, Any] = {}  # sessions that cannot be weakly referenced (a test's stand-in)


def register(session: object, streamer: Any) -> None:
    """Make ``streamer`` the one that feeds ``session``."""
    with _lock:
        try:
            _by_session[session] = streamer
        except TypeError:
            _by_id[id(session)] = streamer


def lookup(session: object) -> Any | None:
    """The streamer registered for ``session`` (open or closed), or None."""
    with _lock:
        try:
            return _by_session.get(session)
        except TypeError:
            return _by_id.get(id(session))


def forget(session: object) -> None:
    """Drop ``session``'s entry (no-op when it has none)."""
    with _lock:
        try:
            _by_session.pop(session, None)
        except TypeError:
            _by_id.pop(id(session), None)


def all_streamers() -> list[Any]:
    """Every registered streamer still alive."""
    with _lock:
        return [*_by_session.values(), *_by_id.values()]
