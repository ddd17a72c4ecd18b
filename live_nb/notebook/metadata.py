"""Keep live sessions' records with the notebook: the kernel side of the labextension comm.

Why: a handle is the thread of a conversation. Stored in the notebook itself, it lets a student close
the laptop, reopen the notebook within the handle's lifetime and carry on. The kernel cannot write
notebook metadata, so (docs/architecture.md, "Kernel <-> labextension comm"):

- on ``%load_ext live_nb`` the bridge opens a comm with target ``live_nb.metadata``; the JupyterLab
  extension answers ``{"type": "records", "sessions": {...}}`` with the records the notebook holds;
- on every new handle the session registry hands the bridge a record (``keep``), which it sends as
  ``{"type": "record", "name", "record"}``; the extension writes it to ``metadata.live_nb.sessions[NAME]``
  and marks the notebook dirty (the user's save keeps it);
- a throttled ``{"type": "status", "sessions": {...}}`` feeds the status bar, read from the sessions
  the registry shows it (``track``) whenever the registry says something ``changed``;
- ``{"type": "forget", "name": NAME | None}`` goes both ways.

The bridge listens to no session: the registry is the one listener of each named session and tells
the bridge what to keep and when to refresh. The bridge holds the one stored record per session name
(``records``): made by the registry, read from the notebook or the sidecar, forgotten on request.

Without the extension (nbclient, VS Code, the classic notebook, terminal IPython: no kernel, the comm
closed by the frontend, or no answer within ``REPLY_TIMEOUT``) records go to the sidecar file
(``sidecar.py``), and the user is told once where. The record format is ``records.py``.

Threads: the registry calls in from live_nb's loop thread; comm callbacks run on the kernel's main
thread. Shared state is behind one lock, and ipykernel 7's ``comm.send`` is safe from any thread.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .records import (
    MAX_STRING,
    SESSION_NAME_RULE,
    check_session_name,
    is_session_name,
    merge_records,
    sanitize_record,
    sanitize_records,
    short,
)
from .sidecar import notebook_path, read_records, sidecar_path, write_sidecar

__all__ = [
    "COMM_TARGET",
    "REPLY_TIMEOUT",
    "STATUS_INTERVAL",
    "MetadataBridge",
    "close_bridge",
    "get_bridge",
]

logger = logging.getLogger(__name__)

COMM_TARGET = "live_nb.metadata"
REPLY_TIMEOUT = 5.0
"""Seconds to wait for the extension's answer before falling back to the sidecar file. A sync cell
blocks comm messages, so an answer may come later; it then takes over (the sidecar stays harmless)."""
STATUS_INTERVAL = 0.25
"""At most four status messages a second: the status bar counts down by itself in between."""
_NAME_HELP = f"a session name must be {SESSION_NAME_RULE}"


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
        self._tracked: dict[str, Any] = {}
        self.persist = True
        """False (``LiveMagics.persist_handles``): no record is sent or written; status still is."""
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

    def record(self, name: str) -> dict[str, Any] | None:
        """The stored record of session ``name`` (a copy), or None."""
        with self._lock:
            record = self._records.get(name)
            return dict(record) if record is not None else None

    def track(self, name: str, session: Any) -> None:
        """Show ``session`` on the status bar under ``name`` (read when a status is sent); send one now.

        The bridge reads ``state``, ``go_away_deadline``, ``backend`` and ``model`` of ``session`` and
        adds no listener to it: the registry calls ``changed`` when something moved. A different
        session under the same name replaces the old one.

        Raises:
            ConfigError: ``name`` is not a session name the notebook metadata accepts.
        """
        self._check_name(name)
        with self._lock:
            if self._closed:
                return
            self._tracked[name] = session
        self._send_status()

    def untrack(self, name: str, session: Any = None) -> None:
        """Take session ``name`` off the status bar (its stored record stays).

        Args:
            name: the session's name.
            session: when given, only if it is still the session shown under ``name`` (a closed
                session's last word must not take down the new session of the same name).
        """
        with self._lock:
            shown = self._tracked.get(name)
            known = shown is not None and (session is None or shown is session)
            if known:
                del self._tracked[name]
        if known:
            self._send_status()

    def changed(self) -> None:
        """A tracked session's state moved (loop thread): a status goes out, throttled."""
        self._send_status()

    def keep(self, name: str, record: Mapping[str, Any] | None) -> None:
        """Store ``record`` as session ``name``'s, and send or write it (unless ``persist`` is off).

        Args:
            name: the session's name in the magics (``%%live NAME``).
            record: ``records.make_record`` of the session's new handle; None when the session has a
                handle that no record may hold (longer than ``MAX_STRING``, or shaped like a
                credential): the user is told once, and nothing is stored.

        Raises:
            ConfigError: ``name`` is not a session name the notebook metadata accepts.
        """
        self._check_name(name)
        clean = sanitize_record(record) if record is not None else None
        if clean is None:
            self._say_once(
                ("record", name),
                f"live_nb: the handle of session {name!r} is not kept in the notebook: it is longer than "
                f"{MAX_STRING} characters or shaped like a credential",
            )
            return
        with self._lock:
            if self._closed or not self.persist:
                return
            self._records[name] = clean
            mode = self.mode
        if mode == "sidecar":
            self._write_sidecar()
        elif mode == "comm":
            self._send({"type": "record", "name": name, "record": clean})
        # "waiting": kept; sent on the extension's answer, or written by the fallback.

    def forget(self, name: str | None = None) -> None:
        """Remove the stored record of ``name`` (all when None) here, in the notebook, or in the sidecar."""
        with self._lock:
            if name is None:
                self._records.clear()
            else:
                self._records.pop(name, None)
            mode = self.mode
        if mode == "sidecar":
            self._write_sidecar()
        else:
            self._send({"type": "forget", "name": name})

    def close(self) -> None:
        """Remove every listener and close the comm (``%unload_ext``); stored records stay stored."""
        with self._lock:
            self._closed = True
            self._tracked.clear()
            comm, self._comm = self._comm, None
            if self._status_timer is not None:
                self._status_timer.cancel()
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
            if self.persist:
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

    def _check_name(self, name: str) -> None:
        if not is_session_name(name):
            self._say_once(("name", name), f"live_nb: the handle of session {short(name)!r} is not kept: {_NAME_HELP}")
            check_session_name(name)

    def _status(self) -> dict[str, Any]:
        with self._lock:
            tracked = dict(self._tracked)
        sessions = {}
        for name, session in tracked.items():
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
        if not self.persist:
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
            shown = ", ".join(repr(short(name)) for name in names[:3]) + (" ..." if len(names) > 3 else "")
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
