"""Voice latency in a real browser: end of the user's speech -> first reply audio played.

What is measured: a real JupyterLab in headless Chromium whose fake microphone plays a WAV of a
spoken question (``scripts/make_speech_wav.py``, eSpeak NG), looped, so the user asks again every
few seconds. A real kernel runs ``start_media`` on a live session with the emulator (in this
process, on live_nb's loop thread). For every turn the page records, on one clock
(``performance.now()``), when the captured voice ended (the last sample above -34 dBFS in the
capture worklet, ``__live_nb_media[i].voice``) and when the player worklet started to output the
reply (``playStarts``; playback waits for 150 ms of audio first, as it does for users). A turn's
latency is the first play start after its voice ended and before the next question starts.

Phases: idle (nothing runs in the kernel), then while a CPU-bound cell runs
(``while time.time() < t: pass``, ``--busy-seconds`` each, several in a row). The emulator's CPU
is this process's CPU time minus its main thread's (the Playwright driver): the emulator's loop
thread and its worker threads (speech recognition, synthesis), divided by the sessions it served.
The kernel side is checked in the same run: the largest gap between mic chunks arriving in the
kernel during the busy cells, and in which thread they were handled.

The emulator speaks (offline speech on, its default): it hears the question with PocketSphinx
(``inputTranscription``) and answers in eSpeak NG speech, 100 ms chunks paced at ``--chunk-delay``
(0.09 s: a little faster than they play, as the service sends). The pacing matters since the
emulator speaks: a spoken reply lasts 10-20 s, longer than the time between questions, and barge-in
is the server's ``interrupted``, so a reply the server had already finished sending (at 0.035 s a
chunk it sends 2.9x faster than real time) would play on in the browser and the next reply would
queue behind it. Paced near real time, every question interrupts the reply still being sent and
its own reply starts the player afresh. It still times the first reply audio played, whatever it is
(``Emulator(speech=False)``'s tone too: ``--no-speech``).

Usage: ``python bench/voice_latency.py [--turns 6] [--busy-seconds 10] [--sentence "..."]``.
Takes about 2-3 minutes and stops by itself (every wait is bounded). Prints tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from harness import LabPage, launch_context, start_lab, write_notebook  # noqa: E402

from live_nb import _loop  # noqa: E402
from live_nb.emulator import Emulator  # noqa: E402

MODEL = "gemini-3.8-live"  # the default: AUDIO replies

SETUP = r"""
import json, os, time
from live_nb import LiveGenerationConfig, LiveModel, _loop
from live_nb.widgets.media import start_media

async def _open():
    config = LiveGenerationConfig(response_modalities=["AUDIO"], input_audio_transcription=True,
                                  output_audio_transcription=True)
    return await LiveModel({model!r}, config, url=os.environ["LIVE_NB_EMULATOR_URL"]).connect()

session = _loop.block(_loop.submit(_open()), timeout=30)
streamer = start_media(session, audio=True, label="bench")
BUSY = []
streamer
"""

BUSY_CELL = "t0 = time.time()\nwhile time.time() < t0 + {seconds}:\n    pass\nBUSY.append(({tag!r}, t0, time.time()))"

KERNEL_REPORT = r"""
def _gaps(a, b):
    ts = [t for t, _ in streamer.arrivals if a <= t <= b]
    return len(ts), max((y - x for x, y in zip([a, *ts], [*ts, b])), default=b - a), b - a
_idle_end = BUSY[0][1] - 1 if BUSY else time.time()
print("KERNEL", json.dumps({
    "busy": [(tag, *_gaps(a + 0.3, b)) for tag, a, b in BUSY],
    "idle": _gaps(_idle_end - 10, _idle_end),
    "threads": sorted({n for _, n in streamer.arrivals}),
    "transcript": streamer.transcript[-120:],
    "reply_chunks": streamer.reply_chunks_sent,
    "heard": [text for _, role, text in session.transcript if role == "user (heard)"][-40:],
}))
"""

JS_TIMES = """() => {
  const s = (globalThis.__live_nb_media || []).find((x) => x.label === 'bench');
  return s ? { now: performance.now(), voice: s.voice.slice(), plays: s.playStarts.slice(),
               captureState: s.captureState, chunks: s.chunksSent, played: s.playedSamples } : null;
}"""


def make_wav(sentence: str, path: Path) -> str:
    """The spoken question, 48 kHz, with 1.5 s of silence either side (3 s between questions)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_speech_wav.py"), sentence, str(path), "--pad", "1.5"],
        check=True, capture_output=True, text=True, timeout=60,
    )
    return out.stdout.splitlines()[0]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def turns(times: dict[str, Any], start: float, end: float) -> tuple[list[float], int]:
    """Latencies (ms) of the turns whose voice ended in [start, end]; and how many got no reply."""
    voice, plays = times["voice"], times["plays"]
    latencies, unanswered = [], 0
    for i, (_v0, v1) in enumerate(voice):
        if not start <= v1 <= end:
            continue
        next_start = voice[i + 1][0] if i + 1 < len(voice) else times["now"]
        first = next((p for p in plays if v1 < p < next_start), None)
        if first is None:
            if i + 1 < len(voice):  # the next question began before any reply: no answer in time
                unanswered += 1
            continue
        latencies.append(first - v1)
    return latencies, unanswered


def busy_cell(page: LabPage, seconds: float, tag: str) -> tuple[float, float]:
    """Run one CPU-bound cell; return when it ran, on the page's clock (from 0.3 s after its start)."""
    index = page.insert_cell(BUSY_CELL.format(seconds=seconds, tag=tag))
    page._panel_call("panel.content.activeCellIndex = arg;", index)
    token = page.start_command("notebook:run-cell")
    page.wait_for("the busy cell to start", lambda: cell_state(page, index) == "running", 20, interval=0.05)
    start = page.evaluate(JS_TIMES)["now"]
    page.wait_for("the busy cell to end", lambda: cell_state(page, index) != "running", seconds + 30, 0.05)
    end = page.evaluate(JS_TIMES)["now"]
    page.wait_for("the kernel", lambda: page.command_done(token) and page._cells_done(), 60)
    return start + 300, end


def cell_state(page: LabPage, index: int) -> str:
    return str(page._panel_call("return panel.content.widgets[arg].model.executionState;", index))


def thread_cpu(tid: int) -> float:
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--turns", type=int, default=6, help="turns to time per phase (default 6)")
    parser.add_argument("--busy-seconds", type=float, default=10.0, help="length of each CPU-bound cell")
    parser.add_argument("--sentence", default="What is the weather like in Paris?")
    parser.add_argument("--dump", type=Path, help="write the raw browser timings (JSON) here")
    parser.add_argument("--chunk-delay", type=float, default=0.09, help="emulator seconds between 100 ms reply chunks")
    parser.add_argument("--no-speech", action="store_true", help="the emulator's tone instead of offline speech")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="live-nb-voice-bench-"))
    wav_note = make_wav(args.sentence, work / "question.wav")
    emu = Emulator(host="127.0.0.1", port=0, chunk_delay=args.chunk_delay, speech=not args.no_speech)
    _loop.block(_loop.submit(emu.start()), timeout=30)
    main_tid = threading.get_native_id()
    lab = start_lab(work / "nb", env={"LIVE_NB_EMULATOR_URL": emu.url})
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            context = launch_context(playwright, work / "chromium", fake_audio=work / "question.wav")
            try:
                page = LabPage(lab, context.pages[0] if context.pages else context.new_page())
                result = run(page, lab.root_dir, args, emu, main_tid)
            finally:
                context.close()
    finally:
        lab.stop()
        _loop.block(_loop.submit(emu.stop()), timeout=30)
        emu.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    report(result, args, wav_note)
    return 0 if result["idle"][0] and result["busy"][0] else 1


def run(page: LabPage, root: Path, args: argparse.Namespace, emu: Emulator, main_tid: int) -> dict[str, Any]:
    write_notebook(root / "voice.ipynb", [SETUP.format(model=MODEL)])
    page.open_notebook("voice.ipynb")
    cpu0, main0, wall0 = time.process_time(), thread_cpu(main_tid), time.monotonic()
    page.run_cell(0, timeout=90)
    page.wait_for("capture to stream", lambda: (page.evaluate(JS_TIMES) or {}).get("captureState") == "streaming", 30)

    # Idle: skip the first question (capture may have started in its middle), then time turns.
    begin = page.evaluate(JS_TIMES)["now"] + 500
    deadline = time.monotonic() + 12 + 6 * args.turns
    while time.monotonic() < deadline:
        time.sleep(1.0)
        times = page.evaluate(JS_TIMES)
        done, missed = turns(times, begin, times["now"])
        if len(done) + missed >= args.turns:
            break
    idle_end = page.evaluate(JS_TIMES)["now"]

    # Busy: CPU-bound cells back to back (a short gap between them is the idle kernel's).
    windows: list[tuple[float, float]] = []
    for _ in range(max(2, min(6, 2 + args.turns // 2))):
        windows.append(busy_cell(page, args.busy_seconds, "subshell"))
        times = page.evaluate(JS_TIMES)
        counted = [turns(times, a, b) for a, b in windows]
        if sum(len(d) + m for d, m in counted) >= args.turns:
            break
    time.sleep(3.0)  # the last busy turn's reply
    # Baseline in the same run: comm messages on the main shell, as JupyterLab < 4.4 (or a kernel
    # without subshells) sends them. The browser's own switch; the kernel code is the same.
    page._panel_call("panel.sessionContext.session.kernel.commsOverSubshells = 'disabled';")
    time.sleep(2.0)
    baseline = [busy_cell(page, args.busy_seconds, "main")]
    time.sleep(6.0)  # what queued behind the cell arrives and is answered
    times = page.evaluate(JS_TIMES)
    cpu, main_cpu, wall = time.process_time() - cpu0, thread_cpu(main_tid) - main0, time.monotonic() - wall0

    index = page.insert_cell(KERNEL_REPORT)
    page.run_cell(index, timeout=60)
    line = next(x for x in page.wait_for_output(index, "KERNEL").splitlines() if x.startswith("KERNEL"))
    busy = [turns(times, a, b) for a, b in windows]
    main_shell = [turns(times, a, b) for a, b in baseline]
    if args.dump:
        args.dump.write_text(json.dumps({"times": times, "idle": [begin, idle_end], "busy": windows + baseline}))
    return {
        "main": ([x for d, _ in main_shell for x in d], sum(m for _, m in main_shell)),
        "silence": emu.settings.silence_seconds,
        "idle": turns(times, begin, idle_end),
        "busy": ([x for d, _ in busy for x in d], sum(m for _, m in busy)),
        "kernel": json.loads(line.split(" ", 1)[1]),
        "emulator_cpu": cpu - main_cpu,
        "bench_main_cpu": main_cpu,
        "wall": wall,
        "sessions": max(1, len(emu.sessions)),
        "emulator_turns": sum(len(s.turns) for s in emu.sessions.values()),
    }


def report(r: dict[str, Any], args: argparse.Namespace, wav_note: str) -> None:
    print(f"\nVoice latency, end of speech -> first reply audio played (real JupyterLab + Chromium, {os.cpu_count()} cores)")
    print(f"fake mic: {wav_note}, looped\n")
    print(f"{'phase':<34} {'turns':>5} {'no reply':>8} {'p50 ms':>8} {'p95 ms':>8} {'min ms':>8} {'max ms':>8}")
    print("-" * 86)
    p50s = {}
    for name, label in (
        ("idle", "kernel idle"),
        ("busy", f"{args.busy_seconds:.0f} s CPU-bound cell running"),
        ("main", "  same, comms on the main shell *"),
    ):
        lat, missed = r[name]
        if lat:
            p50s[name] = statistics.median(lat)
            print(f"{label:<34} {len(lat):5d} {missed:8d} {p50s[name]:8.0f} {percentile(lat, 0.95):8.0f} "
                  f"{min(lat):8.0f} {max(lat):8.0f}")
        else:
            print(f"{label:<34} {0:5d} {missed:8d} {'-':>8} {'-':>8} {'-':>8} {'-':>8}")
    print("-" * 86)
    if "busy" in p50s and "idle" in p50s:
        print(f"busy / idle p50: {p50s['busy'] / p50s['idle']:.2f}x")
    print(f"The emulator ends a turn after {r['silence'] * 1000:.0f} ms of silence: most of every number above.")
    print("* the baseline: the browser told to send comm messages on the main shell (commsOverSubshells")
    print("  'disabled', as JupyterLab < 4.4 or a kernel without subshells does); 'no reply' = the next")
    print("  question began before any reply played.")
    k = r["kernel"]
    gaps = "; ".join(f"[{tag}] {n} chunks in {s:.1f} s, max gap {g * 1000:.0f} ms" for tag, n, g, s in k["busy"])
    n, g, _ = k["idle"]
    print(f"\nmic chunks in the kernel during the busy cells: {gaps}")
    print(f"  idle baseline (10 s before them): {n} chunks, max gap {g * 1000:.0f} ms; "
          f"handled in: {', '.join(k['threads'])}")
    print(f"  reply chunks sent to the browser: {k['reply_chunks']}; last reply transcript: {k['transcript']!r}")
    heard = k.get("heard", [])
    if heard:
        wanted = {w for w in args.sentence.lower().strip("?.!").split() if len(w) > 3} - {"what", "that", "this", "with"}
        good = sum(1 for h in heard if len(wanted & set(h.split())) >= 2)
        print(f"  questions heard (inputTranscription): {len(heard)}, {good} with 2+ of {sorted(wanted)}; "
              f"e.g. {heard[-1]!r}")
    else:
        print("  questions heard (inputTranscription): none (speech off?)")
    per_session = r["emulator_cpu"] / r["sessions"]
    print(f"\nEmulator CPU (this process minus its Playwright main thread): {r['emulator_cpu']:.2f} s over "
          f"{r['wall']:.0f} s, {r['sessions']} speaking session(s), {r['emulator_turns']} turns (questions and replies) in its log")
    print(f"  per speaking session: {100 * per_session / r['wall']:.1f}% of one core; "
          f"{per_session / max(1, r['emulator_turns']) * 1000:.0f} ms CPU per turn "
          f"(bench main thread: {r['bench_main_cpu']:.2f} s)")


if __name__ == "__main__":
    raise SystemExit(main())
