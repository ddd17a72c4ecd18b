"""notebook/records.py: one retention source (catalogue.BACKEND_OFFERS), and records made from a session's view."""

from __future__ import annotations

from live_nb.notebook.records import describe_record, is_expired, make_record, parse_time, retention_seconds
from live_nb.protocol.catalogue import BACKEND_OFFERS

T0 = 1_800_000_000.0


class View:
    handle = "h-1"
    backend = "emulator"
    model = "gemini-3.8-live"
    resumable = True
    last_consumed_index = 3


def test_retention_comes_from_the_backend_offers() -> None:
    assert retention_seconds("vertex") == BACKEND_OFFERS["vertex"].handle_retention_seconds == 24 * 3600.0
    assert retention_seconds("gemini") == BACKEND_OFFERS["gemini"].handle_retention_seconds == 2 * 3600.0
    # A bare emulator or an unknown backend is never promised longer than the shorter lifetime.
    assert retention_seconds("emulator") == retention_seconds("unknown") == 2 * 3600.0


def test_a_record_lives_as_long_as_it_is_told() -> None:
    record = make_record(View(), now=T0, retention=120.0)
    assert record is not None
    assert (parse_time(record["expires"]) or 0) - (parse_time(record["updated"]) or 0) == 120.0
    assert record["last_consumed_index"] == 3 and record["resumable"] is True
    assert not is_expired(record, T0 + 119) and is_expired(record, T0 + 120)
    assert "handles live 2 min on this backend" in describe_record(record, T0 + 600)
    default = make_record(View(), now=T0)
    assert default is not None and not is_expired(default, T0 + 2 * 3600 - 1) and is_expired(default, T0 + 2 * 3600)
