"""The emulator's function calls, sans-I/O (engine.py): behaviour per model, scheduling, interim
results, parts, extended thinking's interactionStatus, and calls across a resume (issue 13).

Each test drives a ``ServerEngine`` the way server.py does (streams run chunk by chunk, then
``finish_reply``) and reads the actions it returns: no sockets, no clock.
"""

from __future__ import annotations

import json
from typing import Any

from live_nb.emulator.engine import Action, Checkpoint, Send, ServerEngine, SessionState, Stream
from live_nb.emulator.responder import CHECKING, THINKING, ContextResponder
from live_nb.emulator.server_protocol import check_setup
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig, ThinkingConfig
from live_nb.protocol.content import Blob, Content, FunctionResponse, FunctionResponsePart, Part
from live_nb.protocol.messages import (
    ClientContent,
    ServerContent,
    SessionResumptionUpdate,
    Setup,
    SetupComplete,
    ToolCall,
    ToolCallCancellation,
    ToolResponse,
)

MODEL = "models/gemini-3.8-live"
NATIVE_25 = "models/gemini-2.5-flash-native-audio-preview-12-2025"
EXTENDED = "models/gemini-3.8-live-extended-thinking"
TRANSPARENT = SessionResumptionConfig(transparent=True)


def tools(*behaviors: tuple[str, str | None]) -> list[dict[str, Any]]:
    decls = []
    for name, behavior in behaviors:
        decl: dict[str, Any] = {"name": name, "parameters": {"type": "OBJECT", "properties": {"tz": {}}}}
        if behavior:
            decl["behavior"] = behavior
        decls.append(decl)
    return [{"functionDeclarations": decls}]


def engine_for(model: str = MODEL, declared: list[dict[str, Any]] | None = None, state: SessionState | None = None,
               flavor: str = "vertex", **fields: Any) -> ServerEngine:
    config = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True,
                                  tools=declared or tools(("get_time", None)), **fields)
    resumption = TRANSPARENT if flavor == "vertex" else SessionResumptionConfig()
    setup = Setup(model=model, config=config, session_resumption=resumption)
    assert check_setup(setup, flavor, "v1beta") is None
    return ServerEngine(setup, state or SessionState("sess-tools", model.rsplit("/", 1)[-1]), [],
                        ContextResponder(), resumed=state is not None, flavor=flavor)


def user(text: str) -> ClientContent:
    return ClientContent((Content("user", (Part(text=text),)),), True)


def result(call_id: str, value: str, **fields: Any) -> ToolResponse:
    return ToolResponse((FunctionResponse("get_time", {"time": value}, id=call_id, **fields),))


def streams(actions: list[Action]) -> list[Stream]:
    return [a for a in actions if isinstance(a, Stream)]


def sent(actions: list[Action]) -> list[Any]:
    return [a.message for a in actions if isinstance(a, Send)]


def said(stream: Stream) -> str:
    return "".join(c.output_transcription.text for c in stream.plan.chunks
                   if isinstance(c, ServerContent) and c.output_transcription).strip()


def finish(engine: ServerEngine, actions: list[Action]) -> list[Action]:
    """Stream every reply in ``actions`` to its end, as server.py does; returns every action seen."""
    out = list(actions)
    for stream in streams(actions):
        while stream.plan.sent < len(stream.plan.chunks) and not stream.plan.cancelled:
            engine.chunk_sent(stream.plan)
        out += finish(engine, engine.finish_reply(stream.plan))
    return out


def statuses(actions: list[Action]) -> list[str | None]:
    return [m.interaction_status for m in sent(actions) if isinstance(m, ServerContent) and m.turn_complete]


def test_non_blocking_by_default_on_38_the_model_keeps_talking_and_stays_resumable() -> None:
    engine = engine_for()
    actions = engine.receive(user("get_time tz=UTC"))
    (call,) = [m for m in sent(actions) if isinstance(m, ToolCall)]
    assert call.function_calls[0].id == "fc-1" and call.function_calls[0].args == {"tz": "UTC"}
    (filler,) = streams(actions)
    assert said(filler) == CHECKING and not engine.resumable  # speaking
    done = finish(engine, [filler])
    checkpoint = done[-1]
    assert isinstance(checkpoint, Checkpoint) and engine.resumable  # a running NON_BLOCKING call does not block
    assert checkpoint.state["calls"] == {"fc-1": {"name": "get_time", "args": {"tz": "UTC"},
                                                  "behavior": "NON_BLOCKING", "interim": 0}}


def test_when_idle_result_waits_for_the_turn_to_end_then_is_answered_with_no_checkpoint_between() -> None:
    engine = engine_for()
    (filler,) = streams(engine.receive(user("get_time tz=UTC")))
    engine.chunk_sent(filler.plan)
    assert engine.receive(result("fc-1", "12:00")) == []  # WHEN_IDLE (no scheduling): owed, not now
    assert engine.state.owed and not engine.state.calls
    while filler.plan.sent < len(filler.plan.chunks):
        engine.chunk_sent(filler.plan)
    after = engine.finish_reply(filler.plan)
    assert [type(m).__name__ for m in sent(after)][:2] == ["ServerContent", "ServerContent"]
    assert not any(isinstance(a, Checkpoint) for a in after)  # the answer starts at once
    (answer,) = streams(after)
    assert 'The tool answered: get_time returned {"time": "12:00"}' in said(answer)
    assert isinstance(finish(engine, [answer])[-1], Checkpoint) and not engine.state.owed


def test_silent_result_is_folded_in_without_a_reply() -> None:
    engine = engine_for()
    finish(engine, engine.receive(user("get_time tz=UTC")))
    assert engine.receive(result("fc-1", "12:00", scheduling="SILENT")) == []
    assert engine.periodic() and not engine.generating  # a checkpoint, no turn
    assert engine.state.turns[-1].text == '[get_time returned {"time": "12:00"}]' and not engine.state.owed


def test_interrupt_result_cuts_the_reply_checkpoints_before_it_and_answers_at_once() -> None:
    engine = engine_for()
    (filler,) = streams(engine.receive(user("get_time tz=UTC")))
    engine.chunk_sent(filler.plan)
    actions = engine.receive(result("fc-1", "12:00", scheduling="INTERRUPT"))
    messages = sent(actions)
    assert messages[0] == ServerContent(interrupted=True) and messages[1].turn_complete
    checkpoint = next(a for a in actions if isinstance(a, Checkpoint))
    assert checkpoint.index == engine.index - 1 and "fc-1" in checkpoint.state["calls"]  # Rule 5
    (answer,) = streams(actions)
    assert 'get_time returned {"time": "12:00"}' in said(answer)
    assert filler.plan.cancelled


def test_interrupt_when_idle_answers_at_once() -> None:
    engine = engine_for()
    finish(engine, engine.receive(user("get_time tz=UTC")))
    (answer,) = streams(engine.receive(result("fc-1", "12:00", scheduling="INTERRUPT")))
    assert 'get_time returned {"time": "12:00"}' in said(answer)


def test_blocking_waits_and_new_input_cancels_only_blocking_calls() -> None:
    engine = engine_for(declared=tools(("get_time", "BLOCKING"), ("get_date", None)))
    actions = engine.receive(user("get_date tz=A"))  # NON_BLOCKING (3.8's default)
    finish(engine, actions)
    actions = engine.receive(user("get_time tz=B"))
    assert not streams(actions) and not engine.resumable  # BLOCKING: the model waits, silent
    assert engine.waiting_calls == {"fc-2": "get_time"} and engine.pending_calls == {"fc-1": "get_date",
                                                                                     "fc-2": "get_time"}
    actions = engine.receive(user("never mind"))
    messages = sent(actions)
    assert messages[0] == ToolCallCancellation(("fc-2",)) and messages[1] == ServerContent(interrupted=True)
    assert engine.pending_calls == {"fc-1": "get_date"}  # the NON_BLOCKING call still runs
    assert 'You asked: "never mind"' in said(streams(actions)[0])
    finish(engine, actions)
    late = engine.receive(result("fc-2", "late"))
    assert late == [] and engine.ignored_responses == 1  # an answer to a cancelled call: ignored quietly


def test_blocking_is_the_default_on_25() -> None:
    engine = engine_for(model=NATIVE_25, flavor="gemini")
    actions = engine.receive(user("get_time tz=UTC"))
    assert not streams(actions) and engine.waiting_calls == {"fc-1": "get_time"}
    (answer,) = streams(engine.receive(result("fc-1", "12:00", scheduling="SILENT")))  # ignored on BLOCKING
    assert said(answer).startswith('Turn 1. The tool answered: get_time returned {"time": "12:00"}')


def test_interim_results_keep_the_call_open_and_parts_are_counted() -> None:
    engine = engine_for()
    finish(engine, engine.receive(user("get_time tz=UTC")))
    assert engine.receive(result("fc-1", "half", will_continue=True)) == []
    assert engine.pending_calls == {"fc-1": "get_time"} and engine.state.calls["fc-1"]["interim"] == 1
    image = FunctionResponsePart(inline_data=Blob(b"\x89PNG", "image/png"))
    (answer,) = streams(engine.receive(result("fc-1", "12:00", parts=(image,))))
    assert 'get_time returned {"time": "12:00"} with 1 part, after 1 interim result' in said(answer)
    assert engine.state.response_parts == 1 and not engine.pending_calls
    folded = next(t for t in engine.state.turns if t.text.startswith('[get_time returned'))
    assert folded.text == '[get_time returned {"time": "12:00"} with 1 part (image/png)]'
    assert folded.modalities["VIDEO"] == engine.state.frame_tokens  # the image costs a frame


def test_extended_thinking_says_fillers_in_progress_then_idle() -> None:
    thinking = {"thinking": ThinkingConfig(thinking_level="LOW")}
    engine = engine_for(model=EXTENDED, flavor="gemini", **thinking)
    everything = finish(engine, engine.receive(user("hello")))
    texts = [said(s) for s in streams(everything)]
    assert texts[0] == THINKING and texts[1].startswith("Turn 1.")
    assert statuses(everything) == ["IN_PROGRESS", "IDLE"]
    # A call: the filler while it runs ends IN_PROGRESS; the answer to its result ends IDLE.
    everything = finish(engine, engine.receive(user("get_time tz=UTC")))
    assert [said(s) for s in streams(everything)] == [CHECKING] and statuses(everything) == ["IN_PROGRESS"]
    everything = finish(engine, engine.receive(result("fc-1", "12:00")))
    assert statuses(everything) == ["IDLE"]


def test_a_resume_asks_again_for_calls_still_pending_with_their_ids() -> None:
    engine = engine_for()
    checkpoint = finish(engine, engine.receive(user("get_time tz=UTC")))[-1]
    assert isinstance(checkpoint, Checkpoint)
    # The client answered, but the connection dropped before the answer was read: resume from the checkpoint.
    state = SessionState.from_json(json.loads(json.dumps(checkpoint.state)))
    resumed = engine_for(state=state)
    opening = sent(resumed.start())
    assert isinstance(opening[0], SetupComplete)
    assert opening[1] == ToolCall((opening[1].function_calls[0],)) and opening[1].function_calls[0].id == "fc-1"
    assert opening[1].function_calls[0].args == {"tz": "UTC"}
    # Transparent replay and the tracker's re-sent answer both arrive: the model answers once.
    (answer,) = streams(resumed.receive(result("fc-1", "12:00")))
    assert resumed.receive(result("fc-1", "12:00")) == [] and resumed.ignored_responses == 1
    assert 'get_time returned {"time": "12:00"}' in said(answer)
    # Once the answer is read and checkpointed, a resume does not ask again.
    later = finish(resumed, [answer])[-1]
    assert isinstance(later, Checkpoint) and later.state["calls"] == {}
    again = engine_for(state=SessionState.from_json(json.loads(json.dumps(later.state))))
    assert [type(m) for m in sent(again.start())] == [SetupComplete]


def test_a_result_owed_at_a_barge_in_checkpoint_is_still_answered_after_a_resume() -> None:
    engine = engine_for()
    (filler,) = streams(engine.receive(user("get_time tz=UTC")))
    engine.chunk_sent(filler.plan)
    engine.receive(result("fc-1", "12:00"))  # WHEN_IDLE while the filler plays: owed
    actions = engine.receive(user("and the date?"))  # barges in: checkpoint before it, with the debt
    checkpoint = next(a for a in actions if isinstance(a, Checkpoint))
    assert checkpoint.state["owed"] and checkpoint.state["owed"][0]["id"] == "fc-1"
    resumed = engine_for(state=SessionState.from_json(json.loads(json.dumps(checkpoint.state))))
    # Without replay (the Developer API), the next periodic tick answers the debt.
    tick = resumed.periodic()
    assert sent(tick) == [SessionResumptionUpdate(new_handle=None, resumable=False)]
    assert 'get_time returned {"time": "12:00"}' in said(streams(tick)[0])
