"""live_nb/notebook/history.py: the pandas views on a real emulator session, and what they say when
the session's bounded logs (``events``, ``transcript``: ``BoundedLog``) have let entries go."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pandas as pd
import pytest

from live_nb import LiveModel
from live_nb.client import session as session_module
from live_nb.client.session import BoundedLog, LiveSession
from live_nb.emulator import Emulator
from live_nb.exceptions import ConfigError
from live_nb.notebook import history
from live_nb.protocol.config import (
    ContextWindowCompressionConfig,
    LiveGenerationConfig,
    SessionResumptionConfig,
    SlidingWindow,
)
from live_nb.protocol.events import Connected
from live_nb.protocol.messages import SessionResumptionUpdate

pytestmark = pytest.mark.timeout(60)

COLUMNS = {
    "transcript": ["time", "role", "text"],
    "events": ["time", "event", "detail", "call_id", "name", "args", "status", "seconds", "result", "behavior",
               "scheduling"],
    "usage": ["time", "prompt_tokens", "response_tokens", "total_tokens"],
    "context": [
        "time",
        "estimated_tokens",
        "reported_tokens",
        "source",
        "trigger_tokens",
        "target_tokens",
        "window_tokens",
        "compressed_from",
        "compressed_to",
        "detected_by",
    ],
}


async def talk(session: LiveSession, turns: int) -> None:
    """``turns`` user turns, each waited for until the model's turn is complete."""
    for i in range(turns):
        await session.send_text(f"Turn {i}: tell me about tide pools.")
        async for item in session.receive():
            if getattr(item, "turn_complete", False):
                break


async def connect(emulator: Emulator) -> LiveSession:
    emulator.chunk_delay = 0.0
    model = LiveModel(  # gemini-3.8-live: AUDIO replies with their transcription
        generation_config=LiveGenerationConfig(
            response_modalities=["AUDIO"],
            output_audio_transcription=True,
            context_window_compression=ContextWindowCompressionConfig(
                trigger_tokens=20_000, sliding_window=SlidingWindow(target_tokens=8_000)
            ),
        ),
        url=emulator.url,
    )
    return await model.connect(session_resumption=SessionResumptionConfig())


@pytest.fixture
async def session(emulator: Emulator) -> AsyncIterator[LiveSession]:
    live = await connect(emulator)
    try:
        await talk(live, 2)
        yield live
    finally:
        await live.close()


@pytest.fixture
async def small_logs_session(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveSession]:
    """A real session whose ``events`` and ``transcript`` keep at most 4 entries (3 after a trim)."""
    monkeypatch.setattr(session_module, "TRANSCRIPT_LIMIT", 4)
    monkeypatch.setattr(session_module, "EVENTS_LIMIT", 4)
    live = await connect(emulator)
    try:
        await talk(live, 4)
        yield live
    finally:
        await live.close()


def check_times(frame: pd.DataFrame) -> None:
    assert isinstance(frame["time"].dtype, pd.DatetimeTZDtype) and str(frame["time"].dt.tz) == "UTC"


# -- every view on a real session, nothing let go ------------------------------------------------


async def test_transcript_view(session: LiveSession) -> None:
    frame = history.transcript(session)
    assert list(frame.columns) == COLUMNS["transcript"]
    check_times(frame)
    assert len(frame) == len(session.transcript) and frame["time"].notna().all()
    assert list(frame["role"])[:2] == ["user", "model"] and "tide pools" in frame["text"].iloc[0]
    assert [tuple(row) for row in frame[["role", "text"]].itertuples(index=False)] == [
        (role, text) for _, role, text in session.transcript
    ]
    assert frame.attrs == {"dropped": 0, "note": "", "dropped_text": 0}
    assert history.MARKER not in set(frame["role"])


async def test_events_view(session: LiveSession) -> None:
    frame = history.events(session)
    assert list(frame.columns) == COLUMNS["events"]
    check_times(frame)
    assert len(frame) == len(session.events) and frame["time"].notna().all()
    assert frame["event"].iloc[0] == Connected.__name__
    assert SessionResumptionUpdate.__name__ in set(frame["event"])
    assert frame.attrs == {"dropped": 0, "note": ""}


async def test_usage_view(session: LiveSession) -> None:
    frame = history.usage(session)
    assert list(frame.columns)[:4] == COLUMNS["usage"]
    check_times(frame)
    assert len(frame) == len(session.ledger.usage) >= 2
    assert (frame["prompt_tokens"] > 0).all() and frame["total_tokens"].is_monotonic_increasing
    assert any(column.startswith("prompt_") and column != "prompt_tokens" for column in frame.columns)
    assert frame.attrs == {"dropped": 0, "note": ""}


async def test_context_view(session: LiveSession) -> None:
    frame = history.context(session)
    assert list(frame.columns) == COLUMNS["context"]
    check_times(frame)
    assert len(frame) >= 2 and frame["time"].is_monotonic_increasing
    assert (frame["window_tokens"] == session.ledger.window).all()
    assert (frame["trigger_tokens"] == 20_000).all() and (frame["target_tokens"] == 8_000).all()
    assert frame["reported_tokens"].notna().any()  # usage reports re-based the estimate
    assert frame.attrs == {"dropped": 0, "note": ""}


async def test_views_by_name_and_a_bad_name(session: LiveSession) -> None:
    for name, columns in COLUMNS.items():
        frame = history.view(session, name)
        assert list(frame.columns)[: len(columns)] == columns
        assert frame.equals(history.VIEWS[name](session))
    with pytest.raises(ConfigError, match="one of context, events, tools, transcript, usage"):
        history.view(session, "bogus")


async def test_views_of_a_session_that_has_said_nothing_yet(emulator: Emulator) -> None:
    live = await connect(emulator)
    try:
        for name, columns in COLUMNS.items():
            frame = history.view(live, name)
            assert list(frame.columns)[: len(columns)] == columns
            check_times(frame)
            assert frame.attrs["dropped"] == 0
        assert len(history.transcript(live)) == 0
        assert list(history.events(live)["event"]) == [Connected.__name__]
    finally:
        await live.close()


# -- a real session whose bounded logs let entries go --------------------------------------------


async def test_transcript_says_how_many_entries_were_let_go(small_logs_session: LiveSession) -> None:
    live = small_logs_session
    dropped = live.dropped_transcript
    assert dropped > 0 and live.transcript.dropped == dropped  # 4 turns: 8 entries, at most 4 kept
    frame = history.transcript(live)
    assert len(frame) == len(live.transcript) + 1
    first = frame.iloc[0]
    assert pd.isna(first["time"]) and first["role"] == history.MARKER
    assert first["text"] == f"{dropped:,} earlier entries not kept"
    rest = frame.iloc[1:]
    assert rest["time"].notna().all()
    assert [tuple(row) for row in rest[["role", "text"]].itertuples(index=False)] == [
        (role, text) for _, role, text in live.transcript
    ]
    assert frame.attrs["dropped"] == dropped and frame.attrs["note"] == first["text"]
    assert "earlier entries not kept" in repr(frame)  # what a notebook shows
    # The marker is no moment: filtering by role or time leaves only what was said.
    assert len(frame[frame["role"] == "model"]) == sum(1 for _, role, _ in live.transcript if role == "model")
    assert frame.dropna(subset=["time"])["role"].ne(history.MARKER).all()


async def test_events_say_how_many_entries_were_let_go(small_logs_session: LiveSession) -> None:
    live = small_logs_session
    dropped = live.dropped_events
    assert dropped > 0
    frame = history.events(live)
    assert len(frame) == len(live.events) + 1
    first = frame.iloc[0]
    assert pd.isna(first["time"]) and first["event"] == history.MARKER
    assert first["detail"] == f"{dropped:,} earlier events not kept"
    assert list(frame["event"].iloc[1:]) == [type(item).__name__ for _, item in live.events]
    assert Connected.__name__ not in set(frame["event"])  # the first event is among those let go
    assert frame.attrs == {"dropped": dropped, "note": first["detail"]}


async def test_usage_and_context_keep_working_when_the_logs_let_go(small_logs_session: LiveSession) -> None:
    live = small_logs_session
    usage = history.usage(live)
    assert len(usage) == len(live.ledger.usage) >= 4  # the ledger keeps every report
    assert usage.attrs == {"dropped": 0, "note": ""}
    context = history.context(live)
    assert len(context) >= 4 and context["time"].notna().all()
    assert context.attrs == {"dropped": 0, "note": ""}


async def test_thousands_let_go_are_counted_with_separators(session: LiveSession) -> None:
    log: BoundedLog[tuple[float, str, str]] = BoundedLog(4)
    log.extend((float(i), "user", f"line {i}") for i in range(2_504))
    session.transcript = log
    frame = history.transcript(session)
    assert log.dropped + len(log) == 2_504 and log.dropped > 2_000
    assert frame["text"].iloc[0] == f"{log.dropped:,} earlier entries not kept" and "2," in frame["text"].iloc[0]
    assert list(frame["text"].iloc[1:]) == [f"line {i}" for i in range(log.dropped, 2_504)]
    log.clear()  # everything let go: the marker alone
    frame = history.transcript(session)
    assert list(frame["text"]) == ["2,504 earlier entries not kept"]


# -- reading a log while the session's loop thread trims it --------------------------------------


class TrimmingLog(list[Any]):
    """A log whose first copy races a trim: ``dropped`` moves while it is being read."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(items)
        self.dropped = 0
        self.copies = 0

    def __iter__(self) -> Any:
        self.copies += 1
        if self.copies == 1:
            del self[:2]
            self.dropped += 2
        return super().__iter__()


def test_a_log_trimmed_while_read_is_read_again() -> None:
    class Holder:
        transcript = TrimmingLog([(float(i), "user", str(i)) for i in range(5)])

    frame = history.transcript(Holder())
    assert Holder.transcript.copies == 2
    assert frame["text"].iloc[0] == "2 earlier entries not kept"
    assert list(frame["text"].iloc[1:]) == ["2", "3", "4"]


def test_plain_lists_and_missing_logs_are_views_with_nothing_let_go() -> None:
    class Plain:
        transcript = [(1.0, "user", "hi")]
        events: Any = None

    assert history.transcript(Plain()).attrs["dropped"] == 0 and len(history.transcript(Plain())) == 1
    assert len(history.events(Plain())) == 0
