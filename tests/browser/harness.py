"""Drive a real JupyterLab in headless Chromium: the shared browser-test harness.

Why this exists: the labextension, the dashboard and the media widgets only prove themselves in a
real browser talking to a real Jupyter server and kernel. This module starts both, isolates them
from the developer's own settings (theme, workspaces, runtime files, IPython history all go to a
temporary directory, so concurrent test runs do not fight), and wraps the few JupyterLab commands
the tests need. It uses Playwright's *sync* API with Debian's ``/usr/bin/chromium`` (no browser
download), so browser tests are plain (non-async) test functions.

Fixtures (``tests/browser/conftest.py``)::

    lab_env          dict of extra environment variables for the server and its kernels
                     (override it in a test module: ``@pytest.fixture def lab_env(): return {...}``)
    lab              a running ``LabServer`` (function scope); ``lab.root_dir`` is where notebooks go
    browser_context  a Playwright persistent Chromium context in a fresh user-data dir
    page             a ``LabPage`` bound to ``lab`` and a new tab of ``browser_context``

Mark browser tests with ``@pytest.mark.browser`` (they are skipped when Chromium or Playwright is
missing).

Helper API::

    server = start_lab(root_dir, env=None, timeout=60.0, python=None)   # LabServer; .stop() is idempotent
    server.url            "http://127.0.0.1:PORT/"   server.log_path: the server's stdout+stderr
    server.api(method, path, body=None) -> parsed JSON (REST calls to the Jupyter server)
    server.kernels()      -> list of running kernel models

    write_notebook(path, sources, kernel="python3")   # a .ipynb with one code cell per source

    with emulator_in_thread(time_scale=1.0) as (emu, call):  # an Emulator on its own loop thread,
        lab = start_lab(root, env={"LIVE_NB_EMULATOR_URL": emu.url, "LIVE_NB_BACKEND": "emulator"})
        call(some_coroutine())                                # outliving kernel restarts; call()
        call(emu.go_away_now())                               # runs coroutines on its loop

    lp = LabPage(server, playwright_page, artifacts_dir=ARTIFACTS)
    lp.open_notebook("x.ipynb", timeout=60)   # fresh workspace + ?reset, accepts "Select Kernel",
                                              # waits for the kernel to be idle
    lp.wait_kernel_idle(timeout=60)
    lp.run_all(timeout=120)                   # notebook:run-all-cells, waits until every cell is done
    lp.run_cell(index, timeout=60)            # select cell `index` and run it
    lp.set_cell_source(index, text); lp.insert_cell(text) -> index  (appends a code cell)
    lp.wait_for(what, predicate, timeout=30) -> the first truthy predicate() (screenshot on timeout)
    lp.wait_for_output(index, text, timeout=30) -> str   # until cell `index` shows `text`
    lp.cell_outputs(index) -> str             # the text of a cell's outputs (streams, markdown/plain, errors)
    lp.outputs() -> list[str]                 # the same for every cell
    lp.notebook_metadata() -> dict            # the open notebook model's metadata (live, unsaved)
    lp.is_dirty() -> bool
    lp.save(timeout=30)                       # docmanager:save, waits until the model is clean
    lp.restart_kernel(timeout=60)             # restart without the dialog, waits for idle
    lp.set_theme("light" | "dark")            # apputils:change-theme, waits for <body> to show it
    lp.command(id, args=None)                 # any command through window.jupyterapp.commands (awaited)
    token = lp.start_command(id, args=None); lp.command_done(token)   # the same, without waiting
    lp.evaluate(js, arg=None)                 # page.evaluate, for anything else
    lp.screenshot(name) -> Path               # test-artifacts/<name>.png (gitignored)
    lp.console                                # list of browser console lines seen so far

Gotchas baked in (docs/media.md): ``--LabApp.expose_app_in_browser=True`` gives
``window.jupyterapp``; a fresh workspace plus ``?reset`` stops an old layout from restoring another
notebook; JupyterLab 4.6 may still show "Select Kernel" although the notebook names its kernelspec.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


class HarnessError(AssertionError):
    """The harness could not bring JupyterLab or the page to the state a test asked for."""


def free_port() -> int:
    """Ask the OS for a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# The Jupyter server


@dataclass
class LabServer:
    """A JupyterLab server started by ``start_lab``; stop it with ``stop()``."""

    url: str
    root_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    home: Path
    _stopped: bool = field(default=False, repr=False)

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """Call the Jupyter server's REST API (no token: the test server runs without auth)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def kernels(self) -> list[dict[str, Any]]:
        """The kernels the server is running now."""
        result: list[dict[str, Any]] = self.api("GET", "api/kernels")
        return result

    def log(self) -> str:
        """The server's log so far (for failure messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        """Shut the kernels and the server down; kill the process group if they linger. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                for kernel in self.kernels():
                    self.api("DELETE", f"api/kernels/{kernel['id']}")
            with contextlib.suppress(Exception):
                self.api("POST", "api/shutdown")
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=5)


def lab_environment(home: Path, extra: dict[str, str] | None = None, python: str | None = None) -> dict[str, str]:
    """The environment for a test server: settings, workspaces and runtime files kept in ``home``.

    Why: JupyterLab saves the theme and workspaces under ``~/.jupyter``; tests that switch the theme
    would otherwise change it for everybody else running tests on this machine at the same time.
    """
    env = dict(os.environ)
    for name, sub in (
        ("JUPYTERLAB_SETTINGS_DIR", "settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(home / sub)
    # No "Would you like to get notified about official Jupyter news?" toast over the screenshots.
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env["PYTHONUNBUFFERED"] = "1"
    # The server's Python is the venv's: make its kernels use the same one.
    env.update(extra or {})
    env["PATH"] = str(Path(python or sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def start_lab(
    root_dir: Path, env: dict[str, str] | None = None, timeout: float = 60.0, python: str | None = None
) -> LabServer:
    """Start ``python -m jupyterlab`` on a free 127.0.0.1 port and wait for ``/api/status``.

    Args:
        root_dir: the server's root; notebooks the test opens live here.
        env: extra environment variables (they reach the kernels too).
        timeout: seconds to wait for the server to answer.
        python: the interpreter to run JupyterLab with (default: this one), e.g. a fresh venv's.

    Returns:
        The running server. The caller must ``stop()`` it (the ``lab`` fixture does).

    Raises:
        HarnessError: the server exited or did not answer in time (its log is in the message).
    """
    root_dir = Path(root_dir)
    root_dir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="live-nb-lab-home-"))
    port = free_port()
    log_path = home / "jupyterlab.log"
    command = [
        python or sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.token=",
        "--ServerApp.password=",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.disable_check_xsrf=True",
        "--LabApp.expose_app_in_browser=True",
        "--allow-root",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--ServerApp.root_dir={root_dir}",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=lab_environment(home, env, python),
            cwd=root_dir,
            start_new_session=True,
        )
    server = LabServer(
        url=f"http://127.0.0.1:{port}/",
        root_dir=root_dir,
        port=port,
        process=process,
        log_path=log_path,
        home=home,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise HarnessError(f"JupyterLab exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            server.api("GET", "api/status", timeout=2)
            return server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.25)
    server.stop()
    raise HarnessError(f"JupyterLab did not answer /api/status in {timeout} s:\n{server.log()[-4000:]}")


@contextlib.contextmanager
def running_lab(root_dir: Path, env: dict[str, str] | None = None) -> Iterator[LabServer]:
    """``start_lab`` as a context manager that always stops the server and removes its home."""
    server = start_lab(root_dir, env)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.home, ignore_errors=True)


def write_notebook(path: Path, sources: Sequence[str], kernel: str = "python3") -> Path:
    """Write a notebook with one code cell per source, naming ``kernel`` as its kernelspec."""
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": kernel, "display_name": "Python 3 (ipykernel)", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": uuid.uuid4().hex[:8],
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for source in sources
        ],
    }
    path = Path(path)
    path.write_text(json.dumps(notebook, indent=1))
    return path


@contextlib.contextmanager
def emulator_in_thread(**kwargs: Any) -> Iterator[tuple[Any, Callable[..., Any]]]:
    """Run a ``live_nb.emulator.Emulator(**kwargs)`` on a private loop thread for a sync browser test.

    Why: Playwright's sync API cannot run inside an asyncio loop, and the emulator must outlive the
    kernels (a restart test resumes against the same emulator). Yields ``(emu, call)``; ``call(coro,
    timeout=30)`` runs a coroutine on the emulator's loop and returns its result (use it to read
    ``emu.sessions`` consistently, or for faults such as ``emu.go_away_now()``).
    """
    from live_nb.emulator import Emulator

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-emulator", daemon=True)
    thread.start()

    def call(coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    async def start() -> Any:
        emu = Emulator(host="127.0.0.1", port=0, **kwargs)
        await emu.start()
        return emu

    emu = call(start())
    try:
        yield emu, call
    finally:
        with contextlib.suppress(Exception):
            call(emu.stop())
        with contextlib.suppress(Exception):
            emu.cleanup()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# ---------------------------------------------------------------------------------------------
# The browser


def chromium_available() -> bool:
    """Whether Debian Chromium and Playwright's Python package are both here."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


@contextlib.contextmanager
def live_loop_emulator(**kwargs: Any) -> Iterator[Any]:
    """A ``live_nb.emulator.Emulator(**kwargs)`` on this process's live_nb loop thread (127.0.0.1),
    stopped and its temp dir removed afterwards. The kernels reach it through ``LIVE_NB_EMULATOR_URL``."""
    from live_nb import _loop
    from live_nb.emulator import Emulator

    emu = Emulator(host="127.0.0.1", port=0, **kwargs)
    _loop.block(_loop.submit(emu.start()), timeout=30)
    try:
        yield emu
    finally:
        _loop.block(_loop.submit(emu.stop()), timeout=30)
        emu.cleanup()


@contextlib.contextmanager
def fake_mic_context(wav: Path, extra_args: Sequence[str] = ()) -> Iterator[Any]:
    """Chromium (``launch_context``) in a fresh profile whose fake microphone plays ``wav``, looped."""
    from playwright.sync_api import sync_playwright

    user_data_dir = Path(tempfile.mkdtemp(prefix="live-nb-chromium-"))
    try:
        with sync_playwright() as playwright:
            context = launch_context(playwright, user_data_dir, fake_audio=wav, extra_args=extra_args)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(user_data_dir, ignore_errors=True)


def launch_context(
    playwright: Any, user_data_dir: Path, *, fake_audio: Path | None = None, extra_args: Sequence[str] = ()
) -> Any:
    """Launch Chromium the way docs/media.md found to work here; returns a BrowserContext.

    ``fake_audio``: a WAV the fake microphone plays (looped; Chromium reads 16-bit PCM, best at
    48 kHz, e.g. from ``scripts/make_speech_wav.py``) instead of its beeps.
    """
    args = [*CHROMIUM_ARGS, *extra_args]
    if fake_audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={fake_audio}")
    return playwright.chromium.launch_persistent_context(
        user_data_dir=str(user_data_dir),
        executable_path=CHROMIUM,
        headless=False,  # "--headless=new" below: the old headless mode lacks media features
        args=args,
        viewport={"width": 1400, "height": 900},
    )


# JavaScript run in the page. `panel()` is the notebook panel the test opened.
_JS_PANEL = """
(path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  const w = app.shell.currentWidget;
  if (!w || !w.context || w.context.path !== path || !w.content) return null;
  return w;
}
"""


class LabPage:
    """A Playwright page showing JupyterLab, with helpers for the notebook it opened.

    The helpers act on the notebook given to ``open_notebook`` (checked by path each time, so a
    restored or stray widget can never be driven by mistake).
    """

    def __init__(self, server: LabServer, page: Any, artifacts_dir: Path = ARTIFACTS) -> None:
        self.server = server
        self.page = page
        self.artifacts_dir = Path(artifacts_dir)
        self.path: str | None = None
        self.console: list[str] = []
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    # -- plumbing -------------------------------------------------------------------------------

    def evaluate(self, js: str, arg: Any = None) -> Any:
        """Run ``js`` (a function expression) in the page with ``arg``."""
        return self.page.evaluate(js, arg)

    def _panel_call(self, body: str, arg: Any = None) -> Any:
        """Evaluate ``body`` with ``panel`` bound to the open notebook panel and ``arg`` to ``arg``."""
        js = (
            "async ([path, arg]) => { const panel = (" + _JS_PANEL + ")(path);"
            " if (!panel) throw new Error('notebook ' + path + ' is not the current widget');" + body + "}"
        )
        return self.page.evaluate(js, [self.path, arg])

    def wait_for(self, what: str, predicate: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
        """Poll ``predicate()`` until it returns something truthy, and return that.

        Raises:
            HarnessError: still falsy after ``timeout`` seconds (a screenshot is saved first).
        """
        return self._wait(what, predicate, timeout, interval)

    def wait_for_output(self, index: int, text: str, timeout: float = 30.0) -> str:
        """Wait until the outputs of cell ``index`` contain ``text``; return those outputs."""
        result: str = self._wait(
            f"{text!r} in cell {index}",
            lambda: (lambda out: out if text in out else "")(self.cell_outputs(index)),
            timeout,
        )
        return result

    def _wait(self, what: str, predicate: Any, timeout: float, interval: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        self.screenshot(f"timeout-{what.replace(' ', '-')}")
        raise HarnessError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")

    def command(self, command_id: str, args: dict[str, Any] | None = None) -> Any:
        """Execute a JupyterLab command through ``window.jupyterapp.commands``."""
        return self.page.evaluate(
            "async ([id, args]) => { const r = await window.jupyterapp.commands.execute(id, args || {});"
            " try { return JSON.parse(JSON.stringify(r ?? null)); } catch (e) { return null; } }",
            [command_id, args],
        )

    def accept_dialog(self) -> bool:
        """Click the accept button of an open dialog, if there is one; True when one was clicked."""
        button = self.page.locator(".jp-Dialog .jp-mod-accept")
        if button.count() > 0:
            with contextlib.suppress(Exception):
                button.first.click(timeout=2000)
                return True
        return False

    # -- notebook lifecycle ---------------------------------------------------------------------

    def open_notebook(self, path: str, timeout: float = 60.0) -> None:
        """Open ``path`` (relative to the server root) in a fresh workspace and wait for its kernel.

        Raises:
            HarnessError: the notebook or its kernel did not come up in time.
        """
        self.path = path
        workspace = "w" + uuid.uuid4().hex[:10]
        self.page.goto(f"{self.server.url}lab/workspaces/{workspace}/tree/{path}?reset")
        self._wait(
            f"notebook {path} to open",
            lambda: self.page.evaluate(f"(path) => !!({_JS_PANEL})(path)", path),
            timeout,
        )
        self.wait_kernel_idle(timeout)

    def kernel_status(self) -> str | None:
        """The open notebook's kernel status ("idle", "busy", "starting", ...) or None."""
        result: str | None = self.page.evaluate(
            f"(path) => {{ const p = ({_JS_PANEL})(path); const k = p && p.sessionContext.session"
            " && p.sessionContext.session.kernel; return k ? k.status : null; }",
            self.path,
        )
        return result

    def wait_kernel_idle(self, timeout: float = 60.0) -> None:
        """Wait until the kernel is idle, accepting a "Select Kernel" dialog on the way."""

        def idle() -> bool:
            self.accept_dialog()
            return self.kernel_status() == "idle"

        self._wait("the kernel to be idle", idle, timeout)

    def _cells_done(self) -> bool:
        return bool(
            self._panel_call(
                "const cells = panel.content.widgets.filter(c => c.model.type === 'code');"
                " return cells.every(c => c.model.executionState !== 'running')"
                " && panel.sessionContext.session.kernel.status === 'idle';"
            )
        )

    def start_command(self, command_id: str, args: dict[str, Any] | None = None) -> str:
        """Start a command without waiting for it; ``command_done(token)`` tells when it has finished.

        Why: ``run-all-cells`` resolves only when every cell has run, and ``page.evaluate`` has no
        timeout of its own; polling keeps every wait bounded by the caller's timeout.
        """
        token = "c" + uuid.uuid4().hex[:10]
        self.page.evaluate(
            "([token, id, args]) => { const runs = (window.__liveNbRuns = window.__liveNbRuns || {});"
            " runs[token] = 'running'; window.jupyterapp.commands.execute(id, args || {}).then("
            " () => { runs[token] = 'done'; }, e => { runs[token] = 'error: ' + e; }); }",
            [token, command_id, args],
        )
        return token

    def command_done(self, token: str) -> bool:
        """Whether the command started as ``token`` has finished (raises if it failed)."""
        state = self.page.evaluate("(token) => (window.__liveNbRuns || {})[token] || 'unknown'", token)
        if str(state).startswith("error"):
            raise HarnessError(f"command failed: {state}")
        return state == "done"

    def run_all(self, timeout: float = 120.0) -> None:
        """Run every cell (``notebook:run-all-cells``) and wait until none is running or queued."""
        token = self.start_command("notebook:run-all-cells")
        self._wait("all cells to finish", lambda: self.command_done(token) and self._cells_done(), timeout)

    def run_cell(self, index: int, timeout: float = 60.0) -> None:
        """Run the cell at ``index`` and wait for it (and the kernel) to finish."""
        self._panel_call("panel.content.activeCellIndex = arg;", index)
        token = self.start_command("notebook:run-cell")
        self._wait(f"cell {index} to finish", lambda: self.command_done(token) and self._cells_done(), timeout)

    def set_cell_source(self, index: int, text: str) -> None:
        """Replace the source of the cell at ``index``."""
        self._panel_call("panel.content.widgets[arg[0]].model.sharedModel.setSource(arg[1]);", [index, text])

    def insert_cell(self, text: str) -> int:
        """Append a code cell with ``text`` and return its index."""
        index: int = self._panel_call(
            "const m = panel.content.model.sharedModel;"
            " m.insertCell(m.cells.length, {cell_type: 'code', source: arg});"
            " return m.cells.length - 1;",
            text,
        )
        return index

    def outputs(self) -> list[str]:
        """The text of every cell's outputs (streams, text/markdown or text/plain results, error tracebacks)."""
        result: list[str] = self._panel_call(
            "return panel.content.widgets.map(c => {"
            " if (c.model.type !== 'code') return '';"
            " return c.model.outputs.toJSON().map(o => {"
            "  if (o.output_type === 'stream') return Array.isArray(o.text) ? o.text.join('') : o.text;"
            "  if (o.output_type === 'error') return o.ename + ': ' + o.evalue + '\\n'"
            "    + (o.traceback || []).join('\\n');"
            "  const d = o.data || {}; const t = d['text/markdown'] || d['text/plain'] || '';"
            "  return Array.isArray(t) ? t.join('') : t; }).join(''); });"
        )
        return result

    def cell_outputs(self, index: int) -> str:
        """The text of the outputs of the cell at ``index``."""
        return self.outputs()[index]

    def notebook_metadata(self) -> dict[str, Any]:
        """The open notebook model's metadata as the browser holds it (saved or not)."""
        result: dict[str, Any] = self._panel_call("return JSON.parse(JSON.stringify(panel.content.model.metadata));")
        return result

    def is_dirty(self) -> bool:
        """Whether the notebook has unsaved changes."""
        return bool(self._panel_call("return panel.context.model.dirty;"))

    def save(self, timeout: float = 30.0) -> None:
        """Save the notebook (``docmanager:save``) and wait until the model is clean."""
        self._panel_call("await panel.context.save();")
        self._wait("the notebook to be saved", lambda: not self.is_dirty(), timeout)

    def restart_kernel(self, timeout: float = 60.0) -> None:
        """Restart the kernel without the confirmation dialog and wait until it is idle."""
        self._panel_call("await panel.sessionContext.restartKernel();")
        time.sleep(0.5)
        self.wait_kernel_idle(timeout)

    def set_theme(self, theme: str, timeout: float = 20.0) -> None:
        """Switch to the ``"light"`` or ``"dark"`` theme (or a full theme name) and wait for it."""
        name = THEMES.get(theme, theme)
        self.command("apputils:change-theme", {"theme": name})
        self._wait(
            f"theme {name}",
            lambda: self.page.evaluate("(n) => document.body.dataset.jpThemeName === n", name),
            timeout,
        )

    def screenshot(self, name: str, full_page: bool = False) -> Path:
        """Save a PNG under test-artifacts/ (gitignored) and return its path."""
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        path = self.artifacts_dir / f"{name}.png"
        with contextlib.suppress(Exception):
            self.page.screenshot(path=str(path), full_page=full_page)
        return path


def speech_wav(sentence: str, path: Path, *, pad: float = 1.5, tail: float | None = None, voice: str | None = None) -> Path:
    """A 48 kHz 16-bit mono WAV of ``sentence`` spoken by eSpeak NG with ``pad`` s of silence before
    it and ``tail`` s after it (default ``pad``), via ``scripts/make_speech_wav.py``, for
    ``launch_context(fake_audio=...)``: Chromium loops it, so the fake microphone asks the question
    again every ``pad + duration + tail`` seconds (a long ``tail`` lets a spoken reply get further
    before the next question barges in)."""
    import wave

    command = [sys.executable, str(REPO_ROOT / "scripts" / "make_speech_wav.py"), sentence, str(path), "--pad", str(pad)]
    if voice:
        command += ["--voice", voice]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)
    if tail is not None and tail != pad:
        with wave.open(str(path), "rb") as wav:
            params, frames = wav.getparams(), wav.readframes(wav.getnframes())
        cut = round(pad * params.framerate) * params.sampwidth * params.nchannels
        frames = frames[: len(frames) - cut] + bytes(round(tail * params.framerate) * params.sampwidth * params.nchannels)
        with wave.open(str(path), "wb") as wav:
            wav.setparams(params)
            wav.writeframes(frames)
    return Path(path)
