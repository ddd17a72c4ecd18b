"""The client's context ledger: estimates, server re-basing, compression detection, bounded memory."""

from __future__ import annotations

from live_nb.protocol.config import ContextWindowCompressionConfig, SlidingWindow
from live_nb.protocol.ledger import ContextLedger
from live_nb.protocol.messages import ModalityTokenCount, UsageMetadata


def _usage(prompt: int, response: int) -> UsageMetadata:
    return UsageMetadata(
        prompt_token_count=prompt,
        response_token_count=response,
        total_token_count=prompt + response,
        prompt_tokens_details=(ModalityTokenCount("AUDIO", prompt),),
        response_tokens_details=(ModalityTokenCount("AUDIO", response),),  # today's models answer in audio
    )


def test_audio_climbs_at_the_published_rate_and_points_are_merged() -> None:
    ledger = ContextLedger(resolution=0.25)
    for i in range(1, 601):  # 60 s of 100 ms chunks at 2.5 tokens each
        ledger.record_input("AUDIO", 2.5, i * 0.1)
    assert ledger.estimated == 1500  # 25 tokens/s
    assert ledger.input_by_modality == {"AUDIO": 1500}
    assert 150 <= len(ledger.points) <= 250  # one point per 0.25 s, not one per chunk
    assert abs(ledger.tokens_per_second(now=60.0) - 25.0) < 1e-9


def test_estimated_sliding_window_keeps_a_user_turn_first() -> None:
    cwc = ContextWindowCompressionConfig(trigger_tokens=6_000, sliding_window=SlidingWindow(2_000))
    ledger = ContextLedger(compression=cwc)
    ledger.record_system(100, 0)
    for turn in range(6):
        ledger.record_input("TEXT", 600, turn * 10)
        ledger.record_output("AUDIO", 400, turn * 10 + 1)
    # Six turns of 1,000 tokens + 100 system = 6,100 > 6,000: the seventh user turn compresses.
    event = ledger.record_input("TEXT", 600, 100)
    assert event is not None and event.detected_by == "estimate"
    assert event.before == 6_100 and event.after <= 2_000
    assert ledger.system_tokens == 100  # never dropped
    assert ledger._turns[0].role == "user"


def test_server_counts_rebase_the_estimate_and_reveal_compression() -> None:
    ledger = ContextLedger()
    ledger.record_input("AUDIO", 1000, 1)
    assert ledger.record_usage(_usage(900, 100), 2) is None
    assert ledger.estimated == 1000
    ledger.record_input("AUDIO", 500, 3)
    event = ledger.record_usage(_usage(400, 50), 4)  # the prompt shrank: the server compressed
    assert event is not None and event.detected_by == "reported"
    assert (event.before, event.after) == (1000, 400)
    assert ledger.estimated == 450
    assert [p.reported for p in ledger.points if p.reported is not None] == [1000, 450]
    assert ledger.usage[-1].prompt_by_modality == {"AUDIO": 400}


def test_forecast_at_the_current_rate() -> None:
    cwc = ContextWindowCompressionConfig(trigger_tokens=10_000, sliding_window=SlidingWindow(5_000))
    ledger = ContextLedger(compression=cwc)
    for i in range(1, 101):
        ledger.record_input("VIDEO", 258, float(i))  # 1 fps video
    forecast = ledger.forecast(now=100.0)
    assert forecast["rate"] == 258.0
    assert (forecast["to_trigger"] is not None and abs(forecast["to_trigger"] - (10_000 - 25_800) / 258) < 1e-6) or (
        forecast["to_trigger"] == 0.0
    )
    assert forecast["to_window"] is not None and forecast["to_window"] > 0
