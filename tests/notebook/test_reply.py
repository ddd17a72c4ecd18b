"""notebook/_reply.py: plain-text bundles, the audio player, a Turn's collection, and the Router's routing."""

from __future__ import annotations

import asyncio
import io
import wave

import pytest

from live_nb.exceptions import InvalidState
from live_nb.notebook._reply import Renderer, Router, StreamRenderer, Turn, audio_player, plain_text, wav_bytes
from live_nb.protocol.events import SessionClosed
from live_nb.protocol.messages import ServerContent, Transcription


class Recorder(Renderer):
    def __init__(self) -> None:
        self.updates: list[str] = []
        self.finished: list[tuple[str, list[str], bytes]] = []

    def update(self, text: str, notes: list[str]) -> None:
        self.updates.append(text)

    def finish(self, text: str, notes: list[str], audio: bytes) -> None:
        self.finished.append((text, list(notes), audio))


def spoken(text: str = "", **flags: bool) -> ServerContent:
    return ServerContent(output_transcription=Transcription(text=text) if text else None, **flags)


def test_bundles_are_plain_text_and_the_player_holds_no_model_text() -> None:
    assert plain_text("<b>hi</b>", ["GoAway"]) == {"text/plain": "<b>hi</b>\n[GoAway]"}
    assert plain_text("", []) == {"text/plain": "…"}
    pcm = b"\x01\x00" * 24_000
    with wave.open(io.BytesIO(wav_bytes(pcm)), "rb") as wav:
        assert (wav.getframerate(), wav.getnframes(), wav.getsampwidth()) == (24_000, 24_000, 2)
    bundle = audio_player(pcm, autoplay=True)
    assert bundle["text/plain"] == "[reply audio: 1.0 s at 24 kHz]"
    assert bundle["text/html"].startswith("<audio controls autoplay") and "base64," in bundle["text/html"]


def test_a_turn_collects_the_transcription_until_turn_complete() -> None:
    async def scenario() -> tuple[Recorder, str]:
        recorder = Recorder()
        turn = Turn(recorder, asyncio.get_running_loop())
        turn.feed(spoken("Hello "))
        turn.feed(spoken("there."))
        turn.feed(spoken(turn_complete=True))
        return recorder, await turn.done

    recorder, text = asyncio.run(scenario())
    assert text == "Hello there." and recorder.finished == [("Hello there.", [], b"")]


def test_the_router_fails_the_waiting_turn_when_the_session_ends() -> None:
    async def scenario() -> BaseException | None:
        router = Router()
        turn = Turn(Recorder(), asyncio.get_running_loop())
        router.current = turn
        router(SessionClosed(code=1011, reason="gone"))
        try:
            await turn.done
        except InvalidState as exc:
            return exc
        return None

    error = asyncio.run(scenario())
    assert isinstance(error, InvalidState) and "the session ended" in str(error)


def test_the_stream_renderer_prints_the_text_and_the_audio_length(capsys: pytest.CaptureFixture[str]) -> None:
    renderer = StreamRenderer()
    renderer.update("Hel", [])
    renderer.finish("Hello.", ["note"], b"\x00\x00" * 12_000)
    out = capsys.readouterr().out
    assert "Hello." in out and "0.5 s of reply audio" in out
