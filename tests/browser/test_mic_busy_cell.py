"""The mic keeps flowing into the session while a cell blocks the kernel's main shell.

Real JupyterLab 4.6, headless Chromium with a fake microphone (a WAV with a "spoken" turn every
5 s), a real ipykernel 7 kernel, the emulator in this process. JupyterLab sends widget comm
messages over a per-comm-target subshell; the streamer makes ipykernel handle them there (see
media.py, rule 5), so during ``time.sleep(10)`` or a 10 s CPU-bound loop the chunks still reach the
session about every 100 ms, replies still play, and the next turn still barges in.

The regression this guards: before, one reply chunk sent from the session's loop sent the comm
back to the main shell, and a 10 s sleep let through 0 chunks, then a burst of 100.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import LabPage, LabServer, fake_mic_context, live_loop_emulator, write_notebook
from test_media_browser import audio_inputs, state, write_fake_mic

from live_nb.emulator import Emulator

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SETUP = """
import json, os, time
from live_nb import LiveGenerationConfig, LiveModel, _loop
from live_nb.widgets.media import start_media

async def _open():
    model = LiveModel("gemini-3.8-live", LiveGenerationConfig(response_modalities=["AUDIO"],
                      output_audio_transcription=True), url=os.environ["LIVE_NB_EMULATOR_URL"])
    return await model.connect()

session = _loop.block(_loop.submit(_open()), timeout=30)
streamer = start_media(session, audio=True, label="busy")
WINDOWS = {}
streamer
"""

SLEEP = "t0 = time.time()\ntime.sleep(10)\nWINDOWS['sleep'] = (t0, time.time())"
CPU = "t0 = time.time()\nwhile time.time() < t0 + 10:\n    pass\nWINDOWS['cpu'] = (t0, time.time())"

REPORT = """
def _window(name):
    a, b = WINDOWS[name]
    a += 0.3  # what was queued before the cell started is not the question
    got = [t for t, _ in streamer.arrivals if a <= t <= b]
    sent = [t for t in streamer.feed.audio_sent_at if a <= t <= b]
    gap = lambda ts: max((y - x for x, y in zip(ts, ts[1:])), default=99.0)
    return {"seconds": b - a, "arrived": len(got), "arrival_gap": gap([a, *got, b]),
            "sent": len(sent), "sent_gap": gap([a, *sent, b]),
            "threads": sorted({n for t, n in streamer.arrivals if a <= t <= b})}
print("REPORT", json.dumps({name: _window(name) for name in WINDOWS}))
"""


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with live_loop_emulator(chunk_delay=0.035) as emu:
        yield emu


@pytest.fixture
def lab_env(emulator: Emulator) -> dict[str, str]:
    return {"LIVE_NB_EMULATOR_URL": emulator.url}


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[Any]:
    with fake_mic_context(write_fake_mic(tmp_path / "fake-mic.wav")) as context:
        yield context


def emulator_chunks(emulator: Emulator) -> int:
    return sum(1 for m in audio_inputs(emulator) if m.audio is not None)


def run_busy_cell(page: LabPage, emulator: Emulator, source: str) -> dict[str, Any]:
    """Run ``source`` (a ~10 s blocking cell) and watch the emulator and the page meanwhile."""
    index = page.insert_cell(source)
    page._panel_call("panel.content.activeCellIndex = arg;", index)
    token = page.start_command("notebook:run-cell")
    page.wait_for(
        "the cell to start",
        lambda: page._panel_call("return panel.content.widgets[arg].model.executionState;", index) == "running",
        10,
        interval=0.05,
    )
    time.sleep(0.5)
    before, s0 = emulator_chunks(emulator), state(page, "busy")
    time.sleep(8.0)  # still inside the 10 s cell
    after, s1 = emulator_chunks(emulator), state(page, "busy")
    running = page._panel_call("return panel.content.widgets[arg].model.executionState;", index)
    page.wait_for(f"cell {index} to finish", lambda: page.command_done(token) and page._cells_done(), 60)
    return {
        "emulator_chunks": after - before,
        "played": s1["playedSamples"] - s0["playedSamples"],
        "clears": s1["clears"] - s0["clears"],
        "still_running": running == "running",
    }


def test_mic_flows_and_barge_in_works_while_a_cell_blocks(lab: LabServer, page: LabPage, emulator: Emulator) -> None:
    write_notebook(lab.root_dir / "busy.ipynb", [SETUP])
    page.open_notebook("busy.ipynb")
    page.run_cell(0, timeout=90)
    page.wait_for("capture to stream", lambda: state(page, "busy").get("captureState") == "streaming", 30)
    # A reply has played: the session's loop has sent on the widget's comm (the case that used to
    # pull the comm back to the main shell).
    page.wait_for("a reply playing", lambda: state(page, "busy").get("playedSamples", 0) > 12_000, 30)

    during = {"sleep": run_busy_cell(page, emulator, SLEEP), "cpu": run_busy_cell(page, emulator, CPU)}
    index = page.insert_cell(REPORT)
    page.run_cell(index)
    line = next(x for x in page.wait_for_output(index, "REPORT").splitlines() if x.startswith("REPORT"))
    kernel = json.loads(line.split(" ", 1)[1])
    print("browser/emulator during the cells", during)
    print("kernel", kernel)
    for name in ("sleep", "cpu"):
        seen, k = during[name], kernel[name]
        assert seen["still_running"], (name, seen)  # the 8 s of watching were inside the cell
        # 8 s of a 10 chunk/s mic reached the emulator while the cell ran (not after it).
        assert seen["emulator_chunks"] >= 60, (name, seen)
        # In the kernel: about every chunk of the 9.7 s window arrived in it, none held back for long.
        assert k["arrived"] >= 0.8 * 10 * k["seconds"], (name, k)
        assert k["arrival_gap"] < 1.0 and k["sent_gap"] < 1.0, (name, k)
        assert k["sent"] >= k["arrived"] - 5, (name, k)
        # Handled in JupyterLab's comm subshell, not the busy main thread.
        assert k["threads"] and all(t.startswith("subshell-") for t in k["threads"]), (name, k)
        # Replies kept playing, and the turns the fake mic speaks every 5 s barged in on them.
        assert seen["played"] >= 24_000, (name, seen)
        assert seen["clears"] >= 1, (name, seen)
