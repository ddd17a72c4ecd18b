"""Who may connect, and to what: request paths to backend flavours, credentials, the bind address.

One job: the HTTP upgrade's decisions, as pure functions the asyncio layer (server.py) calls.

* Paths (live-protocol.md section 1): the Gemini path (``v1``, ``v1beta``, ``v1alpha``, with or
  without a leading ``//``), the Constrained (ephemeral token) path, the Vertex path, and any path
  under ``/vertex`` (gateway mode). ``/`` is accepted too and gets the emulator's ``mode``, so
  ``Emulator.url`` works as given.
* Auth: ``x-goog-api-key``, ``?key=``, ``?access_token=``, ``Authorization: Bearer|Token``. Any
  non-empty credential is accepted (it is an emulator) unless ``api_key`` names the only one; a
  missing one is refused with 401, an empty or wrong one with 403. Credentials are never logged:
  ``RedactCredentials`` blanks them in websockets' debug log of the upgrade.
* Binding: loopback only, unless the caller allows remote clients (with a key).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs

__all__ = [
    "FLAVOR_NAMES",
    "RedactCredentials",
    "Route",
    "authorize",
    "credential",
    "is_loopback",
    "path_only",
    "remote_warning",
    "route",
]

FLAVOR_NAMES = {
    "vertex": "Vertex AI (transparent resumption, system-instruction updates, 24 h handles)",
    "gemini": "Gemini Developer API (no transparent resumption or system-instruction updates, 2 h handles)",
}
"""What each flavour means, as the emulator says it at start-up."""

_GEMINI_PATH = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.(v1|v1beta|v1alpha)\.GenerativeService\."
    r"BidiGenerateContent(Constrained)?$"
)
_VERTEX_PATH = re.compile(r"^/ws/google\.cloud\.aiplatform\.(v1|v1beta1)\.LlmBidiService/BidiGenerateContent$")
_SECRET_QUERY = re.compile(r"\b(key|access_token)=[^&\s]*", re.IGNORECASE)
_SECRET_HEADER = re.compile(r"^([<>] *(?:x-goog-api-key|authorization|x-goog-user-project)):.*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Route:
    """What a request path says about the client: backend flavour, API version, ephemeral token."""

    flavor: str
    api_version: str
    constrained: bool = False


def path_only(target: str) -> str:
    """The path of a request target without its query (which may hold a key).

    Not ``urlsplit``: it would read ``//ws/...`` (what the SDK dials) as a host named ``ws``.
    """
    return target.split("?", 1)[0]


def route(path: str, bare_flavor: str = "gemini") -> Route | None:
    """Map a request path (query ignored) to a Route, or None for a path the service lacks.

    The bare path ``/`` (what ``Emulator.url`` dials as given) gets ``bare_flavor``, the emulator's mode.
    """
    clean = "/" + path_only(path).lstrip("/")
    match = _GEMINI_PATH.match(clean)
    if match:
        return Route("gemini", match.group(1), bool(match.group(2)))
    match = _VERTEX_PATH.match(clean)
    if match:
        return Route("vertex", match.group(1))
    if clean == "/vertex" or clean.startswith("/vertex/") or clean.startswith("/vertex-"):
        return Route("vertex", "v1beta1")
    if clean == "/":
        return Route(bare_flavor, "v1beta" if bare_flavor == "gemini" else "v1beta1")
    return None


def credential(path: str, headers: Mapping[str, str]) -> str | None:
    """The credential a request carries ('' when present but empty, None when absent). Never logged.

    Args:
        path: the request target, query included (``?key=``, ``?access_token=``).
        headers: the request headers (case-insensitive lookups, as websockets' ``Headers``).
    """
    key = headers.get("x-goog-api-key")
    if key is not None:
        return key.strip()
    auth = headers.get("Authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "token") else ""
    query = parse_qs(path.partition("?")[2], keep_blank_values=True)
    for name in ("key", "access_token"):
        if name in query:
            return query[name][0].strip()
    return None


def authorize(path: str, headers: Mapping[str, str], api_key: str | None) -> tuple[HTTPStatus, str] | None:
    """Whether an upgrade may proceed: None, or the HTTP status and body to refuse it with.

    Args:
        path: the request target (query included).
        headers: the request headers.
        api_key: the only key accepted, or None for any non-empty credential.
    """
    if route(path) is None:
        return HTTPStatus.NOT_FOUND, "Not Found: not a Live API path\n"
    cred = credential(path, headers)
    if cred is None:
        return (
            HTTPStatus.UNAUTHORIZED,
            "Unauthorized: send an API key (x-goog-api-key header or ?key=), an ephemeral token "
            "(?access_token= or Authorization: Token) or Authorization: Bearer.\n",
        )
    if not cred:
        return HTTPStatus.FORBIDDEN, "Forbidden: the credential is empty.\n"
    if api_key is not None and not hmac.compare_digest(cred.encode(), api_key.encode()):
        return HTTPStatus.FORBIDDEN, "Forbidden: the credential is not this emulator's key.\n"
    return None


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` binds only the loopback interface (``localhost``, 127.0.0.0/8, ``::1``).

    ``None``, ``""``, ``0.0.0.0``, ``::`` and every other name or address count as remote: a name is
    not resolved here, so only the loopback spellings above are trusted.
    """
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def remote_warning(url: str, key_source: str | None = None) -> str:
    """What the emulator says at start-up when it listens on more than loopback."""
    where = f"the key in ${key_source}" if key_source else "the configured api_key"
    return (
        f"WARNING: the live_nb emulator at {url} is reachable from other machines. Only clients sending "
        f"{where} get in. It is a test server: handles and context are kept in its database, and without "
        "--tls the traffic (the key included) is not encrypted."
    )


class RedactCredentials(logging.Filter):
    """Blank out keys and tokens in websockets' debug log of the HTTP upgrade.

    Why: with DEBUG logging on, websockets logs the request line (``?key=...``) and every header
    (``x-goog-api-key``, ``Authorization``). Credentials must never reach a log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = _SECRET_HEADER.sub(r"\1: <redacted>", _SECRET_QUERY.sub(r"\1=<redacted>", text))
        if redacted != text:
            record.msg, record.args = redacted, None
        return True
