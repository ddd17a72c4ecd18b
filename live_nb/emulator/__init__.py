"""The bundled emulator of the Gemini Live API: a real WebSocket server, offline.

``Emulator`` runs in-process (``async with Emulator() as emu: emu.url``) or from the command line
(``python -m live_nb.emulator --help``). It speaks the service's wire protocol well enough that
Google's own google-genai SDK cannot tell it from the service (tests/emulator/test_sdk.py), and its
model (``ContextResponder``) says what its context holds, so compression and resumption can be seen.

Layout (docs/architecture.md): ``server_protocol`` (the sans-I/O connection: admission, handles,
frames), ``engine`` (the sans-I/O session logic), ``responder`` (the model), ``sessions`` and
``store`` (sessions in memory and on disk), ``routes`` and ``tls`` (the upgrade's decisions, the
certificate), ``server`` (sockets and timers), ``cli`` (the command line). The models served come
from ``live_nb.protocol.catalogue``.
"""

from __future__ import annotations

from .cli import main
from .engine import ServerEngine, SessionState
from .responder import ContextResponder, Reply, RequestContext, Responder, Turn
from .server import Emulator
from .server_protocol import ServerProtocol
from .sessions import EmulatorSession, SessionBook

__all__ = [
    "ContextResponder",
    "Emulator",
    "EmulatorSession",
    "Reply",
    "RequestContext",
    "Responder",
    "ServerEngine",
    "ServerProtocol",
    "SessionBook",
    "SessionState",
    "Turn",
    "main",
]
