"""live_nb.emulator.speech: synthesis, recognition and resampling, offline.

The round trips speak known sentences with eSpeak NG and hear them back with PocketSphinx, so they
check both engines at once; thresholds are "most content words", as recognition of synthetic speech
is rough. Engine tests skip when the engines are not installed (CI installs them).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from speech_fixtures import NOTEBOOK, PLANETS, WEATHER, content_words, heard_rendering, share_heard, words

from live_nb.emulator import speech
from live_nb.emulator.speech import Recognizer, Resampler, resample, speak, synthesize, transcribe


@pytest.fixture
def engines() -> None:
    """Skip unless both engines are installed."""
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("espeakng_loader")
    assert speech.speech_available(), speech.unavailable_reason()


def tone(freq: float, seconds: float, rate: int = 16000, amplitude: float = 8000.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


# --- resampling (numpy only) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst"), [(22050, 24000), (24000, 16000), (48000, 16000), (44100, 16000), (16000, 24000)]
)
def test_resample_keeps_a_tone_and_its_length(src: int, dst: int) -> None:
    out = samples(resample(tone(440, 1.0, src), src, dst))
    assert len(out) == dst  # ceil(n_in * dst / src) for exactly one second
    ref = 8000 * np.sin(2 * np.pi * 440 * np.arange(len(out)) / dst)
    assert np.abs(out[200:-200] - ref[200:-200]).max() < 40  # 0.5% of the amplitude


def test_resample_removes_what_the_new_rate_cannot_carry() -> None:
    out = samples(resample(tone(10000, 1.0, 48000), 48000, 16000))  # 10 kHz is above 8 kHz Nyquist
    assert np.sqrt((out[200:-200] ** 2).mean()) < 20


def test_resampler_streams_without_seams() -> None:
    pcm = tone(300, 0.7, 22050) + tone(1200, 0.6, 22050)
    whole = resample(pcm, 22050, 24000)
    r = Resampler(22050, 24000)
    pieces = [r.process(pcm[i : i + 882]) for i in range(0, len(pcm), 882)]  # odd sizes: 441 samples
    assert b"".join(pieces) + r.flush() == whole
    assert resample(pcm, 16000, 16000) == pcm


# --- synthesis ------------------------------------------------------------------------------


def test_synthesis_is_24khz_pcm16_of_plausible_length(engines: None) -> None:
    pcm = synthesize(WEATHER)
    assert len(pcm) % 2 == 0
    seconds = len(pcm) / 2 / 24000
    assert 1.2 < seconds < 4.5  # eight words at ~170 words a minute, plus eSpeak's end pause
    x = samples(pcm)
    assert np.sqrt((x**2).mean()) > 500  # audible, not a silent buffer
    assert synthesize(WEATHER, rate=16000) != pcm
    assert abs(len(synthesize(WEATHER, rate=16000)) / 2 / 16000 - seconds) < 0.01
    assert synthesize("   ") == b""


def centroid(pcm: bytes, rate: int = 24000) -> float:
    """Spectral centroid in Hz: higher for the female variants than the male ones."""
    spectrum = np.abs(np.fft.rfft(samples(pcm)))
    freqs = np.fft.rfftfreq(len(pcm) // 2, 1 / rate)
    return float((spectrum * freqs).sum() / spectrum.sum())


def test_voices_differ_and_unknown_names_fall_back(engines: None) -> None:
    assert {"Puck", "Charon", "Kore", "Fenrir", "Aoede", "Leda", "Orus", "Zephyr"} <= set(speech.voices())
    rendered = {name: synthesize(NOTEBOOK, name) for name in ("Puck", "Kore", "Charon", "Aoede")}
    assert len(set(rendered.values())) == 4
    assert min(centroid(rendered["Kore"]), centroid(rendered["Aoede"])) > max(
        centroid(rendered["Puck"]), centroid(rendered["Charon"])
    )
    assert speech.voice_spec("kore") == ("Kore", speech.LIVE_VOICES["Kore"])  # names are case-insensitive
    assert speech.voice_spec("NoSuchVoice") == speech.voice_spec(None) == ("Puck", speech.LIVE_VOICES["Puck"])
    assert speak(NOTEBOOK, "NoSuchVoice").voice == "Puck"
    assert speech.voice_spec("Kore")[1].gender == "female"
    assert speech.voice_spec("Charon")[1].gender == "male"


def test_language_code_picks_an_espeak_voice(engines: None) -> None:
    assert "en-us" in speech.espeak_voices()
    assert speech._espeak_language("de-DE") == "de"
    assert speech._espeak_language("en-US") == "en-us"
    assert speech._espeak_language("xx-YY") == speech._espeak_language(None) == "en-us"  # unknown: US English
    german = synthesize("Guten Morgen, wie geht es dir?", "Kore", language="de-DE")
    assert abs(len(german) / 48000 - 1.6) < 1.0


def test_chunks_carry_the_words_spoken_in_them(engines: None) -> None:
    sp = speak(WEATHER, "Kore")
    assert [sp.text[w.start : w.end] for w in sp.words] == [
        "What",
        "is",
        "the",
        "weather",
        "like",
        "in",
        "Paris",
        "today",
    ]
    starts = [w.sample for w in sp.words]
    assert starts == sorted(starts) and starts[-1] < len(sp.pcm) // 2
    chunks = sp.chunks(0.1)
    assert b"".join(c.pcm for c in chunks) == sp.pcm
    assert all(len(c.pcm) == 4800 for c in chunks[:-1])  # 100 ms at 24 kHz, PCM16
    assert "".join(c.text for c in chunks) == WEATHER
    # A chunk's text is exactly the words that start in its audio.
    for i, chunk in enumerate(chunks):
        begin, end = i * 2400, (i + 1) * 2400
        started = [sp.text[w.start : w.end] for w in sp.words if begin <= w.sample < end]
        assert words(chunk.text) == [w.lower() for w in started]
    # A number spoken as two words stays one written token, and joins back all the same.
    odd = speak("Meet me at 42 Rue Cler, okay?")
    assert "".join(c.text for c in odd.chunks(0.05)) == odd.text


def test_synthesis_is_safe_from_many_threads(engines: None) -> None:
    # eSpeak NG's timing jitters by a few milliseconds from call to call, so compare shapes, not bytes.
    texts = [WEATHER, NOTEBOOK, PLANETS] * 3
    voices = ["Puck", "Kore", "Charon"] * 3
    serial = [speak(t, v) for t, v in zip(texts, voices, strict=True)]
    results: list[speech.Speech | None] = [None] * len(texts)

    def work(i: int) -> None:
        results[i] = speak(texts[i], voices[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, serial, strict=True):
        assert got is not None and got.text == want.text and got.voice == want.voice
        assert abs(got.duration - want.duration) < 0.1
        assert [(w.start, w.end) for w in got.words] == [(w.start, w.end) for w in want.words]


# --- recognition ------------------------------------------------------------------------------


def test_round_trip_keeps_most_content_words(engines: None) -> None:
    assert content_words(WEATHER) == ["weather", "like", "paris", "today"]
    # A rendering the streaming recogniser hears (eSpeak's timing jitters from call to call, and
    # PocketSphinx's result on synthetic speech with it); the whole-buffer decode must hear it too.
    heard = transcribe(heard_rendering(WEATHER, "Kore", rate=24000), 24000)
    assert share_heard(WEATHER, heard) >= 0.5, heard
    heard = transcribe(resample(heard_rendering(PLANETS, "Aoede", rate=24000), 24000, 16000))
    assert share_heard(PLANETS, heard) >= 0.5, heard


def test_streaming_recognizer_gives_partials_then_the_turn(engines: None) -> None:
    rec = Recognizer(24000)
    # Renderings the recogniser hears (eSpeak's timing jitters from call to call, and PocketSphinx's
    # result on synthetic speech with it): this test is about partials and turn isolation.
    pcm = heard_rendering(WEATHER, "Kore", rate=24000)
    partials = [p for i in range(0, len(pcm), 4800) if (p := rec.feed(pcm[i : i + 4800])) is not None]
    assert partials and len(set(partials)) == len(partials)  # only changes are reported
    final = rec.finish()
    assert share_heard(WEATHER, final) >= 0.5, final
    # The next turn starts clean: it hears only its own audio.
    pcm2 = heard_rendering(NOTEBOOK, "Aoede", rate=24000)
    for i in range(0, len(pcm2), 4800):
        rec.feed(pcm2[i : i + 4800])
    second = rec.finish()
    assert share_heard(NOTEBOOK, second) >= 0.5, second
    assert "paris" not in second
    assert rec.finish() == ""  # a turn with no audio heard nothing


def test_silence_and_tones_are_heard_as_nothing(engines: None) -> None:
    quiet = np.random.default_rng(7).normal(0, 30, 32000).astype("<i2").tobytes()  # a quiet room
    for pcm in (b"\0" * 64000, quiet, tone(440, 2.0), tone(1000, 2.0), tone(220, 1.0) + tone(330, 1.0)):
        assert transcribe(pcm) == ""
        rec = Recognizer()
        for i in range(0, len(pcm), 3200):
            rec.feed(pcm[i : i + 3200])
        assert rec.finish() == ""


def test_recognizers_in_parallel_threads_hear_their_own_speech(engines: None) -> None:
    said = {0: WEATHER, 1: PLANETS}
    audio = {0: heard_rendering(WEATHER, "Kore", rate=24000), 1: heard_rendering(PLANETS, "Aoede", rate=24000)}
    heard: dict[int, str] = {}

    def session(i: int) -> None:
        rec = Recognizer(24000)
        for j in range(0, len(audio[i]), 4800):
            rec.feed(audio[i][j : j + 4800])
        heard[i] = rec.finish()

    threads = [threading.Thread(target=session, args=(i,)) for i in said]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, text in said.items():
        assert share_heard(text, heard[i]) >= 0.5, heard[i]
