"""PCM16 audio facts both ends need: the rate a MIME type names and a chunk's loudness.

Why here: the emulator (turn detection) and the mic widget (level meter, voice activity) measure
the same audio the same way; one definition keeps their thresholds comparable.
"""

from __future__ import annotations

import math
import re

import numpy as np

__all__ = ["INPUT_AUDIO_MIME", "OUTPUT_AUDIO_MIME", "pcm16_level", "sample_rate"]

INPUT_AUDIO_MIME = "audio/pcm;rate=16000"
"""What the Live API takes: 16 kHz mono PCM16, little-endian."""

OUTPUT_AUDIO_MIME = "audio/pcm;rate=24000"
"""What the Live API speaks: 24 kHz mono PCM16, little-endian."""

_RATE = re.compile(r"rate=(\d+)")


def sample_rate(mime_type: str, default: int) -> int:
    """The PCM rate a MIME type names (``audio/pcm;rate=24000``), ``default`` when it names none."""
    match = _RATE.search(mime_type)
    if match is None:
        return default
    rate = int(match.group(1))
    return rate if rate > 0 else default


def pcm16_level(pcm: bytes | memoryview) -> float:
    """RMS level of little-endian PCM16, from 0.0 (silence) to 1.0 (full-scale square wave).

    ``np.dot`` rather than ``mean(x*x)``: one C call, ~2 us for 100 ms of audio (the hot path).
    """
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
    if samples.size == 0:
        return 0.0
    as_float = samples.astype(np.float32)
    return math.sqrt(float(np.dot(as_float, as_float)) / samples.size) / 32768.0
