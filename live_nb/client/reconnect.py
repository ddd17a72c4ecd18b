"""The reconnect policy as pure functions (style.md rule 6, after websockets' client).

``backoff()`` only yields delays; ``process_exception()`` only decides whether an error is worth
another try (returns None) or ends the session (returns the exception to raise, usually a
``SessionLost`` in plain words). ``LiveSession`` drives them; nothing here awaits or sleeps.

Which closes are fatal (live-protocol.md section 5, field.md):
- 1007: the server found the setup or a message invalid; sending it again cannot help.
- 1008: policy: an unknown or expired resumption handle ("session not found"), an unknown model,
  or a refused model change on resume.
- any close whose reason says the context window is exhausted: the session is over (the service
  ends sessions without compression this way).
- HTTP 401/403/404 at the upgrade: credentials or path are wrong.
Everything else (1006 with no close frame, 1000/1001 unexpectedly, 1011 "Deadline expired", 1011
internal or unavailable, 1011 "old connection still open", refused TCP connections, timeouts,
HTTP 429/5xx) is retried with backoff.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from ..exceptions import (
    ConfigError,
    ConnectError,
    ConnectionClosed,
    CredentialsError,
    LiveError,
    RemoteProtocolError,
    SessionLost,
)

__all__ = ["ReconnectPolicy", "backoff", "process_exception"]


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """When and how a session moves to a new connection by itself.

    Attributes:
        on_go_away: resume on a new connection after a GoAway, before the deadline.
        on_drop: resume after an unexpected drop.
        max_attempts: connection attempts per fault before giving up with SessionLost.
        initial_delay, min_delay, max_delay, factor: see ``backoff``.
        go_away_wait: after a GoAway, wait at most this fraction of ``timeLeft`` for the turn in
            flight to finish (so its answer is not cut and regenerated), then move anyway.
    """

    on_go_away: bool = True
    on_drop: bool = True
    max_attempts: int = 12
    initial_delay: float = 0.0
    min_delay: float = 0.05
    max_delay: float = 10.0
    factor: float = 2.0
    go_away_wait: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("reconnect.max_attempts", self.max_attempts, "at least 1")
        if not 0.0 <= self.go_away_wait < 1.0:
            raise ConfigError("reconnect.go_away_wait", self.go_away_wait, "a fraction from 0 to below 1")
        if self.min_delay < 0 or self.max_delay < self.min_delay or self.factor < 1:
            raise ConfigError("reconnect.backoff", (self.min_delay, self.max_delay, self.factor),
                              "0 <= min_delay <= max_delay and factor >= 1")

    @classmethod
    def off(cls) -> ReconnectPolicy:
        """No automatic moves: a GoAway is only reported, a drop ends the session."""
        return cls(on_go_away=False, on_drop=False)


def backoff(
    initial_delay: float = 0.0,
    min_delay: float = 0.05,
    max_delay: float = 10.0,
    factor: float = 2.0,
    jitter: float = 0.2,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Yield the delays before successive connection attempts, forever.

    The first attempt comes after ``initial_delay`` (0 by default: a resume on loopback should take
    milliseconds, and the first try after a drop usually works). Then ``min_delay`` growing by
    ``factor`` up to ``max_delay``, each spread by +-``jitter`` so many clients do not reconnect in
    step.
    """
    rng = rng or random.Random()
    yield initial_delay
    delay = min_delay
    while True:
        spread = 1.0 + jitter * (2.0 * rng.random() - 1.0)
        yield min(max_delay, delay * spread)
        delay = min(max_delay, delay * factor)


def explain_close(code: int, reason: str) -> str | None:
    """Plain words for a fatal close, or None when the close is worth a retry."""
    lowered = reason.lower()
    if "context window" in lowered or "exhausted" in lowered or "window is full" in lowered:
        return "the session's context window is exhausted (turn on context window compression to go on longer)"
    if "model" in lowered and ("change" in lowered or "differ" in lowered):
        return "the server refused to resume the session with a different model (the model cannot change on resume)"
    if code == 1007:
        return "the server rejected the setup or a message as invalid"
    if code == 1008:
        if "session not found" in lowered or "handle" in lowered:
            return (
                "the server does not know this resumption handle: it is invalid, or it expired "
                "(handles live 2 h on the Gemini API and 24 h on Vertex AI after the session ends)"
            )
        if "model" in lowered or "not found" in lowered:
            return "the server does not serve this model on this endpoint"
        return "the server refused the session on policy grounds"
    return None


def process_exception(exc: BaseException) -> Exception | None:
    """Classify an error met while connecting or during a session.

    Returns:
        None when another attempt may succeed; otherwise the exception that ends the session
        (a ``SessionLost`` with plain words for fatal closes, or the original error when it is
        already clear, e.g. ``CredentialsError``).
    """
    if isinstance(exc, SessionLost):
        return exc
    if isinstance(exc, ConnectionClosed):
        explanation = explain_close(exc.code, exc.reason)
        if explanation is None:
            return None
        return SessionLost(exc.code, exc.reason, explanation)
    if isinstance(exc, ConnectError):
        status = exc.status
        if status in (401, 403):
            return SessionLost(1008, exc.reason, "the server refused the credentials")
        if status == 404:
            return SessionLost(1008, exc.reason, "the server has no Live API endpoint at this path")
        return None
    if isinstance(exc, (CredentialsError, ConfigError, RemoteProtocolError)):
        return exc
    if isinstance(exc, (OSError, TimeoutError, EOFError)):
        return None
    if isinstance(exc, LiveError):
        return exc
    return exc if isinstance(exc, Exception) else None
