"""Throughput and round trip of our client vs raw websockets vs two google-genai releases, against one emulator.

Run: ``.venv/bin/python bench/throughput.py [--n 10000] [--runs 3] [--rtt 300] [--genai-extra 3.6.1] [--json]``

Method (live-protocol.md section 7): the emulator runs in its own process (``python -m
live_nb.emulator``, one over TLS and one plain); every client opens a ``gemini-3.8-live`` session
answering in AUDIO with ``outputAudioTranscription`` (what today's models take: models.md), sends N
``realtimeInput`` audio messages of 3,200 random bytes (100 ms at 16 kHz), then one text turn, and
the clock stops at that turn's ``turnComplete`` (the server handles messages in order, so it has
consumed all N by then). We report
- msgs/s: N divided by that wall time (the server's pace bounds it: it parses every frame);
- client µs/msg: the client process's CPU time over the send loop divided by N, which shows how
  lean each client's per-chunk path is whatever the server's speed; "CPU-bound msgs/s" is its
  inverse;
- RTT: a small ``clientContent`` turn until its ``turnComplete``, as wall time (p50/p99) and as the
  client's CPU per round trip (stable under machine load). The reply is spoken: about 3 s of 24 kHz
  audio in 40 ms chunks plus its transcription and the 3.x ``{}`` frames, ~100 frames a round trip,
  streamed without pacing, so every client parses the same reply stream.
Clients:
- raw websockets: JSON built per message, its own SSLContext (the floor);
- our ``LiveSession`` plain, and in transparent mode (every chunk also goes into the replay buffer;
  on the emulator's Vertex-flavoured ``/vertex`` path, since the Developer API has no transparent
  resumption). Over wss it runs on its DEFAULT TLS path: ``SSL_CERT_FILE`` names the emulator's
  certificate in the environment and ``LiveModel`` gets no ``ssl=`` argument;
- google-genai, unmodified, over wss (method A: ``base_url`` only, no patching; it trusts the
  certificate through the same ``SSL_CERT_FILE``): the venv's pinned release (3.4.0) and the newest
  (``--genai-extra``, 3.6.1), which ``scripts/install-bench-genai.py`` installs into
  ``.bench-deps/genai-VERSION``. Each runs in a worker subprocess (this script with ``--sdk-worker``)
  with its release first on ``PYTHONPATH``, so both are measured in the same run, by the same code,
  against the same emulator and baseline.
Every figure is the median over ``--runs``; ratios compare clients measured in this run.
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

MODEL = "gemini-3.8-live"
PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
VERTEX_GATEWAY_PATH = "/vertex"  # the emulator's Vertex flavour (transparent resumption)
CHUNK = 3200
ROOT = Path(__file__).resolve().parent.parent
GENAI_EXTRA = "3.6.1"  # the newest google-genai when this was written (pip index versions google-genai)


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
                                            "generationConfig": {"responseModalities": ["AUDIO"]},
                                            "outputAudioTranscription": {}}}))
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
async def our_client(url: str, transparent: bool) -> AsyncIterator[tuple[Any, Any]]:
    """Our client as a user runs it: no ``ssl=`` (wss trusts what ``SSL_CERT_FILE`` names)."""
    config = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)
    model = LiveModel(MODEL, config, url=url + (VERTEX_GATEWAY_PATH if transparent else PATH))
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
async def genai_client(url: str) -> AsyncIterator[tuple[Any, Any]]:
    """google-genai as its docs show it, pointed at the emulator by ``base_url`` (TLS trust: SSL_CERT_FILE)."""
    from google import genai
    from google.genai import types

    assert url.startswith("wss://"), "google-genai always dials wss:// (method A)"
    client = genai.Client(api_key="bench", http_options={
        "base_url": url.replace("wss://", "https://"), "api_version": "v1beta"})
    config = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}}
    async with client.aio.live.connect(model=MODEL, config=config) as session:

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


# google-genai releases, each in a worker subprocess.


def genai_path(version: str | None) -> str | None:
    """The directory holding google-genai ``version`` (installed on demand), or None for the venv's own."""
    if version is None:
        return None
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "install-bench-genai.py"), "--version", version],
        check=True, stdout=subprocess.PIPE, text=True,
    )
    return done.stdout.strip().splitlines()[-1]


def sdk_version(path: str | None) -> str:
    """The google-genai version a worker with ``path`` first on PYTHONPATH imports."""
    code = "import google.genai as g; print(g.__version__)"
    done = subprocess.run([sys.executable, "-c", code], env=worker_env(path), check=True,
                          stdout=subprocess.PIPE, text=True)
    return done.stdout.strip()


def worker_env(path: str | None) -> dict[str, str]:
    env = dict(os.environ)  # SSL_CERT_FILE rides along
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH")) if p)
    return env


class SdkWorker:
    """Measures one google-genai release in a subprocess (this script with ``--sdk-worker``)."""

    def __init__(self, url: str, path: str | None, version: str) -> None:
        self.url, self.path, self.version = url, path, version

    async def _run(self, *args: str) -> dict[str, float]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--sdk-worker", *args, "--url", self.url,
            "--expect-version", self.version, env=worker_env(self.path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"google-genai {self.version} worker failed:\n{err.decode()[-3000:]}")
        result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    async def throughput(self, n: int) -> dict[str, float]:
        return await self._run("throughput", "--n", str(n))

    async def rtt(self, samples: int) -> dict[str, float]:
        return await self._run("rtt", "--rtt", str(samples))


class InProcess:
    """Measures a client in this process."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make

    async def throughput(self, n: int) -> dict[str, float]:
        return await measure_throughput(self.make, n)

    async def rtt(self, samples: int) -> dict[str, float]:
        return await measure_rtt(self.make, samples)


async def sdk_worker_main(args: argparse.Namespace) -> dict[str, float]:
    from google import genai

    if genai.__version__ != args.expect_version:
        raise SystemExit(f"worker imported google-genai {genai.__version__}, expected {args.expect_version}")
    if args.sdk_worker == "throughput":
        return await measure_throughput(lambda: genai_client(args.url), args.n)
    return await measure_rtt(lambda: genai_client(args.url), args.rtt)


def sdk_name(version: str) -> str:
    return f"google-genai {version} (wss)"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"n": args.n, "runs": args.runs, "chunk_bytes": CHUNK, "model": MODEL, "clients": {}}
    releases: list[tuple[str, str | None]] = []  # (version, path)
    for path in [None] + ([genai_path(args.genai_extra)] if args.genai_extra else []):
        releases.append((sdk_version(path), path))
    results["google_genai"] = [version for version, _ in releases]
    with tempfile.TemporaryDirectory() as cert_dir, emulator_process(True, cert_dir) as tls_port, \
            emulator_process(False, cert_dir + "-plain") as plain_port:
        cert = str(Path(cert_dir) / "cert.pem")
        ctx = ssl.create_default_context(cafile=cert)  # the raw baseline's own context
        # Our client and google-genai trust the emulator the way a user's code would: by environment.
        os.environ["SSL_CERT_FILE"] = cert
        wss, ws = f"wss://127.0.0.1:{tls_port}", f"ws://127.0.0.1:{plain_port}"
        clients: dict[str, Any] = {
            "raw websockets (ws)": InProcess(lambda: raw_client(ws, None)),
            "live_nb (ws)": InProcess(lambda: our_client(ws, False)),
            "live_nb transparent (ws)": InProcess(lambda: our_client(ws, True)),
            "raw websockets (wss)": InProcess(lambda: raw_client(wss, ctx)),
            "live_nb (wss)": InProcess(lambda: our_client(wss, False)),
            "live_nb transparent (wss)": InProcess(lambda: our_client(wss, True)),
        }
        for version, path in releases:
            clients[sdk_name(version)] = SdkWorker(wss, path, version)
        for _ in range(args.runs):  # interleave clients so drift in machine load hits all alike
            for name, client in clients.items():
                run = await client.throughput(args.n)
                results["clients"].setdefault(name, {"runs": []})["runs"].append(run)
        for name, client in clients.items():
            entry = results["clients"][name]
            entry.update(median_of(entry.pop("runs")))
            if args.rtt and "transparent" not in name:
                entry.update(await client.rtt(args.rtt))
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
    raw, ours = c["raw websockets (wss)"], c["live_nb (wss)"]
    sdk_ratios: dict[str, dict[str, float]] = {}
    for version, _ in releases:
        sdk = c[sdk_name(version)]
        row = {
            "msgs/s vs raw": sdk["msgs_per_s"] / raw["msgs_per_s"],
            "CPU-bound vs raw": raw["client_us_per_msg"] / sdk["client_us_per_msg"],
            "live_nb msgs/s vs it": ours["msgs_per_s"] / sdk["msgs_per_s"],
            "live_nb CPU-bound vs it": sdk["client_us_per_msg"] / ours["client_us_per_msg"],
        }
        if "rtt_p50_us" in sdk and "rtt_p50_us" in raw:
            row["RTT p50 vs raw"] = sdk["rtt_p50_us"] / raw["rtt_p50_us"]
            row["RTT client CPU vs raw"] = sdk["rtt_client_cpu_us"] / raw["rtt_client_cpu_us"]
        sdk_ratios[version] = row
        ratios[f"msgs/s live_nb / google-genai {version} (wss)"] = row["live_nb msgs/s vs it"]
        ratios[f"CPU-bound live_nb / google-genai {version} (wss)"] = row["live_nb CPU-bound vs it"]
    results["ratios"] = ratios
    results["sdk_vs_raw_wss"] = sdk_ratios
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['model']}, AUDIO + output transcription; {results['n']:,} audio messages of "
          f"{results['chunk_bytes']:,} bytes, median of {results['runs']} runs\n")
    head = (f"{'client':<30}{'msgs/s':>10}{'client µs/msg':>15}{'CPU-bound msgs/s':>18}{'RTT p50 µs':>12}"
            f"{'RTT p99 µs':>12}{'RTT CPU µs':>12}")
    print(head)
    print("-" * len(head))
    for name, r in results["clients"].items():
        rtt50 = f"{r['rtt_p50_us']:>12,.0f}" if "rtt_p50_us" in r else f"{'':>12}"
        rtt99 = f"{r['rtt_p99_us']:>12,.0f}" if "rtt_p99_us" in r else f"{'':>12}"
        rtt99 += f"{r['rtt_client_cpu_us']:>12,.0f}" if "rtt_client_cpu_us" in r else ""
        print(f"{name:<30}{r['msgs_per_s']:>10,.0f}{r['client_us_per_msg']:>15.1f}"
              f"{1e6 / r['client_us_per_msg']:>18,.0f}{rtt50}{rtt99}")
    print()
    for key, value in results["ratios"].items():
        print(f"{key:<48}{value:>8.2f}")
    sdk = results["sdk_vs_raw_wss"]
    if sdk:
        print("\ngoogle-genai releases side by side, against raw websockets (wss) of this run:\n")
        keys = list(next(iter(sdk.values())))
        print(f"{'':<26}" + "".join(f"{'google-genai ' + v:>22}" for v in sdk))
        for key in keys:
            print(f"{key:<26}" + "".join(f"{sdk[v].get(key, float('nan')):>22.2f}" for v in sdk))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="audio messages per run (10000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per client; the median is shown (3)")
    parser.add_argument("--rtt", type=int, default=300, help="round-trip samples per client (300; 0 = skip)")
    parser.add_argument(
        "--genai-extra", default=GENAI_EXTRA,
        help=f"a second google-genai release to measure beside the venv's ({GENAI_EXTRA}; '' = none)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--sdk-worker", choices=("throughput", "rtt"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--expect-version", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sdk_worker:
        print(json.dumps(asyncio.run(sdk_worker_main(args))))
        return
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
