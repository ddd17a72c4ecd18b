"""pandas views of a session: events, token usage by modality, the context timeline, the transcript.

Why tables: users summed per-turn usage deltas by hand to learn whether compression happened
(field.md). These views lay out what the session already records (``session.events``,
``session.transcript`` and ``session.ledger``) so a notebook can filter, plot or diff them.

Every function takes anything with the session's observable attributes (a ``LiveSession``),
reads them once and returns a fresh DataFrame with a ``time`` column of timezone-aware
timestamps; empty sessions give empty frames with the same columns.

What was let go: ``session.events`` and ``session.transcript`` are bounded logs (``BoundedLog``)
that keep their newest entries and count the rest in ``.dropped``. The views show what is kept,
and say what is not where a notebook shows it: when entries were let go, the first row is a marker
(``time`` NaT, ``role``/``event`` ``"…"``, the text ``"2,501 earlier entries not kept"``).
Every view also sets ``frame.attrs["dropped"]`` (entries let go before its first row; 0 when
none, and for ``usage``/``context`` whenever the ledger keeps everything, as it does today) and
``frame.attrs["note"]`` (that sentence, or ``""``); ``transcript`` adds
``attrs["dropped_text"]`` (characters cut from over-long entries, each of which says so itself).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from ..exceptions import ConfigError
from ..protocol import catalogue
from ..protocol.events import ToolRun

__all__ = ["TOOL_COLUMNS", "VIEWS", "context", "events", "models_table", "tools", "transcript", "usage", "view"]

TOOL_COLUMNS = ("call_id", "name", "args", "status", "seconds", "result", "behavior", "scheduling")
"""The columns a ``ToolRun`` fills in ``events`` (empty for other events) and in ``tools``."""


MARKER = "…"
"""``role`` / ``event`` of the leading row that stands for the entries a bounded log let go."""


def _times(seconds: list[float]) -> pd.Series:
    return pd.to_datetime(pd.Series(seconds, dtype="float64"), unit="s", utc=True)


def _kept(log: Any) -> tuple[list[Any], int]:
    """A consistent copy of a (bounded) log and the count of entries it let go before its first.

    The session appends from its loop thread; a trim between the copy and the count would make
    them disagree, so both are read again until ``dropped`` held still across the copy.
    """
    if log is None:
        return [], 0
    rows: list[Any] = []
    dropped = 0
    for _ in range(5):
        dropped = int(getattr(log, "dropped", 0) or 0)
        rows = list(log)
        if int(getattr(log, "dropped", 0) or 0) == dropped:
            break
    return rows, dropped


def _note(dropped: int, what: str) -> str:
    return f"{dropped:,} earlier {what} not kept" if dropped else ""


def _log_frame(times: list[float], columns: dict[str, list[str]], dropped: int, what: str) -> pd.DataFrame:
    """A frame of a bounded log's kept entries; first, if it let any go, a marker row saying how many.

    ``columns`` holds two text columns: the first gets ``MARKER`` in the marker row, the second
    the sentence (``time`` is NaT there, so the row sorts and plots as no moment at all).
    """
    note = _note(dropped, what)
    if dropped:
        label, text = columns
        times = [float("nan"), *times]
        columns = {label: [MARKER, *columns[label]], text: [note, *columns[text]]}
    frame = pd.DataFrame(columns)
    frame.insert(0, "time", _times(times))
    frame.attrs["dropped"] = dropped
    frame.attrs["note"] = note
    return frame


def _describe(item: object) -> str:
    """One readable line for an event or message: its fields, long values trimmed."""
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        parts = []
        for f in dataclasses.fields(item):
            value = getattr(item, f.name)
            if value is None or value == () or value == {}:
                continue
            text = repr(value)
            if len(text) > 60:
                text = text[:57] + "..."
            parts.append(f"{f.name}={text}")
        return ", ".join(parts)
    return repr(item)[:120]


def events(session: Any) -> pd.DataFrame:
    """Everything that happened to the session, in order: one row per event or server message.

    Columns: ``time``, ``event`` (the class name: ``Connected``, ``GoAway``, ``Resumed``,
    ``ToolRun`` ...), ``detail`` (its fields in one line), then the tool columns (``TOOL_COLUMNS``:
    ``name``, ``args``, ``status``, ``seconds``, ``result`` ...), filled on ``ToolRun`` rows (one when
    a call starts, one when it ends) and empty (None / NaN) on the others. Arguments and results
    are text, as the tool loop reported them. When ``session.events`` let entries go, the first row
    says how many (``event`` ``"…"``; module docstring).
    """
    rows, dropped = _kept(getattr(session, "events", None))
    frame = _log_frame(
        [t for t, _ in rows],
        {"event": [type(item).__name__ for _, item in rows], "detail": [_describe(item) for _, item in rows]},
        dropped,
        "events",
    )
    runs = [item if isinstance(item, ToolRun) else None for _, item in rows]
    if dropped:
        runs = [None, *runs]
    for column in TOOL_COLUMNS:
        values = [None if run is None else getattr(run, column) for run in runs]
        if column == "seconds":
            frame[column] = pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")
        else:
            frame[column] = pd.Series(values, dtype="object")
    return frame


def tools(session: Any) -> pd.DataFrame:
    """One row per tool call, as it stands now: its last ``ToolRun`` (``running`` until it ends).

    Columns: ``time`` (when the call started), then ``TOOL_COLUMNS``. Calls whose events the
    bounded log let go are not listed (``attrs["dropped"]`` counts the events let go).
    """
    rows, dropped = _kept(getattr(session, "events", None))
    started: dict[str, float] = {}
    latest: dict[str, ToolRun] = {}
    for when, item in rows:
        if isinstance(item, ToolRun):
            started.setdefault(item.call_id, when)
            latest[item.call_id] = item
    data: dict[str, list[Any]] = {column: [getattr(run, column) for run in latest.values()] for column in TOOL_COLUMNS}
    frame = pd.DataFrame(data, columns=list(TOOL_COLUMNS))
    frame["seconds"] = frame["seconds"].astype("float64")
    frame.insert(0, "time", _times([started[call_id] for call_id in latest]))
    frame.attrs["dropped"] = dropped
    frame.attrs["note"] = _note(dropped, "events")
    return frame


def usage(session: Any) -> pd.DataFrame:
    """Server-reported token usage over time, split by modality.

    Columns: ``time``, ``prompt_tokens``, ``response_tokens``, ``total_tokens``, then one
    ``prompt_<MODALITY>`` / ``response_<MODALITY>`` column per modality seen (0 where absent).
    """
    points, dropped = _kept(session.ledger.usage)
    data: dict[str, list[Any]] = {
        "prompt_tokens": [p.prompt_tokens for p in points],
        "response_tokens": [p.response_tokens for p in points],
        "total_tokens": [p.total_tokens for p in points],
    }
    prompt_modalities = sorted({m for p in points for m in p.prompt_by_modality})
    response_modalities = sorted({m for p in points for m in p.response_by_modality})
    for m in prompt_modalities:
        data[f"prompt_{m}"] = [p.prompt_by_modality.get(m, 0) for p in points]
    for m in response_modalities:
        data[f"response_{m}"] = [p.response_by_modality.get(m, 0) for p in points]
    frame = pd.DataFrame(data)
    frame.insert(0, "time", _times([p.time for p in points]))
    frame.attrs["dropped"] = dropped
    frame.attrs["note"] = _note(dropped, "usage reports")
    return frame


def context(session: Any) -> pd.DataFrame:
    """The context window over time: our estimate, the server's count, the limits, compressions.

    Columns: ``time``, ``estimated_tokens`` (client-side estimate), ``reported_tokens`` (the
    server's count where a usage report arrived, else NaN), ``source`` (what moved it: ``text``,
    ``audio``, ``output``, ``usage``, ``system``, ``compression`` ...), ``trigger_tokens`` and
    ``target_tokens`` (compression config, NaN when off), ``window_tokens``, and for compression
    rows ``compressed_from`` / ``compressed_to`` / ``detected_by`` (``reported`` when the server's
    numbers showed it, ``estimate`` when only our sliding-window model predicted it).
    """
    ledger = session.ledger
    points, dropped_points = _kept(ledger.points)
    compressions, dropped_compressions = _kept(ledger.compressions)
    rows: list[dict[str, Any]] = []
    for p in points:
        if p.source == "compression":
            continue  # compression rows come from ledger.compressions, which carry before/after
        rows.append(
            {
                "time": p.time,
                "estimated_tokens": float(p.estimated),
                "reported_tokens": float("nan") if p.reported is None else float(p.reported),
                "source": p.source,
            }
        )
    for c in compressions:
        rows.append(
            {
                "time": c.time,
                "estimated_tokens": float(c.after),
                "reported_tokens": float(c.after) if c.detected_by == "reported" else float("nan"),
                "source": "compression",
                "compressed_from": float(c.before),
                "compressed_to": float(c.after),
                "detected_by": c.detected_by,
            }
        )
    columns = [
        "time",
        "estimated_tokens",
        "reported_tokens",
        "source",
        "trigger_tokens",
        "target_tokens",
        "window_tokens",
        "compressed_from",
        "compressed_to",
        "detected_by",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    frame["trigger_tokens"] = float("nan") if ledger.trigger is None else float(ledger.trigger)
    frame["target_tokens"] = float("nan") if ledger.target is None else float(ledger.target)
    frame["window_tokens"] = float(ledger.window)
    frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
    frame["time"] = _times(frame["time"].astype("float64").tolist())
    dropped = dropped_points + dropped_compressions
    frame.attrs["dropped"] = dropped
    frame.attrs["note"] = _note(dropped, "points")
    return frame


def transcript(session: Any) -> pd.DataFrame:
    """What was said, by whom: columns ``time``, ``role`` (``user``, ``model``, ``system`` ...), ``text``.

    When ``session.transcript`` let entries go, the first row says how many (``role`` ``"…"``;
    module docstring).
    """
    rows, dropped = _kept(getattr(session, "transcript", None))
    frame = _log_frame(
        [t for t, _, _ in rows], {"role": [r for _, r, _ in rows], "text": [x for _, _, x in rows]}, dropped, "entries"
    )
    frame.attrs["dropped_text"] = int(getattr(session, "dropped_text", 0) or 0)
    return frame


VIEWS = {"transcript": transcript, "events": events, "usage": usage, "context": context, "tools": tools}
"""The views by name, as ``%live history NAME --view VIEW`` names them."""


def view(session: Any, name: str) -> pd.DataFrame:
    """The view called ``name`` (a key of ``VIEWS``).

    Raises:
        ConfigError: ``name`` is not one of the views.
    """
    if name not in VIEWS:
        raise ConfigError("view", name, "one of " + ", ".join(sorted(VIEWS)))
    return VIEWS[name](session)


def models_table() -> Any:
    """The catalogue as a pandas DataFrame: id, status, backends, replacement, note (``%live models``)."""
    import pandas as pd

    rows = []
    for info in catalogue.CATALOGUE:
        notes = [info.note] if info.note else []
        if info.aliases:
            notes.append("alias " + ", ".join(info.aliases))
        if info.shut_down:
            notes.append(f"shut down on {info.shut_down}: a setup naming it is refused (1008)")
        if "TEXT" not in info.response_modalities:
            notes.append("answers in " + "/".join(info.response_modalities))
        rows.append(
            {
                "id": info.id,
                "status": info.status + (" (default)" if info.id == catalogue.DEFAULT_MODEL else ""),
                "backends": ", ".join(info.backends),
                "replacement": info.replacement or "",
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows, columns=["id", "status", "backends", "replacement", "note"])

