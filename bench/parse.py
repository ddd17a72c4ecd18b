"""Cost of ``parse_server_frame`` per frame kind, before and after, against json.loads.

Run: ``.venv/bin/python bench/parse.py [--before REV] [--repeat 7] [--json]``

Why: a spoken reply is ~100 frames a round trip and parsing them is most of the client's cost
over raw websockets in bench/throughput.py's RTT (issue 12). Method: one emulator turn is
captured over raw websockets (``gemini-3.8-live``, AUDIO + output transcription, the text
"ping 0", as throughput.py's RTT loop sends it), and a few frames of other kinds are written out
(a snake_case audio chunk, a tool call, a resumption update, a GoAway). Each frame is timed with
``timeit`` on the process's CPU clock (best of ``--repeat``) through json.loads and through ``parse_server_frame`` of the
working tree ("after") and of ``--before`` (a ``git archive`` of that revision), each in a worker
subprocess with its tree first on ``PYTHONPATH``, alternated twice so machine load hits both
alike; a cell is the lower of its two runs. "turn mix" is the mean over the captured turn's
frames in order, which is what a round trip pays.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import MODEL, PATH, emulator_process

ROOT = Path(__file__).resolve().parent.parent
CLOCK = time.process_time  # CPU time: on a shared machine, wall time also counts other processes' turns
BEFORE = "c9e31c9"  # the last commit before parse_server_frame's fast path

AUDIO_B64 = base64.b64encode(bytes(range(256)) * 7 + bytes(128)).decode()  # 2,560 characters: a 40 ms chunk
EXTRA_FRAMES = {
    "audio chunk, snake_case": {"server_content": {"model_turn": {"role": "model", "parts": [
        {"inline_data": {"data": AUDIO_B64, "mime_type": "audio/pcm;rate=24000"}}]}}},
    "toolCall": {"toolCall": {"functionCalls": [{"id": "c1", "name": "lookup", "args": {"city": "Paris", "n": 3}}]}},
    "sessionResumptionUpdate": {"sessionResumptionUpdate": {"newHandle": "h" * 40, "resumable": True}},
    "goAway": {"goAway": {"timeLeft": "50s"}},
}


async def capture(port: int) -> list[str]:
    """One setup and one spoken turn's frames, as raw text."""
    url = f"ws://127.0.0.1:{port}{PATH}"
    async with websockets.connect(url, additional_headers={"x-goog-api-key": "bench"}, compression=None,
                                  max_size=None) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}",
                                            "generationConfig": {"responseModalities": ["AUDIO"]},
                                            "outputAudioTranscription": {}}}))
        frames = [await ws.recv()]
        await ws.send(json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "ping 0"}]}],
                                                    "turnComplete": True}}))
        while True:
            frame = await ws.recv()
            frames.append(frame)
            if "usageMetadata" in json.loads(frame):
                break
    return [f.decode() if isinstance(f, bytes) else f for f in frames]


def kind(frame: str) -> str:
    """A frame's kind for the table: its shape in words."""
    data = json.loads(frame)
    if not data:
        return "{}"
    if "setupComplete" in data:
        return "setupComplete"
    if "usageMetadata" in data:
        return "turnComplete + usage"
    content = data.get("serverContent", {})
    if "modelTurn" in content:
        return "audio chunk + transcription" if "outputTranscription" in content else "audio chunk"
    return "serverContent " + ",".join(content)


def worker(path: str, repeat: int) -> dict[str, Any]:
    """Time json.loads and parse_server_frame on each frame (microseconds, best of ``repeat``)."""
    import live_nb
    from live_nb.protocol.messages import parse_server_frame

    spec = json.loads(Path(path).read_text())
    out: dict[str, Any] = {"module": live_nb.__file__, "frames": {}}
    for name, text in spec["frames"].items():
        frame = text.encode()
        number = 2000
        loads = min(timeit.repeat(lambda f=frame: json.loads(f), number=number, repeat=repeat, timer=CLOCK)) / number
        parse = min(timeit.repeat(lambda f=frame: parse_server_frame(f), number=number, repeat=repeat,
                                  timer=CLOCK)) / number
        out["frames"][name] = {"loads": loads * 1e6, "parse": parse * 1e6}
    turn = [t.encode() for t in spec["turn"]]

    def run_loads() -> None:
        for f in turn:
            json.loads(f)

    def run_parse() -> None:
        for f in turn:
            parse_server_frame(f)

    number = 30
    out["mix"] = {
        "loads": min(timeit.repeat(run_loads, number=number, repeat=repeat, timer=CLOCK)) / number / len(turn) * 1e6,
        "parse": min(timeit.repeat(run_parse, number=number, repeat=repeat, timer=CLOCK)) / number / len(turn) * 1e6,
    }
    return out


def run_worker(tree: Path, spec: Path, repeat: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, __file__, "--worker", str(spec), "--repeat", str(repeat)],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"worker on {tree} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    if not result["module"].startswith(str(tree)):
        raise RuntimeError(f"worker imported {result['module']}, not the tree under {tree}")
    return result


def best(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Cell by cell, the lower of two runs."""
    if isinstance(a, dict):
        return {k: best(a[k], b[k]) for k in a}
    return min(a, b) if isinstance(a, float) else a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"revision to compare with ({BEFORE})")
    parser.add_argument("--repeat", type=int, default=7, help="timeit repeats; the best is kept (7)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.repeat)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        with emulator_process(False, tmp + "/certs") as port:
            frames = asyncio.run(capture(port))
        turn = frames[1:]
        named: dict[str, str] = {}
        counts: dict[str, int] = {}
        for frame in frames:
            name = kind(frame)
            named.setdefault(name, frame)
            counts[name] = counts.get(name, 0) + (frame is not frames[0])
        for name, value in EXTRA_FRAMES.items():
            named[name] = json.dumps(value, separators=(",", ":"))
        spec = Path(tmp) / "frames.json"
        spec.write_text(json.dumps({"frames": named, "turn": turn}))

        before_tree = Path(tmp) / "before"
        before_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "live_nb"],
                                 check=True, capture_output=True).stdout
        archive_path = Path(tmp) / "before.tar"
        archive_path.write_bytes(archive)
        with tarfile.open(archive_path) as tar:
            tar.extractall(before_tree, filter="data")
        version = ROOT / "live_nb" / "_version.py"  # written by the build, not in git
        if version.exists():
            (before_tree / "live_nb" / "_version.py").write_text(version.read_text())

        runs = []
        for _ in range(2):
            runs.append((run_worker(before_tree, spec, args.repeat), run_worker(ROOT, spec, args.repeat)))
        before = best(runs[0][0], runs[1][0])
        after = best(runs[0][1], runs[1][1])

    rows = [(name, counts.get(name, 0), before["frames"][name], after["frames"][name]) for name in named]
    rows.append(("turn mix (per frame)", len(turn), before["mix"], after["mix"]))
    if args.json:
        print(json.dumps({"before": args.before, "rows": [
            {"kind": n, "in_turn": c, "loads_us": min(b["loads"], a["loads"]), "before_us": b["parse"],
             "after_us": a["parse"]} for n, c, b, a in rows]}, indent=2))
        return
    print(f"\nparse_server_frame per frame kind, before ({args.before}) and after (working tree); "
          f"CPU µs per frame, best of {args.repeat}\n")
    header = (f"{'frame kind':30s} {'in turn':>7s} {'json.loads':>10s} {'before':>8s} {'after':>8s} "
              f"{'before/loads':>12s} {'after/loads':>11s} {'speedup':>7s}")
    print(header)
    print("-" * len(header))
    for name, count, b, a in rows:
        loads = min(b["loads"], a["loads"])
        print(f"{name:30s} {count:7d} {loads:10.2f} {b['parse']:8.2f} {a['parse']:8.2f} "
              f"{b['parse'] / loads:12.2f} {a['parse'] / loads:11.2f} {b['parse'] / a['parse']:6.2f}x")


if __name__ == "__main__":
    main()
