"""The notebook's doors on a session: a pandas history, a context plot, a mic and camera stream.

Why here and not on ``LiveSession``: the client must not import the notebook or widget layers
(docs/architecture.md). These functions take a ``LiveSession`` or the notebook's ``KernelSession``
proxy (``s = %live session``); the proxy is unwrapped here, so widget code only ever receives the
real session and never has to look behind a proxy. pandas, matplotlib and the widgets are imported
on first use.
"""

from __future__ import annotations

from typing import Any

from ._proxy import unwrap

__all__ = ["history", "plot_context", "stream"]


def history(session: Any, view: str = "transcript") -> Any:
    """A pandas view of ``session``: ``"transcript"``, ``"events"``, ``"usage"`` or ``"context"``.

    Raises:
        ConfigError: ``view`` is not one of those.
    """
    from . import history as views

    return views.view(unwrap(session), view)


def plot_context(session: Any, ax: Any = None) -> Any:
    """A one-off matplotlib figure of ``session``'s context window over time, compressions marked."""
    from ..widgets.static import plot_context as plot

    return plot(unwrap(session), ax)


def stream(session: Any, source: Any = None, *, audio: bool = True, video: bool = True) -> Any:
    """Stream a microphone and camera (an ipywebrtc ``CameraStream``, or the browser's own) into ``session``.

    Returns:
        The session's ``MediaStreamer`` widget (one per session): display it for the level meter, mute, stop.

    Raises:
        InvalidState: the session is closed.
    """
    from ..widgets.media import start_media

    return start_media(unwrap(session), audio=audio, video=video, source=source)
