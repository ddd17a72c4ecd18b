"""The ``%%live`` cell transformer: in a kernel, a ``%%live`` cell becomes an awaited call.

Why: the awaited form lets the kernel dispatch comm messages (mic, camera, dashboard) during the
wait and cancel it promptly on interrupt (kernel-loop.md, "How %%live waits"). IPython runs
``input_transformers_cleanup`` hooks on the raw cell, before it decides whether the cell is async.

The rewritten cell reaches the magics through IPython's own registry of magics instances
(``magics_manager.registry``, keyed by class name): the one public way a cell finds a registered
``Magics`` object, within this layer.
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = ["MAGICS_KEY", "in_kernel", "transform_live_cells"]

MAGICS_KEY = "LiveMagics"
"""The key of ``LiveMagics`` in ``ip.magics_manager.registry`` (IPython keys it by class name)."""

_CELL_MAGIC = re.compile(r"^%%live(?=\s|$)")


def in_kernel(ip: Any) -> bool:
    """Whether ``ip`` runs in a Jupyter kernel (not terminal IPython or a script)."""
    return getattr(ip, "kernel", None) is not None


def transform_live_cells(lines: list[str]) -> list[str]:
    """Turn a ``%%live`` cell into an awaited call, when running in a kernel.

    An ``input_transformers_cleanup`` hook: it sees the raw cell. The awaited form lets the
    kernel dispatch comm messages during the wait and cancel it promptly on interrupt
    (kernel-loop.md, "How %%live waits").
    """
    if not lines or not _CELL_MAGIC.match(lines[0]):
        return lines
    first = lines[0].rstrip("\n")
    if first.rstrip().endswith("?"):
        return lines  # %%live? asks for help
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None or not in_kernel(ip) or MAGICS_KEY not in ip.magics_manager.registry:
        return lines
    if _inside_a_running_cell(ip):
        # A nested run (%%capture, %%time, run_cell from code) cannot await: IPython would call
        # run_until_complete on the running kernel loop. The cell magic's blocking path serves it.
        return lines
    line = first[len("%%live") :].strip()
    body = "".join(lines[1:])
    return [f"await get_ipython().magics_manager.registry[{MAGICS_KEY!r}].live_cell_async({line!r}, {body!r})\n"]


def _inside_a_running_cell(ip: Any) -> bool:
    """True when a cell of ``ip`` is already executing further up the stack (a nested run).

    The kernel transforms a cell (to decide whether it is async) before it starts running it, so
    at top level no ``run_cell*`` frame of the shell is on the stack yet.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name in _RUN_CELL_NAMES and frame.f_locals.get("self") is ip:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


_RUN_CELL_NAMES = frozenset({"run_cell", "_run_cell", "run_cell_async", "run_cell_magic", "run_line_magic"})
