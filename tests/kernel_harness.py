"""A real Jupyter kernel for tests, with every iopub message recorded and its parent kept.

Why raw iopub: nbclient keeps only messages whose parent is the cell it is running, so output
that lands late (or in the wrong cell) would be invisible to it (kernel-loop.md, exp4b). Here a
reader thread records every iopub message with the time it arrived, and tests assert on
``parent_header.msg_id``.

Kernels start with no API key in their environment and a private emulator database, in a
temporary working directory (so no stray ``.env`` is read). ``Kernel(workdir, bare=True, **env)``
starts one as a user's would: nothing of live_nb's or Google's in its environment but ``env``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager


@dataclass
class Recorded:
    """One iopub message and the wall time it arrived at the test."""

    at: float
    msg: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.msg["header"]["msg_type"])

    @property
    def parent(self) -> str | None:
        return self.msg.get("parent_header", {}).get("msg_id")

    @property
    def content(self) -> dict[str, Any]:
        return dict(self.msg["content"])


USER_PREFIXES = ("LIVE_NB_", "GOOGLE_", "GEMINI_", "SSL_CERT_")
"""Variables a user's setup may hold that would change what live_nb does (keys, backend, base URLs, CAs)."""


def kernel_env(workdir: Path, *, bare: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a test kernel: no keys, its own emulator database, no LIVE_NB_* leaks.

    ``bare=True``: none of ``USER_PREFIXES`` and no emulator database either; only ``extra`` says
    anything to live_nb (the test of the path a user with a key takes).
    """
    dropped = USER_PREFIXES if bare else ("LIVE_NB_",)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY") and not k.startswith(dropped)
    }
    if not bare:
        env["LIVE_NB_EMULATOR_DB"] = str(workdir / "emulator.sqlite3")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env.update(extra)
    return env


class Kernel:
    """A started kernel plus a client; ``execute`` returns the request's msg_id."""

    def __init__(self, workdir: Path, *, bare: bool = False, **env: str) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=kernel_env(workdir, bare=bare, **env), cwd=str(workdir))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.messages: list[Recorded] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.replies: dict[str, dict[str, Any]] = {}
        self._readers = [
            threading.Thread(target=self._pump, args=(self.kc.get_iopub_msg, self._record), name="iopub-recorder",
                             daemon=True),
            threading.Thread(target=self._pump, args=(self.kc.get_shell_msg, self._reply), name="shell-recorder",
                             daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, get: Callable[..., dict[str, Any]], sink: Callable[[dict[str, Any]], None]) -> None:
        """Read one channel until stopped, handing each message to ``sink``."""
        while not self._stop.is_set():
            try:
                msg = get(timeout=0.1)
            except queue.Empty:
                continue
            except Exception:
                if self._stop.is_set():
                    return
                continue
            sink(msg)

    def _record(self, msg: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append(Recorded(time.time(), msg))

    def _reply(self, msg: dict[str, Any]) -> None:
        parent = msg.get("parent_header", {}).get("msg_id")
        if parent:
            with self._lock:
                self.replies[parent] = {"at": time.time(), **msg}

    def execute(self, code: str) -> str:
        """Send an execute_request (without waiting); returns its msg_id."""
        return str(self.kc.execute(code, store_history=True))

    def send_shell(self, msg_type: str, content: dict[str, Any]) -> str:
        """Send any shell message (e.g. comm_open, comm_msg); returns its msg_id."""
        msg = self.kc.session.msg(msg_type, content)
        self.kc.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def of(self, msg_id: str) -> list[Recorded]:
        """Every iopub message whose parent is ``msg_id``, in arrival order."""
        with self._lock:
            return [r for r in self.messages if r.parent == msg_id]

    def idle_at(self, msg_id: str) -> float | None:
        for r in self.of(msg_id):
            if r.type == "status" and r.content.get("execution_state") == "idle":
                return r.at
        return None

    def wait_idle(self, msg_id: str, timeout: float = 60.0) -> float:
        """Wait for the request's idle status; returns when it arrived."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            at = self.idle_at(msg_id)
            if at is not None:
                return at
            time.sleep(0.02)
        raise TimeoutError(f"no idle for {msg_id} within {timeout} s")

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> Recorded:
        """Wait for the first recorded iopub message satisfying ``predicate``."""
        deadline = time.time() + timeout
        seen = 0
        while time.time() < deadline:
            with self._lock:
                batch = self.messages[seen:]
            for r in batch:
                if predicate(r):
                    return r
            seen += len(batch)
            time.sleep(0.01)
        raise TimeoutError("no matching iopub message")

    def run(self, code: str, timeout: float = 60.0) -> tuple[str, list[Recorded]]:
        """Execute and wait for idle; returns the msg_id and its messages. Fails on an error reply."""
        msg_id = self.execute(code)
        self.wait_idle(msg_id, timeout)
        return msg_id, self.of(msg_id)

    def reply(self, msg_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                if msg_id in self.replies:
                    return self.replies[msg_id]
            time.sleep(0.02)
        raise TimeoutError(f"no shell reply for {msg_id}")

    def stdout(self, msg_id: str) -> str:
        return "".join(
            r.content["text"] for r in self.of(msg_id) if r.type == "stream" and r.content["name"] == "stdout"
        )

    def errors(self, msg_id: str) -> list[dict[str, Any]]:
        return [r.content for r in self.of(msg_id) if r.type == "error"]

    def shutdown(self) -> None:
        self._stop.set()
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)
        for reader in self._readers:
            reader.join(2)


def is_player(record: Recorded) -> bool:
    """A reply's audio player (an ``<audio>`` element), not text."""
    return "<audio" in str(record.content.get("data", {}).get("text/html", ""))


def players(records: list[Recorded]) -> list[Recorded]:
    return [r for r in records if r.type == "display_data" and is_player(r)]


def texts(records: list[Recorded]) -> list[str]:
    """The text/markdown (or text/plain) of every display and display update, in order (players left out)."""
    out = []
    for r in records:
        if r.type in ("display_data", "update_display_data", "execute_result") and not is_player(r):
            data = r.content.get("data", {})
            out.append(str(data.get("text/markdown", data.get("text/plain", ""))))
    return out


def new_id() -> str:
    return uuid.uuid4().hex
