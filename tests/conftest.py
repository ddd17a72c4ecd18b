"""Shared fixtures: a real in-process emulator on a free loopback port (plain and TLS).

``emulator`` yields a started ``live_nb.emulator.Emulator`` (ws://127.0.0.1:PORT) and stops it after
the test; ``emulator_tls`` the same over wss:// with a generated self-signed certificate
(``emulator_tls.cert_path``), which is how google-genai reaches it unpatched. Replies are paced
with a 2 ms chunk delay so tests stay fast while streaming stays real (several chunks per reply).

Constants tests share live in ``emulator_constants.py``: a test module cannot import them from
here, since ``conftest`` names a module in tests/browser/ too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from emulator_constants import TEST_CHUNK_DELAY

from live_nb.emulator import Emulator


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A started in-process emulator on 127.0.0.1, port 0 (plain ws://)."""
    async with Emulator(host="127.0.0.1", port=0, chunk_delay=TEST_CHUNK_DELAY) as emu:  # stops and cleans up on exit
        yield emu


@pytest.fixture
async def emulator_tls() -> AsyncIterator[Emulator]:
    """A started in-process emulator over TLS (wss://127.0.0.1:PORT); trust ``emu.cert_path``."""
    async with Emulator(host="127.0.0.1", port=0, tls=True, chunk_delay=TEST_CHUNK_DELAY) as emu:  # stops and cleans up on exit
        yield emu
