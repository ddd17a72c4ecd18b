"""Completion for ``%live`` and ``%%live``: subcommands, and the values of options (IPython matcher API v2).

``%live connect --model <TAB>`` offers the catalogue's usable models; the subcommands come from the
magics' declarations (passed in, so this module does not import the magics).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..protocol import catalogue
from . import history as history_views
from .options import BACKENDS, FLAVORS

__all__ = ["MATCHER_ID", "completion_matcher", "is_ours", "live_candidates", "tool_candidates"]

MATCHER_ID = "live_nb.live_completions"

_OPTION_VALUES: dict[str, Callable[[], list[str]]] = {
    "--model": lambda: [m.id for m in catalogue.CATALOGUE if m.usable],
    "--backend": lambda: list(BACKENDS),
    "--flavor": lambda: list(FLAVORS),
    "--flavour": lambda: list(FLAVORS),
    "--modality": lambda: ["audio", "text"],
    "--thinking": lambda: ["low", "medium", "high", "minimal"],
    "--tool-behavior": lambda: ["non_blocking", "blocking"],
    "--tool-scheduling": lambda: ["when_idle", "silent", "interrupt"],
    "--view": lambda: sorted(history_views.VIEWS),
    "--role": lambda: ["user", "model"],
}


def tool_candidates(namespace: Mapping[str, Any], hidden: Collection[str] = ()) -> list[str]:
    """Names in the notebook a ``--tools`` list can take: functions and ``Tool`` objects, not private."""
    from ..protocol.tools import Tool

    found = []
    for name, value in list(namespace.items()):
        if name.startswith("_") or name in hidden:
            continue
        if isinstance(value, Tool) or inspect.isroutine(value) or isinstance(value, functools.partial):
            found.append(name)
    return sorted(found)


def live_candidates(
    before: str, subcommands: Collection[str], tools: Callable[[], list[str]] | None = None
) -> tuple[str, list[str]] | None:
    """What to complete at the end of ``before`` (the line up to the cursor): (fragment, candidates).

    ``tools`` lists the names ``--tools`` may take (the notebook's functions); after ``--tools`` the
    fragment is the name after the last comma.
    """
    stripped = before.lstrip()
    match = re.match(r"^(%%?live)(\s.*)?$", stripped, re.S)
    if match is None or match.group(2) is None:
        return None
    words = stripped.split()
    current = "" if stripped[-1].isspace() else words[-1]
    previous = words[-1] if current == "" else (words[-2] if len(words) > 1 else "")
    option, equals, value = current.partition("=")
    if tools is not None and (previous == "--tools" or (equals and option == "--tools")):
        typed = value if equals else current
        fragment = typed.rsplit(",", 1)[-1]
        chosen = set(typed.split(",")[:-1])
        return fragment, [n for n in tools() if n.startswith(fragment) and n not in chosen]
    if equals and option in _OPTION_VALUES:
        return value, [v for v in _OPTION_VALUES[option]() if v.startswith(value)]
    if previous in _OPTION_VALUES:
        return current, [v for v in _OPTION_VALUES[previous]() if v.startswith(current)]
    if match.group(1) == "%live" and len(words) == (1 if current == "" else 2):
        commands = sorted(m for m in subcommands if m.startswith(current))
        return current, commands
    return None



def completion_matcher(
    subcommands: Collection[str], tools: Callable[[], list[str]] | None = None
) -> Callable[..., Any]:
    """``live_candidates`` wrapped as an IPython matcher (API v2); IPython's completer imported lazily."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    def live_matcher(context: Any) -> dict[str, Any]:
        found = live_candidates(context.text_until_cursor, subcommands, tools)
        if not found:
            return {"completions": [], "suppress": False}
        fragment, candidates = found
        return {
            "completions": [SimpleCompletion(text, type="live_nb") for text in candidates],
            "matched_fragment": fragment,
            "suppress": bool(candidates),
            "ordered": True,
        }

    matcher: Callable[..., Any] = context_matcher(identifier=MATCHER_ID)(live_matcher)
    return matcher


def is_ours(matcher: object) -> bool:
    """Whether ``matcher`` is the one ``completion_matcher`` made (to remove it on unload)."""
    return getattr(matcher, "matcher_identifier", None) == MATCHER_ID

