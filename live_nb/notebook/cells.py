"""The ``%%live`` pipeline: one cell's request, run on the loop against a named session.

Why apart from the magics: the magics parse a cell into a ``Request`` (main thread); what happens
next runs on live_nb's loop thread, under the session's lock, and is the same for a blocking cell,
an awaited cell, an ``--async`` cell and ``%live system``. The session comes from the registry.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..exceptions import InvalidState, LiveError, LocalProtocolError, UnsupportedOnBackend
from ..protocol.content import Content, Part
from ._reply import Renderer, Turn
from .options import ConnectOptions, history_closed, offer, one_line, system_refusal
from .sessions import Entry, SessionRegistry

if TYPE_CHECKING:
    from ..client.session import LiveSession

__all__ = ["Request", "run_request"]


@dataclass(frozen=True)
class Request:
    """One ``%%live`` cell (or ``%live system``), parsed."""

    name: str
    text: str
    kind: str  # ask | context | system
    role: str
    asynchronous: bool
    speak: bool = False


async def run_request(
    registry: SessionRegistry,
    request: Request,
    options: ConnectOptions,
    renderer: Renderer | None,
    reply_timeout: float,
) -> str:
    """Open the session if needed (with ``options``) and carry out ``request``; the reply's text.

    Args:
        registry: owner of the named session.
        request: the parsed cell.
        options: what to open the session with, when it is not open yet.
        renderer: where an ``ask`` shows its reply (None for context and system turns).
        reply_timeout: seconds to wait for the reply (0: forever).

    Raises:
        LiveError: the session refused or failed (an ``--async`` cell shows it in its output too).
    """
    try:
        return await _execute(registry, request, options, renderer, reply_timeout)
    except LiveError as exc:
        if request.asynchronous and renderer is not None:
            # Nobody waits on an --async cell: its error goes where its reply would have.
            Turn._safely(renderer.finish, "", [f"error: {one_line(exc)}"], b"")
        raise


async def _execute(
    registry: SessionRegistry,
    request: Request,
    options: ConnectOptions,
    renderer: Renderer | None,
    reply_timeout: float,
) -> str:
    entry = await registry.ensure(request.name, options)
    session = entry.session
    assert session is not None
    # One request at a time per session, in the order the cells ran: a turn sent while a reply
    # streams would interrupt it (the Live API treats new content as a barge-in).
    async with entry.lock:
        if session.closed:
            raise InvalidState(
                f"session {entry.name!r} has ended; `%live resume {entry.name}` continues it with its "
                f"last handle, `%live connect {entry.name}` starts a new one"
            )
        if request.kind == "system":
            if entry.options.flavor is not None and not offer(entry.options.flavor).system_instruction_update:
                raise UnsupportedOnBackend(system_refusal(entry.options))
            await session.update_system_instruction(request.text)
            return ""
        if request.kind == "context":
            if entry.options.initial_history_only and not session.history_open:
                raise LocalProtocolError(history_closed(entry.options.model))
            turn_content = Content(role=request.role, parts=(Part(text=request.text),))
            await session.send_content([turn_content], turn_complete=False)
            return ""
        assert renderer is not None
        return await _ask(entry, session, request.text, renderer, reply_timeout)


async def _ask(entry: Entry, session: LiveSession, text: str, renderer: Renderer, reply_timeout: float) -> str:
    """Send one complete user turn and collect the model's turn (under ``entry.lock``).

    The turn goes as a complete ``clientContent`` turn, or as realtime text on a model that takes
    clientContent only as initial history (the turns sent before it become that history).
    """
    router = entry.router
    # The cell waits for the whole answer, as the session accounts for it (session.answering): the
    # calls it makes, the spoken answer to their results, extended thinking's fillers until IDLE.
    turn = Turn(renderer, asyncio.get_running_loop(), answering=lambda: session.answering)
    router.current = turn
    sent = False
    try:
        sent = True
        if entry.options.initial_history_only:
            await session.send_realtime_text(text)
        else:
            await session.send_content([Content(role="user", parts=(Part(text=text),))], turn_complete=True)
        return await asyncio.wait_for(asyncio.shield(turn.done), reply_timeout or None)
    except asyncio.TimeoutError:
        router.discard += 1
        turn.note(f"no reply after {reply_timeout:.0f} s")
        turn.render_now()
        raise InvalidState(f"no reply within {reply_timeout:.0f} s (LiveMagics.reply_timeout)") from None
    except asyncio.CancelledError:
        if sent and not turn.done.done():
            router.discard += 1  # its reply is still coming: keep it out of the next cell
        if not turn.done.done():
            turn.note("cancelled")
            turn.render_now()
        raise
    finally:
        router.current = None
