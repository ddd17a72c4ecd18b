"""The client's typed read-only view (client/view.py) on real sessions, and the client's import boundary."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from emulator_constants import GEMINI_PATH, VERTEX_PATH

from live_nb.client.session import LiveModel, LiveSession
from live_nb.client.view import SessionView
from live_nb.emulator import Emulator
from live_nb.protocol import tokens
from live_nb.protocol.catalogue import BACKEND_OFFERS
from live_nb.protocol.config import SessionResumptionConfig

CLIENT = Path(__file__).resolve().parents[2] / "live_nb" / "client"


def read_view(view: SessionView) -> dict[str, object]:
    """What a reader typed against the view sees (every member, through the Protocol's names)."""
    return {
        "state": view.state, "backend": view.backend, "model": view.model, "flavor": view.flavor,
        "handle": view.handle, "handle_retention": view.handle_retention, "resumable": view.resumable,
        "go_away_deadline": view.go_away_deadline, "reconnects": view.reconnects,
        "replay_depth": view.replay_depth, "frame_tokens": view.frame_tokens,
        "offers_audio_stream_end": view.offers_audio_stream_end, "closed": view.closed,
        "transcript": list(view.transcript), "events": list(view.events), "url": view.url,
    }


@pytest.mark.parametrize(
    ("path", "flavor"), [(GEMINI_PATH, "gemini"), (VERTEX_PATH, "vertex"), ("", None)]
)
async def test_handle_retention_comes_from_the_backend_offer_of_the_sessions_flavour(
    emulator: Emulator, path: str, flavor: str | None
) -> None:
    model = LiveModel(url=emulator.url + path)
    async with model.connect(SessionResumptionConfig()) as session:
        assert session.flavor == flavor
        expected = None if flavor is None else BACKEND_OFFERS[flavor].handle_retention_seconds
        assert session.handle_retention == expected
        if flavor == "gemini":
            assert session.handle_retention == 2 * 3600.0
        if flavor == "vertex":
            assert session.handle_retention == 24 * 3600.0
        assert session.offers_audio_stream_end is (flavor != "vertex")


async def test_the_view_follows_the_session_and_a_listener_sees_what_receive_yields(emulator: Emulator) -> None:
    model = LiveModel(url=emulator.url + VERTEX_PATH)
    session: LiveSession = await model.connect(SessionResumptionConfig())
    seen: list[object] = []
    view: SessionView = session
    remove = view.add_listener(seen.append)
    try:
        first = read_view(view)
        assert first["state"] == "active" and first["closed"] is False
        assert (first["backend"], first["model"], first["flavor"]) == ("emulator", "models/gemini-3.8-live", "vertex")
        assert view.generation_config is model.generation_config
        assert view.connection_started is not None and view.ledger is session.ledger
        await session.send_text("hello there")
        async for item in session.receive():
            if type(item).__name__ == "UsageMetadata":
                break
        after = read_view(view)
        assert after["handle"] and after["handle"] == session.handle
        assert [role for _, role, _ in view.transcript][:2] == ["user", "model"]
        assert view.ledger.usage and len(seen) >= 3
        remove()
        count = len(seen)
        await session.send_text("again")
        async for item in session.receive():
            if type(item).__name__ == "UsageMetadata":
                break
        assert len(seen) == count  # removed listeners hear nothing more
    finally:
        await session.close()
    assert read_view(view)["state"] == "closed" and view.closed


async def test_send_audio_and_video_return_the_one_count_the_ledger_recorded(emulator: Emulator) -> None:
    async with LiveModel(url=emulator.url + GEMINI_PATH).connect() as session:
        before = session.ledger.input_by_modality.get("AUDIO", 0.0)
        cost = await session.send_audio(bytes(3200))  # 100 ms of 16 kHz PCM16
        assert cost == pytest.approx(tokens.AUDIO_TOKENS_PER_SECOND * 0.1)
        assert session.ledger.input_by_modality["AUDIO"] - before == pytest.approx(cost)
        frame = await session.send_video(b"\xff\xd8\xff\xe0" + bytes(64) + b"\xff\xd9")
        assert frame == session.frame_tokens == session.ledger.input_by_modality["VIDEO"]


def test_the_client_imports_no_notebook_or_widget_module_not_even_lazily() -> None:
    for path in sorted(CLIENT.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert "notebook" not in name and "widgets" not in name, f"{path.name} imports {name}"
    code = (
        "import sys, live_nb.client.session, live_nb.client.view;"
        "print(sorted(m for m in sys.modules if m.startswith(('live_nb.notebook', 'live_nb.widgets'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


async def test_the_notebook_doors_left_the_session(emulator: Emulator) -> None:
    async with LiveModel(url=emulator.url).connect() as session:
        for door in ("history", "plot_context", "stream"):
            assert not hasattr(session, door)
