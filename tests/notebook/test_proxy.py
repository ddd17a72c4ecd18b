"""notebook/_proxy.py: KernelSession runs a session's coroutines on live_nb's loop, from a cell's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from live_nb import _loop
from live_nb.notebook._proxy import KernelSession, unwrap


class Echo:
    """A session's shape: a coroutine method, an attribute, and receive()."""

    state = "active"

    def __init__(self) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []

    async def send_text(self, text: str) -> str:
        self.loops.append(asyncio.get_running_loop())
        return text.upper()

    async def receive(self) -> AsyncIterator[str]:
        for word in ("one", "two"):
            yield word


@pytest.fixture
def loop_thread() -> Iterator[None]:
    try:
        yield
    finally:
        _loop.stop()


async def test_coroutines_run_on_the_private_loop(loop_thread: None) -> None:
    session = Echo()
    proxy = KernelSession(session)
    assert await proxy.send_text("hi") == "HI"
    assert session.loops == [_loop.live_loop()] and session.loops[0] is not asyncio.get_running_loop()
    assert proxy.state == "active"  # plain attributes are the session's own
    assert [item async for item in proxy.receive()] == ["one", "two"]


def test_read_only_and_unwrapped() -> None:
    session = Echo()
    proxy = KernelSession(session)
    with pytest.raises(AttributeError, match="read-only"):
        proxy.state = "closed"
    assert unwrap(proxy) is session and unwrap(session) is session
    assert "Echo" in repr(proxy)
