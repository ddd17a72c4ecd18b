"""The engine's side of offline speech, sans-I/O: what it asks to hear and to say, and what it does
with the answers, driven by the real recogniser and synthesiser (speech.py) the way server.py does.

``Driver`` plays server.py's part: it feeds ``Listen`` audio to a real ``Recognizer``, hands partial
text back with ``partial`` and the final text with ``heard`` at ``EndListening`` (before the next
message), and voices each plan's sentences with ``speak`` before streaming its chunks.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from speech_fixtures import NOTEBOOK, WEATHER, heard_rendering, share_heard

from live_nb.emulator import speech
from live_nb.emulator.engine import (
    SPEECH_CHUNK_SECONDS,
    Action,
    EndListening,
    EngineSettings,
    Listen,
    Send,
    ServerEngine,
    SessionState,
    Stream,
    sentences,
)
from live_nb.emulator.responder import ContextResponder
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig
from live_nb.protocol.content import Blob, Content, Part
from live_nb.protocol.messages import ClientContent, RealtimeInput, ServerContent, Setup

pytestmark = pytest.mark.skipif(not speech.speech_available(), reason=speech.unavailable_reason() or "speech on")

MODEL = "models/gemini-3.8-live"
CHUNK = 3200  # 100 ms of 16 kHz PCM16


def make_engine(hearing: bool = True, speaking: bool = True, **config: Any) -> ServerEngine:
    generation = LiveGenerationConfig(
        response_modalities=["AUDIO"], output_audio_transcription=True, input_audio_transcription=True,
        speech_config={"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Aoede"}}}, **config,
    )
    setup = Setup(model=MODEL, config=generation, session_resumption=SessionResumptionConfig())
    return ServerEngine(
        setup, SessionState("sess-speech", "gemini-3.8-live"), [], ContextResponder(),
        EngineSettings(hearing=hearing, speaking=speaking),
    )


def audio(pcm: bytes) -> RealtimeInput:
    return RealtimeInput(audio=Blob(pcm, "audio/pcm;rate=16000"))


def silence(seconds: float) -> bytes:
    return bytes(int(16_000 * seconds) * 2)


def tone(seconds: float, amplitude: int = 8000) -> bytes:
    n = int(seconds * 16_000)
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * 440 * i / 16_000)) for i in range(n)))


class Driver:
    """server.py's part, without sockets: a real recogniser and synthesiser, run in line."""

    def __init__(self, engine: ServerEngine) -> None:
        self.engine = engine
        self.rec = speech.Recognizer()
        self.sent: list[Any] = []
        self.listened: list[Listen] = []
        self.ends: list[EndListening] = []
        self.unresumable_while_waiting = False

    def receive(self, message: Any, stop_after_chunks: int | None = None) -> None:
        self.act(self.engine.receive(message), stop_after_chunks)

    def act(self, actions: list[Action], stop_after_chunks: int | None = None) -> None:
        for action in actions:
            if isinstance(action, Listen):
                self.listened.append(action)
                partial = self.rec.feed(action.pcm)
                if partial is not None:
                    self.act(self.engine.partial(action.turn, partial))
            elif isinstance(action, EndListening):
                self.ends.append(action)
                text = self.rec.finish()
                if not action.discard:
                    self.unresumable_while_waiting |= not self.engine.resumable
                    self.act(self.engine.heard(text), stop_after_chunks)
            elif isinstance(action, Stream):
                plan = action.plan
                while (sentence := plan.next_sentence()) is not None:
                    spoken = speech.speak(sentence, plan.voice, language=plan.language)
                    self.engine.voice(plan, [(c.pcm, c.text) for c in spoken.chunks(SPEECH_CHUNK_SECONDS) if c.pcm])
                for chunk in plan.chunks:
                    if plan.cancelled or (stop_after_chunks is not None and plan.sent >= stop_after_chunks):
                        return
                    self.sent.append(chunk)
                    self.engine.chunk_sent(plan)
                self.act(self.engine.finish_reply(plan))
            elif isinstance(action, Send):
                self.sent.append(action.message)

    def stream(self, pcm: bytes, stop_after_chunks: int | None = None) -> None:
        for i in range(0, len(pcm), CHUNK):
            self.receive(audio(pcm[i : i + CHUNK]), stop_after_chunks)

    def heard_pieces(self) -> list[Any]:
        return [m.input_transcription for m in self.sent if isinstance(m, ServerContent) and m.input_transcription]

    def said(self) -> str:
        return "".join(
            m.output_transcription.text for m in self.sent if isinstance(m, ServerContent) and m.output_transcription
        )

    def audio(self) -> bytes:
        return b"".join(m.audio for m in self.sent if isinstance(m, ServerContent))


def test_a_spoken_turn_is_heard_transcribed_and_answered_from_what_was_heard() -> None:
    engine = make_engine()
    driver = Driver(engine)
    speech_pcm = heard_rendering(WEATHER)
    driver.stream(silence(0.5) + speech_pcm + silence(1.0))
    # Only the turn's audio was listened to: the chunk before speech (prefix padding), the speech,
    # and the silence that ended it; one listening turn, ended once, not discarded.
    assert {item.turn for item in driver.listened} == {1}
    assert driver.ends == [EndListening(1, discard=False)]
    listened = b"".join(item.pcm for item in driver.listened)
    assert silence(0.1) + speech_pcm[: len(speech_pcm) // CHUNK * CHUNK - CHUNK] in silence(0.5) + listened
    # Between the turn's end and the heard text the session was not resumable.
    assert driver.unresumable_while_waiting and engine.resumable
    transcription = driver.heard_pieces()
    heard = "".join(p.text for p in transcription)
    assert share_heard(WEATHER, heard) >= 0.75, heard
    assert len(transcription) > 1  # streamed as the words settled, not all at the end
    assert transcription[-1].finished and not any(p.finished for p in transcription[:-1])
    said = driver.said()
    assert said.startswith("Turn 1. You spoke to me [") and f'Offline recognition heard: "{heard}".' in said
    user = engine.state.turns[0]
    assert user.role == "user" and user.text.endswith(f"; offline recognition heard: {heard}]")
    # The reply was voiced: its chunks' words join into the reply, and its audio is speech.
    model = engine.state.turns[1]
    assert model.role == "model" and said.strip() == model.text
    assert share_heard(said, speech.transcribe(driver.audio(), 24_000)) > 0.2


def test_a_tone_is_heard_as_nothing_and_said_so() -> None:
    engine = make_engine()
    driver = Driver(engine)
    driver.stream(tone(1.0) + silence(1.0))
    assert [p.text for p in driver.heard_pieces()] == ["[1.0 s of speech: offline recognition heard no words]"]
    assert driver.said().startswith("Turn 1. You spoke to me [1.0 s of speech]. I heard nothing I could recognise.")
    assert engine.state.turns[0].text == "[1.0 s of speech; offline recognition heard nothing]"


def pieces(actions: list[Action]) -> list[str]:
    return [a.message.input_transcription.text for a in actions
            if isinstance(a, Send) and isinstance(a.message, ServerContent) and a.message.input_transcription]


def test_partials_send_settled_words_only_and_ignore_ended_turns() -> None:
    engine = make_engine()
    assert engine.partial(1, "what is that whether") == []
    assert engine.partial(1, "what is that whether like") == []
    # Three partials agree on "what is that whether"; the newest one's last three words wait.
    assert pieces(engine.partial(1, "what is the weather like in paris")) == ["what is"]
    assert pieces(engine.partial(1, "what is the weather like in paris today")) == []
    assert pieces(engine.partial(1, "what is the weather like in paris today")) == [" the weather like"]
    assert engine.partial(1, "what was the weather like in paris today") == []  # a revision of sent words: wait
    assert engine.partial(7, "something else entirely") == []  # not the turn being listened to
    # The turn ends (as server.py would see it) and the final text revised a sent word: what was
    # sent stands, and the transcription, the user turn and the reply agree on it.
    engine.awaiting.append({"number": 0, "typed": [], "seconds": 2.0, "sent": engine.heard_sent, "placeholder": ""})
    engine.heard_sent = []
    actions = engine.heard("what is a weather like in paris today")
    assert pieces(actions) == [" in paris today"]
    stream = next(a for a in actions if isinstance(a, Stream))
    assert 'Offline recognition heard: "what is the weather like in paris today"' in stream.plan.text


def test_typed_content_in_the_middle_of_speech_drops_the_listening_turn() -> None:
    engine = make_engine()
    driver = Driver(engine)
    driver.stream(tone(0.5))
    driver.receive(ClientContent((Content("user", (Part(text="never mind"),)),), True))
    assert driver.ends == [EndListening(1, discard=True)]
    assert [t.text for t in engine.state.turns[:2]] == ["[0.5 s of speech]", "never mind"]
    assert 'You asked: "never mind".' in driver.said()
    driver.stream(tone(0.5) + silence(1.0))  # the next spoken turn is listening turn 2
    assert driver.ends[-1] == EndListening(2, discard=False) and {i.turn for i in driver.listened} == {1, 2}


def test_manual_activity_is_listened_to_only_inside_the_activity() -> None:
    engine = make_engine(realtime_input_config={"automaticActivityDetection": {"disabled": True}})
    driver = Driver(engine)
    driver.stream(tone(0.3))  # outside an activity: not listened to
    driver.receive(RealtimeInput(activity_start=True))
    driver.stream(heard_rendering(NOTEBOOK))
    driver.receive(RealtimeInput(activity_end=True))
    assert not any(item.pcm == tone(0.3)[:CHUNK] for item in driver.listened)
    assert driver.ends == [EndListening(1, discard=False)]
    assert share_heard(NOTEBOOK, "".join(p.text for p in driver.heard_pieces())) >= 0.5


def test_barge_in_keeps_only_the_voiced_words_that_were_sent() -> None:
    engine = make_engine()
    driver = Driver(engine)
    driver.receive(ClientContent((Content("user", (Part(text="tell me everything you remember"),)),), True),
                   stop_after_chunks=30)
    plan = engine.plan
    assert plan is not None and plan.sent == 30 and not plan.to_voice
    sent_text = "".join(plan.chunk_texts[:30]).strip()
    assert plan.text.startswith(sent_text) and len(sent_text) < len(plan.text)
    driver.stream(tone(0.3))  # speech: barge-in
    assert plan.cancelled and any(isinstance(m, ServerContent) and m.interrupted for m in driver.sent)
    assert engine.state.turns[1].role == "model" and engine.state.turns[1].text == sent_text


def test_off_means_no_listening_and_the_tone() -> None:
    engine = make_engine(hearing=False, speaking=False)
    driver = Driver(engine)
    driver.stream(tone(1.0) + silence(1.0))
    assert driver.listened == [] and driver.ends == []
    assert [p.text for p in driver.heard_pieces()] == ["[1.0 s of speech: offline speech recognition is off]"]
    assert driver.said().startswith("Turn 1. You spoke to me [1.0 s of speech: offline speech recognition is off].")
    # The tone shares no words with the reply (a recogniser may hear a stray "do" in it, nothing more).
    assert share_heard(driver.said(), speech.transcribe(driver.audio(), 24_000)) < 0.1


@pytest.mark.parametrize("text", [
    "Turn 1. You asked: \"what is the weather…\". I hold 3 turns and 1,234 tokens.",
    "No sentence end at all",
    "Wait... what?! Yes. ",
    "",
])
def test_sentences_join_back_into_the_text(text: str) -> None:
    pieces = sentences(text)
    assert "".join(pieces) == text and pieces
