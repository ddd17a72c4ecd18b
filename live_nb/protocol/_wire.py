"""Low-level helpers for proto3 JSON as the Live API speaks it.

Why a module of its own: every message class needs the same four tolerances, and the emulator
needs them as much as the client. Proto3 JSON parsers accept the lowerCamel and the original
snake_case field names, int64 as a number or a string, and standard or URL-safe base64, so we
accept all of them too (live-protocol.md sections 2 and 3).
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import RemoteProtocolError

logger = logging.getLogger("live_nb.protocol")

_seen_unknown: set[tuple[str, str]] = set()


@functools.cache
def camel(name: str) -> str:
    """Return the lowerCamel spelling of a snake_case field name."""
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def field(data: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Look a field up by its snake_case name, accepting the camelCase spelling too."""
    if name in data:
        return data[name]
    return data.get(camel(name), default)


def extra_fields(data: Mapping[str, Any], known: Iterable[str], where: str) -> dict[str, Any] | None:
    """Return the fields of ``data`` that ``known`` does not name, logging each new one once.

    Unknown fields are kept (a newer service may send them) but never crash a parse.
    """
    names = _known_spellings(tuple(known))
    unknown = {key: value for key, value in data.items() if key not in names}
    if not unknown:
        return None
    for key in unknown:
        if (where, key) not in _seen_unknown:
            _seen_unknown.add((where, key))
            logger.info("live_nb: unknown field %r in %s kept as extra", key, where)
    return unknown


@functools.lru_cache(maxsize=256)
def _known_spellings(known: tuple[str, ...]) -> frozenset[str]:
    return frozenset(known) | frozenset(camel(name) for name in known)


def int64(value: Any, where: str) -> int | None:
    """Read a proto3 int64, which arrives as a JSON number or a decimal string."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RemoteProtocolError(f"{where} must be an integer", repr(value))
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise RemoteProtocolError(f"{where} must be an integer", value[:80]) from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise RemoteProtocolError(f"{where} must be an integer", repr(value)[:80])


def b64decode(value: Any, where: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not."""
    if not isinstance(value, str):
        raise RemoteProtocolError(f"{where} must be a base64 string", repr(value)[:80])
    padded = value + "=" * (-len(value) % 4)
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteProtocolError(f"{where} is not valid base64", value[:80]) from None


def b64encode(data: bytes) -> str:
    """Encode bytes as standard padded base64, as the docs' canonical JSON does."""
    return base64.b64encode(data).decode("ascii")


_DURATION = re.compile(r"^(-?\d+(?:\.\d+)?)s$")


def duration(value: Any, where: str) -> float | None:
    """Read a proto3 Duration ("50s", "1.5s") as seconds; a bare number is accepted too."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return float(match.group(1))
    if isinstance(value, Mapping):  # {"seconds": "50", "nanos": 0}, the proto binary-ish form
        seconds = int64(field(value, "seconds", 0), where) or 0
        nanos = int64(field(value, "nanos", 0), where) or 0
        return seconds + nanos / 1e9
    raise RemoteProtocolError(f"{where} must be a Duration such as '50s'", repr(value)[:80])


def format_duration(seconds: float) -> str:
    """Write seconds in the proto3 Duration JSON form, trimming a zero fraction ("50s", "1.5s")."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    """Insist that a message or sub-message is a JSON object."""
    if not isinstance(value, Mapping):
        raise RemoteProtocolError(f"{where} must be a JSON object", repr(value)[:120])
    return value


def sequence(value: Any, where: str) -> list[Any]:
    """Insist on a JSON array (None reads as empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RemoteProtocolError(f"{where} must be a JSON array", repr(value)[:120])
    return value


def boolean(value: Any, where: str) -> bool:
    """Read a JSON bool (None reads as False)."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RemoteProtocolError(f"{where} must be true or false", repr(value)[:80])
    return value


def string(value: Any, where: str) -> str | None:
    """Read an optional JSON string."""
    if value is None or isinstance(value, str):
        return value
    raise RemoteProtocolError(f"{where} must be a string", repr(value)[:80])


def prune(data: dict[str, Any]) -> dict[str, Any]:
    """Drop None values so encoded JSON carries only the fields that are set."""
    return {key: value for key, value in data.items() if value is not None}
