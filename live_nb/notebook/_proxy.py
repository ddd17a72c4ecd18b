"""A session that lives on the private loop, usable with top-level ``await`` from notebook cells.

Why: a ``LiveSession``'s coroutines must run on the loop its socket lives on (live_nb's private
loop thread), but a cell's top-level ``await`` runs on the kernel's loop. ``KernelSession`` wraps
the session so that ``await s.send_content(...)`` from a cell runs the call on the private loop and
waits cooperatively (comm messages keep flowing, Ctrl-C cancels the call), and so that
``async for item in s.receive()`` delivers the session's items into the cell's loop.

Everything that is not a coroutine method (``handle``, ``state``, ``ledger``, ``add_listener``
...) is the session's own attribute, read directly: they are documented as readable from any
thread. The notebook's doors (``history``, ``plot_context``, ``stream``) are methods here; like
every notebook call into widget code they pass the real session (``unwrap``), never the proxy.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

from .. import _loop

__all__ = ["KernelSession", "unwrap"]


class KernelSession:
    """``session`` seen from another event loop (the kernel's).

    Args:
        session: a ``LiveSession`` living on live_nb's private loop.
        poll: seconds between interrupt checks while a call waits.
    """

    def __init__(self, session: Any, poll: float = _loop.DEFAULT_POLL) -> None:
        self.__dict__["session"] = session
        self.__dict__["_poll"] = poll

    session: Any
    """The ``LiveSession`` itself (on live_nb's private loop)."""

    def __repr__(self) -> str:
        return f"KernelSession({self.session!r})"

    def history(self, view: str = "transcript") -> Any:
        """A pandas view of the session: ``"transcript"``, ``"events"``, ``"usage"`` or ``"context"``."""
        from .history import view as history_view

        return history_view(self.session, view)

    def plot_context(self, ax: Any = None) -> Any:
        """A one-off matplotlib figure of the context window over time, compressions marked."""
        from ..widgets.static import plot_context

        return plot_context(self.session, ax)

    def stream(self, source: Any = None, *, audio: bool = True, video: bool = True) -> Any:
        """Stream a microphone and camera into the session; the ``MediaStreamer`` widget to display."""
        from ..widgets.media import start_media

        return start_media(self.session, audio=audio, video=video, source=source)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.session, name)
        if inspect.iscoroutinefunction(value):
            return self._bind(value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("KernelSession is read-only; set attributes on .session")

    def _bind(self, method: Callable[..., Any]) -> Callable[..., Any]:
        poll = self._poll

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await _loop.wait(_loop.submit(method(*args, **kwargs)), poll)

        call.__name__ = method.__name__
        call.__doc__ = method.__doc__
        return call

    async def receive(self) -> AsyncIterator[Any]:
        """Yield what ``LiveSession.receive()`` yields (server messages and lifecycle events), in order.

        The session's own ``receive()`` runs on the private loop and hands each item to this
        loop; leaving the ``async for`` stops it. Like the session's, it ends after ``close()``
        and raises the error that ended the session otherwise.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        session = self.session

        async def forward() -> None:
            try:
                async for item in session.receive():
                    loop.call_soon_threadsafe(queue.put_nowait, ("item", item))
            except BaseException as exc:  # handed to the caller, raised there
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

        future = _loop.submit(forward())
        try:
            while True:
                kind, value = await queue.get()
                if kind == "item":
                    yield value
                elif kind == "end" or isinstance(value, asyncio.CancelledError):
                    return
                else:
                    raise value
        finally:
            future.cancel()


def unwrap(session: Any) -> Any:
    """The ``LiveSession`` itself: ``session``, or the one a ``KernelSession`` wraps."""
    return session.session if isinstance(session, KernelSession) else session
