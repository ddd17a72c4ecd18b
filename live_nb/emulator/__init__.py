"""The bundled emulator of the Gemini Live API: a real WebSocket server, offline.

``Emulator`` runs in-process (``async with Emulator() as emu: emu.url``) or from the command line
(``python -m live_nb.emulator --help``). It speaks the service's wire protocol well enough that
Google's own google-genai SDK cannot tell it from the service (tests/test_sdk_emulator.py), and its
model (``ContextResponder``) says what its context holds, so compression and resumption can be seen.
"""

from __future__ import annotations

from .engine import KNOWN_MODELS, ServerEngine, SessionState
from .responder import ContextResponder, Reply, RequestContext, Responder, Turn
from .server import Emulator, EmulatorSession, main

__all__ = [
    "KNOWN_MODELS",
    "ContextResponder",
    "Emulator",
    "EmulatorSession",
    "Reply",
    "RequestContext",
    "Responder",
    "ServerEngine",
    "SessionState",
    "Turn",
    "main",
]
