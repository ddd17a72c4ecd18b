"""The browser harness itself: JupyterLab opens a notebook, runs it, saves, restarts, switches theme."""

from __future__ import annotations

import json

import pytest
from harness import LabPage, LabServer, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def test_run_save_restart_theme(lab: LabServer, page: LabPage) -> None:
    write_notebook(lab.root_dir / "h.ipynb", ["import os\nx = 6 * 7\nprint('pid', os.getpid())", "x + 1"])
    page.open_notebook("h.ipynb")
    page.run_all()
    outputs = page.outputs()
    assert outputs[1].strip() == "43"
    first_pid = outputs[0].split()[-1]

    page.set_cell_source(1, "x * 2")
    assert page.is_dirty()
    page.save()
    on_disk = json.loads((lab.root_dir / "h.ipynb").read_text())
    assert "".join(on_disk["cells"][1]["source"]) == "x * 2"

    page.restart_kernel()
    page.run_cell(1)
    assert "NameError" in page.cell_outputs(1)  # the restart really forgot x
    page.run_all()
    assert page.cell_outputs(1).strip() == "84"
    assert page.cell_outputs(0).split()[-1] != first_pid

    page.set_theme("dark")
    page.screenshot("harness-dark")
    page.set_theme("light")
    page.wait_for_output(1, "84")
    assert page.evaluate("() => document.body.dataset.jpThemeLight") == "true"
