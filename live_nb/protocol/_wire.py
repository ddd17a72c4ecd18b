"""Low-level helpers for proto3 JSON as the Live API speaks it.

Why a module of its own: every message class needs the same four tolerances, and the emulator
needs them as much as the client. Proto3 JSON parsers accept the lowerCamel and the original
snake_case field names, int64 as a number or a string, and standard or URL-safe base64, so we
accept all of them too (live-protocol.md sections 2 and 3).

It is also where a hostile or broken peer is kept out: ``loads`` refuses frames nested deeper than
``MAX_NESTING`` (and turns the RecursionError of a very deep frame into a RemoteProtocolError),
``duration`` never hands on a NaN, infinite, negative or absurd number of seconds, ``int64`` stays in
int64's range, and error messages show a bounded excerpt of the offending value, never a full repr.
Every reader here raises ``RemoteProtocolError`` and nothing else on bad input.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import math
import re
import reprlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import LocalProtocolError, RemoteProtocolError

logger = logging.getLogger("live_nb.protocol")

MAX_NESTING = 100
"""Deepest nesting of JSON arrays and objects a frame may have (the frame itself is level 1).

Why 100: protobuf's own JSON parser stops at 100 levels, so the service refuses deeper frames too,
and real messages (function args included) stay far below it. It also keeps every later walk of a
parsed value (repr, re-encoding, comparison) well inside Python's recursion limit.
"""

MAX_DURATION_SECONDS = 24 * 3600.0
"""Longest Duration read from the wire (``goAway.timeLeft``, transcription and audio offsets).

Why refuse rather than clamp: a GoAway comes about 60 s before a connection's end and a connection
lives about 10 min, so a value past a day (or NaN, infinite, negative) is a broken peer; a timer
armed with it would never fire, or fire at once. The day is a generous bound, not a documented one.
"""

MAX_UNKNOWN_LOGGED = 1000
"""How many distinct unknown field names are remembered (and logged once each)."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_seen_unknown: set[tuple[str, str]] = set()

_excerpt = reprlib.Repr()
_excerpt.maxlevel = 3
_excerpt.maxstring = _excerpt.maxother = 80
_excerpt.maxlong = 40
_excerpt.maxdict = _excerpt.maxlist = 4


def show(value: Any, limit: int = 80) -> str:
    """A short repr of a wire value for an error message, bounded in size and depth."""
    if isinstance(value, str):
        return value[:limit]
    return _excerpt.repr(value)[:limit]


def loads(frame: str | bytes) -> Any:
    """Parse a frame's JSON, refusing what is not JSON and what is nested too deeply.

    Raises:
        RemoteProtocolError: not JSON (or not UTF-8/16/32), or nested deeper than ``MAX_NESTING``.
    """
    data = decode_json(frame)
    check_nesting(data, frame)
    return data


def decode_json(frame: str | bytes) -> Any:
    """``loads`` without the nesting check, for a caller that bounds the depth itself.

    Why: the server frame's fast path accepts only shapes it walks to their leaves (six levels at
    most), so the pre-walk would only repeat what it proves; anything else goes through
    ``check_nesting`` before it is read.

    Raises:
        RemoteProtocolError: not JSON (or not UTF-8/16/32), or too deep for Python's json.
    """
    try:
        return json.loads(frame)
    except RecursionError:
        # Python's json recurses per level: some ~1,000 levels (fewer on a deep stack) end here.
        raise RemoteProtocolError("frame nested too deeply", _frame_excerpt(frame)) from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RemoteProtocolError("frame is not valid JSON", _frame_excerpt(frame)) from None


def check_nesting(data: Any, frame: str | bytes) -> None:
    """Refuse a parsed frame nested deeper than ``MAX_NESTING``.

    Raises:
        RemoteProtocolError: nested deeper than ``MAX_NESTING``.
    """
    if _nesting(data) > MAX_NESTING:
        raise RemoteProtocolError(f"frame nested too deeply (more than {MAX_NESTING} levels)", _frame_excerpt(frame))


def _nesting(value: Any) -> int:
    """Depth of arrays and objects in ``value`` (0 for a scalar), stopping past MAX_NESTING.

    Walked level by level, without recursion; it visits containers only, never string contents,
    so an audio frame (six containers) costs about 3 us, against about 8 us for its json.loads.
    """
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level and depth <= MAX_NESTING:
        depth += 1
        below = []
        for node in level:
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, (dict, list)):
                    below.append(child)
        level = below
    return depth


def _frame_excerpt(frame: str | bytes, limit: int = 200) -> str:
    text = frame[: limit * 4].decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    return text if len(text) <= limit else text[:limit] + "…"


def dumps(value: Any) -> str:
    """Compact JSON text that is always valid UTF-8 once encoded.

    Why: ``"\\ud800"`` is valid JSON, so a lone surrogate can arrive in a string and be echoed back;
    written raw it cannot be encoded as UTF-8 (a WebSocket text frame must be). Such text is
    written with ``\\u`` escapes instead, which reads back as the same string.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = json.dumps(value, separators=(",", ":"))
    return text


def dumps_bytes(value: Any) -> bytes:
    """``dumps`` as UTF-8 bytes, encoding once."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


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
            # Bounded: a peer sending endless new names must not grow this set (or the log) forever.
            if len(_seen_unknown) >= MAX_UNKNOWN_LOGGED:
                break
            _seen_unknown.add((where, key))
            logger.info("live_nb: unknown field %r in %s kept as extra", key[:80], where)
            if len(_seen_unknown) == MAX_UNKNOWN_LOGGED:
                logger.info("live_nb: %d unknown field names seen; no more are logged", MAX_UNKNOWN_LOGGED)
    return unknown


@functools.lru_cache(maxsize=256)
def _known_spellings(known: tuple[str, ...]) -> frozenset[str]:
    return frozenset(known) | frozenset(camel(name) for name in known)


_INT = re.compile(r"\s*[+-]?[0-9]{1,25}\s*")


def int64(value: Any, where: str) -> int | None:
    """Read a proto3 int64, which arrives as a JSON number or a decimal string, within int64's range."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RemoteProtocolError(f"{where} must be an integer", show(value))
    if isinstance(value, int):
        number = value
    elif (isinstance(value, str) and _INT.fullmatch(value)) or (isinstance(value, float) and value.is_integer()):
        number = int(value)  # is_integer() is False for NaN and the infinities
    else:
        raise RemoteProtocolError(f"{where} must be an integer", show(value))
    if not INT64_MIN <= number <= INT64_MAX:
        raise RemoteProtocolError(f"{where} is out of the int64 range", show(value))
    return number


def number(value: Any, where: str) -> float | int | None:
    """Read an optional JSON number (float fields such as ``temperature``); NaN and infinities are refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RemoteProtocolError(f"{where} must be a number", show(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise RemoteProtocolError(f"{where} is not a finite number", show(value))
    return value


def b64decode(value: Any, where: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not."""
    if not isinstance(value, str):
        raise RemoteProtocolError(f"{where} must be a base64 string", show(value))
    padded = value + "=" * (-len(value) % 4)
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteProtocolError(f"{where} is not valid base64", value[:80]) from None


_STRICT_B64 = sys.version_info >= (3, 11)  # a2b_base64's strict_mode is new in 3.11


def b64decode_padded(value: str) -> bytes | None:
    """Decode padded standard base64 (what the service sends), or None for anything else.

    Why: the fast path's audio decoding. ``b64decode`` validates with a regular expression before
    decoding; strict ``a2b_base64`` refuses the same inputs in one pass (checked exhaustively
    on short strings in tests/protocol/test_messages.py). None is not an error: the caller then asks
    ``b64decode``, which accepts or refuses it with its own message.
    """
    if len(value) % 4 or "-" in value or "_" in value or not _STRICT_B64:
        return None
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def b64encode(data: bytes) -> str:
    """Encode bytes as standard padded base64, as the docs' canonical JSON does."""
    return base64.b64encode(data).decode("ascii")


_DURATION = re.compile(r"\s*(-?[0-9]+(?:\.[0-9]+)?)s\s*")


def duration(value: Any, where: str) -> float | None:
    """Read a proto3 Duration as seconds: ``"50s"``, ``"1.5s"``, a bare number, or ``{seconds, nanos}``.

    The result is always finite, at least 0 and at most ``MAX_DURATION_SECONDS``: callers arm
    timers with it.

    Raises:
        RemoteProtocolError: not a Duration, or NaN, infinite, negative or too long; the message
            names the field and the value.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise RemoteProtocolError(f"{where} must be a Duration such as '50s'", show(value))
    if isinstance(value, int):
        # Compared as an int: float() of a huge JSON integer would raise OverflowError.
        return _seconds(value, value, where)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RemoteProtocolError(f"{where} is not a finite number of seconds", show(value))
        return _seconds(value, value, where)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match:  # float() of a long digit string is inf, never an error: _seconds refuses it as too long
            return _seconds(float(match.group(1)), value, where)
    if isinstance(value, Mapping):  # {"seconds": "50", "nanos": 0}, the proto binary-ish form
        seconds = int64(field(value, "seconds"), f"{where}.seconds") or 0
        nanos = int64(field(value, "nanos"), f"{where}.nanos") or 0
        if not -999_999_999 <= nanos <= 999_999_999:
            raise RemoteProtocolError(f"{where}.nanos must be within ±999,999,999", show(value))
        return _seconds(seconds + nanos / 1e9, value, where)
    raise RemoteProtocolError(f"{where} must be a Duration such as '50s'", show(value))


def _seconds(seconds: float, raw: Any, where: str) -> float:
    if seconds < 0:
        raise RemoteProtocolError(f"{where} must not be negative", show(raw))
    if seconds > MAX_DURATION_SECONDS:
        raise RemoteProtocolError(f"{where} is above the {MAX_DURATION_SECONDS:.0f} s limit", show(raw))
    return float(seconds) + 0.0  # + 0.0: "-0s" reads as 0.0, not -0.0


def format_duration(seconds: float, where: str = "duration") -> str:
    """Write seconds in the proto3 Duration JSON form, trimming a zero fraction ("50s", "1.5s").

    Raises:
        LocalProtocolError: NaN, infinite, negative or above ``MAX_DURATION_SECONDS``: what
            ``duration`` would refuse on the other side.
    """
    if not 0 <= seconds <= MAX_DURATION_SECONDS:  # False for NaN too
        raise LocalProtocolError(f"{where}={seconds!r} is not a Duration from 0 to {MAX_DURATION_SECONDS:.0f} s")
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    """Insist that a message or sub-message is a JSON object."""
    if not isinstance(value, Mapping):
        raise RemoteProtocolError(f"{where} must be a JSON object", show(value, 120))
    return value


def sequence(value: Any, where: str) -> list[Any]:
    """Insist on a JSON array (None reads as empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RemoteProtocolError(f"{where} must be a JSON array", show(value, 120))
    return value


def boolean(value: Any, where: str) -> bool:
    """Read a JSON bool (None reads as False)."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RemoteProtocolError(f"{where} must be true or false", show(value))
    return value


def string(value: Any, where: str) -> str | None:
    """Read an optional JSON string."""
    if value is None or isinstance(value, str):
        return value
    raise RemoteProtocolError(f"{where} must be a string", show(value))


def strings(value: Any, where: str) -> tuple[str, ...]:
    """Read a JSON array of strings (None reads as empty)."""
    items = sequence(value, where)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise RemoteProtocolError(f"{where}[{index}] must be a string", show(item))
    return tuple(items)


def objects(value: Any, where: str) -> tuple[Mapping[str, Any], ...]:
    """Read a JSON array of objects (None reads as empty), e.g. tool declarations kept as given."""
    items = sequence(value, where)
    return tuple(mapping(item, f"{where}[{index}]") for index, item in enumerate(items))


def prune(data: dict[str, Any]) -> dict[str, Any]:
    """Drop None values so encoded JSON carries only the fields that are set."""
    return {key: value for key, value in data.items() if value is not None}
