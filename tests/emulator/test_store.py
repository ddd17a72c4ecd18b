"""The emulator's SQLite store: unforgeable handles naming snapshots, surviving a reopen, purged when expired."""

from __future__ import annotations

from pathlib import Path

from live_nb.emulator.store import Refusal, Snapshot, Store

NOT_FOUND = Refusal(1008, "BidiGenerateContent session not found")


def test_handles_name_snapshots_and_survive_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "emu.db")
    store = Store(path)
    store.create_session("sess-a", "gemini-3.8-live", now=100.0)
    first = store.save_snapshot("sess-a", {"turns": 1}, now=101.0)
    second = store.save_snapshot("sess-a", {"turns": 2}, now=102.0)
    assert first != second and "sess-a" not in first  # opaque: base64, not the id in clear
    loaded = store.load_snapshot(first)
    assert isinstance(loaded, Snapshot) and loaded.state == {"turns": 1} and loaded.session_id == "sess-a"
    store.close()
    again = Store(path)  # same file: same secret, same handles
    reopened = again.load_snapshot(second)
    assert isinstance(reopened, Snapshot) and reopened.state == {"turns": 2}
    again.close()
    other = Store(str(tmp_path / "other.db"))  # another secret: the handle is refused
    assert other.load_snapshot(second) == NOT_FOUND
    other.close()


def test_forged_handles_refused(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "emu.db"))
    store.create_session("sess-a", "m", now=1.0)
    handle = store.save_snapshot("sess-a", {}, now=1.0)
    import base64

    raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)).decode()
    session_id, seq, mac = raw.split(".")
    forged_seq = base64.urlsafe_b64encode(f"{session_id}.{int(seq) + 1}.{mac}".encode()).decode().rstrip("=")
    for bad in ("", "garbage", "!!!", handle[:-3], forged_seq):
        assert store.load_snapshot(bad) == NOT_FOUND, bad
    store.close()


def test_connection_counting_and_purge(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "emu.db"))
    store.create_session("old", "m", now=10.0)
    store.create_session("new", "m", now=10.0)
    old_handle = store.save_snapshot("old", {}, now=10.0)
    store.connection_closed("old", now=20.0)
    record = store.session("new")
    assert record is not None and record.open_connections == 1 and record.last_end is None
    store.close_all_connections(now=30.0)  # a restart: connections of the old process are gone
    record = store.session("new")
    assert record is not None and record.open_connections == 0 and record.last_end == 30.0
    assert store.purge_expired(ended_before=25.0) == 1
    assert store.session("old") is None and store.load_snapshot(old_handle) == NOT_FOUND
    assert store.session("new") is not None
    store.close()
