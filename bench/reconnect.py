"""How fast a session moves to a new connection, and how big its replay buffer gets over an hour.

Run: ``.venv/bin/python bench/reconnect.py [--runs 200] [--json]``

1. GoAway: the emulator sends GoAway; we time from the client receiving it to ``Resumed`` (old
   socket closed, new one open, setup accepted with the handle, replay written), and also from the
   emulator's ``go_away_now`` call (which saves a fresh checkpoint first).
2. Cut: a loopback TCP proxy aborts the connection (no close frame); we time from the cut to
   ``Resumed``. Five audio chunks sent after the last handle are replayed each time.
Both loops end by checking the emulator's consumed messages against what was sent: zero lost,
zero duplicated.
3. A simulated hour: 36,000 audio chunks (an hour of 100 ms chunks) plus a text turn every five
   simulated minutes, paced against a time-scaled emulator (periodic handle updates every 10
   service seconds, connections living 10 service minutes, so GoAways and resumes happen along
   the way). We sample the replay buffer's size every simulated minute.
In-process emulator on 127.0.0.1; the proxy is the fault-injection test's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_fault_injection import CuttingProxy, audio, describe

from live_nb.client.reconnect import ReconnectPolicy
from live_nb.client.session import LiveModel, LiveSession
from live_nb.emulator import Emulator
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig
from live_nb.protocol.events import Resumed
from live_nb.protocol.messages import GoAway

MODEL = "gemini-3.8-live"  # today's default: AUDIO replies, their text as output transcription
CONFIG = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
# stable_after: a real GoAway comes ~9 minutes into a connection, long past the 5 s after which a
# connection counts as stable; here GoAways come a few milliseconds after each resume, which the
# client would otherwise pace as a storm (on purpose: see client/reconnect.py). A 2 ms stable_after
# lets the bench time the move itself.
POLICY = ReconnectPolicy(min_delay=0.001, max_delay=0.05, max_attempts=50, stable_after=0.002)
KEEP_LOGS = 1 << 30
"""The emulator keeps closed sessions' consumed logs (to 16 MiB by default); the checks need them whole."""


def chunk(n: int) -> bytes:
    return audio(n)  # near-silence numbered in its first samples (never heard as speech)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Marks:
    """Listener recording perf_counter() when a GoAway and a Resumed arrive."""

    def __init__(self) -> None:
        self.go_away: float | None = None
        self.resumed: asyncio.Future[tuple[float, Resumed]] | None = None

    def arm(self) -> asyncio.Future[tuple[float, Resumed]]:
        self.go_away = None
        self.resumed = asyncio.get_running_loop().create_future()
        return self.resumed

    def __call__(self, item: Any) -> None:
        now = time.perf_counter()
        if isinstance(item, GoAway):
            self.go_away = now
        elif isinstance(item, Resumed) and self.resumed is not None and not self.resumed.done():
            self.resumed.set_result((now, item))


async def wait_for(predicate: Any, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.001)


async def drain(session: LiveSession) -> None:
    async for _ in session.receive():
        pass


def check_consumed(emu: Emulator, session: LiveSession, sent: list[str]) -> dict[str, int]:
    assert session.session_id is not None
    consumed = [describe(m) for m in emu.sessions[session.session_id].consumed]
    seen = set(consumed)
    lost = len([s for s in sent if s not in seen])
    duplicated = len(consumed) - len(set(consumed))
    return {"lost": lost, "duplicated": duplicated, "in_order": int(consumed == sent)}


async def bench_moves(runs: int, kind: str) -> dict[str, Any]:
    async with Emulator(chunk_delay=0.0, resumption_update_interval=3600.0, keep_closed_bytes=KEEP_LOGS, speech=False) as emu:
        proxy = CuttingProxy(emu.port)
        await proxy.start()
        url = proxy.url if kind == "cut" else emu.url
        model = LiveModel(MODEL, CONFIG, url=url, reconnect=POLICY)
        session = await model.connect(session_resumption=SessionResumptionConfig(transparent=True))
        marks = Marks()
        session.add_listener(marks)
        reader = asyncio.create_task(drain(session))
        sent: list[str] = []
        n = 0
        from_event: list[float] = []
        from_trigger: list[float] = []
        replayed: list[int] = []
        for run in range(runs):
            if kind == "cut":
                # A turn first: its checkpoint confirms what came before, so each cut replays
                # exactly the five chunks that follow (the emulator's periodic updates are off).
                await session.send_text(f"turn {run}")
                sent.append(f"text:turn {run}")
                await wait_for(lambda: session.replay_depth == 0)
            for _ in range(5):
                await session.send_audio(chunk(n))
                sent.append(f"audio:{n}")
                n += 1
            await asyncio.sleep(0.003)  # let the server consume them (and the connection pass stable_after)
            done = marks.arm()
            start = time.perf_counter()
            if kind == "cut":
                proxy.cut()
            else:
                await emu.go_away_now(time_left=60.0)
            end, resumed = await asyncio.wait_for(done, 10)
            from_trigger.append((end - start) * 1e3)
            if kind == "go_away":
                assert marks.go_away is not None
                from_event.append((end - marks.go_away) * 1e3)
            replayed.append(resumed.replayed)
        await session.send_text("last")
        sent.append("text:last")
        # The checkpoint after the turn confirms everything: nothing left to replay.
        await wait_for(lambda: session.replay_depth == 0)
        integrity = check_consumed(emu, session, sent)
        await session.close()
        await reader
        await proxy.stop()
    out: dict[str, Any] = {
        "runs": runs,
        "p50_ms": percentile(from_trigger, 0.5),
        "p99_ms": percentile(from_trigger, 0.99),
        "max_ms": max(from_trigger),
        "replayed_per_move": sum(replayed) / len(replayed),
        **integrity,
    }
    if from_event:
        out["from_go_away_received_p50_ms"] = percentile(from_event, 0.5)
        out["from_go_away_received_p99_ms"] = percentile(from_event, 0.99)
    return out


async def bench_hour(time_scale: float) -> dict[str, Any]:
    """36,000 chunks paced at time_scale x real time; replay buffer sampled every simulated minute."""
    async with Emulator(chunk_delay=0.0, time_scale=time_scale, keep_closed_bytes=KEEP_LOGS, speech=False) as emu:
        model = LiveModel(MODEL, CONFIG, url=emu.url, reconnect=POLICY)
        session = await model.connect(session_resumption=SessionResumptionConfig(transparent=True))
        reader = asyncio.create_task(drain(session))
        sent: list[str] = []
        samples: list[tuple[int, int, int]] = []  # (minute, depth, bytes)
        peak_depth = peak_bytes = 0
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(36_000):
            # Pace: chunk n is due at n * 0.1 service seconds. Sleep once per ten chunks (one
            # service second): a sleep per chunk would be below the event loop's 1 ms timer grain.
            if n % 10 == 0:
                delay = start + n * 0.1 / time_scale - loop.time()
                # Always yield: ws.send does not unless its buffer is full, and a sender that never
                # yields starves the reader (no handle updates, so the buffer only grows).
                await asyncio.sleep(max(0.0, delay))
            await session.send_audio(chunk(n))
            sent.append(f"audio:{n}")
            peak_depth = max(peak_depth, session.replay_depth)
            peak_bytes = max(peak_bytes, session.replay_bytes)
            if n % 3000 == 2999:  # every five simulated minutes, a text turn
                text = f"minute {n // 600 + 1}"
                await session.send_text(text)
                sent.append(f"text:{text}")
            if n % 600 == 599:
                samples.append((n // 600 + 1, session.replay_depth, session.replay_bytes))
        await wait_for(lambda: session.replay_depth == 0, 30)
        integrity = check_consumed(emu, session, sent)
        reconnects = session.reconnects
        wall = loop.time() - start
        await session.close()
        await reader
    first_half = max(b for m, _, b in samples if m <= 30)
    second_half = max(b for m, _, b in samples if m > 30)
    return {
        "simulated_minutes": 60,
        "wall_seconds": wall,
        "kept_pace": wall <= 1.2 * 3600 / time_scale,
        "time_scale": time_scale,
        "messages": len(sent),
        "resumes": reconnects,
        "peak_replay_depth": peak_depth,
        "peak_replay_bytes": peak_bytes,
        "max_bytes_first_30_min": first_half,
        "max_bytes_last_30_min": second_half,
        "samples": samples,
        **integrity,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "go_away": await bench_moves(args.runs, "go_away"),
        "cut": await bench_moves(args.runs, "cut"),
        "hour": await bench_hour(args.time_scale),
    }


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'move':<10}{'runs':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'replayed':>10}"
          f"{'lost':>6}{'dup':>5}{'in order':>10}")
    for kind in ("go_away", "cut"):
        r = results[kind]
        print(f"{kind:<10}{r['runs']:>6}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['max_ms']:>9.2f}"
              f"{r['replayed_per_move']:>10.1f}{r['lost']:>6}{r['duplicated']:>5}{'yes' if r['in_order'] else 'NO':>10}")
    g = results["go_away"]
    if "from_go_away_received_p50_ms" in g:
        print(f"(GoAway received -> Resumed: p50 {g['from_go_away_received_p50_ms']:.2f} ms, "
              f"p99 {g['from_go_away_received_p99_ms']:.2f} ms)")
    h = results["hour"]
    print(f"\nsimulated hour: {h['messages']:,} messages in {h['wall_seconds']:.1f} s (x{h['time_scale']:g}), "
          f"{h['resumes']} resumes, lost {h['lost']}, duplicated {h['duplicated']}, "
          f"in order {'yes' if h['in_order'] else 'NO'}"
          + ("" if h["kept_pace"] else "  [did NOT keep pace: lower --time-scale]"))
    print(f"replay buffer: peak {h['peak_replay_depth']} messages / {h['peak_replay_bytes'] / 1024:.1f} KiB; "
          f"max first 30 min {h['max_bytes_first_30_min'] / 1024:.1f} KiB, "
          f"last 30 min {h['max_bytes_last_30_min'] / 1024:.1f} KiB ({buffer_trend(h['samples'])})")
    print("minute: " + " ".join(f"{m}:{d}" for m, d, _ in h["samples"][::6]) + "   (buffered messages)")


def buffer_trend(samples: list[tuple[int, int, int]]) -> str:
    """``flat`` when the buffer's mean size over the last half hour is within 2x (+64 KiB) of the first's.

    Why means, not maxima: the buffer peaks when a sample lands during a reply (no handle until it
    ends), so single peaks swing with timing; a leak shows as a rising mean.
    """
    first = [b for m, _, b in samples if m <= 30]
    last = [b for m, _, b in samples if m > 30]
    first_mean, last_mean = sum(first) / len(first), sum(last) / len(last)
    verdict = "flat" if last_mean <= 2 * first_mean + 64 * 1024 else "GROWING"
    return f"{verdict}: mean {first_mean / 1024:.0f} KiB, then {last_mean / 1024:.0f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="moves of each kind (200)")
    parser.add_argument("--time-scale", type=float, default=200.0, help="speed of the simulated hour (200)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
