"""Where live_nb finds credentials: the environment, then a ``.env`` file (jupyter-ai's convention).

Why a module of its own: a key must never reach a notebook, log or exception (no echo, no
metadata, no history), so the one object that carries it hides it from ``repr`` and ``str``, and
nothing else in the package reads the environment or ``.env`` for keys. Values are never exported
into ``os.environ`` (a key there leaks into every subprocess).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["KEY_NAMES", "ApiKey", "env_or_dotenv", "find_api_key", "read_dotenv"]

KEY_NAMES = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
"""Checked in this order, as google-genai 3.x does (``_api_client.get_env_api_key``: GOOGLE_API_KEY wins)."""


@dataclass(frozen=True)
class ApiKey:
    """An API key and where it came from. ``repr`` and ``str`` never show the key."""

    value: str = field(repr=False)
    name: str
    """The variable it was found under, e.g. ``GEMINI_API_KEY``."""
    source: str
    """``environment`` or the path of the ``.env`` file."""

    def __str__(self) -> str:
        return f"{self.name} from {self.source}"


def read_dotenv(path: Path | None = None) -> dict[str, str]:
    """Parse a ``.env`` file: ``NAME=value`` lines, optional ``export``, quotes and comments.

    Unreadable files give an empty dict: a missing or broken ``.env`` means "no key there".
    ``path`` defaults to ``.env`` in the working directory.
    """
    path = path or Path.cwd() / ".env"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, _, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if name:
            out[name] = value
    return out


def find_api_key(cwd: Path | None = None, environ: dict[str, str] | None = None) -> ApiKey | None:
    """The Gemini API key from the environment, else from ``.env`` in ``cwd``; None when neither has one.

    Args:
        cwd: the directory whose ``.env`` is read (the kernel's working directory by default).
        environ: the environment to read (``os.environ`` by default; tests pass their own).
    """
    env = os.environ if environ is None else environ
    for name in KEY_NAMES:
        if env.get(name):
            return ApiKey(env[name], name, "environment")
    dotenv = (cwd or Path.cwd()) / ".env"
    if dotenv.is_file():
        values = read_dotenv(dotenv)
        for name in KEY_NAMES:
            if values.get(name):
                return ApiKey(values[name], name, str(dotenv))
    return None


def env_or_dotenv(name: str, dotenv: dict[str, str]) -> str | None:
    """A setting from the environment, else from the ``.env`` values already read; None when unset."""
    return os.environ.get(name) or dotenv.get(name) or None
