"""Known sentences and word checks shared by the speech tests (offline TTS -> recogniser round trips).

Recognition of synthetic speech is rough, so checks count content words (stop words left out) and
ask for a share of them, never the exact sentence.
"""

from __future__ import annotations

import re

WEATHER = "What is the weather like in Paris today?"
NOTEBOOK = "Please open the notebook and run the first cell."
PLANETS = "How many planets are in the solar system?"

_STOP = "a an and are at be by can do does for from how i in is it me my of on or please so that the this to was what"
STOP_WORDS = frozenset([*_STOP.split(), "when", "where", "which", "who", "will", "with", "would", "you", "your"])


def words(text: str) -> list[str]:
    """Lower-case words of a text, punctuation dropped."""
    return re.findall(r"[a-z0-9']+", text.lower())


def content_words(text: str) -> list[str]:
    """The words that carry meaning: ``content_words(WEATHER) == ['weather', 'like', 'paris', 'today']``."""
    return [w for w in words(text) if w not in STOP_WORDS]


def share_heard(said: str, heard: str) -> float:
    """Fraction of ``said``'s content words that occur in ``heard`` (0.0 when none)."""
    wanted = content_words(said)
    got = set(words(heard))
    return sum(w in got for w in wanted) / len(wanted) if wanted else 0.0


def heard_rendering(sentence: str, voice: str = "Aoede", rate: int = 16_000, share: float = 0.75, tries: int = 6) -> bytes:
    """PCM16 of ``sentence`` spoken by the offline TTS in a rendering the offline recogniser hears.

    Why: eSpeak NG's timing jitters by a few milliseconds from call to call, and PocketSphinx's
    result on synthetic speech swings with it ("please get the weather for paris" one time,
    "please get to that live there for paris" the next). A test about the emulator's plumbing
    should not fail on that coin toss, so it takes the first of a few renderings that a streaming
    recogniser (100 ms chunks, as a client sends them) hears with ``share`` of its content words;
    the last one if none does.
    """
    from live_nb.emulator import speech

    pcm = b""
    for _ in range(tries):
        pcm = speech.speak(sentence, voice, rate=rate).pcm
        rec = speech.Recognizer(rate)
        step = rate // 10 * 2
        for i in range(0, len(pcm) + rate * 2, step):  # and half a second of silence after
            rec.feed(pcm[i : i + step] if i < len(pcm) else bytes(step))
        if share_heard(sentence, rec.finish()) >= share:
            break
    return pcm
