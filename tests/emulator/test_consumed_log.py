"""The consumed log follows the state a resume restores, also when a client resumes from an older
handle and then from a newer one (the newer update reached it late, from the old connection's buffer)."""

from __future__ import annotations

from live_nb.emulator.engine import SessionState
from live_nb.emulator.sessions import EmulatorSession
from live_nb.protocol.messages import RealtimeInput


def test_a_resume_from_a_newer_handle_after_an_older_one_gets_the_cut_messages_back() -> None:
    session = EmulatorSession(SessionState("sess-log", "gemini-3.8-live"))
    messages = [RealtimeInput(text=f"m{i}") for i in range(13)]
    session.consumed.extend(messages)  # a connection consumed 13; checkpoints were made at 8 and 12
    session.restore_consumed(8)  # the client resumed from the handle of 8 (the one of 12 was still in flight)
    assert session.consumed == messages[:8]
    session.restore_consumed(12)  # then, cut again, from the handle of 12 it had read meanwhile
    assert session.consumed == messages[:12]
    session.consumed.append(RealtimeInput(text="new"))
    session.restore_consumed(5)
    assert session.consumed == messages[:5]
    session.restore_consumed(9)  # the tail cut last (from 5) holds messages 5..12: 5..8 come back
    assert session.consumed == messages[:9]
