"""live_nb/notebook/metadata.py and the records it keeps: records (never a key), expiry wording, the sidecar
fallback fed by a real SessionRegistry, and the comm protocol spoken by a real kernel to a frontend played
by the test (the browser test plays the real one).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kernel_harness import Kernel, Recorded

from live_nb.emulator import Emulator
from live_nb.exceptions import ConfigError
from live_nb.notebook import metadata, sidecar
from live_nb.notebook.metadata import MetadataBridge, close_bridge
from live_nb.notebook.options import ConnectOptions
from live_nb.notebook.records import (
    RECORD_KEYS,
    SESSION_NAME_PATTERN,
    check_session_name,
    describe_record,
    is_expired,
    is_session_name,
    make_record,
    merge_records,
    sanitize_record,
    sanitize_records,
)
from live_nb.notebook.sessions import SessionRegistry
from live_nb.protocol.config import LiveGenerationConfig

pytestmark = pytest.mark.timeout(90)

GOOGLE_KEY = "AIza" + "SyD-0123456789abcdefghijklmnopqrstu"
ENV_SECRET = "test-secret-not-a-real-key-7f3a9c"
AUDIO = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
T0 = 1_800_000_000.0  # a fixed moment, so wording tests do not depend on the clock


def record(**overrides: Any) -> dict[str, Any]:
    base = {
        "handle": "emu-handle-1",
        "backend": "emulator",
        "model": "gemini-3.8-live",
        "resumable": True,
        "updated": "2027-01-15T08:00:00Z",
        "expires": "2027-01-15T10:00:00Z",
        "last_consumed_index": 4,
    }
    base.update(overrides)
    return base


# -- records ------------------------------------------------------------------------------------


def test_sanitize_keeps_exactly_the_contract_keys() -> None:
    clean = sanitize_record({**record(), "api_key": GOOGLE_KEY, "url": "wss://x/?key=1", "token": "t"})
    assert clean == record()
    assert tuple(sorted(clean)) == tuple(sorted(RECORD_KEYS))


def test_sanitize_never_keeps_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", ENV_SECRET)
    assert sanitize_record(record(handle=GOOGLE_KEY)) is None
    assert sanitize_record(record(handle=f"x{ENV_SECRET}x")) is None  # the process's own key, anywhere
    assert sanitize_record(record(handle="ya29.a0AfH6SMBx")) is None
    clean = sanitize_record(record(model=ENV_SECRET, backend=GOOGLE_KEY))
    assert clean is not None
    text = json.dumps(clean)
    assert ENV_SECRET not in text and "AIza" not in text
    assert clean["model"] == "unknown" and clean["backend"] == "unknown"


def test_sanitize_rejects_and_coerces() -> None:
    assert sanitize_record(None) is None
    assert sanitize_record(["h"]) is None
    assert sanitize_record(record(handle="")) is None
    assert sanitize_record(record(updated="yesterday")) is None
    assert sanitize_record(record(handle="h" * 5000)) is None
    loose = sanitize_record(record(resumable="yes", last_consumed_index=True, expires="never"))
    assert loose is not None
    assert loose["resumable"] is False
    assert loose["last_consumed_index"] is None
    assert loose["expires"] == loose["updated"]
    many = sanitize_records({"main": record(), "<b>": record(), "bad": {"handle": 3}, "ok_2": record()})
    assert sorted(many) == ["main", "ok_2"]


def test_merge_keeps_the_newest_per_name() -> None:
    stored = {"main": record(handle="new", updated="2027-01-15T09:00:00Z"), "b": record()}
    merged = merge_records(stored, {"main": record(handle="old"), "c": record()})
    assert merged["main"]["handle"] == "new"
    assert sorted(merged) == ["b", "c", "main"]
    assert (
        merge_records(merged, {"main": record(handle="newer", updated="2027-01-15T09:00:01Z")})["main"]["handle"]
        == "newer"
    )


class SessionLike:
    """The observable state make_record and the bridge read (no add_listener: the bridge listens to nothing)."""

    def __init__(self, backend: str, handle: str | None = "h-1") -> None:
        self.handle = handle
        self.backend = backend
        self.model = "m"
        self.resumable = True
        self.last_consumed_index = 2
        self.state = "active"


# -- session names: one rule for the magics, the bridge and the labextension ---------------------

GOOD_NAMES = ["main", "_x", "a.b-c_1", "A" * 64, "default"]
BAD_NAMES = ["café", "a b", "x/y", "n" * 200, "<img src=x>", "main\n", "", "1st", "A" * 65, "ﬁ", "a\u200bb"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_session_names_accepted(name: str) -> None:
    assert is_session_name(name) and check_session_name(name) == name
    assert sanitize_records({name: record()}) == {name: record()}


@pytest.mark.parametrize("name", BAD_NAMES)
def test_session_names_refused_say_which_characters_are_allowed(name: str) -> None:
    assert not is_session_name(name)
    with pytest.raises(ConfigError) as info:
        check_session_name(name)
    message = str(info.value)
    assert "\n" not in message and "A-Z a-z 0-9 _ . -" in message and "ASCII only" in message
    assert len(message) < 200  # a 200-character name is shown cut
    refused: list[str] = []
    assert sanitize_records({name: record(), "ok": record()}, refused) == {"ok": record()}
    assert refused == [name]


def test_the_labextension_checks_names_with_the_same_pattern() -> None:
    source = (Path(__file__).parents[2] / "labextension" / "src" / "records.ts").read_text()
    match = re.search(r"const NAME_PATTERN = /\^(.*)\$/;", source)
    assert match is not None and match.group(1) == SESSION_NAME_PATTERN


def test_expiry_follows_the_backend_retention() -> None:
    gemini = make_record(SessionLike("gemini"), now=T0)
    vertex = make_record(SessionLike("vertex"), now=T0)
    scaled = make_record(SessionLike("emulator"), now=T0, retention=120.0)
    assert gemini is not None and vertex is not None and scaled is not None
    assert make_record(SessionLike("gemini", handle=None), now=T0) is None
    assert not is_expired(gemini, T0 + 2 * 3600 - 1) and is_expired(gemini, T0 + 2 * 3600)
    assert not is_expired(vertex, T0 + 23 * 3600) and is_expired(vertex, T0 + 24 * 3600)
    assert is_expired(scaled, T0 + 121)
    assert describe_record(gemini, T0 + 600) == ("handle 'h-1' (gemini, m), stored 10 min ago, expires in 1 h 50 min")
    late = describe_record(gemini, T0 + 5 * 3600)
    assert "expired 3 h ago" in late and "handles live 2 h" in late and "cannot be resumed" in late
    assert "expired" in describe_record(vertex, T0 + 25 * 3600) and "live 24 h" in describe_record(
        vertex, T0 + 25 * 3600
    )
    assert "expired" in describe_record(record(expires="garbage"), T0)


# -- the sidecar fallback, with a real shell and real sessions ---------------------------------


async def wait_until(predicate: Callable[[], Any], seconds: float = 10.0) -> Any:
    async with asyncio.timeout(seconds):
        while not (value := predicate()):
            await asyncio.sleep(0.01)
        return value


def sidecar_sessions(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    sessions: dict[str, Any] = json.loads(path.read_text())["live_nb"]["sessions"]
    return sessions


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """IPython's test shell (no kernel: like terminal IPython), with the notebook named by the server."""
    from IPython.testing.globalipapp import get_ipython

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "lesson.ipynb"))
    monkeypatch.setenv("GEMINI_API_KEY", ENV_SECRET)
    return get_ipython()


class Settings:
    """What a SessionRegistry reads from LiveMagics."""

    def __init__(self, tmp_path: Path, persist_handles: bool = True) -> None:
        self.emulator_db = str(tmp_path / "emulator.sqlite3")
        self.persist_handles = persist_handles


def on_emulator(emulator: Emulator) -> ConnectOptions:
    return ConnectOptions(
        model="gemini-3.8-live", backend="emulator", modality="AUDIO", compression=None, transparent=True,
        time_scale=1.0, emulator_url=emulator.url, flavor="vertex",
    )


async def test_sidecar_outside_a_kernel(
    shell: Any, tmp_path: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry, the one listener of its session, hands the bridge a record per new handle."""
    registry = SessionRegistry(shell, Settings(tmp_path))
    try:
        bridge = registry.bridge()
        assert bridge is not None and bridge.mode == "sidecar"
        assert bridge.sidecar == tmp_path / "lesson.live_nb.json"
        entry = await registry.ensure("main", on_emulator(emulator))
        session = entry.session
        assert session is not None
        await session.send_text("My favourite colour is teal.")
        await wait_until(lambda: session.handle)
        first = await wait_until(lambda: sidecar_sessions(bridge.sidecar).get("main"))
        assert first["handle"] == session.handle
        assert first["backend"] == "emulator" and first["resumable"] is True
        await session.send_text("And my cat is called Miso.")
        await wait_until(lambda: sidecar_sessions(bridge.sidecar)["main"]["handle"] != first["handle"])
        await wait_until(lambda: sidecar_sessions(bridge.sidecar)["main"]["handle"] == session.handle)
        final_handle = session.handle
        await registry.close("main")
        assert registry.known_handle("main") == final_handle  # the ended session's, not a copy
        text = bridge.sidecar.read_text()
        assert ENV_SECRET not in text and "AIza" not in text
        assert set(sidecar_sessions(bridge.sidecar)["main"]) == set(RECORD_KEYS)
        # Vertex AI's flavour keeps handles 24 h (catalogue.BACKEND_OFFERS): so does the record.
        assert "expires in 23 h 59 min" in describe_record(bridge.records["main"]) or "expires in 24 h" in describe_record(
            bridge.records["main"]
        )
        told = capsys.readouterr().out
        assert told.count("session handles are kept in") == 1 and str(bridge.sidecar) in told
    finally:
        await registry.close_all()
        close_bridge(shell)

    # A new kernel (here: a new bridge) finds the handle again.
    again = MetadataBridge(shell)
    try:
        stored = again.records["main"]
        assert stored["handle"] == final_handle
        again.forget("main")
        assert sidecar_sessions(again.sidecar) == {}
        assert again.records == {}
    finally:
        again.close()


async def test_persist_handles_false_keeps_handles_out(shell: Any, tmp_path: Path, emulator: Emulator) -> None:
    registry = SessionRegistry(shell, Settings(tmp_path, persist_handles=False))
    try:
        bridge = registry.bridge()
        assert bridge is not None
        entry = await registry.ensure("main", on_emulator(emulator))
        assert entry.session is not None
        await entry.session.send_text("hello")
        await wait_until(lambda: entry.session is not None and entry.session.handle)
        await asyncio.sleep(0.3)
        assert not bridge.sidecar.exists()
        assert bridge.records == {}
    finally:
        await registry.close_all()
        close_bridge(shell)


def test_records_saved_in_the_notebook_come_back(
    shell: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "cells": [],
        "metadata": {"live_nb": {"sessions": {"main": {**record(), "api_key": GOOGLE_KEY}, "x y": record()}}},
    }
    (tmp_path / "lesson.ipynb").write_text(json.dumps(notebook))
    capsys.readouterr()
    bridge = MetadataBridge(shell)
    try:
        assert bridge.notebook == tmp_path / "lesson.ipynb"
        assert bridge.records == {"main": record()}
        told = capsys.readouterr().out  # what is dropped is said, not dropped in silence
        assert told.count("ignored 1 stored session record(s)") == 1 and "'x y'" in told
    finally:
        bridge.close()


def test_the_bridge_says_once_when_it_cannot_keep_a_handle(
    shell: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    bridge = MetadataBridge(shell)
    try:
        for _ in range(2):
            with pytest.raises(ConfigError, match="ASCII only"):
                bridge.track("café", SessionLike("emulator"))
        told = capsys.readouterr().out
        assert told.count("the handle of session 'café' is not kept") == 1 and "ASCII only" in told
        assert bridge.records == {}

        # A handle shaped like a credential is never stored: said once, however many times it comes.
        session = SessionLike("emulator", handle=GOOGLE_KEY)
        bridge.track("main", session)
        bridge.keep("main", make_record(session))
        session.handle = GOOGLE_KEY + "x"
        bridge.keep("main", make_record(session))
        told = capsys.readouterr().out
        assert told.count("the handle of session 'main' is not kept in the notebook") == 1
        assert GOOGLE_KEY not in told and bridge.records == {}
        assert not bridge.sidecar.exists() or GOOGLE_KEY not in bridge.sidecar.read_text()

        # A good handle is kept (and where, said once).
        session.handle = "h-good"
        bridge.keep("main", make_record(session))
        assert bridge.records["main"]["handle"] == "h-good"
        assert sidecar_sessions(bridge.sidecar)["main"]["handle"] == "h-good"
        assert capsys.readouterr().out.count("session handles are kept in") == 1
    finally:
        bridge.close()


# -- the comm, with a real kernel and the test as the frontend ----------------------------------


def comm_open(kernel: Kernel) -> Recorded:
    return kernel.wait_for(
        lambda r: r.type == "comm_open" and r.content.get("target_name") == metadata.COMM_TARGET, timeout=30
    )


@pytest.mark.kernel
def test_comm_protocol_with_a_real_kernel(tmp_path: Path) -> None:
    (tmp_path / "lesson.ipynb").write_text(
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": [], "metadata": {}})
    )
    kernel = Kernel(tmp_path, JPY_SESSION_NAME=str(tmp_path / "lesson.ipynb"), GEMINI_API_KEY=ENV_SECRET)
    try:
        msg_id, _ = kernel.run("%load_ext live_nb")
        assert not kernel.errors(msg_id)
        opened = comm_open(kernel)
        comm_id = opened.content["comm_id"]
        assert opened.content["data"] == {"type": "hello", "version": 1}
        # The frontend hands back what the notebook holds (with junk the kernel must drop).
        kernel.send_shell(
            "comm_msg",
            {
                "comm_id": comm_id,
                "data": {"type": "records", "sessions": {"old": {**record(), "token": "ya29.zzz"}}},
            },
        )
        probe = "from live_nb.notebook.metadata import get_bridge\nb = get_bridge(get_ipython())\nprint(b.mode, sorted(b.records), sorted(b.records['old']))"
        deadline = time.time() + 10
        while True:
            msg_id, _ = kernel.run(probe)
            if kernel.stdout(msg_id).startswith("comm") or time.time() > deadline:
                break
            time.sleep(0.2)
        assert kernel.stdout(msg_id).strip() == f"comm ['old'] {sorted(RECORD_KEYS)}"

        # A conversation: every new handle is sent as a record, never with a key; status too.
        # (a key is in the kernel's environment: the emulator must be asked for by name)
        msg_id, _ = kernel.run("%live connect main --backend emulator", timeout=60)
        assert not kernel.errors(msg_id)
        msg_id, _ = kernel.run("%%live main\nMy favourite colour is teal.", timeout=60)
        assert not kernel.errors(msg_id)
        sent = kernel.wait_for(
            lambda r: (
                r.type == "comm_msg" and r.content["comm_id"] == comm_id and r.content["data"].get("type") == "record"
            ),
            timeout=20,
        )
        data = sent.content["data"]
        assert data["name"] == "main" and set(data["record"]) == set(RECORD_KEYS)
        assert data["record"]["backend"] == "emulator"
        kernel.wait_for(
            lambda r: (
                r.type == "comm_msg"
                and r.content["comm_id"] == comm_id
                and r.content["data"].get("type") == "status"
                and "main" in r.content["data"]["sessions"]
            ),
            timeout=20,
        )
        msg_id, _ = kernel.run("%%live main\nAnd my cat is called Miso.", timeout=60)
        assert not kernel.errors(msg_id)
        time.sleep(1.0)  # let the trailing status land
        with kernel._lock:
            comm_msgs = [r for r in kernel.messages if r.type == "comm_msg" and r.content["comm_id"] == comm_id]
        everything = json.dumps([r.content for r in comm_msgs])
        assert ENV_SECRET not in everything and "AIza" not in everything
        # Status at most 4 a second (sent >= 0.25 s apart; arrival jitter allowed), the last one current.
        statuses = [r for r in comm_msgs if r.content["data"]["type"] == "status"]
        assert len(statuses) >= 2
        gaps = [b.at - a.at for a, b in itertools.pairwise(statuses)]
        assert min(gaps) >= 0.2, gaps
        assert statuses[-1].content["data"]["sessions"]["main"]["state"] == "active"
        records = [r.content["data"]["record"]["handle"] for r in comm_msgs if r.content["data"]["type"] == "record"]
        assert len(records) >= 2 and len(set(records)) == len(records)  # one record per new handle

        # The frontend's "Forget stored live session handles" reaches the kernel.
        kernel.send_shell("comm_msg", {"comm_id": comm_id, "data": {"type": "forget", "name": None}})
        deadline = time.time() + 10
        while True:
            msg_id, _ = kernel.run("print(sorted(get_bridge(get_ipython()).records))")
            if kernel.stdout(msg_id).strip() == "[]" or time.time() > deadline:
                break
            time.sleep(0.2)
        assert kernel.stdout(msg_id).strip() == "[]"
        assert not (tmp_path / "lesson.live_nb.json").exists()  # the extension answered: no sidecar
    finally:
        kernel.shutdown()


@pytest.mark.kernel
def test_frontend_without_the_extension_gets_a_sidecar(tmp_path: Path) -> None:
    kernel = Kernel(tmp_path, JPY_SESSION_NAME=str(tmp_path / "lesson.ipynb"))
    try:
        kernel.run("%load_ext live_nb")
        opened = comm_open(kernel)
        # What JupyterLab does with a comm target nobody registered: close it.
        kernel.send_shell("comm_close", {"comm_id": opened.content["comm_id"], "data": {}})
        msg_id, _ = kernel.run("%%live main\nMy favourite colour is teal.", timeout=60)
        assert not kernel.errors(msg_id)
        sidecar = tmp_path / "lesson.live_nb.json"
        deadline = time.time() + 15
        while not sidecar_sessions(sidecar).get("main") and time.time() < deadline:
            time.sleep(0.1)
        stored = sidecar_sessions(sidecar)["main"]
        assert set(stored) == set(RECORD_KEYS) and stored["backend"] == "emulator"
        msg_id, _ = kernel.run("print('next cell')")
        told = "".join(r.content.get("text", "") for r in kernel.messages if r.type == "stream")
        assert told.count("session handles are kept in") == 1 and str(sidecar) in told
    finally:
        kernel.shutdown()


def test_notebook_and_sidecar_locations(shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """VS Code names the notebook in the namespace; Jupyter Server in JPY_SESSION_NAME; else the cwd."""
    shell.user_ns["__vsc_ipynb_file__"] = str(tmp_path / "vs" / "code.ipynb")
    try:
        assert sidecar.notebook_path(shell) == tmp_path / "vs" / "code.ipynb"
        assert sidecar.sidecar_path(sidecar.notebook_path(shell)) == tmp_path / "vs" / "code.live_nb.json"
    finally:
        del shell.user_ns["__vsc_ipynb_file__"]
    (tmp_path / "rel.ipynb").write_text("{}")
    monkeypatch.setenv("JPY_SESSION_NAME", "some/dir/rel.ipynb")  # relative: the kernel runs in its dir
    assert sidecar.notebook_path(shell, cwd=tmp_path) == tmp_path / "rel.ipynb"
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert sidecar.notebook_path(shell) is None
    assert sidecar.sidecar_path(None, cwd=tmp_path) == tmp_path / "live_nb_sessions.live_nb.json"
