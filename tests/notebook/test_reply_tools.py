"""notebook/_reply.py with tools and fillers: a cell's answer spans tool calls and extended thinking's turns.

The Turn gets the items a session's listener gets (``ServerContent`` and the tool loop's ``ToolRun``
events) through the real ``Router``, in the orders the emulator sends them (models.md section 2):
the cell shows each call as a text line, keeps waiting while a call it asked runs and until the
spoken answer to a result has been said, ends at once for SILENT results and cancelled calls, and
on extended thinking waits for ``interactionStatus: IDLE``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from live_nb.notebook._reply import Renderer, Router, StreamRenderer, Turn, call_text, plain_text, tool_line
from live_nb.protocol.events import ToolRun
from live_nb.protocol.messages import ServerContent, Transcription


class Recorder(Renderer):
    """Keeps what a cell would show: every update and the finish, with the tool activity lines."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, list[str]]] = []
        self.finished: list[tuple[str, list[str], list[str]]] = []

    def update(self, text: str, notes: list[str], activity: Sequence[str] = ()) -> None:
        self.updates.append((text, list(activity)))

    def finish(self, text: str, notes: list[str], audio: bytes, activity: Sequence[str] = ()) -> None:
        self.finished.append((text, list(notes), list(activity)))


def said(text: str = "", **flags: object) -> ServerContent:
    return ServerContent(output_transcription=Transcription(text=text) if text else None, **flags)  # type: ignore[arg-type]


ARGS = json.dumps({"city": "Paris"})
RESULT = json.dumps({"city": "Paris", "temp_c": 21})


def run(status: str, *, behavior: str = "NON_BLOCKING", scheduling: str | None = None, seconds: float = 0.0,
        result: str = "", call_id: str = "fc-1") -> ToolRun:
    return ToolRun(call_id, "get_weather", ARGS, status, seconds, result, behavior, scheduling)


def play(items: list[object], answer_wait: float = 5.0) -> tuple[Recorder, Turn, bool]:
    """Route ``items`` into a fresh Turn; report whether it completed."""

    async def scenario() -> tuple[Recorder, Turn, bool]:
        recorder = Recorder()
        router = Router()
        turn = Turn(recorder, asyncio.get_running_loop(), answer_wait=answer_wait)
        router.current = turn
        for item in items:
            router(item)
            await asyncio.sleep(0)
        await asyncio.sleep(0.08)  # let a pending render run
        return recorder, turn, turn.done.done()

    return asyncio.run(scenario())


def test_tool_lines_are_text_saying_the_call_and_how_it_ended() -> None:
    assert call_text(run("running")) == "get_weather(city='Paris')"
    assert tool_line(run("running")) == "→ get_weather(city='Paris') … [NON_BLOCKING]"
    assert tool_line(run("returned", seconds=0.0213, result=RESULT)) == (
        '← get_weather returned {"city": "Paris", "temp_c": 21} in 0.02 s'
    )
    assert tool_line(run("returned", scheduling="SILENT", result="{}")).endswith(
        "(SILENT: taken in without a new turn)"
    )
    assert tool_line(run("failed", seconds=0.5, result="ValueError: no such city")) == (
        "← get_weather failed after 0.50 s: ValueError: no such city"
    )
    assert tool_line(run("timed_out", seconds=2.0, result="TimeoutError: ...")).startswith(
        "← get_weather timed out after 2.00 s"
    )
    assert tool_line(run("cancelled", behavior="BLOCKING", seconds=1.0)).startswith("← get_weather cancelled after 1.00 s")
    long = tool_line(run("returned", result="x" * 5000))
    assert len(long) < 400 and long.endswith("… in 0.00 s")
    # Never markup: the bundle is text/plain only, whatever the arguments and results hold.
    hostile = ToolRun("fc-9", "f", json.dumps({"q": "<img src=x onerror=alert(1)>"}), "running")
    bundle = plain_text("<b>reply</b>", [], [tool_line(hostile)])
    assert set(bundle) == {"text/plain"}
    assert bundle["text/plain"] == "→ f(q='<img src=x onerror=alert(1)>') …\n<b>reply</b>"


def test_non_blocking_when_idle_the_cell_waits_for_the_spoken_answer() -> None:
    # As the emulator sends it on gemini-3.8-live: the call, the model keeps speaking, the result goes
    # back while it speaks, the turn ends, then the answer comes as a new turn.
    items = [
        run("running"),
        said("Let me check "),
        run("returned", seconds=0.02, result=RESULT),
        said("that for you."),
        said(turn_complete=True),
    ]
    recorder, turn, done = play(items)
    assert not done and turn.answer_due is not None  # the first turnComplete is not the end
    recorder, turn, done = play([*items, said("Turn 2. The tool answered: get_weather returned " + RESULT),
                                 said(turn_complete=True)])
    assert done
    (text, notes, activity), = recorder.finished
    assert text == "Let me check that for you.\nTurn 2. The tool answered: get_weather returned " + RESULT
    assert activity == [
        "→ get_weather(city='Paris') … [NON_BLOCKING]",
        '← get_weather returned {"city": "Paris", "temp_c": 21} in 0.02 s',
    ]
    assert notes == []


def test_a_call_still_running_when_the_turn_ends_keeps_the_cell_open() -> None:
    items: list[object] = [run("running"), said("Let me check that for you."), said(turn_complete=True)]
    _, turn, done = play(items)
    assert not done and turn.runs
    # SILENT: the result is taken in without a new turn, so the cell ends when the call does.
    recorder, _, done = play([*items, run("returned", scheduling="SILENT", seconds=2.0, result=RESULT)])
    assert done
    assert recorder.finished[0][0] == "Let me check that for you."
    assert "SILENT" in recorder.finished[0][2][-1]


def test_blocking_answer_continues_the_same_turn() -> None:
    # BLOCKING: the model says nothing while the call runs and answers in the same turn.
    recorder, _, done = play([
        run("running", behavior="BLOCKING"),
        run("returned", behavior="BLOCKING", seconds=0.01, result=RESULT),
        said("Turn 1. The tool answered: get_weather returned " + RESULT),
        said(turn_complete=True),
    ])
    assert done and recorder.finished[0][0].startswith("Turn 1. The tool answered")


def test_a_cancelled_call_ends_the_cell_with_the_turn() -> None:
    recorder, _, done = play([
        run("running", behavior="BLOCKING"),
        said(turn_complete=True),  # the service ends the turn with the cancellation
        run("cancelled", behavior="BLOCKING", seconds=0.4),
    ])
    assert done and recorder.finished[0][2][-1].startswith("← get_weather cancelled after 0.40 s")


def test_an_answer_that_never_comes_ends_the_cell_after_the_wait_with_a_note() -> None:
    recorder, _, done = play(
        [run("running"), said("Checking."), run("returned", result=RESULT), said(turn_complete=True)],
        answer_wait=0.02,
    )
    assert done
    assert recorder.finished[0][1] == ["no spoken answer to the tool result within 0.02 s"]


def test_extended_thinking_fillers_do_not_end_the_cell_idle_does() -> None:
    filler = [said("Let me think about that."), said(turn_complete=True, interaction_status="IN_PROGRESS")]
    _, turn, done = play(filler)
    assert not done and turn.fillers == 1
    recorder, _, done = play([*filler, said("Turn 1. You asked."), said(turn_complete=True, interaction_status="IDLE")])
    assert done
    text, _, activity = recorder.finished[0]
    assert text == "Let me think about that.\nTurn 1. You asked."
    assert activity == [
        "· that was a filler (interactionStatus IN_PROGRESS): the answer follows",
        "· interactionStatus IDLE: the answer is complete",
    ]


def test_the_router_keeps_a_discarded_answer_out_across_its_fillers() -> None:
    async def scenario() -> Recorder:
        router = Router()
        router.discard = 1
        router(said("Let me think about that."))
        router(said(turn_complete=True, interaction_status="IN_PROGRESS"))
        router(said("The old answer."))
        router(run("running"))
        router(said(turn_complete=True, interaction_status="IDLE"))
        recorder = Recorder()
        router.current = Turn(recorder, asyncio.get_running_loop())
        router(said("New."))
        router(said(turn_complete=True))
        await asyncio.sleep(0)
        return recorder

    recorder = asyncio.run(scenario())
    assert recorder.finished == [("New.", [], [])]


def test_the_stream_renderer_prints_tool_lines_as_they_happen(capsys: pytest.CaptureFixture[str]) -> None:
    renderer = StreamRenderer()
    renderer.update("", [], ["→ get_weather(city='Paris') …"])
    renderer.update("Let me", [], ["→ get_weather(city='Paris') …"])
    renderer.finish("Let me check.", [], b"", ["→ get_weather(city='Paris') …", "← get_weather returned {} in 0.01 s"])
    out = capsys.readouterr().out
    assert out.index("→ get_weather") < out.index("Let me") < out.index("← get_weather returned")
    assert out.count("→ get_weather") == 1


def test_a_result_back_before_the_models_first_word_still_waits_for_the_answer_turn() -> None:
    # The function returns at once: its result goes back before the filler's first word. The
    # answer still comes after the filler turn, so that turn's end is not the end of the answer.
    items: list[object] = [
        run("running"),
        run("returned", seconds=0.001, result=RESULT),
        said("Let me check that for you."),
        said(turn_complete=True),
    ]
    _, turn, done = play(items)
    assert not done and turn.answer_due == 1
    recorder, _, done = play([*items, said("Turn 1. The tool answered."), said(turn_complete=True)])
    assert done and recorder.finished[0][0] == "Let me check that for you.\nTurn 1. The tool answered."
