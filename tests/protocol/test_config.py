"""Config validation: every bad value is refused before anything is sent, naming field, value and range."""

from __future__ import annotations

import pytest

from live_nb.exceptions import ConfigError
from live_nb.protocol.config import (
    CONTEXT_WINDOW_TOKENS,
    ContextWindowCompressionConfig,
    LiveGenerationConfig,
    SessionResumptionConfig,
    SlidingWindow,
)


def test_defaults_follow_the_docs() -> None:
    cwc = ContextWindowCompressionConfig()
    assert cwc.effective_trigger_tokens == CONTEXT_WINDOW_TOKENS * 8 // 10 == 102_400
    assert cwc.effective_target_tokens == 51_200
    assert ContextWindowCompressionConfig(trigger_tokens=20_000).effective_target_tokens == 10_000
    # slidingWindow is always sent: the service rejects a compression config without it.
    assert cwc.to_wire() == {"slidingWindow": {}}
    assert SessionResumptionConfig().to_wire() == {}


@pytest.mark.parametrize(
    ("build", "field", "value", "allowed"),
    [
        (lambda: ContextWindowCompressionConfig(trigger_tokens=4_999), "trigger_tokens", "4999", "5,000 to 128,000"),
        (lambda: ContextWindowCompressionConfig(trigger_tokens=128_001), "trigger_tokens", "128001", "5,000 to 128,000"),
        (lambda: ContextWindowCompressionConfig(trigger_tokens="9000"), "trigger_tokens", "'9000'", "integer"),  # type: ignore[arg-type]
        (lambda: SlidingWindow(target_tokens=-1), "target_tokens", "-1", "0 to 128,000"),
        (lambda: SlidingWindow(target_tokens=128_001), "target_tokens", "128001", "0 to 128,000"),
        (
            lambda: ContextWindowCompressionConfig(trigger_tokens=10_000, sliding_window=SlidingWindow(10_000)),
            "target_tokens",
            "10000",
            "below trigger_tokens (10,000)",
        ),
        (
            lambda: ContextWindowCompressionConfig(sliding_window=SlidingWindow(110_000)),
            "target_tokens",
            "110000",
            "below trigger_tokens (102,400)",
        ),
        (lambda: LiveGenerationConfig(response_modalities=["TEXT", "AUDIO"]), "response_modalities", "", "exactly one"),
        (lambda: LiveGenerationConfig(response_modalities=["VIDEO"]), "response_modalities", "VIDEO", "exactly one"),
        (lambda: LiveGenerationConfig(temperature=3), "temperature", "3", "0.0 to 2.0"),
        (lambda: LiveGenerationConfig(top_p=1.5), "top_p", "1.5", "0.0 to 1.0"),
        (lambda: LiveGenerationConfig(top_k=0), "top_k", "0", "1 to"),
        (lambda: LiveGenerationConfig(max_output_tokens=-5), "max_output_tokens", "-5", "1 to"),
        (lambda: LiveGenerationConfig(media_resolution="HUGE"), "media_resolution", "HUGE", "MEDIA_RESOLUTION_LOW"),
    ],
)
def test_bad_values_raise_a_value_error_naming_field_value_and_range(build, field, value, allowed) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        build()
    error = info.value
    assert isinstance(error, ValueError)
    assert field in error.field
    text = str(error)
    assert field in text and value in text and allowed in text


def test_modalities_are_normalised() -> None:
    config = LiveGenerationConfig(response_modalities=["text"])
    assert config.response_modalities == ("TEXT",) and config.response_modality == "TEXT"
    assert LiveGenerationConfig().response_modality == "AUDIO"  # the service's default
