"""The protocol layer is sans-I/O: importing it must not pull in asyncio, sockets, IPython or widgets."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import live_nb.protocol

FORBIDDEN = ("asyncio", "websockets", "socket", "IPython", "ipywidgets", "ipykernel", "anywidget", "threading")
# The stdlib logging module imports threading itself, so only the source check can ban it.
LOADED_AT_RUNTIME = tuple(m for m in FORBIDDEN if m != "threading")
PROTOCOL_DIR = pathlib.Path(live_nb.protocol.__file__).parent


def test_no_protocol_module_imports_io_machinery() -> None:
    offenders = []
    for path in sorted(PROTOCOL_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders
    assert len(list(PROTOCOL_DIR.glob("*.py"))) >= 6  # the check really walked the layer


def test_importing_the_protocol_layer_loads_none_of_them() -> None:
    code = (
        "import sys, live_nb.protocol.messages, live_nb.protocol.config, live_nb.protocol.ledger, "
        "live_nb.protocol.events, live_nb.protocol.tokens\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('live_nb.protocol.client_protocol'): import live_nb.protocol.client_protocol\n"
        f"print(sorted(m for m in {LOADED_AT_RUNTIME!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
