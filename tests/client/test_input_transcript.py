"""A spoken turn's inputTranscription becomes ONE "user (heard)" line in ``session.transcript``.

The emulator streams what offline recognition heard as ``inputTranscription`` pieces (a few
settled words at a time, the last one ``finished``); the session joins them into the user's line,
before the model's line, instead of one transcript entry per piece. Real emulator with speech,
real synthesised speech (eSpeak NG) sent as realtime audio in 100 ms chunks.
"""

from __future__ import annotations

import asyncio

import pytest
from speech_fixtures import WEATHER, heard_rendering, share_heard

from live_nb.client.session import TURN_CHARS_LIMIT, LiveGenerationConfig, LiveModel
from live_nb.emulator import Emulator
from live_nb.protocol.messages import ServerContent

pytestmark = pytest.mark.timeout(120)


async def test_spoken_turn_is_one_heard_line_before_the_models(emulator: Emulator) -> None:
    from live_nb.emulator import speech

    if not speech.speech_available():
        pytest.skip(speech.unavailable_reason())
    pcm = heard_rendering(WEATHER)
    config = LiveGenerationConfig(
        response_modalities=["AUDIO"], input_audio_transcription=True, output_audio_transcription=True
    )
    pieces: list[str] = []
    async with LiveModel("gemini-3.8-live", config, url=emulator.url).connect() as session:
        session.add_listener(
            lambda item: pieces.append(item.input_transcription.text)
            if isinstance(item, ServerContent) and item.input_transcription is not None
            else None
        )
        step = 3200
        silence = bytes(step)
        for i in range(0, len(pcm) + 16 * step, step):  # the sentence, then 1.6 s of quiet
            await session.send_audio(pcm[i : i + step] if i < len(pcm) else silence)
            await asyncio.sleep(0.02)
        for _ in range(300):
            if any(role == "model" for _, role, _ in session.transcript):
                break
            await asyncio.sleep(0.1)
        lines = [(role, text) for _, role, text in session.transcript]

    heard = [text for role, text in lines if role == "user (heard)"]
    assert len(heard) == 1, lines  # one line for the turn, however many pieces made it
    assert len([p for p in pieces if p]) >= 1, pieces
    assert heard[0] == "".join(pieces).strip(), (heard, pieces)
    assert share_heard(WEATHER, heard[0]) >= 0.5, heard
    roles = [role for role, _ in lines]
    assert roles.index("user (heard)") < roles.index("model"), lines
    model_line = next(text for role, text in lines if role == "model")
    assert "heard" in model_line.lower(), model_line  # the reply says what offline recognition heard


async def test_heard_line_is_bounded(emulator: Emulator) -> None:
    config = LiveGenerationConfig(response_modalities=["AUDIO"], input_audio_transcription=True)
    async with LiveModel("gemini-3.8-live", config, url=emulator.url).connect() as session:
        session._gather_heard("x" * (TURN_CHARS_LIMIT + 500))
        session._flush_heard(0.0)
        (_, role, text), = list(session.transcript)[-1:]
    assert role == "user (heard)"
    assert len(text) < TURN_CHARS_LIMIT + 100 and "500 more characters not kept" in text
    assert session.dropped_text >= 500
