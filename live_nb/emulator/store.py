"""SQLite store of the emulator's resumable state: sessions, snapshots and the handle secret.

Why SQLite: resumption handles must outlive the emulator process (a notebook resumes a session
after the emulator restarted) and the standard library has it. Why snapshots: a handle names the
session state *as of the update that carried it*. Resuming restores exactly that state and throws
away whatever the session consumed after it, which is what makes transparent replay exactly-once:
the client re-sends everything after ``lastConsumedClientMessageIndex`` and nothing is counted twice.

Handles are opaque and unforgeable: ``base64url("<session_id>.<snapshot_seq>.<hmac>")`` where the
HMAC-SHA256 key is a random secret created with the database and kept in it (so handles survive a
restart with the same ``db_path``, and a handle from another database is refused).

All times are ``time.time()`` seconds. Rules: nothing here knows about sockets or the wire; every
method is a short synchronous transaction (sub-millisecond on a local file), called from the
server's event loop.

Files are private: the database holds the HMAC secret and every session's context, so it is created
owner-only (0600) before SQLite opens it, with ``O_CREAT | O_EXCL`` and no window at a wider mode
(not a chmod afterwards). SQLite gives its ``-wal``, ``-shm`` and ``-journal`` files the database
file's own mode whatever the umask, so they are 0600 too. Missing parent directories are made 0700.
An existing database (or journal) readable by others is tightened to owner-only when we own it.
``make_private_dirs`` and ``write_private_file`` serve the TLS files in server.py the same way.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import stat
import tempfile
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Refusal",
    "SessionRecord",
    "Snapshot",
    "Store",
    "create_private_file",
    "default_db_path",
    "make_private_dirs",
    "new_session_id",
    "tighten_mode",
    "write_private_file",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    created REAL NOT NULL,
    open_connections INTEGER NOT NULL DEFAULT 0,
    last_end REAL
);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    created REAL NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_by_session ON snapshots (session_id);
"""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a handle cannot be used: the close code and reason the server answers with.

    A value, not an exception: a refused handle is an ordinary outcome of ``load_snapshot`` (and
    live_nb raises only the exceptions of ``live_nb.exceptions``).
    """

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One session's row: who it is and whether a connection holds it now."""

    session_id: str
    model: str
    created: float
    open_connections: int
    last_end: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state behind one handle."""

    seq: int
    session_id: str
    created: float
    state: dict[str, Any]


class Store:
    """The emulator's SQLite file.

    Args:
        path: the database file; created when missing.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        if path not in ("", ":memory:"):
            # SQLite follows a symlink at ``path``: create (or tighten) the file it really opens.
            real = os.path.realpath(path)
            if not create_private_file(real):
                for name in (real, *(real + suffix for suffix in _SQLITE_SIDE_FILES)):
                    tighten_mode(name)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL keeps snapshot writes cheap; synchronous=NORMAL is durable enough for an emulator.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key='secret'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta (key, value) VALUES ('secret', ?)", (secrets.token_hex(32),))
            row = self._db.execute("SELECT value FROM meta WHERE key='secret'").fetchone()
        self._secret = bytes.fromhex(row[0])

    def close(self) -> None:
        """Close the database (idempotent)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    # Sessions.

    def create_session(self, session_id: str, model: str, now: float) -> None:
        """Record a new session with one open connection."""
        self._db.execute(
            "INSERT INTO sessions (session_id, model, created, open_connections) VALUES (?, ?, ?, 1)",
            (session_id, model, now),
        )

    def forget_session(self, session_id: str) -> None:
        """Delete a session and its snapshots (a setup refused after its row was made: no trace left)."""
        self._db.execute("DELETE FROM snapshots WHERE session_id=?", (session_id,))
        self._db.execute("DELETE FROM sessions WHERE session_id=?", (session_id,))

    def session(self, session_id: str) -> SessionRecord | None:
        """The session's row, or None."""
        row = self._db.execute(
            "SELECT session_id, model, created, open_connections, last_end FROM sessions WHERE session_id=?",
            (session_id,),
        ).fetchone()
        return None if row is None else SessionRecord(*row)

    def connection_opened(self, session_id: str) -> None:
        """Count a new connection of the session (a resume)."""
        self._db.execute(
            "UPDATE sessions SET open_connections = open_connections + 1 WHERE session_id=?", (session_id,)
        )

    def connection_closed(self, session_id: str, now: float) -> None:
        """Count a connection's end; the retention clock starts when the last one ends."""
        self._db.execute(
            "UPDATE sessions SET open_connections = MAX(open_connections - 1, 0), last_end=? WHERE session_id=?",
            (now, session_id),
        )

    def close_all_connections(self, now: float) -> None:
        """Mark every connection ended (on start: connections of a previous process are gone)."""
        self._db.execute(
            "UPDATE sessions SET open_connections = 0, last_end = COALESCE(last_end, ?) WHERE open_connections > 0",
            (now,),
        )
        self._db.execute("UPDATE sessions SET last_end = ? WHERE last_end IS NULL", (now,))

    def purge_expired(self, ended_before: float) -> int:
        """Delete sessions (and their snapshots) whose last connection ended before ``ended_before``.

        Why: their handles are refused as expired anyway; this keeps the file from growing forever.

        Returns:
            how many sessions were deleted.
        """
        ids = [
            row[0]
            for row in self._db.execute(
                "SELECT session_id FROM sessions WHERE open_connections = 0 AND last_end < ?", (ended_before,)
            )
        ]
        for session_id in ids:
            self._db.execute("DELETE FROM snapshots WHERE session_id=?", (session_id,))
            self._db.execute("DELETE FROM sessions WHERE session_id=?", (session_id,))
        return len(ids)

    # Snapshots and handles.

    def save_snapshot(self, session_id: str, state: dict[str, Any], now: float) -> str:
        """Store a snapshot of the session and return the handle that names it."""
        cur = self._db.execute(
            "INSERT INTO snapshots (session_id, created, state) VALUES (?, ?, ?)",
            (session_id, now, json.dumps(state, separators=(",", ":"))),
        )
        seq = cur.lastrowid
        assert seq is not None
        return self._make_handle(session_id, seq)

    def load_snapshot(self, handle: str) -> Snapshot | Refusal:
        """Verify a handle and return its snapshot, or the refusal the service would give.

        A malformed, forged or unknown handle gets 1008 "BidiGenerateContent session not found"
        (the service's words for a stale or invalid handle).
        """
        not_found = Refusal(1008, "BidiGenerateContent session not found")
        try:
            raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)).decode("ascii")
            session_id, seq_text, mac = raw.split(".")
            seq = int(seq_text)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return not_found
        if not hmac.compare_digest(mac, self._mac(session_id, seq)):
            return not_found
        row = self._db.execute(
            "SELECT seq, session_id, created, state FROM snapshots WHERE seq=? AND session_id=?", (seq, session_id)
        ).fetchone()
        if row is None:
            return not_found
        return Snapshot(row[0], row[1], row[2], json.loads(row[3]))

    def snapshot_count(self, session_id: str) -> int:
        """How many snapshots the session has (for tests and stats)."""
        row = self._db.execute("SELECT COUNT(*) FROM snapshots WHERE session_id=?", (session_id,)).fetchone()
        return int(row[0])

    def _mac(self, session_id: str, seq: int) -> str:
        return hmac.new(self._secret, f"{session_id}.{seq}".encode(), hashlib.sha256).hexdigest()[:32]

    def _make_handle(self, session_id: str, seq: int) -> str:
        raw = f"{session_id}.{seq}.{self._mac(session_id, seq)}".encode("ascii")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def new_session_id() -> str:
    """A random session id (URL-safe, no dots: the handle format splits on dots)."""
    return "sess-" + secrets.token_hex(8)


def default_db_path(directory: str) -> str:
    """Where a fresh emulator keeps its database when none is given."""
    return os.path.join(directory, "live_nb_emulator.sqlite3")


# Private files.


def make_private_dirs(directory: str) -> None:
    """Create ``directory`` and any missing parents with mode 0700 (existing ones are left as they are).

    Why not ``os.makedirs(mode=0o700)``: since Python 3.7 its mode applies to the last level only.
    """
    directory = os.path.abspath(directory)
    if os.path.isdir(directory):
        return
    parent = os.path.dirname(directory)
    if parent != directory:
        make_private_dirs(parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)


def create_private_file(path: str) -> bool:
    """Create ``path`` empty with mode 0600 unless something exists there (parents made 0700).

    ``O_CREAT | O_EXCL | O_NOFOLLOW``: the file is born owner-only (no window at a wider mode, whatever
    the umask allows), and a file or symlink planted at ``path`` is never followed into a create.

    Returns:
        True when this call created the file, False when ``path`` already existed.
    """
    make_private_dirs(os.path.dirname(os.path.abspath(path)))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def tighten_mode(path: str) -> None:
    """Drop group and other permissions from an existing regular file we own (a no-op otherwise)."""
    try:
        info = os.lstat(path)
    except OSError:
        return
    owned = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    if stat.S_ISREG(info.st_mode) and owned and info.st_mode & 0o077:
        with contextlib.suppress(OSError):
            os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)


def write_private_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, owner-only (0600) from the first byte.

    The bytes go to a fresh ``mkstemp`` file in the same directory (created 0600 with ``O_EXCL``),
    which then replaces ``path``: a reader never sees half a file, and a symlink at ``path`` is
    replaced, not followed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    make_private_dirs(directory)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
