"""SessionRegistry against the real in-process emulator: it opens, keeps and closes named sessions, and is
the one listener that hands the metadata bridge a record of each new handle (the session owns the handle)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from IPython.testing import globalipapp

from live_nb import _loop
from live_nb.notebook.metadata import close_bridge
from live_nb.notebook.options import ConnectOptions
from live_nb.notebook.records import parse_time
from live_nb.notebook.sessions import SessionRegistry
from live_nb.protocol.catalogue import BACKEND_OFFERS

pytestmark = pytest.mark.timeout(60)


class Settings:
    def __init__(self, tmp_path: Path, persist_handles: bool = True) -> None:
        self.emulator_db = str(tmp_path / "emulator.sqlite3")
        self.persist_handles = persist_handles


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    ip = globalipapp.get_ipython()  # the module's name is rebound once the shell started
    assert ip is not None
    try:
        yield ip
    finally:
        close_bridge(ip)
        _loop.stop()


def in_kernel_emulator(flavor: str, time_scale: float = 1.0) -> ConnectOptions:
    return ConnectOptions(
        model="gemini-3.8-live", backend="emulator", modality="AUDIO", compression=None,
        transparent=BACKEND_OFFERS[flavor].transparent_resumption, time_scale=time_scale, flavor=flavor,
    )


def run(coro: Any) -> Any:
    return _loop.block(_loop.submit(coro), 30)


def wait_until(predicate: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def test_open_keep_close_and_resume(shell: Any, tmp_path: Path) -> None:
    said: list[str] = []
    registry = SessionRegistry(shell, Settings(tmp_path), say=said.append)
    options = in_kernel_emulator("gemini", time_scale=60.0)
    registry.prepare(options)
    registry.prepare(options)
    assert len(said) == 1 and "Gemini Developer API flavour" in said[0]  # said once per flavour
    try:
        entry = run(registry.ensure("chat", options))
        assert run(registry.ensure("chat", options)) is entry  # one session per name
        session = entry.session
        assert session is not None and registry.known_handle("chat") is None
        run(session.send_text("The secret word is heron."))
        handle = wait_until(lambda: session.handle)
        bridge = registry.bridge()
        assert bridge is not None
        record = wait_until(lambda: (bridge.record("chat") or {}).get("handle") == session.handle and bridge.record("chat"))
        # One retention source: the flavour's handle_retention_seconds, scaled like every emulator limit.
        lifetime = (parse_time(record["expires"]) or 0) - (parse_time(record["updated"]) or 0)
        assert lifetime == BACKEND_OFFERS["gemini"].handle_retention_seconds / 60.0
        assert registry.known_handle("chat") == session.handle and handle

        run(registry.close("chat"))
        assert "chat" not in registry.sessions and registry.ended["chat"].session is session
        assert registry.known_handle("chat") == session.handle  # the closed session's own handle
        assert registry.ended_options("chat", session.handle) == options
        assert registry.ended_options("chat", "another") is None

        again = run(registry.ensure("chat", replace(options, handle=session.handle)))
        assert again is not entry and again.session is not None
        assert again.handle == session.handle  # until a new one comes, the handle it was opened with
    finally:
        run(registry.close_all())
    assert registry.sessions == {}


def test_persist_off_keeps_nothing(shell: Any, tmp_path: Path) -> None:
    registry = SessionRegistry(shell, Settings(tmp_path, persist_handles=False), say=lambda _text: None)
    try:
        entry = run(registry.ensure("quiet", in_kernel_emulator("vertex")))
        assert entry.session is not None
        run(entry.session.send_text("hello"))
        wait_until(lambda: entry.session is not None and entry.session.handle)
        time.sleep(0.2)
        bridge = registry.bridge()
        assert bridge is not None and bridge.records == {} and not bridge.sidecar.exists()
    finally:
        run(registry.close_all())
