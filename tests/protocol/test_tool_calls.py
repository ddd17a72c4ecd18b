"""protocol/tool_calls.py: the models' rules for tools, and the book of calls in flight."""

from __future__ import annotations

import functools
from typing import Any

from live_nb.protocol import catalogue
from live_nb.protocol import content as c
from live_nb.protocol import messages as m
from live_nb.protocol.tool_calls import (
    CallPlan,
    ToolCallTracker,
    check_tool_behavior,
    check_tools,
    effective_behavior,
    scheduling_for,
)
from live_nb.protocol.tools import response_for, tool_from_callable

# --------------------------------------------------------------------------------------------------
# Model rules


def _info(model: str) -> catalogue.ModelInfo:
    info = catalogue.lookup(model)
    assert info is not None
    return info


def test_extended_thinking_refuses_blocking_and_any_scheduling() -> None:
    info = _info("gemini-3.8-live-extended-thinking")
    blocking = check_tool_behavior(info, tool_from_callable(f_none, behavior="BLOCKING"))
    assert blocking is not None
    assert (blocking.code, blocking.reason) == (1007, "BLOCKING function calls are not supported for this model")
    assert "drop behavior='BLOCKING' from f_none" in blocking.advice
    scheduled = check_tool_behavior(info, tool_from_callable(f_none, scheduling="WHEN_IDLE"))
    assert scheduled is not None and scheduled.field == "scheduling" and "scheduling" in scheduled.reason
    assert check_tool_behavior(info, tool_from_callable(f_none)) is None
    assert check_tools(info, [tool_from_callable(f_scalars), tool_from_callable(f_none, behavior="BLOCKING")])


def test_blocking_only_model_refuses_non_blocking_and_unknown_models_pass() -> None:
    info = _info("gemini-3.1-flash-live-preview")
    refusal = check_tool_behavior(info, tool_from_callable(f_none, behavior="NON_BLOCKING"))
    assert refusal is not None and "NON_BLOCKING" in refusal.reason
    assert check_tool_behavior(None, tool_from_callable(f_none, behavior="BLOCKING", timeout=1)) is None
    assert check_tool_behavior(_info("gemini-3.8-live"), tool_from_callable(f_none, scheduling="INTERRUPT")) is None


def test_effective_behavior_and_scheduling_sent() -> None:
    live = _info("gemini-3.8-live")
    native = _info("gemini-2.5-flash-native-audio-preview-12-2025")
    plain = tool_from_callable(f_none)
    silent = tool_from_callable(f_none, scheduling="SILENT")
    assert effective_behavior(live, plain) == "NON_BLOCKING"
    assert effective_behavior(native, plain) == "BLOCKING"
    assert effective_behavior(None, plain) is None
    assert scheduling_for(live, plain) is None  # unset: the service's WHEN_IDLE, nothing sent
    assert scheduling_for(live, silent) == "SILENT"
    assert scheduling_for(native, silent) is None  # a BLOCKING call: the service would ignore it
    assert scheduling_for(_info("gemini-3.8-live-extended-thinking"), silent) is None
    assert scheduling_for(None, silent) is None
    assert scheduling_for(None, tool_from_callable(f_none, behavior="NON_BLOCKING", scheduling="SILENT")) == "SILENT"


def f_scalars(city: str, days: int = 3, ratio: float = 0.5, ok: bool = True) -> dict:  # type: ignore[type-arg]
    return {}


def f_none() -> str:
    return "x"



# --------------------------------------------------------------------------------------------------
# Calls in flight


def _call(call_id: str, name: str = "f", **kw: Any) -> c.FunctionCall:
    return c.FunctionCall(name, kw.pop("args", {}), id=call_id, **kw)


def _tool_call(*calls: c.FunctionCall) -> m.ToolCall:
    frame = m.encode_server_frame(m.ToolCall(calls))
    [message] = m.parse_server_frame(frame)  # what the tracker sees is what came off the wire
    assert isinstance(message, m.ToolCall)
    return message


def test_each_call_runs_once_and_is_answered_once() -> None:
    tracker = ToolCallTracker()
    plan = tracker.on_tool_call(_tool_call(_call("a"), _call("b")))
    assert [call.id for call in plan.run] == ["a", "b"] and plan.resend == ()
    assert tracker.on_tool_call(_tool_call(_call("a"))) == CallPlan()  # running: not again
    assert tracker.respond(response_for(plan.run[0], 1))
    assert not tracker.respond(response_for(plan.run[0], 2))  # a second answer is refused
    assert not tracker.respond(response_for(_call("zzz"), 2))  # unknown call
    assert tracker.state("a") == "answered" and tracker.state("b") == "running"
    out = tracker.take_outgoing()
    assert out is not None and [r.response for r in out.function_responses] == [{"result": 1}]
    assert tracker.take_outgoing() is None
    assert [call.id for call in tracker.pending] == ["b"]


def test_cancellation_cancels_running_calls_and_drops_their_queued_answers() -> None:
    tracker = ToolCallTracker()
    plan = tracker.on_tool_call(_tool_call(_call("a"), _call("b")))
    assert tracker.respond(response_for(plan.run[0], "interim", will_continue=True))
    [cancel] = m.parse_server_frame(m.encode_server_frame(m.ToolCallCancellation(("a", "b", "never"))))
    assert isinstance(cancel, m.ToolCallCancellation)
    assert [call.id for call in tracker.on_cancellation(cancel)] == ["a", "b"]
    assert tracker.take_outgoing() is None  # the interim answer to a cancelled call never goes out
    assert not tracker.respond(response_for(plan.run[1], "late"))
    assert tracker.state("a") == "cancelled" and tracker.pending == ()
    # Asked again after the cancellation (same id): the server wants it now.
    assert [call.id for call in tracker.on_tool_call(_tool_call(_call("a"))).run] == ["a"]


def test_interim_answers_keep_the_call_open_until_the_final_one() -> None:
    tracker = ToolCallTracker()
    [call] = tracker.on_tool_call(_tool_call(_call("a"))).run
    assert tracker.respond(response_for(call, {"progress": 0.5}, will_continue=True))
    assert tracker.state("a") == "running"
    assert tracker.respond(response_for(call, {"done": True}, will_continue=False))
    assert tracker.state("a") == "answered"
    out = tracker.take_outgoing()
    assert out is not None and [r.will_continue for r in out.function_responses] == [True, False]


def test_across_a_resume_pending_calls_and_queued_answers_are_what_is_owed() -> None:
    tracker = ToolCallTracker()
    a, b = tracker.on_tool_call(_tool_call(_call("a"), _call("b"))).run
    tracker.respond(response_for(a, "A"))
    sent = tracker.take_outgoing()  # went out just before the drop: in flight
    # ...the connection drops; b finishes while it is down...
    tracker.respond(response_for(b, "B"))
    assert [r.id for r in tracker.queued] == ["b"]  # held for the next connection
    # After resuming from a point before it read a's answer, the server asks for a again:
    plan = tracker.on_tool_call(_tool_call(_call("a")))
    assert plan.run == () and sent is not None and plan.resend == sent.function_responses
    out = tracker.take_outgoing()
    assert out is not None and [r.id for r in out.function_responses] == ["b", "a"]
    assert tracker.pending == ()


def test_close_returns_running_calls_and_sends_nothing_more() -> None:
    tracker = ToolCallTracker()
    [a, b] = tracker.on_tool_call(_tool_call(_call("a"), _call("b"))).run
    tracker.respond(response_for(a, "A"))
    assert tracker.close() == (b,)
    assert tracker.take_outgoing() is None


def test_memory_is_bounded() -> None:
    tracker = ToolCallTracker(memory=3)
    for i in range(10):
        [call] = tracker.on_tool_call(_tool_call(_call(str(i)))).run
        tracker.respond(response_for(call, i))
    assert tracker.state("0") == "unknown" and tracker.state("9") == "answered"


def test_calls_without_id_run_and_are_answered_untracked() -> None:
    tracker = ToolCallTracker()
    call = c.FunctionCall("f", {})
    assert tracker.on_tool_call(_tool_call(call)).run == (call,)
    assert tracker.respond(response_for(call, 1))
    out = tracker.take_outgoing()
    assert out is not None and out.function_responses[0].id is None


def test_streamed_calls_run_once_complete_with_partial_args_merged() -> None:
    tracker = ToolCallTracker()
    part = functools.partial(c.PartialArg)
    first = _call("s", name="write", partial_args=(part("$.title", string_value="Hel", will_continue=True),),
                  will_continue=True)
    second = _call("s", name="write", partial_args=(
        part("$.title", string_value="lo"),
        part("$.meta.tags[1]", string_value="b"),
        part("$.meta.draft", bool_value=True),
        part("$.meta.size", number_value=3),
        part("$['odd key']", null_value=True),
        part("bad path", string_value="skipped"),
    ), will_continue=True)
    last = _call("s", name="write", args={"body": "text"})
    assert tracker.on_tool_call(_tool_call(first)).run == ()
    assert tracker.on_tool_call(_tool_call(second)).run == ()
    assert tracker.state("s") == "streaming"
    [complete] = tracker.on_tool_call(_tool_call(last)).run
    assert complete == c.FunctionCall("write", {
        "title": "Hello", "meta": {"tags": [None, "b"], "draft": True, "size": 3}, "odd key": None, "body": "text",
    }, id="s")
    assert tracker.state("s") == "running"
