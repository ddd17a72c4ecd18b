"""The sidecar file and the saved notebook: where records rest on disk.

Why a file of its own: without the labextension (nbclient, VS Code, the classic notebook, terminal
IPython) the kernel cannot write notebook metadata, so records go to ``<notebook stem>.live_nb.json``
next to the notebook. A sidecar holds resumption handles, so it is written atomically and owner-only,
and read without following a planted symbolic link or a FIFO. Saved notebooks are read the same way
(with links followed: the user opened that file).

Only file I/O lives here; the record format is ``records``, the comm and the fallback ``metadata``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .records import sanitize_records

__all__ = [
    "FALLBACK_SIDECAR",
    "SIDECAR_MAX_BYTES",
    "SIDECAR_SUFFIX",
    "notebook_path",
    "read_records",
    "sidecar_path",
    "write_sidecar",
]

SIDECAR_SUFFIX = ".live_nb.json"
FALLBACK_SIDECAR = "live_nb_sessions" + SIDECAR_SUFFIX

SIDECAR_MAX_BYTES = 16 * 1024 * 1024
"""A sidecar larger than this is not read (ours hold a few records: a few KB)."""


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

