"""Notebook widgets (anywidget): the dashboard, its parts, and the mic/camera streamer.

Imported lazily so that ``import live_nb.widgets`` does not load ipywidgets until a widget is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Dashboard": ".dashboard",
    "ConnectionPanel": ".dashboard",
    "UsagePanel": ".dashboard",
    "TranscriptPanel": ".dashboard",
    "MediaPanel": ".dashboard",
    "ContextChart": ".context_chart",
    "MediaStreamer": ".media",
    "AudioPlayer": ".media",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'live_nb.widgets' has no attribute {name!r}")
