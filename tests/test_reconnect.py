"""The pure reconnect policy: backoff delays and which errors are fatal."""

from __future__ import annotations

import itertools
import random

import pytest

from live_nb.client.reconnect import ReconnectPolicy, backoff, process_exception
from live_nb.exceptions import (
    ConfigError,
    ConnectError,
    ConnectionClosedError,
    ConnectionClosedOK,
    CredentialsError,
    SessionLost,
)


def test_backoff_first_immediate_then_grows_to_the_cap() -> None:
    delays = list(itertools.islice(backoff(0.0, 0.05, 1.0, 2.0, jitter=0.0), 8))
    assert delays == [0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_jitter_stays_within_bounds_and_is_seedable() -> None:
    a = list(itertools.islice(backoff(jitter=0.2, rng=random.Random(7)), 20))
    b = list(itertools.islice(backoff(jitter=0.2, rng=random.Random(7)), 20))
    assert a == b
    assert all(0 <= d <= 10.0 for d in a)
    assert 0.04 <= a[1] <= 0.06


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1006, ""), (1011, "Deadline expired before operation could complete."), (1011, "Internal error encountered."),
     (1000, ""), (1001, "going away"), (1011, "The service is currently unavailable.")],
)
def test_retryable_closes(code: int, reason: str) -> None:
    cls = ConnectionClosedOK if code in (1000, 1001) else ConnectionClosedError
    assert process_exception(cls(code, reason)) is None


@pytest.mark.parametrize(
    ("code", "reason", "words"),
    [
        (1008, "BidiGenerateContent session not found", "resumption handle"),
        (1008, "session not found: handle expired", "expired"),
        (1007, "Request contains an invalid argument.", "invalid"),
        (1008, "models/x is not found for API version v1beta", "model"),
        (1008, "cannot change the model on resume", "different model"),
        (1011, "context window exhausted", "context window"),
    ],
)
def test_fatal_closes_become_session_lost_in_plain_words(code: int, reason: str, words: str) -> None:
    result = process_exception(ConnectionClosedError(code, reason))
    assert isinstance(result, SessionLost)
    assert words in str(result)
    assert result.code == code and result.reason == reason


def test_connect_errors() -> None:
    assert process_exception(ConnectError("ws://h", "refused")) is None
    assert process_exception(ConnectError("ws://h", "HTTP 503", 503)) is None
    lost = process_exception(ConnectError("ws://h", "HTTP 403", 403))
    assert isinstance(lost, SessionLost) and "credentials" in str(lost)
    assert process_exception(OSError("reset")) is None
    assert process_exception(TimeoutError()) is None
    creds = CredentialsError("x")
    assert process_exception(creds) is creds


def test_policy_validation_and_off() -> None:
    with pytest.raises(ConfigError):
        ReconnectPolicy(max_attempts=0)
    with pytest.raises(ConfigError):
        ReconnectPolicy(go_away_wait=1.5)
    off = ReconnectPolicy.off()
    assert not off.on_go_away and not off.on_drop
