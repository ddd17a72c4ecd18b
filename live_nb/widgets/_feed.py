"""Sample a live session and turn what changed into small deltas for the dashboard widgets.

Why a separate module: the widgets must stream a session that lives on live_nb's private loop
thread (``_loop.py``) to a browser that only hears from the kernel's own loop. This module is the
part in between that needs no widget machinery, so it is tested without a front end:

1. ``SessionFeed.sample(now)`` reads the session's *observable state* (architecture.md: plain
   attributes, safe to read from any thread) and returns a ``FeedFrame``: the context points
   appended since the last sample, the compression events that are new or changed, and the
   current values of everything else. It never re-reads what it already reported, so the
   browser gets deltas, not whole series.
2. ``Sampler`` calls ``sample`` on the kernel's event loop at most ``rate`` times a second and
   hands each frame to the widgets (``apply``). Widget comm messages belong to the kernel loop,
   which is why sampling runs there and the session's listener (which runs on the private thread)
   only enqueues a wake-up.
3. ``media_state`` reads what the session's mic/camera streamer (``media.py``) is doing, from
   the streamer's own counters: what streams, what it costs in tokens per second, chunks and
   gaps. It reads, never listens: the media path is hot (10 chunks a second), so the dashboard
   sees it only at its own sampling rate and adds no message per chunk.
4. Tool runs (``ToolRun`` events in ``session.events``, which the client's tool loop records):
   the feed keeps the latest state of the last few calls (name, status, duration, arguments and
   result as text, cut short) and reports them when they change.
5. ``Series`` is the bounded copy of the context line that survives a page reload (a widget
   trait): when it grows past its limit, the older half is thinned, keeping the points that
   matter (server-reported counts, compressions), so an hour-long session stays a few hundred
   points.

Times sent to the browser are seconds since the feed's origin (the session's first connection),
rounded to centiseconds; token counts are rounded to whole tokens.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client.view import SessionView
from ..protocol.events import ToolRun
from ..protocol.ledger import CompressionEvent, ContextLedger, ContextPoint
from ..protocol.tokens import AUDIO_TOKENS_PER_SECOND, VIDEO_TOKENS_PER_FRAME
from . import streamers
from .streamers import StreamerState

__all__ = [
    "FeedFrame",
    "MediaWatch",
    "ObservableSession",
    "Sampler",
    "Series",
    "SessionFeed",
    "compression_json",
    "find_streamer",
    "media_state",
    "point_json",
    "start_sampler",
    "tool_run_json",
]

TOOL_TEXT_CHARS = 200
"""Arguments and results shown in the tools panel are cut to this many characters."""


def _short(text: str, limit: int = TOOL_TEXT_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_run_json(run: ToolRun, when: float, origin: float) -> dict[str, Any]:
    """One tool call as the tools panel draws it (all text; the browser sets it as textContent)."""
    return {
        "id": str(run.call_id),
        "t": round(when - origin, 2),
        "name": str(run.name),
        "args": _short(run.args),
        "status": str(run.status),
        "seconds": round(float(run.seconds), 3),
        "result": _short(run.result),
        "behavior": str(run.behavior or ""),
        "scheduling": str(run.scheduling or ""),
    }

# One point on the wire: [t, estimated, reported-or-null, kind]; kind 0 = estimate, 1 = reported
# by the server (usage), 2 = compression.
PointJson = list[float | int | None]

KIND_ESTIMATE = 0
KIND_REPORTED = 1
KIND_COMPRESSION = 2



def _frame_tokens(feed: Any) -> float:
    """What one video frame costs: the feed's session's figure, else the Live API's 258."""
    value = getattr(feed, "frame_tokens", None)
    return float(value) if isinstance(value, (int, float)) else VIDEO_TOKENS_PER_FRAME


MEDIA_FRESH_SECONDS = 1.5
"""A kind counts as streaming while its chunk/frame count moved this recently (audio: 10/s)."""


ObservableSession = SessionView
"""The feed reads a session through the client's typed view (``client/view.py``)."""


@dataclass(frozen=True, slots=True)
class FeedFrame:
    """What changed in a session since the previous sample, plus its current scalar state.

    Attributes:
        now: the sample time, in feed seconds (since ``origin``).
        origin: the feed's time zero as ``time.time()`` seconds.
        points: context points appended since the last frame, oldest first.
        head: the context estimate right now (the tip of the live line).
        compressions: new or changed compression events as ``(index, json)`` pairs.
        window, trigger, target: the context limits (trigger/target None when compression is off).
        forecast: ``{"rate", "to_trigger", "to_window"}`` from ``ContextLedger.forecast``.
        connection: connection-panel fields (all JSON-ready).
        usage: usage-panel fields (all JSON-ready).
        turns: the latest transcript turns, or None when unchanged since the last frame.
        tools: the latest tool calls, or None when unchanged (see the attribute).
        markers: lifecycle events (GoAway, reconnect, resume, close) new since the last frame.
        media: what the session's mic/camera streamer is doing (``media_state``); ``{"present":
            False, ...}`` when nothing streams into this session.
    """

    now: float
    origin: float
    points: tuple[PointJson, ...]
    head: PointJson
    compressions: tuple[tuple[int, dict[str, Any]], ...]
    window: int
    trigger: int | None
    target: int | None
    forecast: dict[str, float | None]
    connection: dict[str, Any]
    usage: dict[str, Any]
    turns: tuple[dict[str, Any], ...] | None
    markers: tuple[dict[str, Any], ...] = ()
    media: dict[str, Any] = field(default_factory=dict)
    tools: tuple[dict[str, Any], ...] | None = None
    """The latest tool calls (``tool_run_json``), oldest first, or None when unchanged since the last frame."""

    @property
    def has_chart_delta(self) -> bool:
        """Whether the chart has anything new to draw besides the moving head."""
        return bool(self.points or self.compressions or self.markers)


def point_json(point: ContextPoint, origin: float) -> PointJson:
    """One ledger point as the compact list the chart draws."""
    if point.source == "compression":
        kind = KIND_COMPRESSION
    elif point.reported is not None:
        kind = KIND_REPORTED
    else:
        kind = KIND_ESTIMATE
    return [round(point.time - origin, 2), round(point.estimated), point.reported, kind]


def compression_json(event: CompressionEvent, origin: float) -> dict[str, Any]:
    """One compression event as the chart draws it (``by``: "reported" or "estimate")."""
    return {
        "t": round(event.time - origin, 2),
        "before": round(event.before),
        "after": round(event.after),
        "by": event.detected_by,
    }


def _event_marker(when: float, event: Any, origin: float) -> dict[str, Any] | None:
    """A chart marker for a lifecycle event or GoAway notice, or None for anything else."""
    name = type(event).__name__
    t = round(when - origin, 2)
    if name in ("GoAway", "GoingAwayNotice"):
        left = getattr(event, "time_left", None)
        return {"t": t, "kind": "go_away", "label": "GoAway" + (f" {left:.0f}s" if left is not None else "")}
    if name == "Reconnecting":
        return {"t": t, "kind": "reconnecting", "label": f"reconnect ({getattr(event, 'reason', '?')})"}
    if name == "Resumed":
        restored = getattr(event, "state_restored", False)
        return {"t": t, "kind": "resumed", "label": "resumed" if restored else "fresh session"}
    if name == "SessionClosed":
        return {"t": t, "kind": "closed", "label": "closed"}
    return None


def shorten_handle(handle: str | None, keep: int = 6) -> str:
    """``abcdef…uvwxyz`` for display; the full handle stays in the trait for the copy button."""
    if not handle:
        return ""
    return handle if len(handle) <= 2 * keep + 1 else f"{handle[:keep]}…{handle[-keep:]}"


def find_streamer(session: object) -> StreamerState | None:
    """The open ``MediaStreamer`` feeding ``session`` (``%live mic on``, ``start_media``), or None.

    Asks the widgets' own registry (``streamers.py``), which ``start_media`` fills: no module
    lookup, no look behind a proxy, and no import of the media widget stack for a dashboard.
    """
    streamer: StreamerState | None = streamers.lookup(session)
    if streamer is None or streamer.comm is None:
        return None
    return streamer


def media_state(
    streamer: Any | None,
    *,
    audio_fresh: bool | None = None,
    video_fresh: bool | None = None,
) -> dict[str, Any]:
    """What ``streamer`` is doing, JSON-ready, read with defaults (None: "not streaming").

    Counters come from the streamer's exact feed counters when it has them (``feed.stats()``),
    else from its published traits. A kind is ``"on"`` only while its data arrives: the caller
    says so with ``audio_fresh`` / ``video_fresh`` (None: trust the streamer's ``audio_on`` /
    ``video_on``, which it refreshes only when a chunk comes or a switch flips). The token rate is
    the streamer's own measurement (``feed.token_rate()``, tokens counted as chunks were fed over
    the last 5 s), 0 once nothing streams; ``nominal_rate`` is what the live kinds cost at the
    Live API's rates (25/s of audio, 258 per frame), which the measurement reaches after 5 s.

    Args:
        streamer: a ``MediaStreamer`` or anything with its observable traits, or None.
        audio_fresh: whether audio chunks arrived just now.
        video_fresh: whether video frames arrived just now.
    """
    if streamer is None:
        return {
            "present": False,
            "streaming": False,
            "mic": "off",
            "camera": "off",
            "capture_state": "",
            "token_rate": 0.0,
            "nominal_rate": 0.0,
            "chunks_received": 0,
            "frames_received": 0,
            "gaps": 0,
            "missing_chunks": 0,
            "level": 0.0,
            "error": "",
        }
    feed = getattr(streamer, "feed", None)
    stats = None
    if feed is not None:
        with contextlib.suppress(Exception):
            stats = feed.stats()

    def count(name: str) -> int:
        value = getattr(stats, name, None) if stats is not None else None
        return int(value if value is not None else getattr(streamer, name, 0) or 0)

    audio = bool(getattr(streamer, "audio", False))
    video = bool(getattr(streamer, "video", False))
    muted = bool(getattr(streamer, "muted", False))
    audio_live = (
        audio and not muted and (bool(getattr(streamer, "audio_on", False)) if audio_fresh is None else audio_fresh)
    )
    video_live = video and (bool(getattr(streamer, "video_on", False)) if video_fresh is None else video_fresh)
    interval = float(getattr(streamer, "frame_interval", 1.0) or 1.0)
    nominal = (AUDIO_TOKENS_PER_SECOND if audio_live else 0.0) + (
        _frame_tokens(feed) / interval if video_live else 0.0
    )
    rate = 0.0
    if audio_live or video_live:
        measured: Any = None
        if feed is not None and callable(getattr(feed, "token_rate", None)):
            with contextlib.suppress(Exception):
                measured = feed.token_rate()
        if measured is None:
            measured = getattr(streamer, "token_rate", nominal)
        rate = round(float(measured or 0.0), 1)
    level = getattr(stats, "level", None) if stats is not None else None
    return {
        "present": True,
        "streaming": audio_live or video_live,
        "mic": "off" if not audio else "muted" if muted else "on" if audio_live else "waiting",
        "camera": "off" if not video else "on" if video_live else "waiting",
        "capture_state": str(getattr(streamer, "capture_state", "") or ""),
        "token_rate": rate,
        "nominal_rate": round(nominal, 1),
        "chunks_received": count("chunks_received"),
        "frames_received": count("frames_received"),
        "gaps": count("gaps"),
        "missing_chunks": count("missing_chunks"),
        "level": round(float(level if level is not None else getattr(streamer, "level", 0.0) or 0.0), 2),
        "error": str(getattr(streamer, "error", "") or ""),
    }


class MediaWatch:
    """Follows a session's streamer across samples, to tell "streaming now" from "was streaming".

    A streamer refreshes its ``audio_on`` only when a chunk arrives, so after the browser goes
    quiet (a closed tab, a revoked device) the trait would say "on" forever. Here a kind is on
    only while its exact count moved within ``MEDIA_FRESH_SECONDS`` (``3 * frame_interval`` for
    video) on the monotonic clock.

    Args:
        streamer: follow this streamer; None to find the session's own (``find_streamer``) at
            every sample, so one started after the dashboard shows up.
    """

    def __init__(self, streamer: StreamerState | None = None) -> None:
        self.streamer = streamer
        self._seen: Any = None
        self._counts = (-1, -1)
        self._audio_at = float("-inf")
        self._video_at = float("-inf")

    def sample(self, session: object, now: float | None = None) -> dict[str, Any]:
        """The ``media_state`` of the session's streamer right now."""
        now = time.monotonic() if now is None else now
        streamer = self.streamer if self.streamer is not None else find_streamer(session)
        if streamer is None:
            self._seen = None
            return media_state(None)
        state = media_state(streamer)  # trait-based on/off: used to seed a streamer seen first
        counts = (state["chunks_received"], state["frames_received"])
        if streamer is not self._seen:
            self._seen = streamer
            self._audio_at = now if state["mic"] == "on" else float("-inf")
            self._video_at = now if state["camera"] == "on" else float("-inf")
        else:
            if counts[0] != self._counts[0]:
                self._audio_at = now
            if counts[1] != self._counts[1]:
                self._video_at = now
        self._counts = counts
        interval = float(getattr(streamer, "frame_interval", 1.0) or 1.0)
        return media_state(
            streamer,
            audio_fresh=now - self._audio_at < MEDIA_FRESH_SECONDS,
            video_fresh=now - self._video_at < max(MEDIA_FRESH_SECONDS, 3 * interval),
        )


class SessionFeed:
    """Reads a session's observable state and reports only what changed since the last read.

    Sans-I/O in spirit: no loop, no widgets; the caller passes ``now`` (``time.time()`` seconds).

    Args:
        session: a ``LiveSession`` (typed as the client's ``SessionView``; a stand-in lacking a
            member still draws: members are read with defaults).
        transcript_turns: how many of the latest transcript turns to report.
        turn_chars: each reported turn is cut to its last this-many characters.
        media: the ``MediaStreamer`` to report; None finds the session's own (``find_streamer``).
    """

    def __init__(
        self, session: SessionView, transcript_turns: int = 8, turn_chars: int = 400,
        media: StreamerState | None = None, tool_runs: int = 8,
    ) -> None:
        self.session = session
        self.tool_runs = tool_runs
        self._tools: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._tools_changed = False
        self.media_watch = MediaWatch(media)
        self.transcript_turns = transcript_turns
        self.turn_chars = turn_chars
        self.origin = self._origin()
        self._ledger: ContextLedger | None = None
        self._points_sent = 0  # ledger points reported, except the last one (it may still merge)
        self._compressions_sent: list[CompressionEvent] = []
        self._events_seen = 0
        self._turns_key: tuple[Any, ...] | None = None

    def _origin(self) -> float:
        started = getattr(self.session, "connection_started", None)
        ledger = getattr(self.session, "ledger", None)
        candidates = [t for t in (started,) if isinstance(t, (int, float)) and t > 0]
        if ledger is not None and ledger.points:
            candidates.append(ledger.points[0].time)
        return min(candidates) if candidates else time.time()

    def reset(self) -> None:
        """Forget what was reported, so the next frame carries the whole (bounded) history."""
        self._ledger = None
        self._points_sent = 0
        self._compressions_sent = []
        self._events_seen = 0
        self._turns_key = None
        self._tools = collections.OrderedDict()
        self._tools_changed = False

    def sample(self, now: float | None = None) -> FeedFrame:
        """Read the session now and return what is new since the previous call."""
        now = time.time() if now is None else now
        session = self.session
        ledger: ContextLedger = session.ledger
        if ledger is not self._ledger:  # first sample, or the client swapped ledgers
            self.reset()
            self._ledger = ledger
        origin = self.origin

        # Context points: every point but the last is final, and so is a last point that is exact
        # (a server count or a compression: ContextLedger rule 3 never merges those). A last
        # plain estimate may still be merged into, so it is not sent: the head stands in for it.
        count = len(ledger.points)
        tail = ledger.points[self._points_sent : count]  # one slice: the private thread keeps appending
        new: list[PointJson] = []
        if tail:
            last = tail[-1]
            final = tail if (last.reported is not None or last.source == "compression") else tail[:-1]
            new = [point_json(point, origin) for point in final]
            self._points_sent += len(final)
        head: PointJson = [round(now - origin, 2), round(ledger.estimated), None, KIND_ESTIMATE]

        # Compressions: new ones, and the last one again if the ledger re-labelled it.
        compressions: list[tuple[int, dict[str, Any]]] = []
        current = list(ledger.compressions)
        for index, event in enumerate(current):
            if index >= len(self._compressions_sent) or self._compressions_sent[index] is not event:
                compressions.append((index, compression_json(event, origin)))
        self._compressions_sent = current

        # Lifecycle markers from session.events (time, event).
        # ``_events_seen`` counts every event ever appended; a bounded log lets its oldest go
        # (``dropped``), so the index into what it still holds is the count minus what it dropped.
        events = getattr(session, "events", None) or []
        dropped = int(getattr(events, "dropped", 0))
        start = max(0, self._events_seen - dropped)
        fresh = events[start:]  # one slice: only what is new
        markers = []
        for when, event in fresh:
            if isinstance(event, ToolRun):
                self._tool_seen(event, when, origin)
                continue
            marker = _event_marker(when, event, origin)
            if marker is not None:
                markers.append(marker)
        self._events_seen = dropped + start + len(fresh)

        return FeedFrame(
            now=round(now - origin, 2),
            origin=origin,
            points=tuple(new),
            head=head,
            compressions=tuple(compressions),
            window=int(ledger.window),
            trigger=ledger.trigger,
            target=ledger.target,
            forecast=ledger.forecast(now, self._rate_span(ledger, now)),
            connection=self._connection(),
            usage=self._usage(ledger),
            turns=self._turns(),
            markers=tuple(markers),
            media=self._media(),
            tools=self._tools_frame(),
        )

    def _tool_seen(self, run: ToolRun, when: float, origin: float) -> None:
        """Keep the call's latest state (its start time stays), the newest ``tool_runs`` calls only."""
        previous = self._tools.pop(run.call_id, None)
        entry = tool_run_json(run, when, origin)
        if previous is not None:
            entry["t"] = previous["t"]
        self._tools[run.call_id] = entry
        while len(self._tools) > self.tool_runs:
            self._tools.popitem(last=False)
        self._tools_changed = True

    def _tools_frame(self) -> tuple[dict[str, Any], ...] | None:
        if not self._tools_changed:
            return None
        self._tools_changed = False
        return tuple(dict(entry) for entry in self._tools.values())

    def _media(self) -> dict[str, Any]:
        try:
            return self.media_watch.sample(self.session)
        except Exception as exc:  # a half-closed streamer must not cost the chart its frame
            return {**media_state(None), "error": f"media state unreadable: {exc}"}

    @staticmethod
    def _rate_span(ledger: ContextLedger, now: float, span: float = 10.0) -> float:
        """Measure the rate since the last drop: across one, the context *shrank* and reads as 0."""
        compressions = ledger.compressions
        if compressions:
            since = now - compressions[-1].time
            if since < span:
                return max(since, 1.0)
        return span

    def history(self) -> tuple[list[PointJson], list[dict[str, Any]]]:
        """Every ledger point and compression so far (for a fresh trait or a static picture)."""
        ledger: ContextLedger = self.session.ledger
        origin = self.origin
        return (
            [point_json(p, origin) for p in list(ledger.points)],
            [compression_json(c, origin) for c in list(ledger.compressions)],
        )

    def _connection(self) -> dict[str, Any]:
        s = self.session
        handle = getattr(s, "handle", None) or ""
        deadline = getattr(s, "go_away_deadline", None)
        started = getattr(s, "connection_started", None)
        index = getattr(s, "last_consumed_index", None)
        return {
            "backend": str(getattr(s, "backend", "") or ""),
            "model": str(getattr(s, "model", "") or ""),
            "state": str(getattr(s, "state", "") or ""),
            "connection_started": float(started) if started else None,
            "go_away_deadline": float(deadline) if deadline else None,
            "reconnects": int(getattr(s, "reconnects", 0) or 0),
            "handle": str(handle),
            "resumable": bool(getattr(s, "resumable", False)),
            "last_consumed_index": None if index is None else int(index),
            "replay_depth": int(getattr(s, "replay_depth", 0) or 0),
        }

    @staticmethod
    def _usage(ledger: ContextLedger) -> dict[str, Any]:
        last = ledger.usage[-1] if ledger.usage else None
        return {
            "input_by_modality": {k: round(v) for k, v in sorted(dict(ledger.input_by_modality).items())},
            "output_by_modality": {k: round(v) for k, v in sorted(dict(ledger.output_by_modality).items())},
            "prompt_tokens": None if last is None else last.prompt_tokens,
            "response_tokens": None if last is None else last.response_tokens,
            "total_tokens": None if last is None else last.total_tokens,
            "prompt_by_modality": {} if last is None else dict(last.prompt_by_modality),
            "response_by_modality": {} if last is None else dict(last.response_by_modality),
            "reports": len(ledger.usage),
            "estimated": round(ledger.estimated),
        }

    def _turns(self) -> tuple[dict[str, Any], ...] | None:
        transcript = getattr(self.session, "transcript", None) or []
        count = len(transcript)
        latest = transcript[max(0, count - self.transcript_turns) : count]
        appended = count + int(getattr(transcript, "dropped", 0))  # grows even when the log is full
        key = (appended, *(len(str(turn[2])) for turn in latest))
        if key == self._turns_key:
            return None
        self._turns_key = key
        out = []
        for when, role, text in latest:
            text = str(text)
            if len(text) > self.turn_chars:
                text = "…" + text[-self.turn_chars :]
            out.append({"t": round(float(when) - self.origin, 2), "role": str(role), "text": text})
        return tuple(out)


class Series:
    """The bounded copy of the context line kept in a widget trait (it survives a page reload).

    Points are appended as they come; past ``limit`` the older half is thinned by dropping every
    other plain estimate there, keeping server-reported and compression points, so the line's
    shape and every drop survive while the size stays bounded.

    Args:
        limit: the most points kept (at least 16).
    """

    def __init__(self, limit: int = 600) -> None:
        self.limit = max(16, limit)
        self.points: list[PointJson] = []

    def extend(self, points: Iterable[PointJson]) -> None:
        """Append points and thin the older half if the series grew past its limit."""
        self.points.extend(points)
        while len(self.points) > self.limit:
            before = len(self.points)
            self.points = thin(self.points, self.limit)
            if len(self.points) == before:  # nothing thinnable left: drop the oldest
                del self.points[: before - self.limit]


def thin(points: Sequence[PointJson], limit: int) -> list[PointJson]:
    """Drop every other plain-estimate point in the older half (exact points are kept)."""
    half = len(points) // 2
    older, newer = points[:half], points[half:]
    kept: list[PointJson] = []
    drop = False
    for point in older:
        if point[3] != KIND_ESTIMATE:
            kept.append(point)
            continue
        if not drop:
            kept.append(point)
        drop = not drop
    return kept + list(newer)


class Sampler:
    """Drives ``SessionFeed.sample`` on the kernel's event loop at most ``rate`` times a second.

    The session's listener (``session.add_listener``) runs on the private loop thread; all it does
    here is ask the kernel loop, thread-safely, to sample soon (``loop.call_soon_threadsafe``), so a
    GoAway shows up within one sampling period instead of waiting for the next idle tick.

    Without a running loop at construction (a plain script), nothing runs in the background and
    ``tick()`` can be called by hand.

    Args:
        feed: the feed to sample.
        sinks: callables receiving each frame (the widgets' ``apply``).
        rate: the most samples per second (default 4).
        idle_rate: samples per second when nothing changes (the head still moves slowly).
    """

    def __init__(
        self,
        feed: SessionFeed,
        sinks: Sequence[Callable[[FeedFrame], None]],
        rate: float = 4.0,
        idle_rate: float = 1.0,
    ) -> None:
        self.feed = feed
        self.sinks = list(sinks)
        self.period = 1.0 / rate
        self.idle_period = 1.0 / idle_rate
        self.frames = 0
        self.errors: collections.deque[BaseException] = collections.deque(maxlen=5)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._remove_listener: Callable[[], Any] | None = None
        self._last_tick = 0.0
        self._last_head: float | int | None = None

    @property
    def running(self) -> bool:
        """Whether the background sampling task is alive."""
        return self._task is not None and not self._task.done()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Start sampling on ``loop`` (default: the running loop); False when there is none."""
        if self.running:
            return True
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False
        self._loop = loop
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name="live_nb-dashboard-sampler")
        add_listener = getattr(self.feed.session, "add_listener", None)
        if add_listener is not None and self._remove_listener is None:
            with contextlib.suppress(Exception):
                self._remove_listener = add_listener(self._on_item)
        return True

    def stop(self) -> None:
        """Stop sampling and detach from the session (idempotent)."""
        if self._remove_listener is not None:
            with contextlib.suppress(Exception):
                self._remove_listener()
            self._remove_listener = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def tick(self, now: float | None = None) -> FeedFrame | None:
        """Sample once and hand the frame to every sink; None if the session could not be read."""
        try:
            frame = self.feed.sample(now)
        except Exception as exc:  # a half-built or torn-down session: try again next period
            self.errors.append(exc)
            return None
        self.frames += 1
        for sink in self.sinks:
            try:
                sink(frame)
            except Exception as exc:  # one broken view must not stop the others
                self.errors.append(exc)
        return frame

    # Private methods.

    def _on_item(self, item: Any) -> None:
        # Runs on the session's private loop thread: only enqueue a wake-up on the kernel loop.
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            frame = self.tick()
            self._last_tick = time.monotonic()
            if frame is None:
                await asyncio.sleep(self.idle_period)
                continue
            if str(getattr(self.feed.session, "state", "")) == "closed":
                # The frame above was the last: a closed session changes no more.
                self.stop_listener_only()
                return
            # Busy (the line moved): sample again after one period. Quiet: wait up to the idle
            # period, or less if the session's listener wakes us (a GoAway, a usage report).
            self._wake.clear()
            if not (frame.points or frame.head[1] != self._last_head):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_period)
            self._last_head = frame.head[1]
            elapsed = time.monotonic() - self._last_tick
            if elapsed < self.period:
                await asyncio.sleep(self.period - elapsed)

    def stop_listener_only(self) -> None:
        """Detach the session listener but leave the (finishing) task alone."""
        if self._remove_listener is not None:
            with contextlib.suppress(Exception):
                self._remove_listener()
            self._remove_listener = None


def start_sampler(session: SessionView, apply: Callable[[FeedFrame], None], rate: float) -> Sampler:
    """Sample ``session`` into one widget's ``apply``: once now, then on the kernel loop (used alone)."""
    sampler = Sampler(SessionFeed(session), [apply], rate=rate)
    sampler.tick()
    sampler.start()
    return sampler
