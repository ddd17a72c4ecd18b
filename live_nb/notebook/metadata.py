"""Keep live sessions' resumption handles with the notebook: the kernel side of the labextension comm.

Why: a handle is the thread of a conversation. Stored in the notebook itself, it lets a student close
the laptop, reopen the notebook within the handle's lifetime and carry on. The kernel cannot write
notebook metadata, so (docs/architecture.md, "Kernel <-> labextension comm"):

- on ``%load_ext live_nb`` the bridge opens a comm with target ``live_nb.metadata``; the JupyterLab
  extension answers ``{"type": "records", "sessions": {...}}`` with the records the notebook holds;
- on every new handle the bridge sends ``{"type": "record", "name", "record"}``; the extension writes it
  to ``metadata.live_nb.sessions[NAME]`` and marks the notebook dirty (the user's save keeps it);
- a throttled ``{"type": "status", "sessions": {...}}`` feeds the status bar;
- ``{"type": "forget", "name": NAME | None}`` goes both ways.

Without the extension (nbclient, VS Code, the classic notebook, terminal IPython: no kernel, the comm
closed by the frontend, or no answer within ``REPLY_TIMEOUT``) records go to a sidecar file next to the
notebook (``<notebook stem>.live_nb.json``), and the user is told once where.

Records hold exactly ``RECORD_KEYS``; ``sanitize_record`` drops anything else and rejects any value that
looks like a credential, so neither a key nor a token can reach a notebook file that gets shared.

Threads: session listeners run on live_nb's loop thread; comm callbacks on the kernel's main thread.
Shared state is behind one lock, and ipykernel 7's ``comm.send`` is safe from any thread.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import logging
import os
import re
import stat
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeGuard

from ..exceptions import ConfigError
from ..protocol.config import HANDLE_RETENTION_SECONDS

__all__ = [
    "COMM_TARGET",
    "RECORD_KEYS",
    "SESSION_NAME_PATTERN",
    "SESSION_NAME_RULE",
    "MetadataBridge",
    "check_session_name",
    "close_bridge",
    "describe_record",
    "get_bridge",
    "is_expired",
    "is_session_name",
    "make_record",
    "merge_records",
    "retention_seconds",
    "sanitize_record",
    "sanitize_records",
]

logger = logging.getLogger(__name__)

COMM_TARGET = "live_nb.metadata"
RECORD_KEYS = ("handle", "backend", "model", "resumable", "updated", "expires", "last_consumed_index")
"""The only keys a stored record may have (the contract; labextension/src/records.ts mirrors it)."""
REPLY_TIMEOUT = 5.0
"""Seconds to wait for the extension's answer before falling back to the sidecar file. A sync cell
blocks comm messages, so an answer may come later; it then takes over (the sidecar stays harmless)."""
STATUS_INTERVAL = 0.25
"""At most four status messages a second: the status bar counts down by itself in between."""
SIDECAR_SUFFIX = ".live_nb.json"
FALLBACK_SIDECAR = "live_nb_sessions" + SIDECAR_SUFFIX
RETENTION_SECONDS = HANDLE_RETENTION_SECONDS

SIDECAR_MAX_BYTES = 16 * 1024 * 1024
"""A sidecar larger than this is not read (ours hold a few records: a few KB)."""

SESSION_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]{0,63}"
"""Session names, for the magics and the bridge alike (labextension/src/records.ts ``NAME_PATTERN``
is the same rule): ASCII only, because a name becomes a key of the notebook's metadata that the
extension checks with the same pattern, and a short identifier cannot smuggle markup into it."""
SESSION_NAME_RULE = "a letter or _, then up to 63 of A-Z a-z 0-9 _ . - (ASCII only)"
"""``SESSION_NAME_PATTERN`` in words, for error messages."""
_NAME = re.compile(SESSION_NAME_PATTERN, re.ASCII)
_NAME_HELP = f"a session name must be {SESSION_NAME_RULE}"
_MAX_STRING = 4096
_SECRET_SHAPES = (
    re.compile(r"AIza[0-9A-Za-z_-]{35}"),  # Google API key
    re.compile(r"ya29\.[0-9A-Za-z_-]+"),  # OAuth access token
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)
_KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_API_KEY", "LIVE_NB_API_KEY")


# ---------------------------------------------------------------------------------------------
# Records: pure functions


def is_session_name(name: object) -> TypeGuard[str]:
    """Whether ``name`` is a session name the magics take and the notebook metadata can store.

    The whole string must match (``re.fullmatch``: a trailing newline is not a name).
    """
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_session_name(name: object) -> str:
    """``name`` itself when it is a session name (``is_session_name``).

    Raises:
        ConfigError: it is not; the message says which characters are allowed.
    """
    if not is_session_name(name):
        raise ConfigError("name", _short(name), "a session name: " + SESSION_NAME_RULE)
    return name


def _short(value: object, limit: int = 40) -> str:
    """``value`` as text of at most ``limit`` characters (a refused name may be any length)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retention_seconds(backend: str) -> float:
    """How long a handle from ``backend`` lives: 24 h on Vertex AI, else 2 h (Developer API, emulator).

    For an emulator the real figure is its flavour's (``catalogue.BACKEND_OFFERS``), which the magics
    pass as ``retention`` when they track its sessions; this is only the fallback.
    """
    return RETENTION_SECONDS["vertex"] if "vertex" in backend.lower() else RETENTION_SECONDS["gemini"]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _now_seconds(now: float | datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        return (now if now.tzinfo else now.replace(tzinfo=timezone.utc)).timestamp()
    return float(now)


def _looks_secret(text: str) -> bool:
    if any(shape.search(text) for shape in _SECRET_SHAPES):
        return True
    for variable in _KEY_VARIABLES:
        value = os.environ.get(variable, "")
        if len(value) >= 8 and value in text:
            return True
    return False


def _clean_string(value: object) -> str | None:
    if not isinstance(value, str) or not value or len(value) > _MAX_STRING or _looks_secret(value):
        return None
    return value


def make_record(session: Any, now: float | None = None, retention: float | None = None) -> dict[str, Any] | None:
    """The record to store for ``session``'s current handle, or None while it has none.

    Args:
        session: a ``LiveSession`` (anything with ``handle``, ``backend``, ``model``, ``resumable``,
            ``last_consumed_index``).
        now: time.time() of the handle's arrival (default: now).
        retention: seconds the service keeps the handle; default ``session.handle_retention`` when
            the session has one (an emulator at a time scale), else ``retention_seconds(backend)``.
    """
    handle = getattr(session, "handle", None)
    if not handle:
        return None
    now = time.time() if now is None else now
    backend = str(getattr(session, "backend", "unknown"))
    if retention is None:
        retention = getattr(session, "handle_retention", None) or retention_seconds(backend)
    return sanitize_record(
        {
            "handle": handle,
            "backend": backend,
            "model": str(getattr(session, "model", "unknown")),
            "resumable": bool(getattr(session, "resumable", False)),
            "updated": _iso(now),
            "expires": _iso(now + float(retention)),
            "last_consumed_index": getattr(session, "last_consumed_index", None),
        }
    )


def sanitize_record(raw: object) -> dict[str, Any] | None:
    """Keep exactly ``RECORD_KEYS`` with their types; None when no usable handle is left.

    Why so strict: records travel to a file that gets shared. Unknown keys are dropped, and a value
    that looks like a credential (a Google API key, an OAuth token, a private key, or the value of
    ``GEMINI_API_KEY``/``GOOGLE_API_KEY`` in this process) is never kept; in the handle it voids the record.
    """
    if not isinstance(raw, Mapping):
        return None
    handle = _clean_string(raw.get("handle"))
    updated = _clean_string(raw.get("updated"))
    if handle is None or updated is None or _parse_time(updated) is None:
        return None
    expires = _clean_string(raw.get("expires"))
    index = raw.get("last_consumed_index")
    return {
        "handle": handle,
        "backend": _clean_string(raw.get("backend")) or "unknown",
        "model": _clean_string(raw.get("model")) or "unknown",
        "resumable": raw.get("resumable") is True,
        "updated": updated,
        "expires": expires if expires is not None and _parse_time(expires) is not None else updated,
        "last_consumed_index": index if isinstance(index, int) and not isinstance(index, bool) and index >= 0 else None,
    }


def sanitize_records(raw: object, refused: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Sanitise a ``{NAME: record}`` map, dropping bad names and bad records.

    Args:
        raw: the map as stored or received.
        refused: when given, the names (as text) of the entries dropped are appended to it, so the
            caller can say that they were.
    """
    result: dict[str, dict[str, Any]] = {}
    if not isinstance(raw, Mapping):
        return result
    for name, value in raw.items():
        record = sanitize_record(value)
        if is_session_name(name) and record is not None:
            result[name] = record
        elif refused is not None:
            refused.append(str(name))
    return result


def merge_records(
    stored: Mapping[str, dict[str, Any]], incoming: Mapping[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per name, keep the record updated last (the newest handle carries the latest context)."""
    result = dict(stored)
    for name, record in incoming.items():
        current = result.get(name)
        if current is None or (_parse_time(record["updated"]) or 0) >= (_parse_time(current["updated"]) or 0):
            result[name] = record
    return result


def is_expired(record: Mapping[str, Any], now: float | datetime | None = None) -> bool:
    """Whether the service has (by the stored estimate) forgotten this record's handle at ``now``."""
    expires = _parse_time(record.get("expires"))
    return expires is None or expires <= _now_seconds(now)


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def describe_record(record: Mapping[str, Any], now: float | datetime | None = None) -> str:
    """One plain sentence about a stored handle, for ``%live sessions`` and ``%live resume``.

    Examples: ``"handle 'emu-3f…' (emulator, models/gemini-3.8-live), stored 12 min ago, expires in
    1 h 48 min"``; ``"handle 'emu-3f…' (gemini, …) expired 3 h ago (handles live 2 h on this backend):
    it cannot be resumed; start a new session"``.
    """
    moment = _now_seconds(now)
    handle = str(record.get("handle", ""))
    short = handle if len(handle) <= 12 else handle[:10] + "…"
    backend = str(record.get("backend", "unknown"))
    where = f"handle {short!r} ({backend}, {record.get('model', 'unknown')})"
    updated = _parse_time(record.get("updated"))
    expires = _parse_time(record.get("expires"))
    stored = f", stored {_span(moment - updated)} ago" if updated is not None else ""
    if expires is None or expires <= moment:
        ago = f" {_span(moment - expires)} ago" if expires is not None else ""
        # The lifetime the record was stored with (an emulator's flavour or time scale sets it), else the backend's.
        kept = expires - updated if expires is not None and updated is not None and expires > updated else None
        life = _span(kept if kept is not None else retention_seconds(backend))
        return (
            f"{where}{stored}: expired{ago} (handles live {life} on this backend); "
            "it cannot be resumed, start a new session"
        )
    resumable = "" if record.get("resumable", True) else " (the server said it was not resumable at that moment)"
    return f"{where}{stored}, expires in {_span(expires - moment)}{resumable}"


# ---------------------------------------------------------------------------------------------
# Files: the saved notebook and the sidecar


def notebook_path(ip: Any, cwd: Path | None = None) -> Path | None:
    """The notebook this kernel runs, if the frontend says: VS Code's ``__vsc_ipynb_file__``, else
    Jupyter Server's ``JPY_SESSION_NAME`` (absolute, or relative to the kernel's working directory)."""
    cwd = Path.cwd() if cwd is None else cwd
    user_ns = getattr(ip, "user_ns", None) or {}
    vscode = user_ns.get("__vsc_ipynb_file__")
    if isinstance(vscode, str) and vscode:
        return Path(vscode)
    session_name = os.environ.get("JPY_SESSION_NAME", "")
    if not session_name.endswith(".ipynb"):
        return None
    path = Path(session_name)
    if path.is_absolute() and path.exists():
        return path
    for candidate in (cwd / path, cwd / path.name):
        if candidate.exists():
            return candidate
    return path if path.is_absolute() else cwd / path.name


def sidecar_path(notebook: Path | None, cwd: Path | None = None) -> Path:
    """``<notebook stem>.live_nb.json`` next to the notebook, or ``live_nb_sessions.live_nb.json`` in cwd."""
    if notebook is None:
        return (Path.cwd() if cwd is None else cwd) / FALLBACK_SIDECAR
    return notebook.with_name(notebook.stem + SIDECAR_SUFFIX)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted under the name must not hang the kernel
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _read_regular_file(path: Path, follow_symlinks: bool, max_bytes: int | None) -> bytes:
    """The bytes of the regular file at ``path``.

    Raises:
        OSError: unreadable, not a regular file, larger than ``max_bytes``, or (``follow_symlinks``
            False) a symbolic link (``O_NOFOLLOW``: ELOOP, checked again where that flag is missing).
    """
    if not follow_symlinks and (not _NOFOLLOW and path.is_symlink()):
        raise OSError(errno.ELOOP, "is a symbolic link", str(path))
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC | (0 if follow_symlinks else _NOFOLLOW))
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if max_bytes is not None and info.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        return file.read() if max_bytes is None else file.read(max_bytes + 1)[:max_bytes]


def read_records(
    path: Path, *, follow_symlinks: bool = True, refused: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The records in a saved notebook's or a sidecar's ``live_nb.sessions`` (empty when unreadable).

    Args:
        path: the ``.ipynb`` or the sidecar.
        follow_symlinks: False for a sidecar: a symbolic link there is not ours, and is not read
            (nor is anything larger than ``SIDECAR_MAX_BYTES``).
        refused: names of the stored entries that were dropped are appended here (``sanitize_records``).
    """
    try:
        data = _read_regular_file(path, follow_symlinks, None if follow_symlinks else SIDECAR_MAX_BYTES)
        document = json.loads(data.decode("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict):
        return {}
    namespace = (document.get("metadata") or {}).get("live_nb") if "metadata" in document else document.get("live_nb")
    return sanitize_records(namespace.get("sessions") if isinstance(namespace, dict) else None, refused)


def write_sidecar(path: Path, records: Mapping[str, dict[str, Any]]) -> None:
    """Write records atomically and owner-only (0600): a sidecar holds resumption handles.

    The bytes go to a fresh file in the same directory, made by ``tempfile.mkstemp`` (a random name,
    ``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600: born private, whatever the umask, and never a planted
    file or link), are fsync-ed, and then ``os.replace`` the sidecar. A reader never sees half a file,
    and ``replace`` swaps a symbolic link at ``path`` for the new file instead of writing through it.

    Raises:
        OSError: the directory cannot take the file (the temporary file is removed).
    """
    document = {
        "live_nb": {"sessions": sanitize_records(records)},
        "about": "live_nb session handles for the notebook next to this file (no keys; delete to forget)",
    }
    data = json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
    directory = path.absolute().parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            if hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), 0o600)  # mkstemp's 0600 is masked by the umask: make it exact
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); best effort, where a directory can be opened at all."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------------
# The bridge


class _Tracked:
    """One tracked session: its listener's remover and what was last published for it."""

    def __init__(self, session: Any, retention: float | None) -> None:
        self.session = session
        self.retention = retention
        self.remove: Callable[[], None] = lambda: None
        self.published: str | None = None


class MetadataBridge:
    """Keeps records of named live sessions with the notebook (see the module docstring).

    Attributes:
        mode: ``"comm"`` (the labextension answered), ``"waiting"`` (comm open, no answer yet) or
            ``"sidecar"`` (no extension: records go to ``sidecar``).
        notebook: the notebook file, when the frontend said which it is.
        sidecar: where records go without the extension.
    """

    def __init__(self, ip: Any, reply_timeout: float = REPLY_TIMEOUT) -> None:
        self._ip = ip
        self._lock = threading.RLock()
        self._tracked: dict[str, _Tracked] = {}
        self._status_sent = 0.0
        self._status_timer: threading.Timer | None = None
        self._comm: Any = None
        self._notices: list[str] = []
        self._said: set[object] = set()
        self._why = "not running in a Jupyter kernel"
        self._closed = False
        self.notebook = notebook_path(ip)
        self.sidecar = sidecar_path(self.notebook)
        stored = self._read(self.notebook, follow_symlinks=True) if self.notebook is not None else {}
        if self.sidecar.is_symlink():
            self._say_once(
                "sidecar-link",
                f"live_nb: {self.sidecar} is a symbolic link, so it was not read; the next handle "
                "stored there replaces the link with a file of its own",
            )
        self._records: dict[str, dict[str, Any]] = merge_records(
            stored, self._read(self.sidecar, follow_symlinks=False)
        )
        self.mode = "sidecar"
        if getattr(ip, "kernel", None) is not None:
            self._open_comm(reply_timeout)
        with contextlib.suppress(Exception):
            ip.events.register("post_run_cell", self._post_run_cell)
        atexit.register(self._flush_at_exit)

    # -- public API -----------------------------------------------------------------------------

    @property
    def records(self) -> dict[str, dict[str, Any]]:
        """Stored records by session name (a copy): from the extension, the saved notebook, the sidecar."""
        with self._lock:
            return {name: dict(record) for name, record in self._records.items()}

    def track(self, name: str, session: Any, retention: float | None = None) -> None:
        """Keep ``session``'s handle under ``name``: now, and on every new handle; feed the status bar.

        Idempotent (the magics call it on connect and on each new handle). A different session under
        the same name replaces the old one. With ``%config LiveMagics.persist_handles = False`` no
        record is sent or written; the status bar still shows the session.

        Args:
            name: the session's name in the magics (``%%live NAME``).
            session: a ``LiveSession``; its listener runs on the session's loop thread.
            retention: seconds the service keeps a handle, when not the backend's usual (emulator
                time scale); default ``session.handle_retention`` or ``retention_seconds(backend)``.

        Raises:
            ConfigError: ``name`` is not a session name the notebook metadata accepts.
        """
        if not is_session_name(name):
            self._say_once(("name", name), f"live_nb: the handle of session {_short(name)!r} is not kept: {_NAME_HELP}")
            check_session_name(name)
        with self._lock:
            entry = self._tracked.get(name)
            if entry is None or entry.session is not session:
                if entry is not None:
                    entry.remove()
                entry = _Tracked(session, retention)
                self._tracked[name] = entry
                entry.remove = session.add_listener(lambda _item, name=name: self._on_item(name))
            elif retention is not None:
                entry.retention = retention
        self._on_item(name)

    def untrack(self, name: str) -> None:
        """Stop following session ``name`` (its stored record stays)."""
        with self._lock:
            entry = self._tracked.pop(name, None)
        if entry is not None:
            entry.remove()
            self._send_status()

    def forget(self, name: str | None = None) -> None:
        """Remove the stored record of ``name`` (all when None) here, in the notebook, or in the sidecar."""
        with self._lock:
            if name is None:
                self._records.clear()
            else:
                self._records.pop(name, None)
            for tracked_name, entry in self._tracked.items():
                if name is None or tracked_name == name:
                    entry.published = None
            mode = self.mode
        if mode == "sidecar":
            self._write_sidecar()
        else:
            self._send({"type": "forget", "name": name})

    def close(self) -> None:
        """Remove every listener and close the comm (``%unload_ext``); stored records stay stored."""
        with self._lock:
            self._closed = True
            tracked = list(self._tracked.values())
            self._tracked.clear()
            comm, self._comm = self._comm, None
            if self._status_timer is not None:
                self._status_timer.cancel()
        for entry in tracked:
            entry.remove()
        if comm is not None:
            with contextlib.suppress(Exception):
                comm.close()
        with contextlib.suppress(Exception):
            self._ip.events.unregister("post_run_cell", self._post_run_cell)
        atexit.unregister(self._flush_at_exit)

    # -- comm -----------------------------------------------------------------------------------

    def _open_comm(self, reply_timeout: float) -> None:
        try:
            from comm import create_comm

            self._comm = create_comm(target_name=COMM_TARGET, data={"type": "hello", "version": 1})
        except Exception:
            logger.debug("live_nb: could not open the %s comm", COMM_TARGET, exc_info=True)
            self._fall_back("the comm to the JupyterLab extension could not be opened")
            return
        self.mode = "waiting"
        self._comm.on_msg(self._on_comm_msg)
        self._comm.on_close(self._on_comm_close)
        timer = threading.Timer(reply_timeout, self._fall_back, args=("no JupyterLab extension answered",))
        timer.daemon = True
        timer.start()

    def _on_comm_msg(self, msg: Mapping[str, Any]) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        kind = data.get("type")
        if kind == "records":
            refused: list[str] = []
            stored = sanitize_records(data.get("sessions"), refused)
            self._say_refused(refused, "the notebook's metadata")
            with self._lock:
                self._records = merge_records(self._records, stored)
                self.mode = "comm"
                # Records made while waiting (or newer than the notebook's) go to the extension now.
                missing = {name: rec for name, rec in self._records.items() if stored.get(name) != rec}
            if self._persist_enabled():
                for name, record in missing.items():
                    self._send({"type": "record", "name": name, "record": record})
            self._send_status()
        elif kind == "forget":
            forgotten = data.get("name")
            with self._lock:
                if isinstance(forgotten, str):
                    self._records.pop(forgotten, None)
                else:
                    self._records.clear()

    def _on_comm_close(self, _msg: Any) -> None:
        with self._lock:
            self._comm = None
        self._fall_back("the frontend has no live_nb extension")

    def _send(self, data: dict[str, Any]) -> None:
        comm = self._comm
        if comm is None:
            return
        try:
            comm.send(data)
        except Exception:
            logger.debug("live_nb: comm send failed", exc_info=True)

    # -- records and status ---------------------------------------------------------------------

    def _persist_enabled(self) -> bool:
        magics = getattr(getattr(self._ip, "magics_manager", None), "registry", {}).get("LiveMagics")
        return bool(getattr(magics, "persist_handles", True))

    def _on_item(self, name: str) -> None:
        """A session item arrived (loop thread) or tracking began: publish a new handle; status."""
        with self._lock:
            entry = self._tracked.get(name)
            if entry is None or self._closed:
                return
            session = entry.session
            # Only a new handle makes a record: a later `resumable: false` (the server mid-turn)
            # does not void the handle already issued, and would only dirty the notebook.
            handle = getattr(session, "handle", None)
            fresh = bool(handle) and handle != entry.published
            if fresh:
                entry.published = str(handle)
            retention = entry.retention
        if fresh and self._persist_enabled():
            record = make_record(session, retention=retention)
            if record is not None:
                self._publish(name, record)
            else:
                self._say_once(
                    ("record", name),
                    f"live_nb: the handle of session {name!r} is not kept in the notebook: it is longer than "
                    f"{_MAX_STRING} characters or shaped like a credential",
                )
        if getattr(session, "state", None) == "closed":
            with self._lock:
                if self._tracked.get(name) is entry:
                    del self._tracked[name]
            entry.remove()
        self._send_status()

    def _publish(self, name: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._records[name] = record
            mode = self.mode
        if mode == "sidecar":
            self._write_sidecar()
        elif mode == "comm":
            self._send({"type": "record", "name": name, "record": record})
        # "waiting": kept; sent on the extension's answer, or written by the fallback.

    def _status(self) -> dict[str, Any]:
        with self._lock:
            tracked = dict(self._tracked)
        sessions = {}
        for name, entry in tracked.items():
            session = entry.session
            sessions[name] = {
                "state": str(getattr(session, "state", "unknown")),
                "go_away_deadline": getattr(session, "go_away_deadline", None),
                "backend": str(getattr(session, "backend", "unknown")),
                "model": str(getattr(session, "model", "unknown")),
            }
        return {"type": "status", "sessions": sessions}

    def _send_status(self, force: bool = False) -> None:
        """Send the status now, or once the throttle interval is over (the last state always lands)."""
        with self._lock:
            if self.mode == "sidecar" or self._comm is None:
                return
            wait = self._status_sent + STATUS_INTERVAL - time.monotonic()
            if wait > 0 and not force:
                if self._status_timer is None:
                    self._status_timer = threading.Timer(wait, self._send_status, kwargs={"force": True})
                    self._status_timer.daemon = True
                    self._status_timer.start()
                return
            if self._status_timer is not None:
                self._status_timer.cancel()
                self._status_timer = None
            self._status_sent = time.monotonic()
        self._send(self._status())

    # -- fallback -------------------------------------------------------------------------------

    def _fall_back(self, why: str) -> None:
        """No extension (timeout, or the frontend closed the comm): records go to the sidecar."""
        with self._lock:
            if self._closed or self.mode == "sidecar":
                return
            if self.mode == "comm" and self._comm is not None:
                return  # the answer came in time; this is the stale timer
            self.mode = "sidecar"
            self._why = why
            has_records = bool(self._records)
        if has_records:
            self._write_sidecar()

    def _write_sidecar(self) -> None:
        if not self._persist_enabled():
            return
        with self._lock:
            records = dict(self._records)
        try:
            write_sidecar(self.sidecar, records)
        except OSError as exc:
            self._say_once(
                "sidecar-write",
                f"live_nb: could not write {self.sidecar} ({exc.strerror or exc}): session handles are not kept",
            )
            return
        self._say_once(
            "sidecar",
            f"live_nb: session handles are kept in {self.sidecar} ({self._why}); `%live resume NAME` reads them back.",
        )

    # -- telling the user -----------------------------------------------------------------------

    def _read(self, path: Path, follow_symlinks: bool) -> dict[str, dict[str, Any]]:
        """``read_records``, saying once which stored entries were dropped."""
        refused: list[str] = []
        records = read_records(path, follow_symlinks=follow_symlinks, refused=refused)
        self._say_refused(refused, str(path))
        return records

    def _say_refused(self, names: list[str], where: str) -> None:
        if names:
            shown = ", ".join(repr(_short(name)) for name in names[:3]) + (" ..." if len(names) > 3 else "")
            self._say_once(
                ("refused", where, tuple(names)),
                f"live_nb: ignored {len(names)} stored session record(s) in {where} ({shown}): "
                f"a name must be {SESSION_NAME_RULE}, and a record needs a handle and its time",
            )

    def _say_once(self, key: object, notice: str) -> None:
        """Tell the user ``notice`` once per ``key``; from a background thread, at the end of the next cell."""
        with self._lock:
            if key in self._said:
                return
            self._said.add(key)
            self._notices.append(notice)
        if threading.current_thread() is threading.main_thread():
            self._post_run_cell()

    def _post_run_cell(self, *_args: Any) -> None:
        with self._lock:
            notices, self._notices = self._notices, []
        for notice in notices:
            print(notice)

    def _flush_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            if self.mode == "waiting" and self._records:
                self.mode = "sidecar"
                self._write_sidecar()


_bridges: weakref.WeakKeyDictionary[Any, MetadataBridge] = weakref.WeakKeyDictionary()
_bridges_lock = threading.Lock()


def get_bridge(ip: Any) -> MetadataBridge:
    """The bridge of shell ``ip``, made (and its comm opened) on first call; safe from any thread."""
    with _bridges_lock:
        bridge = _bridges.get(ip)
        if bridge is None:
            bridge = MetadataBridge(ip)
            _bridges[ip] = bridge
        return bridge


def close_bridge(ip: Any) -> None:
    """Close and drop the bridge of shell ``ip`` (if any): ``%unload_ext live_nb``."""
    with _bridges_lock:
        bridge = _bridges.pop(ip, None)
    if bridge is not None:
        bridge.close()
