"""live_nb: Gemini Live API sessions in Jupyter.

Public API: ``LiveModel`` / ``LiveSession`` (client), the config and message types (protocol), the
exceptions, and the IPython extension hooks (``%load_ext live_nb``). The IPython and widget
machinery is imported lazily, so ``import live_nb`` in a plain script stays light.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__ as __version__
from .client.reconnect import ReconnectPolicy
from .exceptions import *  # noqa: F403
from .exceptions import __all__ as _exceptions_all
from .protocol.catalogue import CATALOGUE, DEFAULT_MODEL, ModelInfo
from .protocol.config import (
    AudioTranscriptionConfig,
    ContextWindowCompressionConfig,
    HistoryConfig,
    LiveGenerationConfig,
    ProactivityConfig,
    SessionResumptionConfig,
    SlidingWindow,
    SpeechConfig,
    ThinkingConfig,
)
from .protocol.content import Blob, Content, FunctionCall, FunctionResponse, Part
from .protocol.events import Connected, Reconnecting, Resumed, SessionClosed, ToolRun
from .protocol.messages import (
    GoAway,
    GoingAwayNotice,
    ServerContent,
    SessionResumptionUpdate,
    SetupComplete,
    ToolCall,
    ToolCallCancellation,
    Transcription,
    UnknownMessage,
    UsageMetadata,
    VoiceActivity,
)
from .protocol.tools import Tool, response_for, tool_from_callable

__all__ = [
    "CATALOGUE",
    "DEFAULT_MODEL",
    "AudioTranscriptionConfig",
    "HistoryConfig",
    "ModelInfo",
    "ProactivityConfig",
    "SpeechConfig",
    "ThinkingConfig",
    "VoiceActivity",
    *_exceptions_all,
    "Blob",
    "Connected",
    "Content",
    "ContextWindowCompressionConfig",
    "FunctionCall",
    "FunctionResponse",
    "GoAway",
    "GoingAwayNotice",
    "LiveGenerationConfig",
    "LiveModel",  # noqa: F405 (lazy, see __getattr__)
    "LiveSession",  # noqa: F405
    "Part",
    "ReconnectPolicy",
    "Reconnecting",
    "Resumed",
    "ServerContent",
    "SessionClosed",
    "SessionResumptionConfig",
    "SessionResumptionUpdate",
    "SetupComplete",
    "SlidingWindow",
    "Tool",
    "ToolCall",
    "ToolCallCancellation",
    "ToolRun",
    "Transcription",
    "UnknownMessage",
    "UsageMetadata",
    "history",
    "load_ipython_extension",
    "plot_context",
    "response_for",
    "stream",
    "tool_from_callable",
    "unload_ipython_extension",
]


def __getattr__(name: str) -> Any:
    # The client pulls in websockets; import it on first use.
    if name in ("LiveModel", "LiveSession"):
        from .client import session

        return getattr(session, name)
    raise AttributeError(f"module 'live_nb' has no attribute {name!r}")


def history(session: Any, view: str = "transcript") -> Any:
    """A pandas view of a ``LiveSession`` (or ``%live session``): transcript, events, usage or context."""
    from .notebook import doors

    return doors.history(session, view)


def plot_context(session: Any, ax: Any = None) -> Any:
    """A matplotlib figure of a session's context window over time, compressions marked."""
    from .notebook import doors

    return doors.plot_context(session, ax)


def stream(session: Any, source: Any = None, *, audio: bool = True, video: bool = True) -> Any:
    """Stream a microphone and camera into a session; returns its ``MediaStreamer`` widget."""
    from .notebook import doors

    return doors.stream(session, source, audio=audio, video=video)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext live_nb``: register the %%live / %live magics."""
    from .notebook import magics

    magics.load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext live_nb``: close sessions and unregister the magics."""
    from .notebook import magics

    magics.unload_ipython_extension(ipython)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt extension inside the installed package."""
    return [{"src": "labextension", "dest": "live-nb"}]
