"""The labextension end to end: real JupyterLab, headless Chromium, a real kernel, the emulator.

A conversation's handle reaches the notebook's metadata through the extension, is saved to disk with no
secret, comes back to a restarted kernel, and resuming from it gives the emulator's session its earlier
context. Also: the status bar, the forget command, and the wheel built from a clean clone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import REPO_ROOT, LabPage, LabServer, emulator_in_thread, launch_context, start_lab, write_notebook

from live_nb.notebook.records import RECORD_KEYS

SECRET = "AIza" + "SyTEST-not-a-real-key-0123456789abcd"  # the shape of a key: must never reach the file
POISON = (
    "from comm import create_comm\n"
    "import os\n"
    "_c = create_comm(target_name='live_nb.metadata', data={'type': 'hello', 'version': 1})\n"
    "_c.send({'type': 'record', 'name': 'poison', 'record': {'handle': 'h-poison', 'backend': 'emulator',"
    " 'model': 'm', 'resumable': True, 'updated': '2026-01-01T00:00:00Z', 'expires': '2026-01-01T02:00:00Z',"
    " 'last_consumed_index': 1, 'api_key': os.environ['GEMINI_API_KEY'], 'token': 'ya' + '29.secret'}})\n"
    "print('poison sent')"
)


@pytest.fixture
def emulator_thread() -> Iterator[tuple[Any, Any]]:
    with emulator_in_thread(chunk_delay=0.002) as pair:
        yield pair


@pytest.fixture
def lab_env(emulator_thread: tuple[Any, Any]) -> dict[str, str]:
    emu, _ = emulator_thread
    return {"LIVE_NB_EMULATOR_URL": emu.url, "LIVE_NB_BACKEND": "emulator", "GEMINI_API_KEY": SECRET}


def emulator_state(emulator_thread: tuple[Any, Any]) -> list[dict[str, Any]]:
    """Every emulator session: its handles, resumes and context texts (read on the emulator's loop)."""
    emu, call = emulator_thread

    async def read() -> list[dict[str, Any]]:
        return [
            {
                "id": s.session_id,
                "handles": list(s.handles),
                "resumes": s.resumes,
                "context": [text for _role, text, _tokens in s.context],
            }
            for s in emu.sessions.values()
        ]

    result: list[dict[str, Any]] = call(read())
    return result


def status_text(page: LabPage) -> str:
    return str(page.evaluate("() => document.querySelector('.jp-live-nb-status')?.textContent ?? ''"))


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_handle_saved_restarted_and_resumed(lab: LabServer, page: LabPage, emulator_thread: tuple[Any, Any]) -> None:
    write_notebook(
        lab.root_dir / "lesson.ipynb",
        ["%load_ext live_nb", "%%live main\nMy favourite colour is teal.", POISON],
    )
    page.open_notebook("lesson.ipynb")
    assert page.evaluate("() => window.jupyterapp.commands.hasCommand('live-nb:forget-handles')")
    page.run_all(timeout=120)
    outputs = page.outputs()
    assert "teal" in outputs[1], outputs
    assert "poison sent" in outputs[2], outputs

    # The record of the latest handle lands in the notebook's metadata (unsaved: the notebook is dirty).
    sessions = emulator_state(emulator_thread)
    assert len(sessions) == 1
    session_id = sessions[0]["id"]

    def stored_main() -> dict[str, Any] | None:
        meta = page.notebook_metadata().get("live_nb", {}).get("sessions", {})
        main = meta.get("main")
        latest = emulator_state(emulator_thread)[0]["handles"]
        return main if main and latest and main["handle"] == latest[-1] else None

    main = page.wait_for("the latest handle in the metadata", stored_main, timeout=30)
    assert set(main) == set(RECORD_KEYS) and main["backend"] == "emulator" and main["resumable"] is True
    assert page.is_dirty()
    assert page.wait_for("the status bar", lambda: "main: active" in status_text(page), timeout=15)
    page.screenshot("labextension-light")
    page.set_theme("dark")
    page.screenshot("labextension-dark")
    page.set_theme("light")

    page.save()
    on_disk = (lab.root_dir / "lesson.ipynb").read_text()
    saved = json.loads(on_disk)["metadata"]["live_nb"]["sessions"]
    assert saved["main"] == main
    assert saved["poison"]["handle"] == "h-poison" and set(saved["poison"]) == set(RECORD_KEYS)
    assert SECRET not in on_disk and "AIza" not in on_disk and "ya29." not in on_disk
    assert not (lab.root_dir / "lesson.live_nb.json").exists()  # the extension answered: no sidecar

    # A new kernel gets the records back from the extension and resumes the conversation.
    page.restart_kernel()
    page.wait_for("the status bar to clear", lambda: status_text(page) == "", timeout=15)
    page.run_cell(0)
    probe = page.insert_cell(
        "from live_nb.notebook.metadata import get_bridge\n"
        "_b = get_bridge(get_ipython())\n"
        "print(_b.mode, _b.records['main']['handle'])"
    )
    handle = main["handle"]
    page.wait_for(
        "the extension's records in the new kernel",
        lambda: (page.run_cell(probe), f"comm {handle}" in page.cell_outputs(probe))[1],
        timeout=30,
        interval=0.5,
    )
    resume = page.insert_cell("%live resume main")
    page.run_cell(resume, timeout=60)
    assert "resumed" in page.cell_outputs(resume), page.cell_outputs(resume)
    ask = page.insert_cell("%%live main\nWhat did I say first?")
    page.run_cell(ask, timeout=60)
    reply = page.cell_outputs(ask)
    assert "teal" in reply, reply

    after = emulator_state(emulator_thread)
    resumed = [s for s in after if s["id"] == session_id]
    assert resumed and resumed[0]["resumes"] >= 1, after
    assert any("teal" in text for text in resumed[0]["context"])
    assert any("What did I say first?" in text for text in resumed[0]["context"])
    page.screenshot("labextension-resumed")

    # "Forget stored live session handles": gone from the notebook and from the kernel.
    page.command("live-nb:forget-handles")
    assert page.notebook_metadata()["live_nb"]["sessions"] == {}
    forgot = page.insert_cell("print(sorted(get_bridge(get_ipython()).records))")
    page.wait_for(
        "the kernel to forget",
        lambda: (page.run_cell(forgot), page.cell_outputs(forgot).strip() == "[]")[1],
        timeout=20,
        interval=0.5,
    )


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_reloaded_page_reattaches_and_the_status_bar_counts_down(
    lab: LabServer, page: LabPage, emulator_thread: tuple[Any, Any]
) -> None:
    write_notebook(lab.root_dir / "reload.ipynb", ["%load_ext live_nb", "%%live main\nFirst."])
    page.open_notebook("reload.ipynb")
    page.run_all(timeout=120)

    def latest_handle() -> str:
        handles = emulator_state(emulator_thread)[0]["handles"]
        return str(handles[-1]) if handles else ""

    def stored_handle() -> str:
        return str(page.notebook_metadata().get("live_nb", {}).get("sessions", {}).get("main", {}).get("handle", ""))

    page.wait_for("the first handle", lambda: stored_handle() and stored_handle() == latest_handle(), timeout=30)
    first = stored_handle()
    page.save()

    # A browser reload: a new page attaches to the same kernel, whose bridge opened its comm long ago.
    page.open_notebook("reload.ipynb")
    ask = page.insert_cell("%%live main\nSecond.")
    page.run_cell(ask, timeout=60)
    assert "Second" in page.cell_outputs(ask), page.outputs()
    page.wait_for(
        "the new handle in the reloaded page",
        lambda: stored_handle() != first and stored_handle() == latest_handle(),
        timeout=30,
    )
    assert page.is_dirty()

    # The status bar counts a GoAway down by itself between status messages. The client resumes at
    # once on a real GoAway, so a session object pinned in going_away drives the real comm here.
    pinned = page.insert_cell(
        "import time\n"
        "class Pinned:\n"
        "    state, backend, model, handle, resumable = 'going_away', 'emulator', 'm', None, False\n"
        "    go_away_deadline = time.time() + 42\n"
        "    def add_listener(self, callback):\n"
        "        return lambda: None\n"
        "from live_nb.notebook.metadata import get_bridge\n"
        "get_bridge(get_ipython()).track('demo', Pinned())"
    )
    page.run_cell(pinned)
    shown = page.wait_for("the countdown", lambda: "demo: going_away (GoAway 0:4" in status_text(page), timeout=15)
    first_count = status_text(page)
    time.sleep(2.2)
    later = status_text(page)
    assert shown and first_count != later and "demo: going_away (GoAway 0:" in later, (first_count, later)
    assert "main: active" in later
    page.screenshot("labextension-countdown")


@pytest.mark.browser
@pytest.mark.timeout(200)
def test_persist_handles_false_keeps_the_notebook_clean(lab: LabServer, page: LabPage) -> None:
    write_notebook(
        lab.root_dir / "private.ipynb",
        [
            "%load_ext live_nb\n%config LiveMagics.persist_handles = False",
            "%%live main\nHello there.",
            "import time; time.sleep(1.0)",
        ],
    )
    page.open_notebook("private.ipynb")
    page.run_all(timeout=120)
    assert "Hello there" in page.cell_outputs(1), page.outputs()
    # The status bar still shows the session; nothing reaches the metadata.
    page.wait_for("the status bar", lambda: "main:" in status_text(page), timeout=15)
    assert "live_nb" not in page.notebook_metadata()
    page.save()
    assert "live_nb" not in json.loads((lab.root_dir / "private.ipynb").read_text())["metadata"]
    assert not (lab.root_dir / "private.live_nb.json").exists()


# -- packaging -------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(900)
def test_wheel_from_a_clean_clone_ships_the_prebuilt_extension(tmp_path: Path) -> None:
    """``git clone`` + ``pip wheel`` builds the extension into the wheel; installing that wheel alone
    (no Node on PATH, no source tree) makes ``jupyter labextension list`` report live-nb enabled and OK."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{REPO_ROOT}", str(clone)], check=True, timeout=120)
    assert not (clone / "live_nb" / "labextension").exists()  # nothing prebuilt is committed
    wheels = tmp_path / "wheels"
    started = time.monotonic()
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(clone)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    print(f"wheel built in {time.monotonic() - started:.1f} s")
    (wheel,) = wheels.glob("live_nb-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    prefix = "live_nb-0.1.0.data/data/share/jupyter/labextensions/live-nb/"
    assert prefix + "package.json" in names
    assert prefix + "install.json" in names
    assert prefix + "static/style.js" in names
    assert any(n.startswith(prefix + "static/remoteEntry.") for n in names)
    assert not any("node_modules" in n for n in names)

    # Install the wheel alone into a fresh venv (its other dependencies borrowed from the test venv by a
    # .pth line, which does not run the test venv's own .pth files, so the editable live_nb stays out),
    # with no Node on PATH; then ask JupyterLab, and a browser, whether the extension loads.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    borrowed = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "jupyterlab").is_dir())
    Path(site_packages, "zz_borrow_test_venv.pth").write_text(borrowed + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300
    )
    path = ":".join(p for p in ("/usr/local/bin", "/usr/bin", "/bin") if not Path(p, "node").exists())
    env = {
        "PATH": f"{venv / 'bin'}:{path}",
        "HOME": str(tmp_path / "home"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
    }
    where = subprocess.run(
        [str(python), "-c", "import live_nb; print(live_nb.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    ).stdout
    assert where.startswith(site_packages), where  # the wheel's copy, not the work tree
    listing = subprocess.run(
        [str(python), "-m", "jupyterlab.labextensions", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    text = listing.stdout + listing.stderr
    line = next((ln for ln in text.splitlines() if "live-nb" in ln), "")
    assert "enabled" in line and "OK" in line, text
    assert str(venv) in text, text  # found in the fresh venv's share/, not the repo's dev link

    from playwright.sync_api import sync_playwright

    root = tmp_path / "nb"
    root.mkdir()
    write_notebook(root / "w.ipynb", ["1 + 1"])
    server = start_lab(root, env={"PATH": env["PATH"]}, python=str(python))
    try:
        with sync_playwright() as playwright:
            context = launch_context(playwright, tmp_path / "chromium")
            try:
                page = LabPage(server, context.pages[0] if context.pages else context.new_page())
                page.open_notebook("w.ipynb")
                assert page.evaluate("() => window.jupyterapp.commands.hasCommand('live-nb:forget-handles')")
                assert page.evaluate("() => !!document.querySelector('.jp-live-nb-status')")
                assert not [c for c in page.console if "live-nb" in c and "error" in c.lower()], page.console
            finally:
                context.close()
    finally:
        server.stop()


def test_versions_agree() -> None:
    """One version, written once (labextension/package.json): the Python project reads it, and so does JupyterLab."""
    import importlib.metadata

    import tomllib

    import live_nb

    package = json.loads((REPO_ROOT / "labextension" / "package.json").read_text())
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"] == {"source": "nodejs", "path": "labextension/package.json"}
    assert package["version"] == live_nb.__version__ == importlib.metadata.version("live_nb")
    built = json.loads((REPO_ROOT / "live_nb" / "labextension" / "package.json").read_text())
    assert built["version"] == package["version"]
    assert package["jupyterlab"]["outputDir"] == "../live_nb/labextension"
    assert live_nb._jupyter_labextension_paths() == [{"src": "labextension", "dest": "live-nb"}]
    assert package["name"] == "live-nb"
