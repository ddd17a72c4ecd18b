"""``python -m live_nb.emulator``: --help documents every flag, and a TLS start serves real clients."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets

from live_nb.emulator.cli import build_parser

pytestmark = pytest.mark.timeout(60)

PYTHON = sys.executable
PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


def test_help_documents_every_flag() -> None:
    out = subprocess.run([PYTHON, "-m", "live_nb.emulator", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    flags = [opt for action in build_parser()._actions for opt in action.option_strings if opt.startswith("--")]
    assert len(flags) >= 15
    for action in build_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings  # every flag has help text
    for flag in flags:
        assert flag in out.stdout, flag
    for word in ("--time-scale", "--tls", "--cert-dir", "--mode", "--db", "127.0.0.1"):
        assert word in out.stdout


async def test_cli_starts_with_tls_and_serves(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"
    proc = subprocess.Popen(
        [PYTHON, "-m", "live_nb.emulator", "--port", "0", "--tls", "--cert-dir", str(cert_dir),
         "--db", str(tmp_path / "emu.sqlite3"), "--chunk-delay", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            match = re.search(r"listening on (wss://127\.0\.0\.1:\d+)", line)
            url = match.group(1) if match else None
        assert url is not None
        flavour = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert flavour.startswith("flavour on the bare URL: Vertex AI")  # --mode defaults to vertex
        cert = cert_dir / "cert.pem"
        assert cert.exists() and (cert_dir / "key.pem").exists()
        ctx = ssl.create_default_context(cafile=str(cert))
        async with websockets.connect(url + PATH, ssl=ctx, additional_headers={"x-goog-api-key": "k"}) as ws:
            # Today's default model answers in AUDIO; the reply's text comes as its output transcription.
            await ws.send(json.dumps({"setup": {"model": "models/gemini-3.8-live",
                                                "generationConfig": {"responseModalities": ["AUDIO"]},
                                                "outputAudioTranscription": {}}}))
            assert "setupComplete" in json.loads(await asyncio.wait_for(ws.recv(), 10))
            await ws.send(json.dumps({"clientContent": {"turns": [{"parts": [{"text": "hi cli"}]}], "turnComplete": True}}))
            text, audio = "", 0
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                content = message.get("serverContent", {})
                for part in content.get("modelTurn", {}).get("parts", []):
                    assert part["inlineData"]["mimeType"] == "audio/pcm;rate=24000"
                    audio += len(part["inlineData"]["data"])
                text += content.get("outputTranscription", {}).get("text", "")
                if content.get("turnComplete"):
                    break
        assert '"hi cli"' in text and audio > 0
        # The certificate names 127.0.0.1 and localhost: a client checking hostnames accepts it.
        async with websockets.connect(url.replace("127.0.0.1", "localhost") + PATH, ssl=ctx,
                                      additional_headers={"x-goog-api-key": "k"}):
            pass
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0


@pytest.mark.parametrize("flag", ["--no-speech", None])
async def test_cli_says_once_whether_it_speaks(tmp_path: Path, flag: str | None) -> None:
    """The start-up lines say whether offline speech is on; --no-speech turns it off and says so once
    (the start-up line, and one warning in the log)."""
    args = [PYTHON, "-m", "live_nb.emulator", "--port", "0", "--db", str(tmp_path / "emu.sqlite3"),
            "--log-level", "WARNING", *([flag] if flag else [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("speech: ") for line in lines):
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert line, lines
            lines.append(line)
        said = next(line for line in lines if line.startswith("speech: ")).strip()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    if flag == "--no-speech":
        assert said == "speech: offline speech is off (speech=False, --no-speech): spoken turns are answered " \
            "from their length, replies are a tone"
        assert err.count("offline speech is off") == 1
    else:
        assert said.startswith("speech: offline speech is on: PocketSphinx hears, eSpeak NG speaks")
        assert "offline speech is off" not in err
