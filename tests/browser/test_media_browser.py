"""Mic/camera streaming and reply playback in a real JupyterLab, headless Chromium, fake devices.

The emulator runs in this test process (on live_nb's loop thread here), so the test reads its
consumed log directly; the kernel inside JupyterLab connects to it through
``LIVE_NB_EMULATOR_URL``. Chromium's fake microphone plays a WAV written by the test: 1.5 s of a
voiced, syllable-modulated tone then 3.5 s of silence, looped, so every 5 s there is a "spoken"
turn for the emulator's energy VAD, and the next one barges in on the reply to the previous one.
The emulator paces reply audio at about real time, as the service does for a listener.

What the page exposes for tests: ``globalThis.__live_nb_media``, one state object per media
widget (``label``, ``captureState``, ``chunksSent``, ``framesSent``, ``playedSamples``,
``queuedSamples``, ``playerState``, ``interrupts``, ``outputContext``...).
"""

from __future__ import annotations

import json
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import CHROMIUM, CHROMIUM_ARGS, LabPage, LabServer, fake_mic_context, live_loop_emulator, write_notebook

from live_nb import _loop
from live_nb.emulator import Emulator
from live_nb.protocol.audio import pcm16_level
from live_nb.protocol.messages import RealtimeInput

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

MODEL = "gemini-3.8-live"  # the default: AUDIO replies with output transcription
LOOP_SECONDS = 5.0
SPEECH_SECONDS = 1.5


def write_fake_mic(path: Path) -> Path:
    """A 16 kHz mono WAV: 1.5 s of speech-like tone, then silence, 5 s in all (Chromium loops it)."""
    rate = 16_000
    t = np.arange(int(rate * SPEECH_SECONDS)) / rate
    voiced = 0.35 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    voiced += 0.1 * np.sin(2 * np.pi * 360 * t)
    samples = np.concatenate([voiced, np.zeros(int(rate * (LOOP_SECONDS - SPEECH_SECONDS)))])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """An emulator on this process's live_nb loop thread; reply chunks (40 ms) paced at 35 ms."""
    with live_loop_emulator(chunk_delay=0.035) as emu:
        yield emu


@pytest.fixture
def lab_env(emulator: Emulator) -> dict[str, str]:
    return {"LIVE_NB_EMULATOR_URL": emulator.url}


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[Any]:
    """Chromium with the fake camera and a fake microphone playing our WAV."""
    # Autoplay as a desktop browser has it (headless Chromium would let any AudioContext run).
    wav = write_fake_mic(tmp_path / "fake-mic.wav")
    with fake_mic_context(wav, extra_args=["--autoplay-policy=user-gesture-required"]) as context:
        yield context


SETUP = """
import json, os, time
from ipywebrtc import CameraStream
from live_nb import LiveGenerationConfig, LiveModel, SessionResumptionConfig, _loop
from live_nb.widgets.media import start_media

async def _open():
    model = LiveModel({model!r}, LiveGenerationConfig(response_modalities=["AUDIO"],
                      output_audio_transcription=True), url=os.environ["LIVE_NB_EMULATOR_URL"])
    # Transparent: chunks sent between the server's last handle and its GoAway are replayed, not lost.
    return await model.connect(session_resumption=SessionResumptionConfig(transparent=True))

session = _loop.block(_loop.submit(_open()), timeout=30)
cam = CameraStream.facing_user(audio=True)
streamer = start_media(session, audio=True, video=True, source=cam, label="browser-test")
display(cam)   # ipywebrtc's own preview, showing the same stream
streamer
"""

STATS = """
streamer.feed.drain().result(20)
streamer._publish(force=True)
s = streamer.feed.stats()
print(json.dumps({{"chunks": s.chunks_received, "frames": s.frames_received, "gaps": s.gaps,
                  "missing": s.missing_chunks, "sent": s.chunks_sent, "frames_sent": s.frames_sent,
                  "errors": s.errors, "reconnects": session.reconnects, "state": session.state,
                  "played": streamer.played_samples, "capture_rate": streamer.capture_rate,
                  "signals": list(s.signals_sent), "error_list": [repr(e) for e in streamer.feed.errors],
                  "gap_list": list(streamer.feed.audio_seq.recent_gaps), "dups": s.duplicates,
                  "reordered": s.reordered,
                  "tag": {tag!r}}}))
"""

JS_STATE = """(label) => {
  const s = (globalThis.__live_nb_media || []).find((x) => x.label === label);
  if (!s) return null;
  const out = {};
  for (const [k, v] of Object.entries(s)) if (typeof v !== 'object' && typeof v !== 'function') out[k] = v;
  return out;
}"""


def state(page: LabPage, label: str = "browser-test") -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(JS_STATE, label) or {}
    return result


def audio_inputs(emulator: Emulator) -> list[RealtimeInput]:
    sessions = list(emulator.sessions.values())
    assert len(sessions) == 1, f"expected one emulator session, got {len(sessions)}"
    return [m for m in list(sessions[0].consumed) if isinstance(m, RealtimeInput)]


def kernel_stats(page: LabPage, tag: str) -> dict[str, Any]:
    index = page.insert_cell(STATS.format(tag=tag))
    page.run_cell(index, timeout=60)
    out = page.wait_for_output(index, f'"tag": "{tag}"', timeout=30)
    line = next(x for x in out.splitlines() if x.startswith("{"))
    result: dict[str, Any] = json.loads(line)
    return result


def test_stream_play_barge_in_and_resume(lab: LabServer, page: LabPage, emulator: Emulator) -> None:
    write_notebook(lab.root_dir / "media.ipynb", [SETUP.format(model=MODEL)])
    page.open_notebook("media.ipynb")
    page.run_cell(0, timeout=90)
    page.wait_for("capture to stream", lambda: state(page).get("captureState") == "streaming", 30)
    page.wait_for("the first chunks in the emulator", lambda: len(audio_inputs(emulator)) > 5, 30)
    # The ipywebrtc preview shows the same stream (tapped, not reopened) and was muted: no echo.
    previews = page.wait_for(
        "the preview",
        lambda: page.evaluate(
            "() => Array.from(document.querySelectorAll('.jp-OutputArea video'))"
            ".filter(v => v.srcObject && v.srcObject.getAudioTracks().length).map(v => v.muted)"
        ),
        30,
    )
    page.wait_for("the preview to be muted", lambda: all(page.evaluate(
        "() => Array.from(document.querySelectorAll('.jp-OutputArea video'))"
        ".filter(v => v.srcObject && v.srcObject.getAudioTracks().length).map(v => v.muted)")), 5)
    assert len(previews) == 1

    # 1. Audio reaches the emulator at real-time rate: 10 chunks (25 tokens) per second; frames ~1 fps.
    def counts() -> tuple[float, int, int]:
        inputs = audio_inputs(emulator)
        return (time.monotonic(), sum(1 for m in inputs if m.audio is not None),
                sum(1 for m in inputs if m.video is not None))

    t0, a0, v0 = counts()
    time.sleep(8.0)
    t1, a1, v1 = counts()
    audio_tokens_per_s = (a1 - a0) * 2.5 / (t1 - t0)
    fps = (v1 - v0) / (t1 - t0)
    print(f"audio tokens/s {audio_tokens_per_s:.2f}, video fps {fps:.2f}")
    assert 22.5 <= audio_tokens_per_s <= 27.5
    assert 0.75 <= fps <= 1.25
    inputs = audio_inputs(emulator)
    assert all(len(m.audio.data) == 3200 for m in inputs if m.audio is not None)
    # The chunks carry the fake mic's sound: ~30% of them loud (1.5 s of tone in every 5 s).
    levels = [pcm16_level(m.audio.data) for m in inputs if m.audio is not None]
    loud = sum(1 for x in levels if x > 0.05) / len(levels)
    assert 0.2 <= loud <= 0.4, loud
    frame = next(m.video for m in inputs if m.video is not None)
    assert frame.mime_type == "image/jpeg" and frame.data[:2] == b"\xff\xd8"
    emu_session = next(iter(emulator.sessions.values()))
    video_turns = [t for t in emu_session.turns if "VIDEO" in t.modalities]
    assert video_turns, "no turn carried video"
    for turn in video_turns:  # the model's rate per frame: 256 on gemini-3.8-live at the default resolution
        frames_in_turn = int(turn.text.split(" video frame")[0].rsplit("[", 1)[1])
        assert turn.modalities["VIDEO"] == frames_in_turn * 256

    # 2. The reply plays in the page (the played-sample counter of the player worklet advances).
    page.wait_for("reply audio playing", lambda: state(page).get("playerState") == "playing", 30)
    p0 = state(page)["playedSamples"]
    page.wait_for("half a second of reply played", lambda: state(page)["playedSamples"] - p0 >= 12_000, 5)
    assert state(page)["outputContext"] == "running"

    # 3. The next spoken turn barges in while a reply plays: the worklet drops its queue at once.
    n = state(page)["interrupts"]
    page.wait_for("a barge-in", lambda: state(page)["clears"] > n, 3 * LOOP_SECONDS, interval=0.05)
    s = state(page)
    log = page.evaluate("() => globalThis.__live_nb_media.find((x) => x.label === 'browser-test').log")
    print("barge-in", {k: s[k] for k in ("interrupts", "clears", "clearLatencyMs", "playedBeforeClear", "level")})
    assert s["clearLatencyMs"] <= 50, s  # interrupt message -> queue cleared in the audio thread
    assert 0 <= s["playedBeforeClear"] <= 0.1 * 24_000, s  # at most 100 ms more of the old reply
    assert s["level"] > 0.01  # the mic was hearing speech when the reply was cut
    # Nothing of the interrupted reply is played after it: every later chunk is a newer generation.
    cut = max(i for i, entry in enumerate(log) if entry[1] == "interrupt")
    assert all(entry[2] >= log[cut][2] for entry in log[cut:] if entry[1] == "play")
    assert emu_session.turns and any(t.role == "model" for t in emu_session.turns)

    # 4. A GoAway while streaming: the session resumes and no chunk is lost.
    before = kernel_stats(page, "before")
    assert before["gaps"] == 0 and before["errors"] == 0
    _loop.block(_loop.submit(emulator.go_away_now(time_left=1.0)), timeout=10)
    time.sleep(6.0)
    page.run_cell(page.insert_cell("streamer.stop()"), timeout=30)
    page.wait_for("capture to stop", lambda: state(page).get("captureState") == "stopped", 20)
    time.sleep(1.0)
    after_resume = kernel_stats(page, "after")
    browser = state(page)
    print("kernel", after_resume, "browser", browser)
    assert after_resume["reconnects"] >= 1 and after_resume["state"] == "active"
    assert after_resume["gaps"] == 0 and after_resume["missing"] == 0 and after_resume["errors"] == 0
    assert after_resume["chunks"] == browser["chunksSent"]  # every chunk the page sent reached the kernel
    assert after_resume["sent"] == after_resume["chunks"]  # ... and went to the session
    consumed = audio_inputs(emulator)
    assert sum(1 for m in consumed if m.audio is not None) == after_resume["chunks"]  # ... and was consumed once
    assert sum(1 for m in consumed if m.video is not None) == after_resume["frames_sent"]
    assert len(emulator.sessions) == 1
    page.screenshot("media-widget")


FALLBACK = """
import json, os
from live_nb import LiveGenerationConfig, LiveModel, SessionResumptionConfig, _loop
from live_nb.widgets.media import start_media

async def _open():
    model = LiveModel({model!r}, LiveGenerationConfig(response_modalities=["AUDIO"]),
                      url=os.environ["LIVE_NB_EMULATOR_URL"])
    return await model.connect()

session = _loop.block(_loop.submit(_open()), timeout=30)
# No ipywebrtc source: getUserMedia. capture_context_rate=0: capture at the device's rate and let the
# worklet resample to 16 kHz (the path Firefox takes, which refuses 16 kHz contexts).
streamer = start_media(session, audio=True, label="browser-test", capture_context_rate=0)
streamer
"""


def test_fallback_capture_mute_and_stop_buttons(lab: LabServer, page: LabPage, emulator: Emulator) -> None:
    write_notebook(lab.root_dir / "fallback.ipynb", [FALLBACK.format(model=MODEL)])
    page.open_notebook("fallback.ipynb")
    page.run_cell(0, timeout=90)
    page.wait_for("capture to stream", lambda: state(page).get("captureState") == "streaming", 30)
    page.wait_for("20 chunks in the emulator", lambda: len(audio_inputs(emulator)) >= 20, 30)
    assert not any(m.video is not None for m in audio_inputs(emulator))
    assert state(page)["captureRate"] != 16000  # really the resampling path

    # Resampled audio keeps real time (10 chunks of 3,200 bytes a second) and the fake mic's pitch.
    t0, n0 = time.monotonic(), len(audio_inputs(emulator))
    time.sleep(6.0)
    rate = (len(audio_inputs(emulator)) - n0) * 2.5 / (time.monotonic() - t0)
    assert 22.5 <= rate <= 27.5, rate
    audio = b"".join(m.audio.data for m in audio_inputs(emulator) if m.audio is not None)
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float64)
    loud = max(range(0, len(samples) - 16_000, 1600), key=lambda i: float(np.abs(samples[i : i + 8000]).mean()))
    window = samples[loud : loud + 8000] * np.hanning(8000)
    peak_hz = float(np.argmax(np.abs(np.fft.rfft(window))[20:]) + 20) * 16_000 / 8000
    print(f"resampled capture: {rate:.2f} tokens/s, pitch {peak_hz:.0f} Hz")
    assert abs(peak_hz - 180) <= 6, peak_hz

    # Device choice without ipywebrtc: the widget lists the inputs, and opens the one asked for.
    index = page.insert_cell(
        "import asyncio\nfor _ in range(50):\n    if streamer.devices:\n        break\n    await asyncio.sleep(0.1)\n"
        "mics = [d for d in streamer.devices if d['kind'] == 'audioinput' and d['deviceId'] != 'default']\n"
        "print('mics', len(mics), '|'.join(d['label'] for d in mics))\nstreamer.audio_device = mics[-1]['deviceId']"
    )
    page.run_cell(index)
    mics = page.wait_for_output(index, "mics").split("mics", 1)[1].split(" ", 2)
    assert int(mics[1]) >= 1, mics
    chosen = mics[2].strip().split("|")[-1]
    page.wait_for("the chosen mic", lambda: state(page).get("deviceLabels") == chosen, 15)
    page.wait_for("capture to stream again", lambda: state(page).get("captureState") == "streaming", 15)

    # Mute with the widget's own button (a real click): audio stops reaching the session.
    page.page.locator(".live-nb-media-mute").first.click()
    page.wait_for("the mute to apply", lambda: page.page.locator(".live-nb-media-mute").first.inner_text() == "Unmute")
    time.sleep(0.5)
    muted_at = sum(1 for m in audio_inputs(emulator) if m.audio is not None)
    time.sleep(1.5)
    assert sum(1 for m in audio_inputs(emulator) if m.audio is not None) == muted_at
    assert page.page.locator(".live-nb-media-status").first.inner_text() == "muted"

    # Unmute, then Stop: the widget stops its own tracks (it opened them) and says so.
    page.page.locator(".live-nb-media-mute").first.click()
    page.wait_for("audio again", lambda: sum(1 for m in audio_inputs(emulator) if m.audio is not None) > muted_at + 5)
    page.page.locator(".live-nb-media-stop").first.click()
    page.wait_for("capture to stop", lambda: state(page).get("captureState") == "stopped", 20)
    live_tracks = page.evaluate(
        "() => Array.from(document.querySelectorAll('video')).flatMap(v => v.srcObject ? v.srcObject.getTracks() : [])"
        ".filter(t => t.readyState === 'live').length"
    )
    assert live_tracks == 0
    # The browser's state update may wait behind earlier ones (ipywidgets sends one at a time); an
    # awaiting cell lets the kernel take comm messages meanwhile.
    index = page.insert_cell(
        "import asyncio\nfor _ in range(100):\n    if streamer.capture_state == 'stopped':\n        break\n"
        "    await asyncio.sleep(0.1)\nprint('state', streamer.capture_state, streamer.audio, streamer.error or 'no-error')"
    )
    page.run_cell(index)
    assert "state stopped False no-error" in page.wait_for_output(index, "state ")


DENIED = """
from live_nb.widgets.media import MediaStreamer
streamer = MediaStreamer(audio=True, video=True, label="browser-test")
streamer
"""


@pytest.mark.parametrize(
    ("drop", "extra", "kind", "words"),
    [
        ("--use-fake-ui-for-media-stream", ["--deny-permission-prompts"], "permission", "refused"),
        ("--use-fake-device-for-media-stream", [], "no_device", "No microphone or camera was found"),
    ],
    ids=["permission-refused", "no-device"],
)
def test_capture_errors_are_shown_in_the_widget_and_in_python(
    lab: LabServer, tmp_path: Path, drop: str, extra: list[str], kind: str, words: str
) -> None:
    from playwright.sync_api import sync_playwright

    user_data_dir = tmp_path / "chromium-denied"
    with sync_playwright() as playwright:
        args = [a for a in CHROMIUM_ARGS if a != drop] + extra
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(user_data_dir), executable_path=CHROMIUM, headless=False, args=args,
            viewport={"width": 1400, "height": 900},
        )
        try:
            page = LabPage(lab, context.pages[0] if context.pages else context.new_page())
            write_notebook(lab.root_dir / "denied.ipynb", [DENIED])
            page.open_notebook("denied.ipynb")
            page.run_cell(0, timeout=90)
            page.wait_for("the error", lambda: state(page).get("captureState") == "error", 30)
            s = state(page)
            assert s["errorKind"] == kind, s
            shown = page.page.locator(".live-nb-media-error").first.inner_text()
            assert words in shown
            index = page.insert_cell(
                "try:\n    streamer.raise_for_error()\nexcept Exception as e:\n"
                "    print('raised', type(e).__name__, e.kind)"
            )
            page.run_cell(index)
            assert f"raised MediaError {kind}" in page.wait_for_output(index, "raised")
            page.screenshot(f"media-{kind}")
        finally:
            context.close()


PLAYER = """
from live_nb.widgets.media import AudioPlayer
player = AudioPlayer(label="browser-test")
player
"""


def test_suspended_audio_offers_enable_audio_and_a_click_starts_it(lab: LabServer, page: LabPage) -> None:
    """A suspended playback context shows "Enable audio"; a real click on it starts the audio.

    Why the test suspends the context itself: Playwright's ``page.evaluate`` counts as a user gesture
    and Chromium carries activation across same-origin reloads (media.md), so a driven page cannot
    be made to start without activation; the browser's own suspension goes through the same
    ``statechange`` handler.
    """
    write_notebook(lab.root_dir / "player.ipynb", [PLAYER])
    page.open_notebook("player.ipynb")
    page.run_cell(0, timeout=90)
    page.wait_for("the player", lambda: state(page).get("outputContext") == "running", 30)
    button = page.page.locator(".live-nb-media-enable").first
    assert not button.is_visible()
    page.evaluate(
        "async () => { const s = globalThis.__live_nb_media.find((x) => x.label === 'browser-test');"
        " await s.player.ctx.suspend(); }"
    )
    button.wait_for(state="visible", timeout=10_000)
    assert "click" in page.page.locator(".live-nb-media-error").first.inner_text()
    assert state(page)["playerState"] == "suspended"
    index = page.insert_cell(
        "import asyncio\nfor _ in range(100):\n    if player.output_context_state == 'suspended':\n        break\n"
        "    await asyncio.sleep(0.1)\nprint('python sees', player.output_context_state, player.player_state)\n"
        "try:\n    player.raise_for_error()\nexcept Exception as e:\n    print('raised', type(e).__name__, e.kind)"
    )
    page.run_cell(index)
    out = page.wait_for_output(index, "raised")
    assert "python sees suspended suspended" in out and "raised MediaError suspended_audio" in out
    button.click()
    page.wait_for("audio to run", lambda: state(page).get("outputContext") == "running", 10)
    page.wait_for("the button to go", lambda: not button.is_visible(), 10)
    assert state(page)["playerState"] == "idle"


MAGICS = [
    "%load_ext live_nb",
    "import os\nurl = os.environ['LIVE_NB_EMULATOR_URL']\n%live connect talk --modality audio --url {url}",
    "%live mic on talk",
]


def test_live_mic_magics_start_and_stop_streaming(lab: LabServer, page: LabPage, emulator: Emulator) -> None:
    """The contract with the magics: `%live mic on|off NAME` drives the session's one streamer."""
    write_notebook(lab.root_dir / "magics.ipynb", MAGICS)
    page.open_notebook("magics.ipynb")
    page.run_all(timeout=120)
    assert "connected 'talk'" in page.cell_outputs(1), page.outputs()
    page.wait_for("capture to stream", lambda: state(page, "").get("captureState") == "streaming", 30)
    page.wait_for("chunks in the emulator", lambda: len(audio_inputs(emulator)) >= 10, 30)
    page.run_cell(page.insert_cell("%live camera on talk"))
    page.wait_for("frames", lambda: any(m.video is not None for m in audio_inputs(emulator)), 15)
    assert page.evaluate("() => globalThis.__live_nb_media.length") == 1  # one streamer, two views
    page.run_cell(page.insert_cell("%live mic off talk"))
    time.sleep(1.0)
    n = sum(1 for m in audio_inputs(emulator) if m.audio is not None)
    frames = sum(1 for m in audio_inputs(emulator) if m.video is not None)
    time.sleep(2.5)
    assert sum(1 for m in audio_inputs(emulator) if m.audio is not None) == n  # mic off
    assert sum(1 for m in audio_inputs(emulator) if m.video is not None) > frames  # camera still on
    page.run_cell(page.insert_cell("%live camera off talk"))
    page.wait_for("capture to stop", lambda: state(page, "").get("captureState") == "stopped", 20)
