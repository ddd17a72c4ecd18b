"""Memory of the client and the emulator: many sessions opened and closed, and a message flood.

Run: ``.venv/bin/python bench/memory.py [--sessions 1000] [--flood 400000] [--quick]``

1. Sessions: the emulator runs in its own process (``python -m live_nb.emulator`` on a free
   loopback port, replies unpaced); the client, in this process, opens a session (with
   resumption), has one short text turn, and closes it, ``--sessions`` times in a row. RSS of both
   is read before and after (``/proc/PID/statm``), the emulator's again after a 2 s rest.
2. Flood: a tiny server of our own in another process sends ``--flood`` small ``serverContent``
   messages (one long reply with no end, then short turns with heard text and a handle now and
   then); nobody iterates ``receive()`` (the magics only listen). Client RSS before and after,
   and what the session's bounds let go.
RSS after ``gc.collect()``; Python rarely gives freed memory back, so "after" is an upper bound of
what is held. Loopback only; about a minute for the defaults on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from live_nb.client.reconnect import ReconnectPolicy
from live_nb.client.session import LiveModel
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig
from live_nb.protocol.messages import ServerContent

MODEL = "gemini-3.8-live"
CONFIG = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
MB = 1024 * 1024

FLOOD_SERVER = Path(__file__).resolve().parent.parent / "tests" / "flood_server.py"  # shared with the tests


def rss(pid: int | str = "self") -> int:
    """Resident memory of a process in bytes (Linux /proc)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_listening(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return


async def one_session(model: LiveModel) -> None:
    async with model.connect(session_resumption=SessionResumptionConfig()) as session:
        done = asyncio.Event()
        remove = session.add_listener(
            lambda item: done.set() if isinstance(item, ServerContent) and item.turn_complete else None
        )
        await session.send_text("hello")
        async with asyncio.timeout(30):
            await done.wait()
        remove()


async def bench_sessions(count: int) -> dict[str, Any]:
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "live_nb.emulator", "--port", str(port), "--chunk-delay", "0", "--no-speech",
         "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
    )
    try:
        await wait_listening(port)
        model = LiveModel(MODEL, CONFIG, url=f"ws://127.0.0.1:{port}", reconnect=ReconnectPolicy.off())
        await one_session(model)  # warm both sides up: imports, caches, the first allocations
        gc.collect()
        client_before, emulator_before = rss(), rss(emulator.pid)
        start = time.perf_counter()
        for _ in range(count):
            await one_session(model)
        seconds = time.perf_counter() - start
        gc.collect()
        client_after, emulator_after = rss(), rss(emulator.pid)
        await asyncio.sleep(2.0)
        emulator_rested = rss(emulator.pid)
    finally:
        emulator.terminate()
        try:
            emulator.wait(10)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait()
    return {
        "count": count,
        "seconds": seconds,
        "client": (client_before, client_after),
        "emulator": (emulator_before, emulator_after),
        "emulator_rested": emulator_rested,
    }


async def bench_flood(messages: int) -> dict[str, Any]:
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(FLOOD_SERVER), str(messages), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int(await asyncio.wait_for(server.stdout.readline(), 30))
        model = LiveModel(MODEL, CONFIG, url=f"ws://127.0.0.1:{port}", reconnect=ReconnectPolicy.off())
        seen = 0
        ended = asyncio.Event()

        def listen(item: Any) -> None:
            nonlocal seen
            seen += 1
            if isinstance(item, ServerContent) and item.output_transcription and item.output_transcription.text == "END":
                ended.set()

        gc.collect()
        before = rss()
        start = time.perf_counter()
        session = await model.connect(session_resumption=SessionResumptionConfig())
        session.add_listener(listen)
        async with asyncio.timeout(600):
            await ended.wait()
        seconds = time.perf_counter() - start
        gc.collect()
        after = rss()
        result = {
            "messages": seen,
            "seconds": seconds,
            "client": (before, after),
            "events": len(session.events),
            "transcript": len(session.transcript),
            # getattr: the bench also runs against older live_nb, which kept everything
            "dropped_events": getattr(session, "dropped_events", 0),
            "dropped_transcript": getattr(session, "dropped_transcript", 0),
            "dropped_text": getattr(session, "dropped_text", 0),
            "dropped_received": getattr(session, "dropped_received", 0),
        }
        await session.close()
        return result
    finally:
        with contextlib.suppress(ProcessLookupError):
            server.kill()
        await server.wait()


def row(what: str, before: int, after: int, note: str) -> str:
    delta = after - before
    return f"{what:<34} {before / MB:>9.1f} {after / MB:>9.1f} {delta / MB:>+9.1f} {after / before:>7.2f}  {note}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000, help="0 skips the sessions part")
    parser.add_argument("--flood", type=int, default=400_000)
    parser.add_argument("--quick", action="store_true", help="50 sessions and a 20,000-message flood (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.flood = 50, 20_000
    sessions = await bench_sessions(args.sessions) if args.sessions > 0 else None
    flood = await bench_flood(args.flood)

    print("\nmemory (RSS, MiB): " + (
        f"{sessions['count']:,} sessions opened, one turn each, closed in {sessions['seconds']:.1f} s; " if sessions else ""
    ) + f"{flood['messages']:,}-message flood in {flood['seconds']:.1f} s")
    print(f"{'':<34} {'before':>9} {'after':>9} {'delta':>9} {'ratio':>7}  note")
    if sessions is not None:
        n = sessions["count"]
        c0, c1 = sessions["client"]
        e0, e1 = sessions["emulator"]
        print(row(f"client, {n:,} sessions", c0, c1, f"{(c1 - c0) / n / 1024:+.1f} KiB a session"))
        print(row(f"emulator, {n:,} sessions", e0, e1, f"{(e1 - e0) / n / 1024:+.1f} KiB a session"))
        print(row("emulator, 2 s later", e0, sessions["emulator_rested"], "after a rest"))
    f0, f1 = flood["client"]
    print(row(f"client, {flood['messages']:,}-message flood", f0, f1,
              f"{(f1 - f0) / max(flood['messages'], 1):+.1f} B a message"))
    print(f"\nflood: kept {flood['events']:,} events and {flood['transcript']:,} transcript entries; dropped "
          f"{flood['dropped_events']:,} events, {flood['dropped_transcript']:,} transcript entries, "
          f"{flood['dropped_text']:,} characters of reply text, {flood['dropped_received']:,} items nobody received")


if __name__ == "__main__":
    asyncio.run(main())
