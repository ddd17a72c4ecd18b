"""A long, time-scaled session with context window compression, across GoAways and an emulator restart.

The context must follow the sawtooth between trigger and target (seen in usageMetadata and in the
client's ledger), the responder must say what it forgot, and a resume after the emulator restarts
(same SQLite file) must bring the context back.

The emulators run with ``speech=False``: at ``TIME_SCALE`` a connection lives 0.5 s of wall time, and
voicing a reply (eSpeak NG, about 0.2 s of wall time for these replies) is some 4 simulated minutes,
so nearly every turn would meet a GoAway. Each such connection ends by a GoAway within the client's
``stable_after`` (5 s) of its setup, which the client paces (reconnect.py: the backoff runs on to
``max_delay``, 10 s), and the session spends its time waiting to reconnect. What is tested here is
compression and resumption, which the tone exercises the same way; ``ask`` fails at once, saying
so, if the moves get paced again.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.exceptions import SessionLost
from live_nb.protocol.config import (
    ContextWindowCompressionConfig,
    LiveGenerationConfig,
    SessionResumptionConfig,
    SlidingWindow,
)
from live_nb.protocol.events import Reconnecting, Resumed
from live_nb.protocol.messages import GoAway, ServerContent, UsageMetadata

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

MODEL = "gemini-3.8-live"
TRIGGER, TARGET = 6_000, 3_000
TURN_WORDS = 700  # about 1,000 tokens a turn at 4 characters a token
TIME_SCALE = 1200.0  # a 10-minute connection lasts 0.5 s: the session crosses several connections
MAX_MOVE_DELAY = 1.0  # wall seconds: a move paced longer means turns take too long for TIME_SCALE
CONFIG = LiveGenerationConfig(
    response_modalities=["AUDIO"],
    output_audio_transcription=True,  # the reply's text, which the responder fills with what it forgot
    context_window_compression=ContextWindowCompressionConfig(
        trigger_tokens=TRIGGER, sliding_window=SlidingWindow(target_tokens=TARGET)
    ),
)


def turn_number(reply: str) -> int:
    match = re.search(r"Turn (\d+)\.", reply)
    assert match, reply
    return int(match.group(1))


def earliest(reply: str) -> int:
    match = re.search(r"still remember \(turn (\d+)\)", reply)
    assert match, reply
    return int(match.group(1))


def long_turn(n: int) -> str:
    return f"Topic {n}: " + " ".join(f"word{n}x{i}" for i in range(TURN_WORDS))


async def ask(session: LiveSession, text: str) -> tuple[str, UsageMetadata, list[Any]]:
    await session.send_text(text)
    items: list[Any] = []
    parts: list[str] = []
    async with asyncio.timeout(20):
        async for item in session.receive():
            items.append(item)
            if isinstance(item, Reconnecting):
                assert item.delay <= MAX_MOVE_DELAY, (
                    f"move {item.attempt} paced by {item.delay:.1f} s: connections end by GoAway too soon after "
                    "setup (turns too slow for TIME_SCALE, e.g. replies voiced)"
                )
            elif isinstance(item, Resumed):
                parts.clear()  # a reply cut by a move is regenerated after the replay
            elif isinstance(item, ServerContent) and item.output_transcription is not None:
                parts.append(item.output_transcription.text)
            elif isinstance(item, UsageMetadata):
                return "".join(parts), item, items
    raise AssertionError("no usage")


async def test_sawtooth_forgetting_and_resume_after_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "sessions.db")
    prompts: list[int] = []
    replies: list[str] = []
    go_aways = 0
    emu = Emulator(db_path=db, time_scale=TIME_SCALE, chunk_delay=0.0, speech=False)
    await emu.start()
    try:
        model = LiveModel(MODEL, CONFIG, url=emu.url)
        session = await model.connect(session_resumption=SessionResumptionConfig(transparent=True))
        turn_tokens = 0
        for n in range(24):
            reply, usage, items = await ask(session, long_turn(n))
            go_aways += sum(isinstance(i, GoAway) for i in items)
            assert usage.prompt_token_count is not None
            prompts.append(usage.prompt_token_count)
            replies.append(reply)
            turn_tokens = max(turn_tokens, prompts[0])
            await asyncio.sleep(0.05)  # time passes: GoAways come on their own (time-scaled)
        first_reply, _, _ = await ask(session, "What did I say first?")
        await asyncio.sleep(0.05)
        assert session.handle is not None
        handle = session.handle
        before = [(r, t, round(k, 6)) for r, t, k in emu.sessions[session.session_id or ""].context]
        reconnects = session.reconnects
        ledger = session.ledger
        await session.close()
    finally:
        await emu.stop()

    # The sawtooth: prompts climb past the trigger, drop to the target, climb again.
    drops = [i for i in range(1, len(prompts)) if prompts[i] < prompts[i - 1]]
    assert len(drops) >= 3, prompts
    for i in drops:
        # triggerTokens counts the context before a turn runs; compression leaves at most the target,
        # then the new turn is added.
        assert prompts[i - 1] > TRIGGER - 2 * turn_tokens
        assert prompts[i] <= TARGET + turn_tokens + 50
    assert max(prompts) <= TRIGGER + 2 * turn_tokens
    # The client saw each drop in usageMetadata.
    reported = [c for c in ledger.compressions if c.detected_by == "reported"]
    assert len(reported) >= len(drops)
    for c in reported:
        assert c.after < c.before and c.after <= TARGET + turn_tokens + 50
    # The responder says what it forgot, and "first" moved on.
    assert "Compression ran" in replies[-1] and "I forgot" in replies[-1]
    assert "Topic 0:" not in first_reply.split("still remember")[-1]
    assert "compressed away" in first_reply
    assert reconnects >= 2 and go_aways >= 2  # the session outlived several connections

    # Restart: a new emulator process (object) on the same SQLite file; resume with the handle.
    emu2 = Emulator(db_path=db, time_scale=TIME_SCALE, chunk_delay=0.0, speech=False)
    await emu2.start()
    try:
        model2 = LiveModel(MODEL, CONFIG, url=emu2.url)
        async with model2.connect(session_resumption=SessionResumptionConfig(handle=handle)) as again:
            restored = [(r, t, round(k, 6)) for r, t, k in emu2.sessions[again.session_id or ""].context]
            assert restored == before
            reply, usage, _ = await ask(again, "What did I say first?")
        # The conversation goes on where it was: the turn count continues, compression history kept,
        # and the earliest remembered turn is the same or (if this turn compressed again) later.
        assert turn_number(reply) == turn_number(first_reply) + 1
        assert earliest(reply) >= earliest(first_reply)
        assert "Compression ran" in reply
        assert usage.prompt_token_count is not None and usage.prompt_token_count <= TRIGGER + turn_tokens
        # A handle from before the restart that never existed is still refused clearly.
        with pytest.raises(SessionLost, match="resumption handle"):
            await model2.connect(session_resumption=SessionResumptionConfig(handle=handle[:-4] + "AAAA"))
    finally:
        await emu2.stop()
        emu2.cleanup()
