"""The session's tool loop against the real in-process emulator over real sockets.

The emulator calls a declared function when the user's text names it, with arguments from
``param=value`` words ("get_weather city=Paris"), and its reply after a tool response quotes what the
function returned (``get_weather returned {...}``): the round trip is readable in the transcription.
On ``gemini-3.8-live`` calls are NON_BLOCKING by default: the model speaks a filler ("Let me check
that for you.") while the function runs, and the result's ``scheduling`` decides how it comes back.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from emulator_constants import TEST_CHUNK_DELAY

from live_nb.client.reconnect import ReconnectPolicy
from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.exceptions import ConfigError, InvalidState, LocalProtocolError
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig, ThinkingConfig
from live_nb.protocol.content import FunctionResponse
from live_nb.protocol.events import ToolRun
from live_nb.protocol.messages import ServerContent, ToolCall, ToolCallCancellation, ToolResponse
from live_nb.protocol.tools import response_for, tool_from_callable

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-3.8-live"
THINKING = "gemini-3.8-live-extended-thinking"
NATIVE_25 = "gemini-2.5-flash-native-audio-preview-12-2025"
PARIS = {"city": "Paris", "sky": "sunny", "celsius": 21}
QUOTED = 'get_weather returned {"celsius": 21, "city": "Paris", "sky": "sunny"}'
FILLER = "Let me check that for you."


def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city (answers at once).

    Args:
        city: the city's name.
    """
    return dict(PARIS, city=city)


class Recorder:
    """Everything the session's listeners see, in order, with the time each item came."""

    def __init__(self, session: LiveSession) -> None:
        self.items: list[Any] = []
        self.times: list[float] = []
        self.remove = session.add_listener(self._add)

    def _add(self, item: Any) -> None:
        self.items.append(item)
        self.times.append(time.monotonic())

    def runs(self, status: str | None = None) -> list[ToolRun]:
        return [i for i in self.items if isinstance(i, ToolRun) and (status is None or i.status == status)]

    def index(self, predicate: Any) -> int:
        return next(n for n, item in enumerate(self.items) if predicate(item))

    def text(self, start: int = 0, end: int | None = None) -> str:
        return "".join(
            i.output_transcription.text
            for i in self.items[start:end]
            if isinstance(i, ServerContent) and i.output_transcription is not None
        )

    def turns(self) -> list[str]:
        """The transcription of each completed turn (interrupted turns end with "|interrupted")."""
        out: list[str] = []
        parts: list[str] = []
        for item in self.items:
            if not isinstance(item, ServerContent):
                continue
            if item.output_transcription is not None:
                parts.append(item.output_transcription.text)
            if item.interrupted:
                parts.append("|interrupted")
            if item.turn_complete:
                out.append("".join(parts).strip())
                parts = []
        return out

    async def wait(self, predicate: Any, seconds: float = 10.0) -> None:
        async with asyncio.timeout(seconds):
            while not any(predicate(i) for i in self.items):
                await asyncio.sleep(0.005)


def audio_chunks(items: list[Any]) -> int:
    return sum(1 for i in items if isinstance(i, ServerContent) and i.audio)


def tool_responses(emu: Emulator, session: LiveSession) -> list[FunctionResponse]:
    assert session.session_id is not None
    sess = emu.sessions[session.session_id]
    return [r for m in sess.consumed if isinstance(m, ToolResponse) for r in m.function_responses]


def context_text(emu: Emulator, session: LiveSession) -> list[str]:
    assert session.session_id is not None
    return [text for _, text, _ in emu.sessions[session.session_id].context]


@pytest.fixture
async def slow_emulator() -> AsyncIterator[Emulator]:
    """Replies paced at 20 ms a chunk (40 ms of audio each): a filler lasts about a second."""
    async with Emulator(host="127.0.0.1", port=0, chunk_delay=0.02) as emu:
        yield emu


async def ask(session: LiveSession, text: str, seconds: float = 15.0) -> Recorder:
    """Send ``text`` and wait for the model's whole answer; the recorder saw it all."""
    recorder = Recorder(session)
    await session.send_text(text)
    async with asyncio.timeout(seconds):
        await session.answer_done()
    recorder.remove()
    return recorder


# Functions as tools: run once with the model's arguments; the reply quotes the result.


async def test_a_sync_function_runs_once_in_a_worker_thread_and_the_reply_quotes_it(emulator: Emulator) -> None:
    calls: list[tuple[str, str]] = []

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city.

        Args:
            city: the city's name.
        """
        calls.append((city, threading.current_thread().name))
        return PARIS

    model = LiveModel(MODEL, url=emulator.url, tools=[get_weather])
    assert [t.name for t in model.tools] == ["get_weather"]
    async with model.connect() as s:
        loop_thread = threading.current_thread().name
        seen = await ask(s, "get_weather city=Paris")
    assert len(calls) == 1 and calls[0][0] == "Paris"
    assert calls[0][1] != loop_thread and calls[0][1].startswith("live_nb-tool")
    assert QUOTED in seen.text()
    assert [r.status for r in seen.runs()] == ["running", "returned"]
    done = seen.runs("returned")[0]
    assert done.name == "get_weather" and json.loads(done.args) == {"city": "Paris"}
    assert json.loads(done.result) == PARIS and done.behavior == "NON_BLOCKING" and done.scheduling is None
    assert not s.pending_tool_calls and not s.answering


async def test_an_async_function_runs_once_on_the_loop_and_the_blocking_model_quotes_it() -> None:
    calls: list[str] = []

    async def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        calls.append(city)
        await asyncio.sleep(0.05)
        return PARIS

    # 2.5 native audio calls BLOCKING by default: the model waits, then answers in the same turn.
    async with Emulator(port=0, chunk_delay=TEST_CHUNK_DELAY, mode="gemini") as emu:
        model = LiveModel(NATIVE_25, url=emu.url, tools=[get_weather])
        async with model.connect() as s:
            seen = await ask(s, "get_weather city=Paris")
    assert calls == ["Paris"]
    assert QUOTED in seen.text()
    assert FILLER not in seen.text()  # BLOCKING: no filler while it runs
    assert seen.runs("returned")[0].behavior == "BLOCKING"
    assert len(seen.turns()) == 1


async def test_toolcall_reaches_receive_before_its_toolrun_events_and_the_events_log_keeps_them(
    emulator: Emulator,
) -> None:
    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        return PARIS

    async with LiveModel(MODEL, url=emulator.url, tools=[get_weather]).connect() as s:
        await s.send_text("get_weather city=Paris")
        received: list[Any] = []
        async with asyncio.timeout(10):
            async for item in s.receive():
                received.append(item)
                if isinstance(item, ToolRun) and item.status != "running":
                    break
        await s.answer_done()
        logged = [e for _, e in s.events if isinstance(e, ToolRun)]
    kinds = [type(i).__name__ for i in received if isinstance(i, (ToolCall, ToolRun))]
    assert kinds == ["ToolCall", "ToolRun", "ToolRun"]
    call = next(i for i in received if isinstance(i, ToolCall)).function_calls[0]
    runs = [i for i in received if isinstance(i, ToolRun)]
    assert [r.status for r in runs] == ["running", "returned"] and {r.call_id for r in runs} == {call.id}
    assert runs[0].seconds == 0.0 and runs[1].seconds >= 0.0
    assert logged == runs
    assert s.tool_runs == tuple(runs)


# Non-blocking calls on 3.8 and the result's scheduling.


async def test_non_blocking_call_audio_keeps_arriving_while_the_function_sleeps(slow_emulator: Emulator) -> None:
    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        time.sleep(2.0)
        return PARIS

    async with LiveModel(MODEL, url=slow_emulator.url, tools=[get_weather]).connect() as s:
        seen = await ask(s, "get_weather city=Paris", seconds=20)
    start = seen.index(lambda i: isinstance(i, ToolRun) and i.status == "running")
    end = seen.index(lambda i: isinstance(i, ToolRun) and i.status == "returned")
    assert audio_chunks(seen.items[start:end]) >= 10  # the filler streamed while the function slept
    assert seen.times[end] - seen.times[start] >= 1.9
    assert FILLER in seen.text(start, end)
    assert QUOTED in seen.text(end)
    assert seen.runs("returned")[0].seconds >= 1.9


async def test_when_idle_result_is_spoken_after_the_current_turn(slow_emulator: Emulator) -> None:
    tool = tool_from_callable(get_weather, scheduling="WHEN_IDLE")
    assert tool.scheduling == "WHEN_IDLE"
    async with LiveModel(MODEL, url=slow_emulator.url, tools=[tool]).connect() as s:
        seen = await ask(s, "get_weather city=Paris")
    returned = seen.index(lambda i: isinstance(i, ToolRun) and i.status == "returned")
    filler_done = seen.index(lambda i: isinstance(i, ServerContent) and i.turn_complete)
    assert returned < filler_done  # the result came while the filler was still being spoken
    assert seen.runs("returned")[0].scheduling == "WHEN_IDLE"
    turns = seen.turns()
    assert turns[0] == FILLER  # not cut: the result waited for the turn to end
    assert len(turns) == 2 and QUOTED in turns[1]


async def test_interrupt_result_cuts_the_current_turn(slow_emulator: Emulator) -> None:
    tool = tool_from_callable(get_weather, scheduling="INTERRUPT")
    async with LiveModel(MODEL, url=slow_emulator.url, tools=[tool]).connect() as s:
        seen = await ask(s, "get_weather city=Paris")
    turns = seen.turns()
    assert turns[0].endswith("|interrupted") and FILLER not in turns[0]
    assert QUOTED in turns[-1]


async def test_silent_result_starts_no_new_turn_and_is_folded_in(emulator: Emulator) -> None:
    ran = threading.Event()

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        time.sleep(0.3)
        ran.set()
        return PARIS

    tool = tool_from_callable(get_weather, scheduling="SILENT")
    model = LiveModel(MODEL, url=emulator.url, tools=[tool])
    async with model.connect(session_resumption=SessionResumptionConfig()) as s:
        seen = await ask(s, "get_weather city=Paris")
        assert ran.is_set()
        after = Recorder(s)
        await asyncio.sleep(0.5)  # nothing more comes
        assert not [i for i in after.items if isinstance(i, ServerContent) and (i.model_turn or i.turn_complete)]
        assert any(t.startswith("[get_weather returned") for t in context_text(emulator, s))
    assert seen.turns() == [FILLER]
    assert seen.runs("returned")[0].scheduling == "SILENT"


async def test_extended_thinking_answer_done_waits_for_idle_not_the_first_turn_complete() -> None:
    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        time.sleep(0.3)
        return PARIS

    config = LiveGenerationConfig(
        response_modalities=["AUDIO"], output_audio_transcription=True, thinking=ThinkingConfig(thinking_level="LOW")
    )
    async with (
        Emulator(port=0, chunk_delay=TEST_CHUNK_DELAY, mode="gemini") as emu,
        LiveModel(THINKING, config, url=emu.url, tools=[get_weather]).connect() as s,
    ):
        seen = await ask(s, "get_weather city=Paris")
    statuses = [i.interaction_status for i in seen.items if isinstance(i, ServerContent) and i.turn_complete]
    assert statuses[0] == "IN_PROGRESS" and statuses[-1] == "IDLE"
    first_done = seen.index(lambda i: isinstance(i, ServerContent) and i.turn_complete)
    returned = seen.index(lambda i: isinstance(i, ToolRun) and i.status == "returned")
    assert first_done < returned  # the filler's turn ended before the function did
    assert QUOTED in seen.text(returned)
    assert seen.runs("returned")[0].scheduling is None  # extended thinking takes no scheduling


async def test_answering_is_exact_for_listeners_at_each_turn_complete(slow_emulator: Emulator) -> None:
    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        time.sleep(0.2)
        return PARIS

    async with LiveModel(MODEL, url=slow_emulator.url, tools=[get_weather]).connect() as s:
        at_turn_end: list[bool] = []
        s.add_listener(
            lambda item: at_turn_end.append(s.answering)
            if isinstance(item, ServerContent) and item.turn_complete else None
        )
        await ask(s, "get_weather city=Paris")
    assert at_turn_end == [True, False]  # the filler's end is not the answer's end


# Limits, failures, cancellations.


async def test_a_call_past_its_timeout_is_answered_with_a_timeout_error(emulator: Emulator) -> None:
    release = threading.Event()

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        release.wait(5)
        return PARIS

    cancelled: list[bool] = []

    async def get_time(tz: str) -> str:
        """The time in a zone."""
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "noon"

    tools = [tool_from_callable(get_weather, timeout=0.3), get_time]
    async with LiveModel(MODEL, url=emulator.url, tools=tools, tool_timeout=0.3).connect() as s:
        seen = await ask(s, "get_weather city=Paris")
        release.set()
        seen_async = await ask(s, "get_time tz=UTC")
    run = seen.runs("timed_out")[0]
    assert 0.25 <= run.seconds < 2 and "TimeoutError: get_weather did not finish within 0.3 s" in run.result
    assert "get_weather returned {\"error\": \"TimeoutError: get_weather did not finish within 0.3 s" in seen.text()
    assert cancelled == [True]  # the coroutine was cancelled at its limit
    assert "TimeoutError: get_time did not finish within 0.3 s" in seen_async.runs("timed_out")[0].result


async def test_an_exception_is_answered_with_its_type_and_message(emulator: Emulator) -> None:
    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        raise LookupError(f"no station in {city}")

    async with LiveModel(MODEL, url=emulator.url, tools=[get_weather]).connect(
        session_resumption=SessionResumptionConfig()
    ) as s:
        seen = await ask(s, "get_weather city=Atlantis")
        sent = tool_responses(emulator, s)
    assert [r.status for r in seen.runs()] == ["running", "failed"]
    assert json.loads(seen.runs("failed")[0].result) == {"error": "LookupError: no station in Atlantis"}
    assert [dict(r.response) for r in sent] == [{"error": "LookupError: no station in Atlantis"}]
    assert 'get_weather returned {"error": "LookupError: no station in Atlantis"}' in seen.text()


async def test_arguments_that_do_not_bind_are_answered_as_an_error_without_running(emulator: Emulator) -> None:
    calls: list[int] = []

    def add(a: str, b: str) -> str:
        """Join two words."""
        calls.append(a + b)
        return a + b

    async with LiveModel(MODEL, url=emulator.url, tools=[add]).connect() as s:
        seen = await ask(s, "add a=1")  # b missing
    assert calls == []
    failed = seen.runs("failed")[0]
    assert "TypeError" in failed.result and "'b'" in failed.result


async def test_cancellation_cancels_the_task_and_sends_no_response(emulator: Emulator) -> None:
    cancelled: list[bool] = []
    started = asyncio.Event()

    async def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return PARIS

    # On 3.8 new input cancels a running BLOCKING call (toolCallCancellation).
    tool = tool_from_callable(get_weather, behavior="BLOCKING")
    model = LiveModel(MODEL, url=emulator.url, tools=[tool])
    async with model.connect(session_resumption=SessionResumptionConfig()) as s:
        recorder = Recorder(s)
        await s.send_text("get_weather city=Paris")
        async with asyncio.timeout(5):
            await started.wait()
        await s.send_text("never mind")
        await recorder.wait(lambda i: isinstance(i, ToolRun) and i.status == "cancelled")
        async with asyncio.timeout(10):
            await s.answer_done()
        await asyncio.sleep(0.2)
        sent = tool_responses(emulator, s)
    assert cancelled == [True]
    assert any(isinstance(i, ToolCallCancellation) for i in recorder.items)
    assert [r.status for r in recorder.runs()] == ["running", "cancelled"]
    assert sent == []  # nothing answered the cancelled call
    assert not s.pending_tool_calls


async def test_a_cancelled_sync_function_runs_on_in_its_thread_and_its_result_is_dropped(emulator: Emulator) -> None:
    release, finished = threading.Event(), threading.Event()

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        release.wait(5)
        finished.set()
        return PARIS

    tool = tool_from_callable(get_weather, behavior="BLOCKING")
    model = LiveModel(MODEL, url=emulator.url, tools=[tool])
    async with model.connect(session_resumption=SessionResumptionConfig()) as s:
        recorder = Recorder(s)
        await s.send_text("get_weather city=Paris")
        await recorder.wait(lambda i: isinstance(i, ToolRun) and i.status == "running")
        await s.send_text("never mind")
        await recorder.wait(lambda i: isinstance(i, ToolRun) and i.status == "cancelled")
        release.set()
        await asyncio.to_thread(finished.wait, 5)
        await asyncio.sleep(0.2)
        sent = tool_responses(emulator, s)
    assert finished.is_set() and sent == []
    assert [r.status for r in recorder.runs()] == ["running", "cancelled"]


# Manual mode.


async def test_manual_mode_leaves_the_call_to_the_caller(emulator: Emulator) -> None:
    calls: list[str] = []

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        calls.append(city)
        return PARIS

    model = LiveModel(MODEL, url=emulator.url, tools=[get_weather], auto_tools=False)
    async with model.connect() as s:
        assert not s.auto_tools
        await s.send_text("get_weather city=Paris")
        async with asyncio.timeout(10):
            async for item in s.receive():
                if isinstance(item, ToolCall):
                    call = item.function_calls[0]
                    break
        assert [c.id for c in s.pending_tool_calls] == [call.id] and s.answering
        seen = Recorder(s)
        await s.send_tool_response(response_for(call, {"sky": "grey"}))
        await s.send_tool_response(response_for(call, {"sky": "twice"}))  # answered already: dropped
        async with asyncio.timeout(10):
            await s.answer_done()
    assert calls == [] and not seen.runs()
    assert 'get_weather returned {"sky": "grey"}' in seen.text()
    assert "twice" not in seen.text()


async def test_a_raw_declaration_is_left_to_the_caller_next_to_an_auto_function(emulator: Emulator) -> None:
    raw = {"functionDeclarations": [{"name": "get_time", "parameters": {"type": "OBJECT", "properties": {
        "tz": {"type": "STRING"}}}}]}

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        return PARIS

    config = LiveGenerationConfig(
        response_modalities=["AUDIO"], output_audio_transcription=True, tools=[raw, get_weather]
    )
    async with LiveModel(MODEL, config, url=emulator.url).connect() as s:
        await s.send_text("get_time tz=UTC")
        async with asyncio.timeout(10):
            async for item in s.receive():
                if isinstance(item, ToolCall):
                    call = item.function_calls[0]
                    break
        seen = Recorder(s)
        await s.send_tool_response(FunctionResponse("get_time", {"time": "12:00"}, id=call.id))
        async with asyncio.timeout(10):
            await s.answer_done()
        seen.remove()
        auto = await ask(s, "get_weather city=Paris")
    assert call.name == "get_time" and not seen.runs()
    assert 'get_time returned {"time": "12:00"}' in seen.text()
    assert QUOTED in auto.text()


async def test_the_caller_cannot_answer_a_call_the_loop_runs(emulator: Emulator) -> None:
    release = threading.Event()

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        release.wait(5)
        return PARIS

    async with LiveModel(MODEL, url=emulator.url, tools=[get_weather]).connect() as s:
        recorder = Recorder(s)
        await s.send_text("get_weather city=Paris")
        await recorder.wait(lambda i: isinstance(i, ToolRun))
        call = next(i for i in recorder.items if isinstance(i, ToolCall)).function_calls[0]
        with pytest.raises(InvalidState, match="tool loop"):
            await s.send_tool_response(response_for(call, {"sky": "mine"}))
        release.set()
        async with asyncio.timeout(10):
            await s.answer_done()
    assert QUOTED in recorder.text()


async def test_a_response_without_id_is_refused_on_the_developer_api(emulator: Emulator) -> None:
    raw = {"functionDeclarations": [{"name": "get_time", "parameters": {"type": "OBJECT", "properties": {
        "tz": {"type": "STRING"}}}}]}
    config = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True, tools=[raw])
    async with LiveModel(MODEL, config, backend="gemini", url=emulator.url, api_key="k").connect() as s:
        with pytest.raises(LocalProtocolError, match="has no id"):
            await s.send_tool_response(FunctionResponse("get_time", {"time": "12:00"}))


# Declarations and the model's rules, before anything is sent.


def test_declaration_errors_name_the_function_and_the_parameter(emulator: Emulator) -> None:
    def untyped(city) -> str:  # type: ignore[no-untyped-def]
        """No hint: the model could not fill it in."""
        return ""

    with pytest.raises(ConfigError) as caught:
        LiveModel(MODEL, url=emulator.url, tools=[untyped])
    assert "untyped" in caught.value.field and "city" in caught.value.field


def test_blocking_on_extended_thinking_names_the_model_the_function_and_the_rule(emulator: Emulator) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    config = LiveGenerationConfig(response_modalities=["AUDIO"], thinking=ThinkingConfig(thinking_level="LOW"))
    with pytest.raises(ConfigError) as caught:
        LiveModel(THINKING, config, url=emulator.url, tools=[tool_from_callable(get_weather, behavior="BLOCKING")])
    text = str(caught.value)
    assert THINKING in text and "get_weather" in text and "asynchronously" in text
    with pytest.raises(ConfigError, match="scheduling"):
        LiveModel(THINKING, config, url=emulator.url, tools=[tool_from_callable(get_weather, scheduling="SILENT")])


def test_tools_given_twice_and_a_bad_timeout_are_config_errors(emulator: Emulator) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    config = LiveGenerationConfig(response_modalities=["AUDIO"], tools=[get_weather])
    with pytest.raises(ConfigError, match="not both"):
        LiveModel(MODEL, config, url=emulator.url, tools=[get_weather])
    with pytest.raises(ConfigError, match="tool_timeout"):
        LiveModel(MODEL, url=emulator.url, tools=[get_weather], tool_timeout=0)
    assert LiveModel(MODEL, config, url=emulator.url).tools[0].name == "get_weather"


# Drops: each call runs once and its answer reaches the model once.


@pytest.mark.parametrize("transparent", [False, True], ids=["handles", "transparent"])
async def test_a_drop_while_the_call_runs_runs_it_once_and_answers_once(transparent: bool) -> None:
    release = threading.Event()
    calls: list[str] = []

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        calls.append(city)
        release.wait(10)
        return PARIS

    policy = ReconnectPolicy(min_delay=0.01, max_delay=0.05)
    async with Emulator(port=0, chunk_delay=TEST_CHUNK_DELAY, resumption_update_interval=0.02) as emu:
        model = LiveModel(MODEL, url=emu.url, tools=[get_weather], reconnect=policy)
        async with model.connect(session_resumption=SessionResumptionConfig(transparent=transparent)) as s:
            recorder = Recorder(s)
            await s.send_text("get_weather city=Paris")
            await recorder.wait(lambda i: isinstance(i, ServerContent) and i.turn_complete)  # the filler ended
            await _wait_until(lambda: s.resumable and s.handle is not None)
            assert await emu.drop_connections() == 1
            await recorder.wait(lambda i: type(i).__name__ == "Resumed")
            # The resumed session asks for the running call again, with the same id: not run twice.
            await recorder.wait(lambda i: isinstance(i, ToolCall) and i is not _first_call(recorder))
            release.set()
            async with asyncio.timeout(10):
                await s.answer_done()
            sent = tool_responses(emu, s)
            context = context_text(emu, s)
    assert calls == ["Paris"]
    asked = [c.id for i in recorder.items if isinstance(i, ToolCall) for c in i.function_calls]
    assert len(asked) == 2 and len(set(asked)) == 1
    assert [r.id for r in sent] == [asked[0]]
    assert sum(t.startswith("[get_weather returned") for t in context) == 1
    assert recorder.text().count(QUOTED) == 1
    assert [r.status for r in recorder.runs()] == ["running", "returned"]


@pytest.mark.parametrize("transparent", [False, True], ids=["handles", "transparent"])
async def test_a_drop_while_the_result_is_in_flight_answers_it_once(transparent: bool) -> None:
    """The answer went out on the old connection, and the handle the client resumes with predates
    it (the model was answering it, so no newer handle came): the server asks the call again; the
    client answers from memory (handles) or its replay does (transparent), never both, and the
    function does not run again."""
    release = threading.Event()
    calls: list[str] = []

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        calls.append(city)
        release.wait(10)
        return PARIS

    policy = ReconnectPolicy(min_delay=0.01, max_delay=0.05)
    async with Emulator(port=0, chunk_delay=0.01, resumption_update_interval=0.02) as emu:
        model = LiveModel(MODEL, url=emu.url, tools=[get_weather], reconnect=policy)
        async with model.connect(session_resumption=SessionResumptionConfig(transparent=transparent)) as s:
            recorder = Recorder(s)
            await s.send_text("get_weather city=Paris")
            await recorder.wait(lambda i: isinstance(i, ServerContent) and i.turn_complete)  # the filler ended
            await _wait_until(lambda: s.resumable and s.handle is not None)  # a handle with the call pending
            handle = s.handle
            release.set()
            await recorder.wait(lambda i: isinstance(i, ToolRun) and i.status == "returned")
            await recorder.wait(lambda i: "tool answered" in recorder.text())  # the model answers it
            assert s.handle == handle and await emu.drop_connections() == 1
            await recorder.wait(lambda i: type(i).__name__ == "Resumed")
            async with asyncio.timeout(15):
                await s.answer_done()
            await asyncio.sleep(0.2)
            sent = tool_responses(emu, s)
            context = context_text(emu, s)
    resumed = next(i for i in recorder.items if type(i).__name__ == "Resumed")
    assert resumed.state_restored
    asked = [c.id for i in recorder.items if isinstance(i, ToolCall) for c in i.function_calls]
    assert len(asked) == 2 and len(set(asked)) == 1  # asked again after the resume, same id
    assert calls == ["Paris"]
    assert [r.id for r in sent] == [asked[0]]  # in the state the session continues from: once
    assert sum(t.startswith("[get_weather returned") for t in context) == 1
    assert QUOTED in recorder.text(recorder.index(lambda i: i is resumed))
    assert [r.status for r in recorder.runs()] == ["running", "returned"]


async def test_an_answer_finished_while_reconnecting_goes_out_after_the_resume() -> None:
    release = threading.Event()

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        release.wait(10)
        return PARIS

    policy = ReconnectPolicy(min_delay=0.6, initial_delay=0.6, max_delay=1.0)
    async with Emulator(port=0, chunk_delay=TEST_CHUNK_DELAY, resumption_update_interval=0.02) as emu:
        model = LiveModel(MODEL, url=emu.url, tools=[get_weather], reconnect=policy)
        async with model.connect(session_resumption=SessionResumptionConfig()) as s:
            recorder = Recorder(s)
            await s.send_text("get_weather city=Paris")
            await recorder.wait(lambda i: isinstance(i, ServerContent) and i.turn_complete)
            await _wait_until(lambda: s.resumable and s.handle is not None)
            await emu.drop_connections()
            await recorder.wait(lambda i: type(i).__name__ == "Reconnecting")
            release.set()  # finishes while no connection is open
            await recorder.wait(lambda i: isinstance(i, ToolRun) and i.status == "returned")
            assert s.state != "active"
            async with asyncio.timeout(15):
                await s.answer_done()
            sent = tool_responses(emu, s)
    assert len(sent) == 1
    assert QUOTED in recorder.text()


async def test_closing_the_session_cancels_running_calls(emulator: Emulator) -> None:
    cancelled: list[bool] = []
    started = asyncio.Event()

    async def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return PARIS

    async with LiveModel(MODEL, url=emulator.url, tools=[get_weather]).connect() as s:
        Recorder(s)  # listens, so ToolRun events are recorded as they come
        await s.send_text("get_weather city=Paris")
        async with asyncio.timeout(5):
            await started.wait()
    await asyncio.sleep(0.05)
    assert cancelled == [True]
    assert [r.status for r in s.tool_runs] == ["running", "cancelled"]
    assert type(s.events[-1][1]).__name__ == "SessionClosed"


def _first_call(recorder: Recorder) -> ToolCall:
    return next(i for i in recorder.items if isinstance(i, ToolCall))


async def _wait_until(predicate: Any, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.005)
