"""live_nb._loop: the private loop thread, and the two ways of waiting on it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest

from live_nb import _loop
from live_nb.exceptions import InvalidState

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def fresh_loop():
    _loop.stop()
    yield
    _loop.stop()


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == _loop.THREAD_NAME]


def test_lazy_start_single_daemon_thread() -> None:
    assert not _loop.running()
    assert loop_threads() == []
    loop = _loop.live_loop()
    assert _loop.running()
    assert _loop.live_loop() is loop
    threads = loop_threads()
    assert len(threads) == 1 and threads[0].daemon


def test_submit_runs_on_the_private_thread() -> None:
    async def where() -> tuple[str, bool]:
        return threading.current_thread().name, _loop.in_loop_thread()

    name, inside = _loop.block(_loop.submit(where()), timeout=5)
    assert name == _loop.THREAD_NAME and inside
    assert not _loop.in_loop_thread()


def test_stop_is_idempotent_and_cancels_tasks() -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    fut = _loop.submit(forever())
    time.sleep(0.05)
    loop = _loop.live_loop()
    _loop.stop()
    _loop.stop()
    assert cancelled.is_set()
    assert fut.cancelled()
    assert loop.is_closed()
    assert loop_threads() == []
    # And it starts again on demand.
    assert _loop.block(_loop.submit(asyncio.sleep(0, result=7)), timeout=5) == 7


def test_submit_after_stop_of_an_instance_raises() -> None:
    lt = _loop.LoopThread(name="live_nb-test")
    lt.stop()
    lt.stop()
    coro = asyncio.sleep(0)
    with pytest.raises(InvalidState):
        lt.submit(coro)


def test_block_timeout_cancels_the_coroutine() -> None:
    fut = _loop.submit(asyncio.sleep(10))
    with pytest.raises(concurrent.futures.TimeoutError):
        _loop.block(fut, timeout=0.1)
    time.sleep(0.05)
    assert fut.cancelled()


def test_block_from_the_loop_thread_is_refused() -> None:
    async def inner() -> str:
        other = _loop.submit(asyncio.sleep(0))
        try:
            _loop.block(other)
        except InvalidState as exc:
            return str(exc)
        return "no error"

    assert "own thread" in _loop.block(_loop.submit(inner()), timeout=5)


async def test_wait_polls_and_returns_the_result() -> None:
    fut = _loop.submit(asyncio.sleep(0.3, result="done"))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    t = asyncio.create_task(ticker())
    assert await _loop.wait(fut, poll=0.05) == "done"
    t.cancel()
    # The caller's loop kept running during the wait.
    assert ticks >= 3


async def test_wait_cancelled_cancels_the_private_coroutine_fast() -> None:
    cancelled = threading.Event()

    async def long_request() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    fut = _loop.submit(long_request())
    waiter = asyncio.create_task(_loop.wait(fut, poll=0.2))
    await asyncio.sleep(0.1)
    start = time.monotonic()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await asyncio.to_thread(cancelled.wait, 2.0)
    assert time.monotonic() - start < 0.5
    assert fut.cancelled()


async def test_wait_reraises_the_coroutine_error() -> None:
    async def fail() -> None:
        raise InvalidState("boom")

    with pytest.raises(InvalidState, match="boom"):
        await _loop.wait(_loop.submit(fail()), poll=0.01)
