"""A real voice loop in JupyterLab: a spoken question gets a spoken answer, idle and during a busy cell.

Real JupyterLab 4.6, headless Chromium whose fake microphone plays a WAV of a question spoken by
eSpeak NG (``scripts/make_speech_wav.py``, looped by Chromium, so the question comes again every
~5 s), a real ipykernel 7 kernel running ``start_media`` and the dashboard on a gemini-3.8-live
session (AUDIO replies, input and output transcription), and the emulator in this process with
offline speech on (PocketSphinx hears, eSpeak NG speaks).

What it shows, in the page and the kernel:
- the question is heard: the dashboard's transcript panel shows a ``user (heard)`` line sharing
  content words with the sentence (offline recognition is rough: a modest threshold);
- it is answered in speech: reply audio plays in the browser's player worklet, and the reply's
  output transcription (the panel's ``model`` line, the media widget's transcript) says what was heard;
- barge-in works: the looping question comes back while the reply still plays, and the player is
  interrupted (its queue cleared);
- all of it also while a 10 s CPU-bound cell runs: chunks keep reaching the emulator, a reply plays
  and is interrupted, and the turns asked during the cell are heard.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import LabPage, LabServer, fake_mic_context, live_loop_emulator, speech_wav, write_notebook
from speech_fixtures import content_words, share_heard
from test_media_browser import state

from live_nb.emulator import Emulator, speech

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

SENTENCE = "What is the weather like in Paris?"
LABEL = "voice"
TAIL = 7.0
"""Seconds of quiet after the question: the spoken answer gets to "Offline recognition heard: ..."
(about 6 s in) before the next question barges in on what it says after that."""

SETUP = """
import os, time
from live_nb import LiveGenerationConfig, LiveModel, _loop
from live_nb.widgets.dashboard import Dashboard
from live_nb.widgets.media import start_media

async def _open():
    config = LiveGenerationConfig(response_modalities=["AUDIO"], input_audio_transcription=True,
                                  output_audio_transcription=True)
    return await LiveModel("gemini-3.8-live", config, url=os.environ["LIVE_NB_EMULATOR_URL"]).connect()

session = _loop.block(_loop.submit(_open()), timeout=30)
streamer = start_media(session, audio=True, label="voice")  # LABEL
display(Dashboard(session, media=streamer))
streamer
"""

CPU = "t0 = time.time()\nwhile time.time() < t0 + 10:\n    pass\nprint('busy for', round(time.time() - t0, 1), 's')"

JS_TURNS = """() => Array.from(document.querySelectorAll('.lnb-transcript .lnb-turn')).map((row) => ({
  role: row.querySelector('.lnb-role')?.textContent ?? '',
  text: row.querySelector('.lnb-text')?.textContent ?? '',
  html: row.querySelector('.lnb-text')?.children.length ?? -1,
}))"""

JS_MEDIA_TRANSCRIPT = """() => Array.from(document.querySelectorAll('.live-nb-media-transcript'))
  .map((el) => el.textContent).join(' | ')"""


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The emulator with offline speech, on this process's live_nb loop.

    Its spoken replies come in 100 ms chunks; ``chunk_delay=0.09`` sends them a little faster than
    they play, so the server is still answering when the question comes back (barge-in is the
    server's ``interrupted``: a reply the server has finished sending plays out in the browser).
    """
    if not speech.speech_available():
        pytest.skip(speech.unavailable_reason())
    with live_loop_emulator(chunk_delay=0.09) as emu:
        yield emu


@pytest.fixture
def lab_env(emulator: Emulator) -> dict[str, str]:
    return {"LIVE_NB_EMULATOR_URL": emulator.url}


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[Any]:
    """Chromium whose fake microphone asks SENTENCE (eSpeak NG), then TAIL s of quiet, looped (~10 s)."""
    with fake_mic_context(speech_wav(SENTENCE, tmp_path / "question.wav", pad=1.0, tail=TAIL)) as context:
        yield context


def play_starts(page: LabPage) -> list[float]:
    """When the player worklet started to output a reply (performance.now ms), newest last."""
    starts: list[float] = page.evaluate(
        "(label) => ((globalThis.__live_nb_media || []).find((x) => x.label === label)?.playStarts || []).slice()",
        LABEL,
    )
    return starts


def messages_in(emulator: Emulator) -> int:
    """Client messages the emulator's one session has folded in so far (almost all mic chunks)."""
    sessions = list(emulator.sessions.values())
    assert len(sessions) == 1, f"expected one emulator session, got {len(sessions)}"
    return int(getattr(sessions[0], "consumed_offset", 0)) + len(sessions[0].consumed)


def just_asked(page: LabPage) -> bool:
    """The fake mic's question ended 0.2-0.8 s ago (a whole question: over a second of voice)."""
    return bool(page.evaluate(
        "(label) => { const s = (globalThis.__live_nb_media || []).find((x) => x.label === label);"
        " const v = s && s.voice[s.voice.length - 1]; if (!v) return false; const ago = performance.now() - v[1];"
        " return v[1] - v[0] > 1000 && ago > 200 && ago < 800; }",
        LABEL,
    ))


def panel_turns(page: LabPage) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = page.evaluate(JS_TURNS)
    return turns


def heard_lines(page: LabPage) -> list[str]:
    return [t["text"] for t in panel_turns(page) if t["role"] == "user (heard)"]


def model_lines(page: LabPage) -> list[str]:
    return [t["text"] for t in panel_turns(page) if t["role"] == "model"]


def good(lines: list[str], minimum: int = 2) -> list[str]:
    """The lines that share at least ``minimum`` content words with SENTENCE (recognition is rough)."""
    wanted = len(content_words(SENTENCE))
    return [line for line in lines if share_heard(SENTENCE, line) * wanted >= minimum]


def test_spoken_question_gets_a_spoken_answer_with_barge_in_idle_and_busy(
    lab: LabServer, page: LabPage, emulator: Emulator
) -> None:
    started = time.monotonic()
    write_notebook(lab.root_dir / "voice.ipynb", [SETUP])
    page.open_notebook("voice.ipynb")
    page.run_cell(0, timeout=90)
    page.wait_for("capture to stream", lambda: state(page, LABEL).get("captureState") == "streaming", 30)

    # Idle kernel: a spoken answer plays, and the dashboard shows the heard question and the answer.
    page.wait_for("a spoken reply playing", lambda: state(page, LABEL).get("playedSamples", 0) > 24_000, 60)
    page.wait_for("a heard question in the transcript panel", lambda: good(heard_lines(page)), 60)
    page.wait_for("the answer in the transcript panel", lambda: good(model_lines(page)), 60)
    # Barge-in: the question comes back while the answer plays; the player drops what it queued.
    page.wait_for("a barge-in", lambda: state(page, LABEL).get("clears", 0) >= 1, 60)
    idle = state(page, LABEL)
    heard_idle, answers_idle = heard_lines(page), model_lines(page)
    media_transcript = page.evaluate(JS_MEDIA_TRANSCRIPT)
    print("idle:", {k: idle.get(k) for k in ("playedSamples", "interrupts", "clears", "playerState")},
          f"{time.monotonic() - started:.1f} s")
    print("heard:", heard_idle)
    print("answers:", answers_idle)
    print("media widget transcript:", media_transcript)

    # The same while a 10 s CPU-bound cell holds the kernel's main thread, started just after a
    # question: its answer plays during the cell and the next question (8 s later) cuts it.
    page.wait_for("the end of a question", lambda: just_asked(page), 30, interval=0.05)
    index = page.insert_cell(CPU)
    page._panel_call("panel.content.activeCellIndex = arg;", index)
    token = page.start_command("notebook:run-cell")
    running = lambda: page._panel_call("return panel.content.widgets[arg].model.executionState;", index)  # noqa: E731
    page.wait_for("the busy cell to start", lambda: running() == "running", 20, interval=0.05)
    time.sleep(0.3)
    chunks0, s0, p0 = messages_in(emulator), state(page, LABEL), play_starts(page)
    time.sleep(9.0)  # inside the 10 s cell
    chunks1, s1, p1 = messages_in(emulator), state(page, LABEL), play_starts(page)
    still_running = running() == "running"
    page.wait_for("the busy cell to end", lambda: page.command_done(token) and page._cells_done(), 60)
    assert "busy for 10" in page.wait_for_output(index, "busy for", 10)
    busy = {
        "still_running": still_running,
        "chunks": chunks1 - chunks0,
        "played": s1["playedSamples"] - s0["playedSamples"],
        "clears": s1["clears"] - s0["clears"],
        "playStarts": sum(1 for p in p1 if p > max(p0, default=0.0)),
    }
    print("busy:", busy)
    # After the cell: the questions asked during it were heard and answered in the panel too.
    page.wait_for("more heard questions", lambda: len(good(heard_lines(page))) > len(good(heard_idle)) or
                  len(panel_turns(page)) >= 8, 40)
    turns = panel_turns(page)
    print("panel after the busy cell:", turns)

    # Heard: the question's content words, as plain text (transcriptions are untrusted: never HTML).
    assert good(heard_idle), heard_idle
    assert all(t["html"] == 0 for t in turns), turns
    # Spoken answer: audio played in the browser, its transcription says what was heard.
    assert idle["playedSamples"] > 24_000, idle
    assert good(answers_idle), answers_idle
    assert any("heard" in line.lower() for line in answers_idle), answers_idle
    assert media_transcript.strip(), "the media widget shows the reply's transcription"
    # Barge-in, idle.
    assert idle["clears"] >= 1 and idle["interrupts"] >= 1, idle
    # Busy cell: the mic kept flowing (9 s of 10 chunks/s), a reply played, the next question cut it.
    assert busy["still_running"], busy
    assert busy["chunks"] >= 60, busy
    assert busy["played"] >= 24_000, busy
    assert busy["playStarts"] >= 1, busy
    assert busy["clears"] >= 1, busy
    assert len(good([t["text"] for t in turns if t["role"] == "user (heard)"])) >= 2, turns
    print(f"total {time.monotonic() - started:.1f} s")
