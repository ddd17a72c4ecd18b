"""live_nb's private event-loop thread: where every notebook session's socket lives.

The model (measured in kernel-loop.md): one daemon thread per process runs one asyncio loop,
started lazily on first use. Sessions made by the notebook layer (and the in-process emulator
the magics start) run there, never on the kernel's loop, because

1. a synchronous or CPU-bound cell blocks the kernel's loop: a socket living there stops
   answering pings and misses GoAway notices until the cell ends (a 5 s cell killed a session
   whose server pinged every second);
2. Ctrl-C raises wherever the main thread happens to be, and on the kernel's loop that can be
   inside the session's reader task; a separate thread is out of its reach;
3. it needs no monkeypatching of the kernel's loop (nest_asyncio loses shell messages in
   ipykernel 7.4).

Cells reach the loop with ``submit(coro)``, which returns a ``concurrent.futures.Future``.
Two ways to wait for one, both cancelling the coroutine if the wait is interrupted:

- ``await wait(future)`` from the kernel's loop (an async cell): the kernel keeps handling comm
  messages during the wait, the result is seen the moment it arrives, and the loop wakes at
  least every ``poll`` seconds so a kernel interrupt lands within one poll (ipykernel's SIGINT
  handler does not wake an idle loop, so a bare ``await asyncio.wrap_future(fut)`` took 19 s
  to see Ctrl-C);
- ``block(future)`` from synchronous code (terminal IPython, a plain script).

The loop is stopped by an idempotent ``stop()`` and, as a last resort, by ``weakref.finalize``
when the process exits, the way IPython's ``ScriptMagics`` manages its own loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "block", "in_loop_thread", "live_loop", "running", "stop", "submit", "wait"]

T = TypeVar("T")

DEFAULT_POLL = 0.2
"""Seconds between checks of a future in ``wait``: the upper bound on how late Ctrl-C lands."""

THREAD_NAME = "live_nb-loop"


def _shutdown(loop: asyncio.AbstractEventLoop, thread: threading.Thread, timeout: float) -> None:
    """Cancel every task on ``loop``, stop it, join its thread and close it (safe to call twice)."""
    if loop.is_closed():
        return
    if thread.is_alive():
        if threading.current_thread() is thread:
            # Called from the loop itself (e.g. a finalizer run by the loop): just ask it to stop.
            loop.call_soon(loop.stop)
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)
            await loop.shutdown_asyncgens()

        gone = (RuntimeError, concurrent.futures.TimeoutError, concurrent.futures.CancelledError)
        with contextlib.suppress(*gone):
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout + 1.0)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
    if not thread.is_alive() and not loop.is_running():
        loop.close()


class LoopThread:
    """An asyncio loop running forever in a daemon thread.

    Args:
        name: the thread's name (shows up in tracebacks and ``threading.enumerate()``).
    """

    def __init__(self, name: str = THREAD_NAME) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(started.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()
        started.wait(5.0)
        # The finalizer holds the loop and thread, never self, so it cannot keep self alive.
        self._finalizer = weakref.finalize(self, _shutdown, self.loop, self.thread, 2.0)

    @property
    def alive(self) -> bool:
        """True while the loop accepts work."""
        return self.thread.is_alive() and not self.loop.is_closed()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; returns a thread-safe future for its result.

        Raises:
            InvalidState: the loop has been stopped.
        """
        if not self.alive:
            coro.close()
            from .exceptions import InvalidState

            raise InvalidState("live_nb's loop thread has been stopped")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 2.0) -> None:
        """Cancel all tasks, stop the loop and join the thread. Idempotent."""
        if self._finalizer.alive:
            self._finalizer.detach()
        _shutdown(self.loop, self.thread, timeout)


_lock = threading.Lock()
_current: LoopThread | None = None


def _loop_thread() -> LoopThread:
    global _current
    with _lock:
        if _current is None or not _current.alive:
            _current = LoopThread()
        return _current


def live_loop() -> asyncio.AbstractEventLoop:
    """The private loop, started on first use (and again after ``stop()``)."""
    return _loop_thread().loop


def running() -> bool:
    """True if the private loop thread exists and is running (does not start it)."""
    current = _current
    return current is not None and current.alive


def in_loop_thread() -> bool:
    """True when called from the private loop's own thread (where blocking waits would deadlock)."""
    current = _current
    return current is not None and threading.current_thread() is current.thread


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run ``coro`` on the private loop (starting it if needed); returns a concurrent future."""
    return _loop_thread().submit(coro)


def stop(timeout: float = 2.0) -> None:
    """Stop the private loop if it runs: cancels its tasks, joins the thread. Idempotent."""
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None:
        current.stop(timeout)


async def wait(future: concurrent.futures.Future[T], poll: float = DEFAULT_POLL) -> T:
    """Await a private-loop future from another loop, polling so interrupts land fast.

    If the waiting task is cancelled (a kernel interrupt of an async cell) or interrupted,
    the future is cancelled too, which cancels the coroutine on the private loop.

    Args:
        future: from ``submit``.
        poll: seconds between checks; the bound on interrupt latency.

    Returns:
        The coroutine's result.

    Raises:
        Whatever the coroutine raised; ``asyncio.CancelledError`` when cancelled.
    """
    wrapped = asyncio.wrap_future(future)
    try:
        while not wrapped.done():
            # Returns as soon as the result is in (no poll delay); the timeout only makes sure the
            # loop wakes up often enough to notice an interrupt.
            await asyncio.wait({wrapped}, timeout=poll)
    finally:
        if not future.done():
            future.cancel()
    return wrapped.result()


def block(future: concurrent.futures.Future[T], timeout: float | None = None) -> T:
    """Wait for a private-loop future synchronously; Ctrl-C cancels the coroutine and re-raises.

    Raises:
        InvalidState: called from the loop thread itself (it would wait forever).
        concurrent.futures.TimeoutError: ``timeout`` passed (the coroutine is cancelled).
    """
    if in_loop_thread():
        from .exceptions import InvalidState

        raise InvalidState("cannot block on live_nb's loop from its own thread")
    try:
        return future.result(timeout)
    except BaseException:
        if not future.done():
            future.cancel()
        raise
