"""Throughput and round trip of our client vs raw websockets vs google-genai, against one emulator.

Run: ``.venv/bin/python bench/throughput.py [--n 10000] [--runs 3] [--rtt 300] [--json]``

Method (live-protocol.md section 7): the emulator runs in its own process (``python -m
live_nb.emulator --tls``); each client sends N ``realtimeInput`` audio messages of 3,200 random
bytes (100 ms at 16 kHz), then one text turn, and the clock stops at that turn's ``turnComplete``
(the server handles messages in order, so it has consumed all N by then). We report
- msgs/s: N divided by that wall time (the server's pace bounds it: it parses every frame);
- client µs/msg: the client process's CPU time over the send loop divided by N, which shows how
  lean each client's per-chunk path is whatever the server's speed; "CPU-bound msgs/s" is its
  inverse;
- RTT: a small ``clientContent`` turn until its ``turnComplete`` (reply streaming without pacing),
  as wall time (p50/p99) and as the client's CPU per round trip (stable under machine load).
Clients: raw websockets (JSON built per message), our ``LiveSession`` plain and in transparent
mode (every chunk also goes into the replay buffer), and google-genai 3.4.0 over TLS (method A:
no patching). Every figure is the median over ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import websockets

from live_nb.client.session import LiveModel
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig
from live_nb.protocol.messages import UsageMetadata

MODEL = "gemini-live-2.5-flash-preview"
PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
CHUNK = 3200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def emulator_process(tls: bool, cert_dir: str) -> Any:
    port = free_port()
    cmd = [sys.executable, "-m", "live_nb.emulator", "--host", "127.0.0.1", "--port", str(port),
           "--chunk-delay", "0", "--log-level", "WARNING", "--context-window", "2000000"]
    if tls:
        cmd += ["--tls", "--cert-dir", cert_dir]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"emulator exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.05)
        if tls:
            deadline = time.monotonic() + 10
            while not (Path(cert_dir) / "cert.pem").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# One client each: an async context giving (send_chunk, ask_and_wait).

Client = Callable[[], Any]


@contextlib.asynccontextmanager
async def raw_client(url: str, ctx: ssl.SSLContext | None) -> AsyncIterator[tuple[Any, Any]]:
    async with websockets.connect(url + PATH, additional_headers={"x-goog-api-key": "bench"}, ssl=ctx,
                                  compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}",
                                            "generationConfig": {"responseModalities": ["TEXT"]}}}))
        await ws.recv()

        async def send(chunk: bytes) -> None:
            await ws.send(json.dumps({"realtimeInput": {"audio": {
                "data": base64.b64encode(chunk).decode("ascii"), "mimeType": "audio/pcm;rate=16000"}}}))

        async def ask(text: str) -> None:
            await ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                                        "turnComplete": True}}))
            while True:
                message = json.loads(await ws.recv())
                if message.get("serverContent", {}).get("turnComplete"):
                    return

        yield send, ask


@contextlib.asynccontextmanager
async def our_client(url: str, ctx: ssl.SSLContext | None, transparent: bool) -> AsyncIterator[tuple[Any, Any]]:
    model = LiveModel(MODEL, LiveGenerationConfig(response_modalities=["TEXT"]), url=url, ssl=ctx)
    resumption = SessionResumptionConfig(transparent=True) if transparent else None
    async with model.connect(session_resumption=resumption) as session:
        receive = session.receive()

        async def ask(text: str) -> None:
            await session.send_text(text)
            async for item in receive:
                if isinstance(item, UsageMetadata):
                    return

        yield session.send_audio, ask


@contextlib.asynccontextmanager
async def genai_client(url: str, ctx: ssl.SSLContext | None) -> AsyncIterator[tuple[Any, Any]]:
    from google import genai
    from google.genai import types

    assert ctx is not None, "google-genai needs TLS (method A)"
    client = genai.Client(api_key="bench", http_options={
        "base_url": url.replace("wss://", "https://"), "api_version": "v1beta",
        "async_client_args": {"ssl": ctx}})
    async with client.aio.live.connect(model=MODEL, config={"response_modalities": ["TEXT"]}) as session:

        async def send(chunk: bytes) -> None:
            await session.send_realtime_input(audio=types.Blob(data=chunk, mime_type="audio/pcm;rate=16000"))

        async def ask(text: str) -> None:
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text=text)]),
                                              turn_complete=True)
            async for message in session.receive():
                if message.server_content and message.server_content.turn_complete:
                    return

        yield send, ask


async def measure_throughput(make: Callable[[], Any], n: int) -> dict[str, float]:
    chunks = [os.urandom(CHUNK) for _ in range(64)]
    async with make() as (send, ask):
        await ask("warm up")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(n):
            await send(chunks[i & 63])
        cpu1 = time.process_time()
        await ask("done?")
        wall1 = time.perf_counter()
    return {"msgs_per_s": n / (wall1 - wall0), "client_us_per_msg": (cpu1 - cpu0) / n * 1e6}


async def measure_rtt(make: Callable[[], Any], samples: int, warmup: int = 20) -> dict[str, float]:
    times: list[float] = []
    async with make() as (_send, ask):
        for i in range(warmup):
            await ask(f"warm {i}")
        cpu0 = time.process_time()
        for i in range(samples):
            start = time.perf_counter()
            await ask(f"ping {i}")
            times.append(time.perf_counter() - start)
        cpu = time.process_time() - cpu0
    times.sort()
    return {
        "rtt_p50_us": times[len(times) // 2] * 1e6,
        "rtt_p99_us": times[int(len(times) * 0.99) - 1] * 1e6,
        # Wall RTT includes the emulator's work and the machine's load; the client's own CPU per
        # round trip (send, then parse every reply frame up to turnComplete) is the stable part.
        "rtt_client_cpu_us": cpu / samples * 1e6,
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"n": args.n, "runs": args.runs, "chunk_bytes": CHUNK, "clients": {}}
    with tempfile.TemporaryDirectory() as cert_dir, emulator_process(True, cert_dir) as tls_port, \
            emulator_process(False, cert_dir + "-plain") as plain_port:
        ctx = ssl.create_default_context(cafile=str(Path(cert_dir) / "cert.pem"))
        wss, ws = f"wss://127.0.0.1:{tls_port}", f"ws://127.0.0.1:{plain_port}"
        clients: dict[str, Callable[[], Any]] = {
            "raw websockets (ws)": lambda: raw_client(ws, None),
            "live_nb (ws)": lambda: our_client(ws, None, False),
            "live_nb transparent (ws)": lambda: our_client(ws, None, True),
            "raw websockets (wss)": lambda: raw_client(wss, ctx),
            "live_nb (wss)": lambda: our_client(wss, ctx, False),
            "live_nb transparent (wss)": lambda: our_client(wss, ctx, True),
            "google-genai (wss)": lambda: genai_client(wss, ctx),
        }
        for _ in range(args.runs):  # interleave clients so drift in machine load hits all alike
            for name, make in clients.items():
                run = await measure_throughput(make, args.n)
                results["clients"].setdefault(name, {"runs": []})["runs"].append(run)
        for name, make in clients.items():
            entry = results["clients"][name]
            entry.update(median_of(entry.pop("runs")))
            if args.rtt and "transparent" not in name:
                entry.update(await measure_rtt(make, args.rtt))
    c = results["clients"]
    ratios: dict[str, float] = {}
    for tag in ("ws", "wss"):
        raw, ours, transp = c[f"raw websockets ({tag})"], c[f"live_nb ({tag})"], c[f"live_nb transparent ({tag})"]
        ratios[f"msgs/s live_nb / raw ({tag})"] = ours["msgs_per_s"] / raw["msgs_per_s"]
        ratios[f"msgs/s transparent / raw ({tag})"] = transp["msgs_per_s"] / raw["msgs_per_s"]
        ratios[f"CPU-bound live_nb / raw ({tag})"] = raw["client_us_per_msg"] / ours["client_us_per_msg"]
        ratios[f"CPU-bound transparent / raw ({tag})"] = raw["client_us_per_msg"] / transp["client_us_per_msg"]
        if "rtt_p50_us" in ours:
            ratios[f"RTT p50 live_nb / raw ({tag})"] = ours["rtt_p50_us"] / raw["rtt_p50_us"]
            ratios[f"RTT client CPU live_nb / raw ({tag})"] = ours["rtt_client_cpu_us"] / raw["rtt_client_cpu_us"]
    genai = c["google-genai (wss)"]
    ratios["msgs/s live_nb / google-genai (wss)"] = c["live_nb (wss)"]["msgs_per_s"] / genai["msgs_per_s"]
    ratios["CPU-bound live_nb / google-genai (wss)"] = genai["client_us_per_msg"] / c["live_nb (wss)"][
        "client_us_per_msg"]
    results["ratios"] = ratios
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['n']:,} audio messages of {results['chunk_bytes']:,} bytes, median of {results['runs']} runs\n")
    head = (f"{'client':<28}{'msgs/s':>10}{'client µs/msg':>15}{'CPU-bound msgs/s':>18}{'RTT p50 µs':>12}"
            f"{'RTT p99 µs':>12}{'RTT CPU µs':>12}")
    print(head)
    print("-" * len(head))
    for name, r in results["clients"].items():
        rtt50 = f"{r['rtt_p50_us']:>12,.0f}" if "rtt_p50_us" in r else f"{'':>12}"
        rtt99 = f"{r['rtt_p99_us']:>12,.0f}" if "rtt_p99_us" in r else f"{'':>12}"
        rtt99 += f"{r['rtt_client_cpu_us']:>12,.0f}" if "rtt_client_cpu_us" in r else ""
        print(f"{name:<28}{r['msgs_per_s']:>10,.0f}{r['client_us_per_msg']:>15.1f}"
              f"{1e6 / r['client_us_per_msg']:>18,.0f}{rtt50}{rtt99}")
    print()
    for key, value in results["ratios"].items():
        print(f"{key:<44}{value:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="audio messages per run (10000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per client; the median is shown (3)")
    parser.add_argument("--rtt", type=int, default=300, help="round-trip samples per client (300; 0 = skip)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
