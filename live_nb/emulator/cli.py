"""``python -m live_nb.emulator``: the emulator's command line (flags, start-up lines, signals).

One job: turn flags into an ``Emulator``, print where it listens, run until SIGINT/SIGTERM. A key is
only ever read from the environment variable ``--api-key-env`` names, never from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from ..exceptions import ConfigError
from .routes import FLAVOR_NAMES, is_loopback, remote_warning
from .server import Emulator
from .server_protocol import for_log

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m live_nb.emulator`` argument parser (every flag documented)."""
    parser = argparse.ArgumentParser(
        prog="python -m live_nb.emulator",
        description=(
            "Run the live_nb emulator of the Gemini Live API (BidiGenerateContent over WebSocket). "
            "It accepts the Gemini, Constrained (ephemeral token), Vertex and /vertex gateway paths; any "
            "non-empty credential is accepted unless --api-key-env names the only one. It binds loopback only "
            "unless --allow-remote. Durations are service seconds divided by --time-scale."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1",
        help="interface to bind (default 127.0.0.1); anything but loopback (127.0.0.1, ::1, localhost) needs "
        "--allow-remote and --api-key-env",
    )
    parser.add_argument(
        "--allow-remote", action="store_true",
        help="allow a non-loopback --host, reachable from other machines (then --api-key-env is required)",
    )
    parser.add_argument(
        "--api-key-env", metavar="NAME", default=None,
        help="accept only the API key held in environment variable NAME (401 without a key, 403 with another); "
        "required with --allow-remote. A key is never taken on the command line",
    )
    parser.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default 8765)")
    parser.add_argument("--tls", action="store_true", help="speak wss:// with a generated self-signed certificate")
    parser.add_argument(
        "--cert-dir", default=None,
        help="with --tls: directory for cert.pem and key.pem (reused when present; default a temp dir)",
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0,
        help="divide lifetime, GoAway lead, retention, update interval and reply pacing (60: 10 min -> 10 s)",
    )
    parser.add_argument(
        "--mode", choices=("gemini", "vertex"), default="vertex",
        help="the flavour served on the bare URL: vertex (transparent resumption, system-instruction updates, "
        "24 h handles) or gemini (the Developer API's rules: those refused, 2 h handles)",
    )
    parser.add_argument("--db", default=None, help="SQLite file for resumable state (default a temp file)")
    parser.add_argument(
        "--context-window", type=int, default=None,
        help="context window in tokens (default: each model's input window: 131072 on 3.x, 128000 on 2.5)",
    )
    parser.add_argument(
        "--connection-lifetime", type=float, default=600.0, help="service seconds a connection lives (600)"
    )
    parser.add_argument(
        "--go-away-before", type=float, default=60.0, help="service seconds before the end to send GoAway (60)"
    )
    parser.add_argument(
        "--resumption-update-interval", type=float, default=10.0,
        help="service seconds between periodic SessionResumptionUpdates (10)",
    )
    parser.add_argument(
        "--chunk-delay", type=float, default=0.015, help="service seconds between reply chunks (0.015; 0 = none)"
    )
    parser.add_argument(
        "--retention", type=float, default=None,
        help="service seconds a handle lives after the session's last connection (default 7200 gemini, 86400 vertex)",
    )
    parser.add_argument(
        "--resume-grace", type=float, default=0.5,
        help="wall seconds a resume waits for the session's old connection to close before refusing 1011 (0.5)",
    )
    parser.add_argument(
        "--vad-threshold", type=float, default=500.0,
        help="RMS of 16-bit input audio above which a chunk counts as speech (500)",
    )
    parser.add_argument(
        "--consumed-limit", type=int, default=None,
        help="keep about this many consumed client messages per session in memory (default all)",
    )
    parser.add_argument(
        "--keep-closed", type=int, default=16,
        help="closed sessions kept in memory with their consumed logs (16); older ones are released "
        "(their resumable state stays in the database)",
    )
    parser.add_argument(
        "--keep-closed-mb", type=float, default=16.0,
        help="also release the oldest closed sessions while their consumed logs hold more than this many MiB (16)",
    )
    parser.add_argument(
        "--no-speech", action="store_true",
        help="no offline speech: spoken turns are answered from their length and replies are a tone "
        "(for load runs: recognition costs about a quarter of a core per speaking session)",
    )
    parser.add_argument("--text-frames", action="store_true", help="send server JSON in text frames, not binary")
    parser.add_argument("--compression", action="store_true", help="accept permessage-deflate (off by default)")
    parser.add_argument(
        "--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="logging level (INFO)"
    )
    return parser


def _api_key(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str | None:
    """The key named by ``--api-key-env`` (never from the command line), after the remote-bind rules."""
    remote = not is_loopback(args.host)
    if remote and not args.allow_remote:
        parser.error(
            f"--host {for_log(args.host)} is not a loopback address: the emulator would be reachable from other "
            "machines. Pass --allow-remote (with --api-key-env NAME) if that is what you want."
        )
    if args.allow_remote and remote and not args.api_key_env:
        parser.error("--allow-remote needs --api-key-env NAME: the environment variable holding the only key accepted")
    if args.api_key_env is None:
        return None
    key = os.environ.get(args.api_key_env, "").strip()
    if not key:
        parser.error(f"--api-key-env {for_log(args.api_key_env)}: that environment variable is unset or empty")
    return key


async def _run(args: argparse.Namespace, api_key: str | None) -> None:
    emulator = Emulator(
        host=args.host,
        port=args.port,
        tls=args.tls,
        cert_dir=args.cert_dir,
        time_scale=args.time_scale,
        mode=args.mode,
        db_path=args.db,
        context_window=args.context_window,
        connection_lifetime=args.connection_lifetime,
        go_away_before=args.go_away_before,
        resumption_update_interval=args.resumption_update_interval,
        text_frames=args.text_frames,
        compression=args.compression,
        chunk_delay=args.chunk_delay,
        retention=args.retention,
        resume_grace=args.resume_grace,
        vad_threshold=args.vad_threshold,
        consumed_limit=args.consumed_limit,
        keep_closed=args.keep_closed,
        keep_closed_bytes=int(args.keep_closed_mb * 2**20),
        allow_remote=args.allow_remote,
        api_key=api_key,
        speech=not args.no_speech,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await emulator.start()
    print(f"live_nb emulator listening on {emulator.url}", flush=True)
    print(f"flavour on the bare URL: {FLAVOR_NAMES[emulator.mode]} (--mode)", flush=True)
    if emulator.cert_path:
        print(f"certificate: {emulator.cert_path}", flush=True)
    print(f"database: {emulator.db_path}", flush=True)
    print(f"speech: {emulator.speech_status}", flush=True)
    if api_key is not None:
        print(f"only the key in ${args.api_key_env} is accepted", flush=True)
    if not is_loopback(emulator.host):
        print(remote_warning(emulator.url, args.api_key_env), file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await emulator.stop()
        emulator.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m live_nb.emulator`` and ``live-nb-emulator``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    api_key = _api_key(args, parser)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        with contextlib.suppress(KeyboardInterrupt):  # the signal handler normally catches it first
            asyncio.run(_run(args, api_key))
    except ConfigError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
