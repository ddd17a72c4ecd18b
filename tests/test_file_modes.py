"""Every file live_nb writes that holds a secret or a session is owner-only from its creation.

The emulator's SQLite database (its HMAC secret signs every handle; its snapshots hold every
session's context), SQLite's -wal/-shm files, the emulator's temp dir, and the TLS key and cert are
created 0600 (directories 0700). "From its creation": each test runs with a process umask of 0o000,
so a file created at a wider mode and chmod-ed afterwards (a window in which another user can open
it) would show up here as 0644/0666. Existing files we own that are readable by others are
tightened; symlinks are never followed into a create.

The notebook sidecar (``<notebook>.live_nb.json``, live_nb/notebook/sidecar.py) holds resumption
handles and gets the same rules, and so does the directory the magics' in-kernel emulator keeps its
database in (``~/.cache/live_nb``, live_nb/notebook/sessions.py).
"""

from __future__ import annotations

import json
import os
import ssl
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from emulator_constants import GEMINI_PATH

from live_nb.emulator import Emulator
from live_nb.emulator.store import Store, write_private_file
from live_nb.emulator.tls import generate_certificate

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes"),
]

MODEL = "models/gemini-3.8-live"


def mode(path: str | Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask0() -> Iterator[None]:
    """A process umask of 0 while the test creates files: only an explicit mode keeps them private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


async def use(emu: Emulator) -> None:
    """One session with a snapshot, so the database has written its WAL."""
    context = None
    if emu.cert_path is not None:
        context = ssl.create_default_context(cafile=emu.cert_path)
    async with websockets.connect(
        emu.url + GEMINI_PATH, additional_headers={"x-goog-api-key": "k"}, ssl=context
    ) as ws:
        await ws.send(json.dumps({"setup": {"model": MODEL, "sessionResumption": {}}}))
        await ws.recv()


def assert_private_db(db: str) -> None:
    assert mode(db) == 0o600, oct(mode(db))
    for suffix in ("-wal", "-shm", "-journal"):
        if os.path.exists(db + suffix):
            assert mode(db + suffix) == 0o600, (suffix, oct(mode(db + suffix)))
    assert os.path.exists(db + "-wal") and os.path.exists(db + "-shm")  # WAL mode: both were made


async def test_default_emulator_files_are_private(umask0: None) -> None:
    emu = Emulator(tls=True, chunk_delay=0)
    await emu.start()
    try:
        await use(emu)
        assert emu.db_path is not None and emu.cert_path is not None and emu.key_path is not None
        tmpdir = os.path.dirname(emu.db_path)
        assert os.path.dirname(emu.cert_path) == tmpdir
        assert mode(tmpdir) == 0o700
        assert_private_db(emu.db_path)
        assert mode(emu.key_path) == 0o600 and mode(emu.cert_path) == 0o600
        assert sorted(os.listdir(tmpdir)) == sorted(
            ["cert.pem", "key.pem", *(os.path.basename(emu.db_path) + s for s in ("", "-wal", "-shm"))]
        )  # no temp file left behind
    finally:
        await emu.stop()
        emu.cleanup()


async def test_given_db_path_and_cert_dir_are_private(umask0: None, tmp_path: Path) -> None:
    db = tmp_path / "new" / "deeper" / "emu.sqlite3"
    certs = tmp_path / "certs" / "here"
    emu = Emulator(db_path=str(db), tls=True, cert_dir=str(certs), chunk_delay=0)
    await emu.start()
    try:
        await use(emu)
        assert mode(tmp_path / "new") == 0o700 and mode(tmp_path / "new" / "deeper") == 0o700
        assert_private_db(str(db))
        assert mode(tmp_path / "certs") == 0o700 and mode(certs) == 0o700
        assert mode(certs / "key.pem") == 0o600 and mode(certs / "cert.pem") == 0o600
    finally:
        await emu.stop()
        emu.cleanup()
    assert db.exists()  # a given path is the user's: kept


def test_store_creates_its_file_private_and_keeps_the_secret_in_it(umask0: None, tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = Store(str(path))
    store.create_session("sess-a", "gemini-3.8-live", now=1.0)
    handle = store.save_snapshot("sess-a", {"turns": 1}, now=2.0)
    assert_private_db(str(path))
    secret = store._secret.hex()
    assert secret not in repr(store) and secret not in handle
    store.close()


def test_existing_files_readable_by_others_are_tightened(umask0: None, tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    Store(str(path)).close()
    for name in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm")):
        if name.exists():
            os.chmod(name, 0o644)
    Store(str(path)).close()
    assert mode(path) == 0o600
    certs = tmp_path / "certs"
    generate_certificate(str(certs))
    os.chmod(certs / "key.pem", 0o644)
    generate_certificate(str(certs))  # reused, and its key tightened
    assert mode(certs / "key.pem") == 0o600


def test_a_symlinked_db_path_creates_its_target_private(umask0: None, tmp_path: Path) -> None:
    target = tmp_path / "real.sqlite3"
    link = tmp_path / "link.sqlite3"
    link.symlink_to(target)  # dangling: SQLite would create the target at 0644 & ~umask
    Store(str(link)).close()
    assert target.exists() and mode(target) == 0o600


def test_generated_key_replaces_a_planted_symlink(umask0: None, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (certs / "key.pem").symlink_to(victim)  # no cert.pem: a new pair is generated
    cert, key = generate_certificate(str(certs))
    assert victim.read_text() == "keep me"
    assert not os.path.islink(key) and mode(key) == 0o600 and mode(cert) == 0o600
    assert sorted(os.listdir(certs)) == ["cert.pem", "key.pem"]


def test_write_private_file_is_atomic_and_private(umask0: None, tmp_path: Path) -> None:
    path = tmp_path / "made" / "secret.bin"
    write_private_file(str(path), b"one")
    assert path.read_bytes() == b"one" and mode(path) == 0o600 and mode(path.parent) == 0o700
    os.chmod(path, 0o644)
    write_private_file(str(path), b"two")
    assert path.read_bytes() == b"two" and mode(path) == 0o600
    assert os.listdir(path.parent) == ["secret.bin"]


# The notebook sidecar (live_nb/notebook/sidecar.py).

RECORD = {
    "handle": "h-123",
    "backend": "emulator",
    "model": "gemini-3.8-live",
    "resumable": True,
    "updated": "2026-01-01T00:00:00Z",
    "expires": "2026-01-01T02:00:00Z",
    "last_consumed_index": 3,
}


def test_sidecar_is_private(umask0: None, tmp_path: Path) -> None:
    from live_nb.notebook.sidecar import read_records, write_sidecar

    path = tmp_path / "demo.live_nb.json"
    write_sidecar(path, {"main": RECORD})
    assert mode(path) == 0o600
    assert read_records(path)["main"]["handle"] == "h-123"
    os.chmod(path, 0o644)
    write_sidecar(path, {"main": RECORD})  # a rewrite is private again
    assert mode(path) == 0o600
    assert os.listdir(tmp_path) == ["demo.live_nb.json"]


def test_sidecar_write_never_follows_a_planted_symlink(umask0: None, tmp_path: Path) -> None:
    from live_nb.notebook.sidecar import write_sidecar

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = tmp_path / "demo.live_nb.json"
    # Both the sidecar's name and the temp name a naive atomic write would use.
    (tmp_path / "demo.live_nb.json.tmp").symlink_to(victim)
    path.symlink_to(victim)
    write_sidecar(path, {"main": RECORD})
    assert victim.read_text() == "keep me"
    assert not path.is_symlink() and mode(path) == 0o600
    assert (tmp_path / "demo.live_nb.json.tmp").is_symlink()  # left alone: never our temp name
    assert sorted(os.listdir(tmp_path)) == ["demo.live_nb.json", "demo.live_nb.json.tmp", "victim.txt"]


def test_a_failed_sidecar_write_leaves_the_old_file_and_no_temp(
    umask0: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from live_nb.notebook import sidecar

    path = tmp_path / "demo.live_nb.json"
    sidecar.write_sidecar(path, {"main": RECORD})
    before = path.read_bytes()

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sidecar.os, "replace", refuse)
    with pytest.raises(OSError):
        sidecar.write_sidecar(path, {"other": RECORD})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["demo.live_nb.json"]


def test_sidecar_read_refuses_a_symlink_and_a_fifo(tmp_path: Path) -> None:
    from live_nb.notebook.sidecar import read_records, write_sidecar

    real = tmp_path / "elsewhere.json"
    write_sidecar(real, {"main": RECORD})
    link = tmp_path / "demo.live_nb.json"
    link.symlink_to(real)
    assert read_records(real, follow_symlinks=False)["main"]["handle"] == "h-123"
    assert read_records(link, follow_symlinks=False) == {}  # a link at the sidecar's name is not ours
    assert read_records(link)["main"]["handle"] == "h-123"  # a notebook may be a link: followed
    fifo = tmp_path / "fifo.live_nb.json"
    os.mkfifo(fifo)
    assert read_records(fifo, follow_symlinks=False) == {}  # returns at once: no writer is awaited


def test_bridge_says_it_did_not_read_a_symlinked_sidecar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from live_nb.notebook.metadata import MetadataBridge
    from live_nb.notebook.sidecar import write_sidecar

    class Shell:
        user_ns = {"__vsc_ipynb_file__": str(tmp_path / "demo.ipynb")}

    real = tmp_path / "elsewhere.json"
    write_sidecar(real, {"main": RECORD})
    (tmp_path / "demo.live_nb.json").symlink_to(real)
    bridge = MetadataBridge(Shell())
    try:
        assert bridge.records == {}
        told = capsys.readouterr().out
        assert "demo.live_nb.json is a symbolic link" in told and "not read" in told
    finally:
        bridge.close()


# The in-kernel emulator's directory (live_nb/notebook/sessions.py).


def test_magics_emulator_directory_is_private(umask0: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from live_nb import _loop
    from live_nb.notebook.magics import LiveMagics
    from live_nb.notebook.sessions import emulator_cache_dir, make_emulator_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LIVE_NB_EMULATOR_DB", raising=False)
    assert emulator_cache_dir() == tmp_path / "cache" / "live_nb"
    magics = LiveMagics(shell=None)
    assert magics.emulator_db == str(tmp_path / "cache" / "live_nb" / "emulator.sqlite3")
    try:
        url = _loop.block(_loop.submit(magics.registry.emulator(1.0, "vertex")), 30)
        assert url.startswith("ws://127.0.0.1:")
        assert mode(tmp_path / "cache") == 0o700 and mode(tmp_path / "cache" / "live_nb") == 0o700
        assert_private_db(str(tmp_path / "cache" / "live_nb" / "emulator.sqlite3"))
    finally:
        for emulator in magics.registry._emulators.values():
            _loop.block(_loop.submit(emulator.stop()), 30)
        _loop.stop()

    # A directory an earlier version made with the umask's mode is tightened; one the user chose is not.
    os.chmod(tmp_path / "cache" / "live_nb", 0o755)
    make_emulator_dir(tmp_path / "cache" / "live_nb")
    assert mode(tmp_path / "cache" / "live_nb") == 0o700
    chosen = tmp_path / "shared"
    chosen.mkdir(mode=0o755)
    make_emulator_dir(chosen)
    assert mode(chosen) == 0o755
    make_emulator_dir(tmp_path / "new" / "db-dir")
    assert mode(tmp_path / "new") == 0o700 and mode(tmp_path / "new" / "db-dir") == 0o700


def test_magics_emulator_directory_is_never_tightened_through_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from live_nb.notebook.sessions import make_emulator_dir

    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "live_nb").symlink_to(target)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    make_emulator_dir(tmp_path / "cache" / "live_nb")
    assert mode(target) == 0o755
