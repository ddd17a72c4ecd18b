"""``answering`` across a transparent resume that re-runs the turns the drop cut, and its bound.

The situation of the flaky seeded fault test, made deterministic: on gemini-3.8-live a call is
NON_BLOCKING, so the model says a filler ("Let me check that for you.") while the function runs.
The result goes out while the filler streams, so it owes two turns: the filler, then the answer.
The emulator answers right after the filler's turnComplete, with no resumable point in between
(docs/architecture.md, the emulator's checkpoint rules), so the last handle is the one before the
request. The connection is cut while the answer streams. The resume goes back to that snapshot and
the replay re-sends the request and the result: the server makes the call again (same id, not run
again) and the filler again, and only then the answer. The filler made again must not count as the
answer: ``answer_done()`` waits for the answer, and the next request does not cut it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from live_nb.client.reconnect import ReconnectPolicy
from live_nb.client.session import OWED_TURN_GRACE, LiveModel
from live_nb.emulator import Emulator
from live_nb.protocol.config import SessionResumptionConfig
from live_nb.protocol.events import Resumed, ToolRun
from live_nb.protocol.messages import FunctionResponse, ServerContent, ToolCall

pytestmark = [pytest.mark.timeout(60)]

MODEL = "gemini-3.8-live"


async def test_a_cut_while_the_answer_streams_does_not_let_the_filler_made_again_end_the_answer() -> None:
    filler_began = threading.Event()
    calls: list[str] = []

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        calls.append(city)
        filler_began.wait(5.0)  # so the result goes out while the filler streams: it owes two turns
        return {"city": city, "sky": "sunny"}

    policy = ReconnectPolicy(min_delay=0.002, max_delay=0.05, max_attempts=20)
    async with Emulator(port=0, chunk_delay=0.005, resumption_update_interval=0.02, resume_grace=1.0) as emu:
        model = LiveModel(MODEL, url=emu.url, tools=[get_weather], reconnect=policy)
        session = await model.connect(session_resumption=SessionResumptionConfig(transparent=True))
        # (what, text, session.answering as a listener reads it)
        log: list[tuple[str, str, bool]] = []
        starts: list[str] = []  # the first words of each model turn
        in_turn = False
        cut: list[asyncio.Task[int]] = []
        resumes: list[Resumed] = []
        loop = asyncio.get_running_loop()

        def listen(item: Any) -> None:
            nonlocal in_turn
            if isinstance(item, ServerContent):
                said = item.output_transcription.text if item.output_transcription else ""
                if said and not in_turn:
                    in_turn = True
                    starts.append(said)
                    if said.startswith("Let"):
                        filler_began.set()
                    if said.startswith("Turn") and not cut:  # the answer streams: cut the connection
                        cut.append(loop.create_task(emu.drop_connections()))
                if item.interrupted:
                    log.append(("interrupted", "", session.answering))
                if item.turn_complete:
                    in_turn = False
                    log.append(("turnComplete", starts[-1] if starts else "", session.answering))
            elif isinstance(item, ToolRun):
                log.append((f"ToolRun {item.status}", item.args, session.answering))
            elif isinstance(item, ToolCall):
                log.append(("ToolCall", ",".join(str(c.id) for c in item.function_calls), session.answering))
            elif isinstance(item, Resumed):
                in_turn = False  # the turn the drop cut is over
                resumes.append(item)
                log.append(("Resumed", f"{item.replayed} replayed", session.answering))

        try:
            await session.send_text("hello")  # a first exchange, so a resumable handle exists
            async with asyncio.timeout(10):
                await session.answer_done()
                while session.handle is None:
                    await asyncio.sleep(0.005)
            session.add_listener(listen)
            await session.send_text("get_weather city=C0")
            async with asyncio.timeout(20):
                await session.answer_done()
            assert cut and await cut[0] == 1, log
            whole = [text for role, text in [(r, t) for _, r, t in session.transcript] if role == "model"]
            # The situation: the result went out while the first filler streamed, the answer was cut,
            # the resume replayed the request and the result, and the filler streamed again.
            assert [what for what, _, _ in log].index("ToolRun returned") < [
                what for what, _, _ in log].index("turnComplete"), log
            assert len(resumes) == 1 and resumes[0].state_restored and resumes[0].possibly_lost == 0, resumes
            assert resumes[0].replayed == 2, resumes  # the request and the result
            assert [s.split()[0] for s in starts] == ["Let", "Turn", "Let", "Turn"], starts
            asked = [text for what, text, _ in log if what == "ToolCall"]
            assert len(asked) == 2 and asked[0] == asked[1], log  # the call made again, same id ...
            assert calls == ["C0"]  # ... and not run again
            # The filler made again did not end the answer: answering stayed True at its end and only
            # the answer's turnComplete ended it; answer_done() returned after that answer.
            ends = [(text.split()[0], answering) for what, text, answering in log if what == "turnComplete"]
            assert ends == [("Let", True), ("Let", True), ("Turn", False)], log
            assert not session.answering
            assert whole[-1].startswith("Turn") and '"city": "C0"' in whole[-1], whole
            # The next request finds the model idle: nothing is interrupted.
            await session.send_text("hello again")
            async with asyncio.timeout(20):
                await session.answer_done()
            assert not any(what == "interrupted" for what, _, _ in log), log
        finally:
            await session.close()
        assert session.session_id is not None
        context = [text for _, text, _ in emu.sessions[session.session_id].context]
    answers = [t for t in context if t.startswith("Turn") and '"C0"' in t]
    assert len(answers) == 1 and answers[0].endswith("."), context  # answered once, and wholly
    assert sum(t.startswith("[get_weather returned") for t in context) == 1, context


async def test_an_owed_turn_that_never_comes_is_written_off_after_the_grace() -> None:
    """A result the server does not answer (an id it does not know: ignored quietly) owes a turn
    that never comes; ``answering`` gives up on it ``owed_turn_grace`` seconds after the model went
    quiet, and a later turn does not bring it back."""

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        return {"city": city}

    assert OWED_TURN_GRACE == 20.0
    async with Emulator(port=0, chunk_delay=0.002) as emu:
        model = LiveModel(MODEL, url=emu.url, tools=[get_weather], auto_tools=False)
        session = await model.connect()
        try:
            assert session.owed_turn_grace == OWED_TURN_GRACE
            session.owed_turn_grace = 0.4
            await session.send_text("hello")
            async with asyncio.timeout(10):
                await session.answer_done()
            await session.send_tool_response(
                FunctionResponse(name="get_weather", response={"city": "C9"}, id="fc-unknown")
            )
            assert session.answering  # one turn owed: the answer to that result
            began = time.monotonic()
            async with asyncio.timeout(10):
                await session.answer_done()
            waited = time.monotonic() - began
            assert 0.3 <= waited < 5.0, waited
            assert not session.answering
            # A later turn ends only itself: the written-off turn is not owed again.
            await session.send_text("hello once more")
            async with asyncio.timeout(10):
                await session.answer_done()
            assert not session.answering
            began = time.monotonic()
            await asyncio.sleep(0.05)
            assert not session.answering and time.monotonic() - began < 1.0
        finally:
            await session.close()
