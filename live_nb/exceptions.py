"""Every exception live_nb raises, in one place.

The hierarchy::

    LiveError
    ├── ConfigError (also ValueError)            a config value out of its allowed range
    ├── ProtocolError                            abstract: someone broke the wire protocol
    │   ├── LocalProtocolError                   we (the caller) misused the API
    │   └── RemoteProtocolError                  the server sent something we cannot parse
    ├── InvalidState (also AssertionError)       e.g. sending on a closed session
    ├── UnsupportedOnBackend (also NotImplementedError)
    │                                            a feature the chosen backend lacks (system-instruction
    │                                            update on the Gemini Developer API, transparent resumption)
    ├── CredentialsError                         no key / no ADC where a real backend needs them
    ├── ConnectError                             the connection could not be opened (names the URL, never a key)
    ├── MediaError                               mic/camera/playback failed in the browser: permission refused,
    │                                            no device, device busy, suspended AudioContext (``kind`` says which)
    └── ConnectionClosed                         the connection ended; carries code and reason
        ├── ConnectionClosedOK                   1000 / 1001: a normal end
        └── ConnectionClosedError                anything else
            └── SessionLost                      fatal for the session: bad or expired handle, 1007, model
                                                 change refused, context window exhausted, or resumption
                                                 gave up after its retries

Why one module: callers catch ``LiveError`` for "anything live_nb", or one precise leaf; nothing
else in the package defines an exception class.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "CredentialsError",
    "InvalidState",
    "LiveError",
    "LocalProtocolError",
    "MediaError",
    "ProtocolError",
    "RemoteProtocolError",
    "SessionLost",
    "UnsupportedOnBackend",
]


class LiveError(Exception):
    """Base class of every live_nb exception."""


class ConfigError(LiveError, ValueError):
    """A configuration value is outside what the Live API accepts.

    Attributes:
        field: the dotted name of the offending field, e.g. ``context_window_compression.trigger_tokens``.
        value: the value given.
        allowed: a human description of the allowed range.
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r} is not allowed: {allowed}")


class ProtocolError(LiveError):
    """Someone broke the Live API protocol. Abstract: raise a subclass."""

    def __new__(cls, *args: object, **kwargs: object) -> ProtocolError:
        if cls is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError, not ProtocolError")
        return super().__new__(cls, *args, **kwargs)


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol does not allow (e.g. an empty message)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent a frame that is not a valid Live API message.

    Attributes:
        excerpt: the first bytes of the offending frame, for the error message and logs.
    """

    def __init__(self, reason: str, excerpt: str = "") -> None:
        self.reason = reason
        self.excerpt = excerpt
        super().__init__(f"{reason}: {excerpt!r}" if excerpt else reason)


class InvalidState(LiveError, AssertionError):
    """The operation is not possible in the session's current state (e.g. it is closed)."""


class UnsupportedOnBackend(LiveError, NotImplementedError):
    """The chosen backend does not offer this feature; the message says which backend does."""


class CredentialsError(LiveError):
    """A real backend was asked for but no usable credentials were found."""


class ConnectError(LiveError):
    """The connection could not be opened. The message names the URL, never a key."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        self.url = url
        self.reason = reason
        self.status = status
        """The HTTP status when the server refused the WebSocket upgrade, else None."""
        super().__init__(f"could not connect to {url}: {reason}")


class MediaError(LiveError):
    """The browser could not capture or play media; raised from the widget's reported state.

    Attributes:
        kind: ``permission``, ``no_device``, ``device_busy``, ``unsupported``, ``suspended_audio``,
            ``source`` (the ipywebrtc stream could not be tapped) or ``session`` (the session refused media).
        message: what the widget shows, in plain words.
    """

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        super().__init__(f"{kind}: {message}")


class ConnectionClosed(LiveError):
    """The connection ended.

    Attributes:
        code: the WebSocket close code (1006 when no close frame arrived).
        reason: the close reason the server gave, possibly empty.
    """

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"connection closed: {code} {reason}".rstrip())


class ConnectionClosedOK(ConnectionClosed):
    """The connection ended normally (1000 or 1001)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection ended with an error code."""


class SessionLost(ConnectionClosedError):
    """The session cannot continue: the server refused to resume it, or resumption gave up.

    The message says why in plain words; ``code`` and ``reason`` keep the server's own.
    """

    def __init__(self, code: int, reason: str, explanation: str) -> None:
        self.explanation = explanation
        super().__init__(code, reason)
        self.args = (f"{explanation} (close {code}: {reason})" if reason else f"{explanation} (close {code})",)

    def __str__(self) -> str:
        return str(self.args[0])
