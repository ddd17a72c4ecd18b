"""``%%live`` in a real JupyterLab (headless Chromium): the frontend shows each reply in its own cell.

A reply is today's: audio, whose transcription the cell shows as plain text, then an audio player.

kernel-loop.md read in JupyterLab's source that ``update_display_data`` reaches a cell by display id
even after the cell finished, but had not tried it in a browser. This test does: an ``--async`` reply
streams in while a later cell sleeps and lands in its own cell, and the next cell answers from the
same session.

Interrupts are tested with jupyter_client (tests/notebook/test_kernel_magics.py), not here: in this sandbox a
kernel started by the Jupyter server never sees SIGINT at all (a plain ``time.sleep`` loop with its
own SIGINT handler saw nothing after the Interrupt command, the REST interrupt, or ``os.kill`` from
the test), while the same kernel started by jupyter_client is interrupted in 0.3 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from harness import LabPage, LabServer, emulator_in_thread, write_notebook


@pytest.fixture
def emulator_thread() -> Iterator[tuple[Any, Any]]:
    # 0.05 s between 40 ms audio chunks (about four to a spoken word): a reply streams for a few seconds.
    with emulator_in_thread(chunk_delay=0.05) as pair:
        yield pair


@pytest.fixture
def lab_env(emulator_thread: tuple[Any, Any]) -> dict[str, str]:
    emu, _ = emulator_thread
    return {"LIVE_NB_EMULATOR_URL": emu.url, "LIVE_NB_BACKEND": "emulator"}


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_async_reply_lands_in_its_cell_in_jupyterlab(lab: LabServer, page: LabPage) -> None:
    write_notebook(
        lab.root_dir / "magics.ipynb",
        [
            "%load_ext live_nb",
            "%%live --async\nWhat makes the tides rise and fall?",
            "import time\ntime.sleep(5)\nprint('later cell done')",
            "%%live\nWhat did I say first?",
        ],
    )
    page.open_notebook("magics.ipynb")
    page.run_cell(0, timeout=60)
    page.run_cell(1, timeout=30)  # returns at once (timed in tests/notebook/test_kernel_magics.py)
    page.run_cell(2, timeout=60)  # the reply streams in meanwhile
    outputs = page.outputs()
    assert 'You asked: "What makes the tides rise and fall?"' in outputs[1]
    # The transcription of the audio reply renders as plain text (never HTML or Markdown), then the
    # reply audio as a player.
    rendered = page.evaluate(
        "(i) => { const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];"
        " const kinds = ['.jp-RenderedText', '.jp-RenderedMarkdown', '.jp-RenderedHTMLCommon'];"
        " const holding = kinds.filter(k => Array.from(cell.querySelectorAll(k))"
        "   .some(e => e.textContent.includes('You asked:')));"
        " const audio = cell.querySelector('.jp-OutputArea audio');"
        " return {holding, audio: !!audio, src: audio ? audio.getAttribute('src').slice(0, 22) : ''}; }",
        1,
    )
    assert rendered == {"holding": [".jp-RenderedText"], "audio": True, "src": "data:audio/wav;base64,"}, rendered
    assert outputs[2].strip().startswith("later cell done") and "You asked" not in outputs[2]

    page.run_cell(3, timeout=60)
    last = page.cell_outputs(3)
    assert 'You asked: "What did I say first?"' in last
    assert '"What makes the tides rise and fall?"' in last
