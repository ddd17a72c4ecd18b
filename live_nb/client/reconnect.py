"""The reconnect policy as pure functions (style.md rule 6, after websockets' client).

``backoff()`` only yields delays; ``process_exception()`` only decides whether an error is worth
another try (returns None) or ends the session (returns the exception to raise, usually a
``SessionLost`` in plain words); ``AttemptBudget`` keeps the count of attempts that got nowhere.
``LiveSession`` drives them; nothing here awaits, sleeps or reads a clock.

The budget counts what got nowhere, not faults (a hostile or broken server must not be able to
keep a session reconnecting forever):
- ``max_attempts`` is the number of reconnect attempts in a row that made no progress: attempts
  that failed to open, and connections that opened and then ended before any progress. Progress
  is a new resumption handle, a newer ``lastConsumedClientMessageIndex`` or a completed turn
  (``ClientProtocol.progress``), or a connection that stayed up ``stable_after`` seconds (an idle
  session makes no progress, and must still survive its GoAways).
- The backoff delays run on across moves while nothing is gained, and start again from
  ``initial_delay`` after a connection that made progress. A GoAway that came within
  ``stable_after`` of setup does not restart them even with progress: a server that sends a fresh
  handle and a GoAway right after every setup would otherwise get a connection a millisecond.
So a server that ends every connection right after setup costs at most ``max_attempts``
connections spaced by the backoff (about 9 in the first 10 s with the defaults), then
``SessionLost`` says what happened.

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
from dataclasses import dataclass, field

from ..exceptions import (
    ConfigError,
    ConnectError,
    ConnectionClosed,
    CredentialsError,
    LiveError,
    RemoteProtocolError,
    SessionLost,
)

__all__ = ["AttemptBudget", "ReconnectPolicy", "backoff", "process_exception"]


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """When and how a session moves to a new connection by itself.

    Attributes:
        on_go_away: resume on a new connection after a GoAway, before the deadline.
        on_drop: resume after an unexpected drop.
        max_attempts: reconnect attempts in a row that may get nowhere (fail to open, or open and
            end before any progress) before giving up with SessionLost; see the module docstring.
        initial_delay, min_delay, max_delay, factor: see ``backoff``; the delays grow across moves
            until a connection makes progress.
        go_away_wait: after a GoAway, wait at most this fraction of ``timeLeft`` for the turn in
            flight to finish (so its answer is not cut and regenerated), then move anyway.
        stable_after: a connection that stays up this many seconds counts as progress even when
            idle, and a GoAway sooner than this after setup paces the move. 5 s: a real
            connection lives about 10 minutes, and the emulator's ``time_scale=60`` gives 10 s.
    """

    on_go_away: bool = True
    on_drop: bool = True
    max_attempts: int = 12
    initial_delay: float = 0.0
    min_delay: float = 0.05
    max_delay: float = 10.0
    factor: float = 2.0
    go_away_wait: float = 0.5
    stable_after: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("reconnect.max_attempts", self.max_attempts, "at least 1")
        if not 0.0 <= self.go_away_wait < 1.0:
            raise ConfigError("reconnect.go_away_wait", self.go_away_wait, "a fraction from 0 to below 1")
        # Written as "not a <= x <= b" so NaN is refused too: these values end up in timers.
        if not (0.0 <= self.min_delay <= self.max_delay <= 3600.0 and 1.0 <= self.factor <= 1e6):
            raise ConfigError("reconnect.backoff", (self.min_delay, self.max_delay, self.factor),
                              "0 <= min_delay <= max_delay <= 3600 s and factor >= 1")
        if not 0.0 <= self.initial_delay <= 3600.0:
            raise ConfigError("reconnect.initial_delay", self.initial_delay, "a number of seconds from 0 to 3600")
        if not 0.0 <= self.stable_after <= 3600.0:
            raise ConfigError("reconnect.stable_after", self.stable_after, "a number of seconds from 0 to 3600")

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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class AttemptBudget:
    """How many reconnect attempts in a row got nowhere, and the delay before the next one.

    Sans-I/O: the session tells it what happened (``connection_ended``, ``attempt_started``,
    ``attempt_failed``, ``reset``) and asks ``exhausted`` / ``next_delay()`` / ``explanation()``.
    The module docstring says what counts as progress and why.

    Args:
        policy: the session's ``ReconnectPolicy``.
        rng: the backoff jitter's random source (tests pass a seeded one).
    """

    policy: ReconnectPolicy
    rng: random.Random | None = None
    used: int = 0
    """Reconnect attempts since the last progress (failed to open, or opened and got nowhere)."""
    ended: int = 0
    """Connections in a row the server ended before any progress (the first one included)."""
    failed: int = 0
    """Attempts in a row that could not open a connection."""
    _delays: Iterator[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._restart_delays()

    def _restart_delays(self) -> None:
        p = self.policy
        self._delays = backoff(p.initial_delay, p.min_delay, p.max_delay, p.factor, rng=self.rng)

    def reset(self) -> None:
        """Progress was made (or the user asked for a move): a full budget, delays from the start."""
        self.used = self.ended = self.failed = 0
        self._restart_delays()

    def connection_ended(self, progressed: bool, lived: float, went_away: bool) -> None:
        """An open connection ended.

        Args:
            progressed: it brought a new handle, a newer consumed index or a completed turn.
            lived: seconds from ``setupComplete`` to its end (to the GoAway, when one came).
            went_away: the server sent a GoAway on it.
        """
        stable = lived >= self.policy.stable_after
        if stable or (progressed and not went_away):
            self.reset()
        elif progressed:
            # A GoAway right after setup, though something was gained: keep the budget full
            # (the session moves on), but keep pacing the moves.
            self.used = self.ended = self.failed = 0
        else:
            self.ended += 1

    def attempt_started(self) -> None:
        """A reconnect attempt is about to be made (counted until its connection makes progress)."""
        self.used += 1

    def attempt_failed(self) -> None:
        """The attempt could not open a connection (refused, timed out, closed during setup)."""
        self.failed += 1

    @property
    def exhausted(self) -> bool:
        """``max_attempts`` attempts in a row got nowhere: give up."""
        return self.used >= self.policy.max_attempts

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt."""
        return next(self._delays)

    def explanation(self) -> str:
        """Why the session gives up, in plain words."""
        if self.ended > 1 or (self.ended and not self.failed):
            text = f"the server ended {_plural(self.ended, 'connection')} in a row before any progress"
            if self.failed:
                text += f", and {_plural(self.failed, 'more attempt')} to connect failed"
            return text + "; giving up"
        return f"could not resume the session after {_plural(self.used, 'attempt')}"


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
