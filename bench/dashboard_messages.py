"""Message volume from the kernel to the browser while a Dashboard follows a streaming session.

What it measures: a real kernel (jupyter_client) runs an in-process emulator and a LiveSession on
live_nb's loop thread, shows ``Dashboard(session)``, and starts streaming audio; the kernel then
sits idle (as it does while a user watches) and this script counts every widget ``comm_msg`` the
kernel publishes on IOPub during a steady-state window: messages per second and bytes per second
(the JSON of header, parent header, metadata and content, i.e. roughly what the Jupyter server
relays to the browser), split by widget and by kind (chart deltas, trait updates).

Scenarios:
- ``audio 1x``: a microphone at real time, 100 ms chunks (25 tokens/s);
- ``audio+video 10x``: ten seconds of audio per second plus a frame per second and a question
  every 4 s (the teaching notebook's stand-in; compressions and usage reports happen);
- ``idle``: the session is open, nothing streams.

For scale, the table also prints what re-sending the whole series at the same rate would cost.

Usage: ``.venv/bin/python bench/dashboard_messages.py [--seconds 20] [--warmup 3]``
"""

from __future__ import annotations

import argparse
import json
import queue
import time
from collections import defaultdict
from typing import Any

from jupyter_client.manager import start_new_kernel

SETUP = r"""
import asyncio, time, json
from live_nb import _loop
from live_nb.client.session import LiveModel
from live_nb.emulator import Emulator
from live_nb.protocol.config import (ContextWindowCompressionConfig, LiveGenerationConfig,
    SessionResumptionConfig, SlidingWindow)
from live_nb.widgets import Dashboard

async def _start():
    emu = Emulator(chunk_delay=0.005)
    await emu.start()
    config = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True,
        context_window_compression=ContextWindowCompressionConfig(trigger_tokens=5_000,
            sliding_window=SlidingWindow(target_tokens=2_000)))
    s = await LiveModel("gemini-3.8-live", config, url=emu.url).connect(
        session_resumption=SessionResumptionConfig())
    return emu, s

emu, session = _loop.block(_loop.submit(_start()))
dash = Dashboard(session)
display(dash)

async def _stream(speed, video, seconds):
    chunk = bytes(3200 * speed)
    t0, i = time.monotonic(), 0
    while time.monotonic() - t0 < seconds:
        await session.send_audio(chunk)
        if video and i % 10 == 0:
            await session.send_video(b"\xff\xd8 frame")
        if video and i % 40 == 39:
            await session.send_text("what now?")
        i += 1
        await asyncio.sleep(0.1)

ids = {dash.chart.model_id: "chart", dash.connection.model_id: "connection",
       dash.usage.model_id: "usage", dash.transcript.model_id: "transcript"}
print("IDS=" + json.dumps(ids))
"""

START = "feeder = _loop.submit(_stream({speed}, {video}, {seconds}))"
SERIES = "print('SERIES=' + str(len(json.dumps(dash.chart._series.points))) + ',' + str(dash.chart.point_count))"
STOP = """
if "feeder" in globals(): feeder.cancel()
async def _stop():
    await session.close(); await emu.stop()
_loop.block(_loop.submit(_stop()))
dash.close()
"""


def execute(kc: Any, code: str, timeout: float = 30.0) -> str:
    """Run ``code`` and return its stdout, draining IOPub up to the cell's idle status."""
    msg_id = kc.execute(code)
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)
    raise TimeoutError(code[:60])


def wire_size(msg: dict[str, Any]) -> int:
    parts = (msg["header"], msg["parent_header"], msg["metadata"], msg["content"])
    return sum(len(json.dumps(p, default=str)) for p in parts) + sum(len(b) for b in msg.get("buffers") or ())


def measure(kc: Any, ids: dict[str, str], seconds: float) -> dict[tuple[str, str], list[int]]:
    """Count comm messages (by widget and kind) published during ``seconds``."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            continue
        if msg["msg_type"] != "comm_msg":
            continue
        widget = ids.get(msg["content"]["comm_id"], "other")
        method = msg["content"]["data"].get("method", "?")
        kind = "delta" if method == "custom" else method
        entry = counts[(widget, kind)]
        entry[0] += 1
        entry[1] += wire_size(msg)
    return counts


def drain(kc: Any) -> None:
    while True:
        try:
            kc.get_iopub_msg(timeout=0.05)
        except queue.Empty:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window per scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of streaming before measuring")
    args = parser.parse_args()

    scenarios = [("idle", 0, False), ("audio 1x", 1, False), ("audio+video 10x", 10, True)]
    rows = []
    for name, speed, video in scenarios:
        km, kc = start_new_kernel(kernel_name="python3")
        try:
            out = execute(kc, SETUP, timeout=60)
            ids = json.loads(out.split("IDS=", 1)[1].splitlines()[0])
            if speed:
                execute(kc, START.format(speed=speed, video=video, seconds=args.warmup + args.seconds + 5))
            time.sleep(args.warmup)
            drain(kc)
            counts = measure(kc, ids, args.seconds)
            series = execute(kc, SERIES).split("SERIES=", 1)[1].split(",")
            series_bytes, series_points = int(series[0]), int(series[1])
            execute(kc, STOP, timeout=30)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        total_n = sum(v[0] for v in counts.values())
        total_b = sum(v[1] for v in counts.values())
        chart_deltas = counts.get(("chart", "delta"), [0, 0])[0]
        rows.append((name, counts, total_n, total_b, series_bytes, series_points, chart_deltas))

    w = args.seconds
    print(f"\nDashboard kernel -> browser comm traffic, steady state, {w:g} s window per scenario\n")
    print(f"{'scenario':<17} {'widget':<11} {'kind':<7} {'msgs/s':>7} {'bytes/s':>9} {'bytes/msg':>9}")
    print("-" * 65)
    for name, counts, total_n, total_b, series_bytes, series_points, chart_deltas in rows:
        for (widget, kind), (n, b) in sorted(counts.items()):
            print(f"{name:<17} {widget:<11} {kind:<7} {n / w:7.2f} {b / w:9.0f} {b / max(n, 1):9.0f}")
        print(
            f"{name:<17} {'TOTAL':<11} {'':<7} {total_n / w:7.2f} {total_b / w:9.0f} {total_b / max(total_n, 1):9.0f}"
        )
        naive = chart_deltas / w * series_bytes
        print(
            f"{name:<17} (series now {series_points} points, {series_bytes:,} B of JSON: re-sending it with "
            f"every chart update would be {naive:,.0f} B/s)"
        )
        if series_points:
            per_point = series_bytes / series_points
            hour = chart_deltas / w * per_point * 4 * 3600  # the ledger keeps ~4 points a second
            print(
                f"{name:<17} (after an hour: re-sending all ~14,400 points would be {hour / 1e6:,.1f} MB/s; "
                f"the deltas stay at the rate above, the saved trait at <= 600 points)"
            )
        print("-" * 65)


if __name__ == "__main__":
    main()
