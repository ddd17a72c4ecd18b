"""The session's tool loop: runs the functions the model calls and answers each call once.

Why its own module: ``protocol.tool_calls.ToolCallTracker`` decides *which* calls to run, cancel
and answer (sans-I/O); running a user's function needs a clock, tasks and a thread, which belong to
the client's asyncio layer. ``LiveSession`` feeds this loop the server's ``ToolCall`` and
``ToolCallCancellation`` messages and the user's own answers; the loop hands back the responses to
write. One ``ToolLoop`` (one tracker) per *session*, across all its connections, so a call id is
never run twice, whatever the connections do.

Threads and tasks (all on the session's loop, live_nb's private loop thread in a notebook):

- an async function runs as a task on the session's loop: the socket keeps being read while it
  awaits (a CPU-bound coroutine still blocks the loop: make such a function sync);
- a sync function runs in a small per-session thread pool (``TOOL_THREADS`` threads), so a slow or
  blocking function never stalls the socket;
- a call running longer than its limit (``Tool.timeout``, else the session's ``tool_timeout``) is
  answered with a ``TimeoutError`` result so the model can go on;
- a ``toolCallCancellation`` cancels the call's task and nothing is sent for it. A sync function
  already running in a thread cannot be killed (Python has no way to stop a thread): it runs to
  its end and its result is dropped. The same holds after a timeout.

Answers go out only while a connection is open; while the session moves to a new connection they
wait in the tracker and go out after the resume (``flush``). After a resume the server may ask a
call again with the same id: one still running is not run again; one already answered is answered
from memory (``CallPlan.resend``), except when that would deliver it twice:
- the answer already went out on *this* connection (queued while reconnecting and sent right after
  the resume): the server asked from the state it resumed, before reading it;
- the replay carries it (transparent resumption that lost nothing: the replay re-sends every
  message the server has not folded in).

Calls to a name with no Python function (a raw declaration dict), and every call when the loop is
off (``LiveModel(auto_tools=False)``), are left to the user, who answers them with
``LiveSession.send_tool_response``; they are still tracked, so such answers are also sent at most
once and re-sent from memory after a resume.

Events: each run emits ``ToolRun(status="running")`` when it starts and one final ``ToolRun``
(``returned``, ``failed``, ``cancelled`` or ``timed_out``) through the session's ``emit``: the
listeners, ``receive()`` and the ``events`` log see them. Arguments and results are cut to
``TEXT_LIMIT`` characters of JSON text; they are untrusted (the model's and the function's): show
them as text, never as HTML.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import itertools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import InvalidState
from ..protocol.catalogue import ModelInfo
from ..protocol.content import FunctionCall, FunctionResponse
from ..protocol.events import ToolRun
from ..protocol.messages import ToolCall, ToolCallCancellation, ToolResponse
from ..protocol.tool_calls import ToolCallTracker, effective_behavior, scheduling_for
from ..protocol.tools import Tool, response_for

__all__ = ["DEFAULT_TOOL_TIMEOUT", "RUNS_KEPT", "TEXT_LIMIT", "TOOL_THREADS", "ToolLoop", "cut_text"]

logger = logging.getLogger("live_nb.client")

DEFAULT_TOOL_TIMEOUT = 60.0
"""Seconds a call may run before it is answered with a TimeoutError result (``LiveModel(tool_timeout=)``)."""

TEXT_LIMIT = 1000
"""Characters of a ToolRun's ``args`` and ``result`` text (a note says how many more there were)."""

RUNS_KEPT = 200
"""ToolRun events kept in ``ToolLoop.runs`` (the dashboard's recent activity); ``events`` keeps more."""

SENT_MEMORY = 1000
"""Answered call ids whose connection is remembered (as many as the tracker remembers answers)."""

TOOL_THREADS = 4
"""Worker threads per session for sync functions: a few calls at once; more wait for a free thread."""


def cut_text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """``value`` as one line of JSON text (``repr`` for what JSON cannot hold), cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):  # pragma: no cover - default=repr makes this rare (cycles)
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + f" … [{len(text) - limit:,} more characters]"
    return text


@dataclass(slots=True)
class _Run:
    """One call the loop is running."""

    call: FunctionCall
    tool: Tool
    key: str
    started: float
    behavior: str | None
    scheduling: str | None
    args: str
    task: asyncio.Task[None] | None = None


class ToolLoop:
    """Runs a session's function calls and keeps the book of them (one per session).

    Args:
        tools: the Python functions the model may call (``config.function_tools``).
        info: the model's catalogue row (None: unknown model), for behavior and scheduling.
        auto: run the functions (False: every call is left to the user).
        timeout: the limit for a tool without its own ``timeout`` (None: no limit).
        emit: called with each ToolRun (the session's ``_emit``: events log, listeners, receive()).
        write: writes a ToolResponse to the current connection (only called when ``can_send()``).
        can_send: whether a connection is open now.
        replay_covers: whether the protocol's replay re-sends every answer the server lacks
            (transparent resumption that lost nothing since the last resume).
        changed: called when calls start or end (the session's ``answering`` may change).
        connection: the number of the current connection (1 for the first, then one more each move).
        declarations: the config's tool dicts (``config.tools``), for the behavior of calls to
            functions declared without a Python function.
    """

    def __init__(
        self,
        tools: Sequence[Tool],
        info: ModelInfo | None,
        *,
        auto: bool,
        timeout: float | None,
        emit: Callable[[ToolRun], None],
        write: Callable[[ToolResponse], None],
        can_send: Callable[[], bool],
        replay_covers: Callable[[], bool],
        changed: Callable[[], None],
        connection: Callable[[], int] = lambda: 0,
        declarations: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.declarations = tuple(declarations or ())
        self.tools: dict[str, Tool] = {t.name: t for t in tools}
        self.info = info
        self.auto = auto
        self.timeout = timeout
        self.tracker = ToolCallTracker()
        self._emit = emit
        self._write = write
        self._can_send = can_send
        self._replay_covers = replay_covers
        self._changed = changed
        self._connection = connection
        self._sent_on: OrderedDict[str, int] = OrderedDict()  # call id -> connection its answer went on
        self._running: dict[str, _Run] = {}
        self._runs: list[ToolRun] = []
        self._keys = itertools.count(1)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    # Reading.

    @property
    def runs(self) -> tuple[ToolRun, ...]:
        """The latest ToolRun events (at most ``RUNS_KEPT``), oldest first."""
        return tuple(self._runs)

    @property
    def pending(self) -> tuple[FunctionCall, ...]:
        """Calls not yet finally answered: those the loop runs and those left to the user."""
        unnamed = tuple(r.call for r in tuple(self._running.values()) if r.call.id is None)
        return self.tracker.pending + unnamed

    def runs_call(self, call_id: str | None) -> bool:
        """Whether the loop itself answers this call (a function of ``tools`` is running for it)."""
        return call_id is not None and call_id in self._running

    def behavior_of(self, name: str) -> str | None:
        """How the model runs calls to ``name``: the tool's own behavior, else the model's default."""
        tool = self.tools.get(name)
        if tool is not None:
            return effective_behavior(self.info, tool)
        declared = declared_behavior(self.declarations, name)
        if declared is not None:
            return declared
        return None if self.info is None else self.info.function_behavior

    # The server's messages.

    def on_tool_call(self, message: ToolCall) -> None:
        """Start the calls the tracker says to run; answer again the ones asked for again."""
        if self._closed:
            return
        queued_before = {r.id for r in self.tracker.queued}
        plan = self.tracker.on_tool_call(message)
        for call in plan.run:
            tool = self.tools.get(call.name) if self.auto else None
            if tool is not None:
                self._start(call, tool)
        if plan.resend:
            # An answer already sent on this connection reached this server after it asked (it asks
            # from the state it resumed): sending it again would deliver it twice. So would one the
            # replay re-sends. One queued since is not a second copy: it goes out once either way.
            current = self._connection()
            covered = self._replay_covers()
            skip = {
                r.id for r in plan.resend
                if r.id not in queued_before and (covered or self._sent_on.get(r.id or "") == current)
            }
            self.flush(skip)
        self._changed()

    def on_cancellation(self, message: ToolCallCancellation) -> None:
        """Cancel the running calls the server no longer wants; nothing is sent for them."""
        for call in self.tracker.on_cancellation(message):
            run = self._running.pop(call.id or "", None)
            if run is not None:
                if run.task is not None:
                    run.task.cancel()
                self._record(run, "cancelled", "")
        self._changed()

    # The user's answers.

    def answer(self, responses: Sequence[FunctionResponse]) -> list[FunctionResponse]:
        """Take the user's answers (``send_tool_response``); returns those to send now.

        Answers to calls the loop saw are queued in the tracker (sent now when connected, after
        the resume otherwise); one to a call already answered or cancelled is dropped (the service
        would ignore it; a call is answered at most once). Answers to calls the loop never saw
        (no id, or an id it does not know) are returned to be sent as they are.

        Raises:
            InvalidState: a response answers a call the loop itself is running.
        """
        for response in responses:
            if self.runs_call(response.id):
                raise InvalidState(
                    f"call {response.id} ({response.name}) is answered by the session's tool loop; "
                    "pass auto_tools=False to LiveModel to answer calls yourself"
                )
        untracked: list[FunctionResponse] = []
        for response in responses:
            if response.id is None or self.tracker.state(response.id) == "unknown":
                untracked.append(response)
            elif not self.tracker.respond(response):
                logger.info(
                    "live_nb: answer to call %s (%s) not sent: the call is %s",
                    response.id, response.name, self.tracker.state(response.id),
                )
        out = self.tracker.take_outgoing() if self._can_send() else None
        self._changed()
        if out is None:
            return untracked
        self._note_sent(out.function_responses)
        return untracked + list(out.function_responses)

    # Sending.

    def flush(self, skip: set[str | None] | frozenset[str | None] = frozenset()) -> None:
        """Write the queued answers if a connection is open (else they wait for the next one)."""
        if self._closed or not self._can_send():
            return
        out = self.tracker.take_outgoing()
        if out is None:
            return
        responses = tuple(r for r in out.function_responses if r.id is None or r.id not in skip)
        if responses:
            self._note_sent(responses)
            self._write(ToolResponse(responses))

    def _note_sent(self, responses: Sequence[FunctionResponse]) -> None:
        current = self._connection()
        book = self._sent_on
        for response in responses:
            if response.id is not None:
                book[response.id] = current
                book.move_to_end(response.id)
        while len(book) > SENT_MEMORY:
            book.popitem(last=False)

    def close(self) -> None:
        """The session ended: cancel what runs (reported as cancelled); send nothing more."""
        if self._closed:
            return
        self._closed = True
        self.tracker.close()
        running, self._running = self._running, {}
        for run in running.values():
            if run.task is not None:
                run.task.cancel()
            self._record(run, "cancelled", "")
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # Running.

    def _start(self, call: FunctionCall, tool: Tool) -> None:
        loop = asyncio.get_running_loop()
        key = call.id if call.id is not None else f"unnamed-{next(self._keys)}"
        run = _Run(
            call=call, tool=tool, key=key, started=time.monotonic(),
            behavior=effective_behavior(self.info, tool), scheduling=scheduling_for(self.info, tool),
            args=cut_text(dict(call.args)),
        )
        self._running[key] = run
        self._record(run, "running", "")
        run.task = loop.create_task(self._run(run), name=f"live_nb tool {tool.name} {key}")

    async def _run(self, run: _Run) -> None:
        tool, call = run.tool, run.call
        limit = tool.timeout if tool.timeout is not None else self.timeout
        result: object
        status = "returned"
        try:
            async with asyncio.timeout(limit) as scope:
                result = await self._call(tool, call)
        except TimeoutError as exc:  # ours (the limit) or the function's own

            if scope.expired():
                status = "timed_out"
                thread = "" if tool.is_async else " (its thread runs on; its result will be dropped)"
                result = TimeoutError(f"{tool.name} did not finish within {limit:g} s{thread}")
            else:
                status, result = "failed", exc
        except asyncio.CancelledError:
            raise  # cancelled by the server or the session's end: on_cancellation/close reported it
        except Exception as exc:
            status, result = "failed", exc
        if self._running.get(run.key) is not run:
            return  # cancelled while finishing
        del self._running[run.key]
        response = response_for(call, result, scheduling=run.scheduling)
        if self.tracker.respond(response) or call.id is None:
            self.flush()
        self._record(run, status, cut_text(dict(response.response)))
        self._changed()

    async def _call(self, tool: Tool, call: FunctionCall) -> object:
        args, kwargs = tool.bind(call.args)
        if tool.is_async:
            result = tool.function(*args, **kwargs)
        else:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(TOOL_THREADS, "live_nb-tool")
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, functools.partial(tool.function, *args, **kwargs))
        if inspect.isawaitable(result):  # an async function behind a wrapper, or a sync one returning a coroutine
            result = await result
        return result

    def _record(self, run: _Run, status: str, result: str) -> None:
        seconds = 0.0 if status == "running" else max(0.0, time.monotonic() - run.started)
        event = ToolRun(
            call_id=run.call.id or "", name=run.tool.name, args=run.args, status=status,
            seconds=round(seconds, 6), result=result, behavior=run.behavior, scheduling=run.scheduling,
        )
        runs = self._runs
        runs.append(event)
        if len(runs) > RUNS_KEPT:
            del runs[: len(runs) - RUNS_KEPT * 3 // 4]
        self._emit(event)


def declared_behavior(tools: Sequence[Mapping[str, Any]] | None, name: str) -> str | None:
    """The ``behavior`` a raw declaration dict gives function ``name``, or None."""
    for tool in tools or ():
        for key in ("functionDeclarations", "function_declarations"):
            for decl in tool.get(key) or ():
                if isinstance(decl, Mapping) and decl.get("name") == name:
                    behavior = decl.get("behavior")
                    return behavior.upper() if isinstance(behavior, str) else None
    return None
