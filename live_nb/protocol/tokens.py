"""Token rates of the Live API, shared by the emulator (which charges them) and the client (which estimates).

Rates from the Vertex provisioned-throughput page (live-protocol.md section 4): audio 25 tokens per
second, video 258 tokens per frame at 1 fps. Text has no published rate; we estimate one token per
four characters, the usual rule of thumb for English, and say "estimate" wherever it is shown.
"""

from __future__ import annotations

import math

__all__ = [
    "AUDIO_TOKENS_PER_SECOND",
    "INPUT_AUDIO_RATE",
    "INPUT_AUDIO_TOKENS_PER_BYTE",
    "OUTPUT_AUDIO_RATE",
    "VIDEO_TOKENS_PER_FRAME",
    "audio_seconds",
    "audio_tokens",
    "text_tokens",
]

AUDIO_TOKENS_PER_SECOND = 25
VIDEO_TOKENS_PER_FRAME = 258
INPUT_AUDIO_RATE = 16_000
OUTPUT_AUDIO_RATE = 24_000
INPUT_AUDIO_TOKENS_PER_BYTE = AUDIO_TOKENS_PER_SECOND / (2 * INPUT_AUDIO_RATE)
"""Tokens per byte of 16 kHz PCM16 input, precomputed for the per-chunk path."""


def text_tokens(text: str) -> int:
    """Estimate the tokens of a text: one per four characters, at least one for non-empty text."""
    return math.ceil(len(text) / 4) if text else 0


def audio_seconds(nbytes: int, rate: int = INPUT_AUDIO_RATE) -> float:
    """Seconds of 16-bit mono PCM in ``nbytes`` at ``rate`` Hz."""
    return nbytes / (2 * rate)


def audio_tokens(nbytes: int, rate: int = INPUT_AUDIO_RATE) -> float:
    """Tokens of 16-bit mono PCM (fractional: a 100 ms chunk is 2.5 tokens)."""
    return audio_seconds(nbytes, rate) * AUDIO_TOKENS_PER_SECOND
