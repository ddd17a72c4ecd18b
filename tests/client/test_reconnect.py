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
from live_nb.protocol import catalogue
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig, ThinkingConfig
from live_nb.protocol.content import Content, Part
from live_nb.protocol.messages import ClientContent, ContextUpdate


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


AUDIO = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)


def _info(model: str) -> catalogue.ModelInfo:
    info = catalogue.lookup(model)
    assert info is not None, model
    return info


def _service_refusals() -> list[tuple[str, catalogue.Refusal]]:
    """What today's service closes with when a rule is broken (the catalogue words them as it does)."""
    text = LiveGenerationConfig(response_modalities=["TEXT"])
    thinking = LiveGenerationConfig(response_modalities=["AUDIO"], thinking=ThinkingConfig(thinking_level="LOW"))
    system_turn = ClientContent((Content(role="system", parts=(Part(text="x"),)),), False)
    context_update = ContextUpdate(Content(role="user", parts=(Part(text="x"),)))
    live38 = _info("gemini-3.8-live")
    refusals = {
        "shut-down model": catalogue.check_setup(_info("gemini-live-2.5-flash-preview"), "gemini", AUDIO),
        "model not on Vertex": catalogue.check_setup(_info("gemini-3.1-flash-live-preview"), "vertex", AUDIO),
        "TEXT on 3.8": catalogue.check_setup(live38, "gemini", text),
        "TEXT on 2.5": catalogue.check_setup(_info("gemini-2.5-flash-native-audio-latest"), "gemini", text),
        "thinking on 3.8": catalogue.check_setup(live38, "gemini", thinking),
        "transparent on gemini": catalogue.check_setup(
            live38, "gemini", AUDIO, SessionResumptionConfig(transparent=True)
        ),
        "system turn on gemini": catalogue.check_client_message(live38, "gemini", AUDIO, system_turn),
        "contextUpdate on gemini": catalogue.check_client_message(live38, "gemini", AUDIO, context_update),
    }
    out = []
    for name, refusal in refusals.items():
        assert refusal is not None, name
        out.append((name, refusal))
    return out


@pytest.mark.parametrize(("name", "refusal"), _service_refusals(), ids=lambda v: v if isinstance(v, str) else "")
def test_todays_rule_refusals_are_fatal_in_plain_words(name: str, refusal: catalogue.Refusal) -> None:
    # Retrying a setup or message the model or backend refuses cannot help: the session is lost.
    result = process_exception(ConnectionClosedError(refusal.code, refusal.reason))
    assert isinstance(result, SessionLost), name
    words = "does not serve this model" if refusal.code == 1008 else "rejected the setup or a message as invalid"
    assert words in str(result) and refusal.reason in str(result)
    assert result.code == refusal.code


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
