"""Fault injection for the tool loop: seeded drops while calls run and while results are in flight.

Each round asks for the weather in a new city; the emulator calls ``get_weather`` (NON_BLOCKING on
gemini-3.8-live: a filler streams while the function runs) and, once the result is in, answers with
it. Connections are cut at seeded moments: while the function runs, right after its result went
out, while the answer to it streams. Transparent resumption (the replay re-sends what the server
had not folded in) means nothing may be lost; the tool loop's book means nothing may be doubled:
every function runs once per call, and the session's final context holds each result once.
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pytest

from live_nb.client.reconnect import ReconnectPolicy
from live_nb.client.session import LiveModel
from live_nb.emulator import Emulator
from live_nb.protocol.config import SessionResumptionConfig
from live_nb.protocol.events import Resumed, ToolRun
from live_nb.protocol.messages import ToolCall, ToolResponse

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

SEED = 20260613
ROUNDS = 12
MODEL = "gemini-3.8-live"


async def test_seeded_drops_around_tool_calls_run_each_once_and_answer_each_once() -> None:
    rng = random.Random(SEED)
    delays = [rng.uniform(0.0, 0.15) for _ in range(ROUNDS)]
    calls: list[str] = []
    lock = threading.Lock()

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        with lock:
            calls.append(city)
        threading.Event().wait(delays[int(city[1:])])
        return {"city": city, "sky": "sunny"}

    policy = ReconnectPolicy(min_delay=0.002, max_delay=0.05, max_attempts=100)
    async with Emulator(port=0, chunk_delay=0.002, resumption_update_interval=0.02, resume_grace=1.0) as emu:
        model = LiveModel(MODEL, url=emu.url, tools=[get_weather], reconnect=policy)
        session = await model.connect(session_resumption=SessionResumptionConfig(transparent=True))
        resumes: list[Resumed] = []
        runs: list[ToolRun] = []
        session.add_listener(lambda i: resumes.append(i) if isinstance(i, Resumed) else None)
        session.add_listener(lambda i: runs.append(i) if isinstance(i, ToolRun) else None)
        asked: list[str | None] = []
        session.add_listener(
            lambda i: asked.extend(c.id for c in i.function_calls) if isinstance(i, ToolCall) else None
        )
        cuts = 0
        try:
            for r in range(ROUNDS):
                await session.send_text(f"get_weather city=C{r}")
                mode = rng.choice(["while running", "result in flight", "answer streaming", "none"])
                if mode == "while running":
                    await _until_run(runs, "running", f'"C{r}"')
                elif mode == "result in flight":
                    await _until_run(runs, "returned", f'"C{r}"')
                elif mode == "answer streaming":
                    await _until_run(runs, "returned", f'"C{r}"')
                    await asyncio.sleep(rng.uniform(0.0, 0.05))
                if mode != "none":
                    cuts += await emu.drop_connections()
                try:
                    async with asyncio.timeout(20):
                        await session.answer_done()
                except TimeoutError:
                    raise AssertionError(f"round {r} ({mode}): no whole answer; resumes {resumes}") from None
        finally:
            await session.close()
        assert session.session_id is not None
        sess = emu.sessions[session.session_id]
        context = [text for _, text, _ in sess.context]
        answers = [resp for m in sess.consumed if isinstance(m, ToolResponse) for resp in m.function_responses]
    assert cuts >= ROUNDS // 2 and len(resumes) >= cuts, (cuts, resumes)
    assert len(asked) > len(set(asked)) == ROUNDS  # some calls were asked again after a resume
    assert sorted(calls) == sorted(f"C{r}" for r in range(ROUNDS))  # each function ran once
    for r in range(ROUNDS):
        results = [t for t in context if t.startswith("[get_weather returned") and f'"C{r}"' in t]
        assert len(results) == 1, (r, results)  # each result folded in once
        assert sum(a.response.get("city") == f"C{r}" for a in answers) == 1
        assert any(t.startswith("Turn") and f'"C{r}"' in t for t in context), r  # and answered
    finals = [x for x in runs if x.status != "running"]
    assert len(finals) == ROUNDS and {x.status for x in finals} == {"returned"}
    assert len({x.call_id for x in finals}) == ROUNDS


async def _until_run(runs: list[ToolRun], status: str, city: str, seconds: float = 10.0) -> None:
    """Until the ToolRun of ``status`` for the call with ``city`` in its arguments has come."""
    async with asyncio.timeout(seconds):
        while not any(x.status == status and city in x.args for x in runs):
            await asyncio.sleep(0.001)
