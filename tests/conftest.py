"""Shared fixtures: a real in-process emulator on a free loopback port (plain and TLS).

``emulator`` yields a started ``live_nb.emulator.Emulator`` (ws://127.0.0.1:PORT) and stops it after
the test; ``emulator_tls`` the same over wss:// with a generated self-signed certificate
(``emulator_tls.cert_path``), which is how google-genai reaches it unpatched. Replies are paced
with a 2 ms chunk delay so tests stay fast while streaming stays real (several chunks per reply).

``GEMINI_PATH`` is the path google-genai dials for the Developer API with ``api_version="v1beta"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from live_nb.emulator import Emulator

GEMINI_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
VERTEX_PATH = "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
TEST_CHUNK_DELAY = 0.002


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A started in-process emulator on 127.0.0.1, port 0 (plain ws://)."""
    emu = Emulator(host="127.0.0.1", port=0, chunk_delay=TEST_CHUNK_DELAY)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
        emu.cleanup()


@pytest.fixture
async def emulator_tls() -> AsyncIterator[Emulator]:
    """A started in-process emulator over TLS (wss://127.0.0.1:PORT); trust ``emu.cert_path``."""
    emu = Emulator(host="127.0.0.1", port=0, tls=True, chunk_delay=TEST_CHUNK_DELAY)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
        emu.cleanup()
