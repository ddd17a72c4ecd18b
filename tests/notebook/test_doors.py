"""The notebook's doors on a session: live_nb.history / plot_context / stream, and the same as methods of
the notebook's KernelSession proxy (``s = %live session``), on a real emulator session. The client has
no such doors: it never imports the notebook or widget layers."""

from __future__ import annotations

import pytest

import live_nb
from live_nb import ConfigError, LiveGenerationConfig, LiveModel
from live_nb.emulator import Emulator
from live_nb.notebook._proxy import KernelSession
from live_nb.protocol.config import ContextWindowCompressionConfig, SlidingWindow


async def _session_with_turns(emulator: Emulator, turns: int):  # type: ignore[no-untyped-def]
    emulator.chunk_delay = 0.0  # an audio reply is a hundred-odd chunks: no pacing for 14 of them
    model = LiveModel(  # gemini-3.8-live: AUDIO replies with their transcription
        generation_config=LiveGenerationConfig(
            response_modalities=["AUDIO"],
            output_audio_transcription=True,
            context_window_compression=ContextWindowCompressionConfig(
                trigger_tokens=5_000, sliding_window=SlidingWindow(target_tokens=2_000)
            ),
        ),
        backend="emulator",
        url=emulator.url,
    )
    session = await model.connect()
    for i in range(turns):
        await session.send_content(f"Turn {i}: " + "words " * 400, turn_complete=True)
        async for item in session.receive():
            if getattr(item, "turn_complete", False):
                break
    return session


async def test_history_views_are_dataframes_and_a_bad_name_is_a_clear_error(emulator: Emulator) -> None:
    session = await _session_with_turns(emulator, 2)
    try:
        usage = live_nb.history(session, "usage")
        assert len(usage) == 2 and (usage["prompt_tokens"] > 0).all()
        transcript = live_nb.history(session)
        assert list(transcript["role"])[:2] == ["user", "model"]
        assert "Turn 1." in transcript["text"].iloc[1]  # the reply's output transcription
        with pytest.raises(ConfigError, match=r"view=.bogus.*one of context, events, tools, transcript, usage"):
            live_nb.history(session, "bogus")
        proxied = KernelSession(session)  # what `s = %live session` gives a cell
        assert proxied.history("usage").equals(usage)
        assert live_nb.history(proxied).equals(transcript)
    finally:
        await session.close()


async def test_plot_context_draws_the_sawtooth(emulator: Emulator) -> None:
    session = await _session_with_turns(emulator, 14)
    try:
        assert session.ledger.compressions, "14 turns of ~600 tokens pass a 5,000-token trigger"
        figure = live_nb.plot_context(session)
        assert len(KernelSession(session).plot_context().axes[0].get_lines()) == len(figure.axes[0].get_lines())
        ax = figure.axes[0]
        ys = [y for line in ax.get_lines() for y in line.get_ydata()]
        assert max(ys) > 5_000 and any(y <= 2_000 for y in ys[len(ys) // 2 :])
    finally:
        await session.close()


async def test_stream_makes_one_media_streamer_for_mic_and_camera(emulator: Emulator) -> None:
    from live_nb.widgets.media import MediaStreamer, stop_media

    session = await _session_with_turns(emulator, 0)
    try:
        streamer = live_nb.stream(session)
        assert isinstance(streamer, MediaStreamer)
        assert (streamer.audio, streamer.video) == (True, True)
        assert live_nb.stream(session, video=False) is streamer  # one streamer per session
        assert KernelSession(session).stream() is streamer  # the proxy is unwrapped before widget code
        stop_media(session)
        assert (streamer.audio, streamer.video) == (False, False)
    finally:
        await session.close()
