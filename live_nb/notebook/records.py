"""Session records: what the notebook keeps of a session's resumption handle (pure functions).

A record is the stored form of one named session's latest handle: exactly ``RECORD_KEYS``, plain
JSON, never a credential (``sanitize_record``). It travels to the notebook's metadata through the
labextension, or to the sidecar file, and comes back after a kernel restart for ``%live resume``.

One retention source: how long a service keeps a handle is ``catalogue.BACKEND_OFFERS[flavor]
.handle_retention_seconds``; the registry passes the figure for its session (an emulator's flavour,
divided by its time scale), and ``retention_seconds`` reads the same table for a bare backend name.

No I/O, no clock unless none is given, no IPython: the bridge, the sidecar and the registry share it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, TypeGuard

from ..exceptions import ConfigError
from ..protocol.catalogue import BACKEND_OFFERS

__all__ = [
    "MAX_STRING",
    "RECORD_KEYS",
    "SESSION_NAME_PATTERN",
    "SESSION_NAME_RULE",
    "check_session_name",
    "describe_record",
    "is_expired",
    "is_session_name",
    "make_record",
    "merge_records",
    "parse_time",
    "retention_seconds",
    "sanitize_record",
    "sanitize_records",
    "short",
]

RECORD_KEYS = ("handle", "backend", "model", "resumable", "updated", "expires", "last_consumed_index")
"""The only keys a stored record may have (the contract; labextension/src/records.ts mirrors it)."""

SESSION_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]{0,63}"
"""Session names, for the magics and the bridge alike (labextension/src/records.ts ``NAME_PATTERN``
is the same rule): ASCII only, because a name becomes a key of the notebook's metadata that the
extension checks with the same pattern, and a short identifier cannot smuggle markup into it."""
SESSION_NAME_RULE = "a letter or _, then up to 63 of A-Z a-z 0-9 _ . - (ASCII only)"
"""``SESSION_NAME_PATTERN`` in words, for error messages."""
_NAME = re.compile(SESSION_NAME_PATTERN, re.ASCII)
MAX_STRING = 4096
"""Longest string a record keeps (a longer handle is not stored)."""
_SECRET_SHAPES = (
    re.compile(r"AIza[0-9A-Za-z_-]{35}"),  # Google API key
    re.compile(r"ya29\.[0-9A-Za-z_-]+"),  # OAuth access token
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)
_KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_API_KEY", "LIVE_NB_API_KEY")


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
        raise ConfigError("name", short(name), "a session name: " + SESSION_NAME_RULE)
    return name


def short(value: object, limit: int = 40) -> str:
    """``value`` as text of at most ``limit`` characters (a refused name may be any length)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retention_seconds(backend: str) -> float:
    """How long a handle from ``backend`` lives: its flavour's ``handle_retention_seconds``.

    ``backend`` is a record's backend (``gemini``, ``vertex``, ``emulator``, ``unknown``): Vertex AI
    keeps handles 24 h, the Gemini Developer API 2 h. An emulator's real figure is its flavour's at
    its time scale, which the registry passes as ``retention``; for the bare word this falls back to
    the Developer API's (the shorter: a stored handle is never promised longer than it may live).
    """
    flavor = "vertex" if "vertex" in backend.lower() else "gemini"
    return BACKEND_OFFERS[flavor].handle_retention_seconds


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(text: object) -> float | None:
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
    if not isinstance(value, str) or not value or len(value) > MAX_STRING or _looks_secret(value):
        return None
    return value


def make_record(session: Any, now: float | None = None, retention: float | None = None) -> dict[str, Any] | None:
    """The record to store for ``session``'s current handle, or None while it has none.

    Args:
        session: a ``LiveSession`` (anything with ``handle``, ``backend``, ``model``, ``resumable``,
            ``last_consumed_index``).
        now: time.time() of the handle's arrival (default: now).
        retention: seconds the service keeps the handle (the registry knows its session's flavour
            and time scale); default ``retention_seconds(backend)``.
    """
    handle = getattr(session, "handle", None)
    if not handle:
        return None
    now = time.time() if now is None else now
    backend = str(getattr(session, "backend", "unknown"))
    if retention is None:
        retention = retention_seconds(backend)
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
    if handle is None or updated is None or parse_time(updated) is None:
        return None
    expires = _clean_string(raw.get("expires"))
    index = raw.get("last_consumed_index")
    return {
        "handle": handle,
        "backend": _clean_string(raw.get("backend")) or "unknown",
        "model": _clean_string(raw.get("model")) or "unknown",
        "resumable": raw.get("resumable") is True,
        "updated": updated,
        "expires": expires if expires is not None and parse_time(expires) is not None else updated,
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
        if current is None or (parse_time(record["updated"]) or 0) >= (parse_time(current["updated"]) or 0):
            result[name] = record
    return result


def is_expired(record: Mapping[str, Any], now: float | datetime | None = None) -> bool:
    """Whether the service has (by the stored estimate) forgotten this record's handle at ``now``."""
    expires = parse_time(record.get("expires"))
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
    updated = parse_time(record.get("updated"))
    expires = parse_time(record.get("expires"))
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

