"""Function calls in flight: the book a session's tool loop keeps, and each model's rules for tools.

Why apart from tools.py: declarations and results (tools.py) sit below the config, which takes
functions as tools; the book of calls reads server messages and the catalogue, which sit above it.
Sans-I/O: running a function, its clock and its thread are the tool loop's (client/tool_loop.py).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .catalogue import INVALID, ModelInfo, Refusal
from .content import FunctionCall, FunctionResponse, PartialArg
from .messages import ToolCall, ToolCallCancellation, ToolResponse
from .tools import Tool

__all__ = [
    "CallPlan",
    "ToolCallTracker",
    "check_tool_behavior",
    "check_tools",
    "effective_behavior",
    "scheduling_for",
]

logger = logging.getLogger("live_nb.protocol")

# --------------------------------------------------------------------------------------------------
# Model rules


def effective_behavior(info: ModelInfo | None, tool: Tool) -> str | None:
    """How the model runs calls to this tool: its own ``behavior``, else the model's default (None: unknown model)."""
    if tool.behavior is not None:
        return tool.behavior
    return None if info is None else info.function_behavior


def scheduling_for(info: ModelInfo | None, tool: Tool) -> str | None:
    """The ``scheduling`` to put on this tool's responses, or None to send none.

    Only what the tool asks for, only for NON_BLOCKING calls (the service ignores it on others),
    never on a model that refuses it (check_tool_behavior says so before connecting).
    """
    if tool.scheduling is None:
        return None
    if info is not None and not info.response_scheduling:
        return None
    return tool.scheduling if effective_behavior(info, tool) == "NON_BLOCKING" else None


def check_tool_behavior(info: ModelInfo | None, tool: Tool) -> Refusal | None:
    """The catalogue rule this tool breaks on this model, or None (a model the catalogue lacks: None).

    Worded as the catalogue's ``check_setup`` words the same rules, so the client's error and the
    emulator's close reason agree. The client raises ``ConfigError`` for it before connecting.
    """
    if info is None:
        return None
    if tool.behavior == "BLOCKING" and not info.blocking_allowed:
        return Refusal(
            1007, "BLOCKING function calls are not supported for this model", "tools", tool.name,
            f"{info.id} calls functions asynchronously only; drop behavior='BLOCKING' from {tool.name}",
        )
    if tool.behavior == "NON_BLOCKING" and not info.non_blocking_allowed:
        return Refusal(
            1007, f"{INVALID[:-1]}: NON_BLOCKING function calls are not supported for this model.", "tools",
            tool.name, f"{info.id} calls functions blocking only; drop behavior='NON_BLOCKING' from {tool.name}",
        )
    if tool.scheduling is not None and not info.response_scheduling:
        return Refusal(
            1007, f"{INVALID[:-1]}: scheduling is not supported for this model.", "scheduling", tool.name,
            f"{info.id} does not take a scheduling on tool responses; leave scheduling unset for {tool.name}",
        )
    return None


def check_tools(info: ModelInfo | None, tools: Iterable[Tool]) -> Refusal | None:
    """The first rule any of these tools breaks on this model, or None."""
    for tool in tools:
        refusal = check_tool_behavior(info, tool)
        if refusal is not None:
            return refusal
    return None


# --------------------------------------------------------------------------------------------------
# Calls in flight


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What the tool loop does about one ToolCall message.

    Attributes:
        run: complete calls to start now (a call streamed in parts is here once, when complete).
        resend: final answers to calls the server asked for again with the same id (after a resume
            from a point before it read them): send them again, do not run the function twice.
    """

    run: tuple[FunctionCall, ...] = ()
    resend: tuple[FunctionResponse, ...] = ()


class ToolCallTracker:
    """The book of function calls in flight for one session, across its connections. Sans-I/O.

    The tool loop feeds it the server's ``ToolCall`` and ``ToolCallCancellation`` messages and the
    responses its functions produce; it says which calls to start, which to cancel, and which
    responses to send, so that each call gets at most one final answer:

    - ``on_tool_call`` -> a CallPlan: new calls to run; a call id already running is not run again;
      one already answered is answered again from memory (``resend``); parts of a streamed call
      (``will_continue=True``) are held until the last one and merged.
    - ``on_cancellation`` -> the running calls to cancel; queued answers to them are dropped and any
      later answer is refused.
    - ``respond`` queues an answer (True) or refuses it (False: cancelled, already answered, unknown
      id). An interim answer (``will_continue=True``) keeps the call open; the final one closes it.
    - ``take_outgoing`` hands the queued answers over as one ToolResponse (None when none): call it
      when connected. Answers produced while the connection is down stay queued for the next one,
      so after a resume ``pending`` (still running) and the queue are exactly what is owed.

    Memory is bounded: the last ``memory`` answered and cancelled ids are remembered.
    Calls without an ``id`` (the Developer API and the emulator always send one) are run but
    cannot be tracked: their answers are queued as they come.
    """

    def __init__(self, memory: int = 1000) -> None:
        self._memory = memory
        self._running: dict[str, FunctionCall] = {}
        self._streams: dict[str, list[FunctionCall]] = {}
        self._answered: OrderedDict[str, FunctionResponse] = OrderedDict()
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._outbox: list[FunctionResponse] = []

    @property
    def pending(self) -> tuple[FunctionCall, ...]:
        """Calls started and not finally answered or cancelled, oldest first."""
        return tuple(self._running.values())

    @property
    def queued(self) -> tuple[FunctionResponse, ...]:
        """Answers waiting for ``take_outgoing``."""
        return tuple(self._outbox)

    def state(self, call_id: str) -> str:
        """``streaming``, ``running``, ``answered``, ``cancelled`` or ``unknown``."""
        if call_id in self._running:
            return "running"
        if call_id in self._streams:
            return "streaming"
        if call_id in self._answered:
            return "answered"
        if call_id in self._cancelled:
            return "cancelled"
        return "unknown"

    def on_tool_call(self, message: ToolCall) -> CallPlan:
        run: list[FunctionCall] = []
        resend: list[FunctionResponse] = []
        for call in message.function_calls:
            if call.id is None:
                run.append(call)
                continue
            if call.id in self._running:
                continue  # asked again while running: its answer is on the way
            if call.id in self._answered:
                resend.append(self._answered[call.id])
                continue
            self._cancelled.pop(call.id, None)  # asked again after a cancellation: the server wants it now
            if call.will_continue:
                self._streams.setdefault(call.id, []).append(call)
                continue
            parts = self._streams.pop(call.id, [])
            complete = _merge([*parts, call]) if parts or call.partial_args else call
            self._running[call.id] = complete
            run.append(complete)
        for response in resend:
            if response not in self._outbox:
                self._outbox.append(response)
        return CallPlan(tuple(run), tuple(resend))

    def on_cancellation(self, message: ToolCallCancellation) -> tuple[FunctionCall, ...]:
        cancelled: list[FunctionCall] = []
        for call_id in message.ids:
            call = self._running.pop(call_id, None)
            streaming = self._streams.pop(call_id, None)
            if call is not None:
                cancelled.append(call)
            if call is not None or streaming is not None:
                self._remember(self._cancelled, call_id, None)
                self._outbox = [r for r in self._outbox if r.id != call_id]
        return tuple(cancelled)

    def respond(self, response: FunctionResponse) -> bool:
        """Queue an answer; False (nothing queued) when its call is cancelled, answered or unknown."""
        if response.id is None:
            self._outbox.append(response)
            return True
        call = self._running.get(response.id)
        if call is None:
            if response.id in self._cancelled:
                logger.debug("live_nb: answer to cancelled call %s dropped", response.id)
            return False
        self._outbox.append(response)
        if not response.will_continue:
            del self._running[response.id]
            self._remember(self._answered, response.id, response)
        return True

    def take_outgoing(self) -> ToolResponse | None:
        """The queued answers as one ToolResponse, emptying the queue; None when nothing is queued."""
        if not self._outbox:
            return None
        out, self._outbox = self._outbox, []
        return ToolResponse(tuple(out))

    def close(self) -> tuple[FunctionCall, ...]:
        """The session is over: the calls still running (cancel them); nothing more is sent."""
        running = tuple(self._running.values())
        self._running.clear()
        self._streams.clear()
        self._outbox.clear()
        return running

    def _remember(self, book: OrderedDict[str, Any], key: str, value: Any) -> None:
        book[key] = value
        book.move_to_end(key)
        while len(book) > self._memory:
            book.popitem(last=False)


_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def _merge(parts: Sequence[FunctionCall]) -> FunctionCall:
    """One complete call from the parts of a streamed one: args merged, ``partialArgs`` applied in order."""
    args: dict[str, Any] = {}
    continuing: set[str] = set()
    for part in parts:
        args.update(part.args)
        for piece in part.partial_args:
            _apply(args, piece, continuing)
    last = parts[-1]
    return FunctionCall(name=last.name or parts[0].name, args=args, id=last.id)


def _apply(args: dict[str, Any], piece: PartialArg, continuing: set[str]) -> None:
    steps = _path_steps(piece.json_path)
    if not steps:
        logger.info("live_nb: partial argument with an unreadable jsonPath %r skipped", piece.json_path[:80])
        return
    node: Any = args
    for step, following in itertools.pairwise(steps):
        child = node[step] if _has(node, step) else None
        if not isinstance(child, (dict, list)):
            child = [] if isinstance(following, int) else {}
            _put(node, step, child)
        node = child
    last = steps[-1]
    value = None if piece.null_value else piece.value
    if (
        piece.json_path in continuing
        and isinstance(value, str)
        and _has(node, last)
        and isinstance(node[last], str)
    ):
        value = node[last] + value
    _put(node, last, value)
    if piece.will_continue:
        continuing.add(piece.json_path)
    else:
        continuing.discard(piece.json_path)


def _path_steps(path: str) -> list[str | int]:
    if not path.startswith("$"):
        return []
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _PATH_STEP.match(path, position)
        if match is None:
            return []
        name, index, quoted, double = match.groups()
        steps.append(int(index) if index is not None else (name or quoted or double or ""))
        position = match.end()
    return steps


def _has(node: Any, step: str | int) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(node, list) and isinstance(step, int) and step < len(node)


def _put(node: Any, step: str | int, value: Any) -> None:
    if isinstance(node, dict):
        node[step] = value
    elif isinstance(node, list) and isinstance(step, int) and step <= 10_000:
        node.extend([None] * (step + 1 - len(node)))
        node[step] = value
