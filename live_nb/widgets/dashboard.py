"""The session dashboard: context chart, connection, usage, streaming, transcript and tools, each usable alone.

``Dashboard(session)`` lays out a ``ContextChart`` and three panels in a grid and drives them all
from one ``Sampler`` on the kernel's event loop (at most 4 samples a second; see ``_feed.py``).
Each panel is also a widget of its own: ``ConnectionPanel(session)`` follows a session by itself.
``MediaPanel`` shows what the session's mic/camera streamer (``media.py``) sends and the input
tokens per second that costs; it reads the streamer's counters at the sampling rate, so the
media path (10 audio chunks a second) gains no message of its own. ``ToolsPanel`` lists the latest
tool calls the client's tool loop ran (name, status, duration, arguments and result as text).

What changes every sample (the context line) travels as deltas in the chart's custom messages.
The panels' state is a handful of small traits (anywidget: state in traits) sent only when a value
changes; the clocks (connection age, the GoAway countdown) run in the browser from absolute
deadlines, so they keep counting without a single kernel message.

In a saved notebook the dashboard's output carries an ``image/svg+xml`` picture next to the widget
view, so it reads on GitHub and in nbconvert output; ``snapshot()`` refreshes that picture (and it
is refreshed when the session closes and, at most once a minute, when a cell finishes).

Untrusted text (model replies, input and output transcriptions, user text echoed back, tool calls,
close reasons) travels in the traits as plain strings; dashboard.js sets it as textContent and
static.py escapes it, so it is never HTML. It is shown as plain text, not Markdown, because the
sanitiser JupyterLab applies to untrusted outputs does not run inside a widget view or a saved SVG.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import traitlets

from ..client.view import SessionView
from ..protocol.config import CONNECTION_LIFETIME_SECONDS
from ._feed import FeedFrame, Sampler, SessionFeed, start_sampler
from .context_chart import ContextChart
from .static import render_dashboard_svg
from .streamers import StreamerState

__all__ = ["ConnectionPanel", "Dashboard", "MediaPanel", "ToolsPanel", "TranscriptPanel", "UsagePanel"]

_HERE = Path(__file__).parent


class _Panel(anywidget.AnyWidget):
    """A dashboard panel: one ESM (dashboard.js) draws whichever ``part`` this is."""

    _esm = _HERE / "dashboard.js"
    _css = _HERE / "dashboard.css"

    part = traitlets.Unicode(help="Which panel dashboard.js draws.").tag(sync=True)

    def __init__(self, session: SessionView | None = None, *, rate: float = 4.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sampler = None if session is None else start_sampler(session, self.apply, rate)

    def apply(self, frame: FeedFrame) -> None:
        """Take one sample (traits are only sent when a value changed)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop sampling and close the widget."""
        if self.sampler is not None:
            self.sampler.stop()
        super().close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _set(self, values: dict[str, Any]) -> None:
        changed = {k: v for k, v in values.items() if getattr(self, k) != v}
        if changed:
            with self.hold_sync():
                for key, value in changed.items():
                    setattr(self, key, value)


class ConnectionPanel(_Panel):
    """Backend, model, state, connection age against its limit, GoAway countdown, handle, replay.

    Args:
        session: a ``LiveSession`` to follow, or None when a Dashboard feeds it.
        connection_limit: the service's connection lifetime in seconds (about 10 minutes; pass the
            emulator's scaled value to match a time-scaled emulator).
    """

    part = traitlets.Unicode("connection").tag(sync=True)
    backend = traitlets.Unicode(help="emulator, gemini or vertex.").tag(sync=True)
    model = traitlets.Unicode(help="The model name.").tag(sync=True)
    state = traitlets.Unicode(help="connecting, active, going_away, reconnecting or closed.").tag(sync=True)
    connection_started = traitlets.Float(None, allow_none=True, help="time.time() the connection opened.").tag(
        sync=True
    )
    connection_limit = traitlets.Float(CONNECTION_LIFETIME_SECONDS, help="Connection lifetime in seconds.").tag(
        sync=True
    )
    go_away_deadline = traitlets.Float(
        None, allow_none=True, help="time.time() the server will close the connection (from GoAway)."
    ).tag(sync=True)
    reconnects = traitlets.Int(0, help="Reconnections so far.").tag(sync=True)
    handle = traitlets.Unicode(help="The latest resumption handle (shortened in the view).").tag(sync=True)
    resumable = traitlets.Bool(False, help="Whether the session can be resumed right now.").tag(sync=True)
    last_consumed_index = traitlets.Int(
        None, allow_none=True, help="lastConsumedClientMessageIndex from the server."
    ).tag(sync=True)
    replay_depth = traitlets.Int(0, help="Client messages buffered for replay.").tag(sync=True)
    kernel_time = traitlets.Float(0.0, help="time.time() in the kernel when the state last changed.").tag(sync=True)

    def __init__(
        self, session: Any = None, *, connection_limit: float = CONNECTION_LIFETIME_SECONDS, **kwargs: Any
    ) -> None:
        super().__init__(session, connection_limit=connection_limit, **kwargs)

    def apply(self, frame: FeedFrame) -> None:
        """Copy the connection fields; the browser counts the clocks down by itself."""
        values = dict(frame.connection)
        changed = {k: v for k, v in values.items() if getattr(self, k) != v}
        if changed:
            changed["kernel_time"] = round(time.time(), 3)
            self._set(changed)


class UsagePanel(_Panel):
    """Tokens by modality (our estimates, in and out) and the server's last prompt/response counts."""

    part = traitlets.Unicode("usage").tag(sync=True)
    input_by_modality = traitlets.Dict(help="Estimated input tokens by modality.").tag(sync=True)
    output_by_modality = traitlets.Dict(help="Estimated output tokens by modality.").tag(sync=True)
    prompt_tokens = traitlets.Int(None, allow_none=True, help="Server: last promptTokenCount.").tag(sync=True)
    response_tokens = traitlets.Int(None, allow_none=True, help="Server: last responseTokenCount.").tag(sync=True)
    total_tokens = traitlets.Int(None, allow_none=True, help="Server: last totalTokenCount.").tag(sync=True)
    prompt_by_modality = traitlets.Dict(help="Server: last prompt tokens by modality.").tag(sync=True)
    response_by_modality = traitlets.Dict(help="Server: last response tokens by modality.").tag(sync=True)
    reports = traitlets.Int(0, help="usageMetadata reports received.").tag(sync=True)
    estimated = traitlets.Int(0, help="Our estimate of the context now.").tag(sync=True)

    min_interval = 1.0
    """Seconds between updates while the numbers tick up with streamed audio (they are read, not watched)."""

    def __init__(self, session: Any = None, **kwargs: Any) -> None:
        self._last_update = 0.0
        super().__init__(session, **kwargs)

    def apply(self, frame: FeedFrame) -> None:
        """Copy the usage numbers, at most once a second unless the server reported."""
        values = dict(frame.usage)
        now = time.monotonic()
        if values.get("reports") == self.reports and now - self._last_update < self.min_interval:
            return
        self._last_update = now
        self._set(values)


class MediaPanel(_Panel):
    """What streams into the session (mic, camera), the token rate it costs, chunks, frames and gaps.

    A session nobody streams into shows "not streaming". Switches (mic on/off/muted, camera,
    capture state, a new gap, an error) are sent at once; the counters, the rate and the level,
    which move with every chunk, at most once a second.

    Args:
        session: a ``LiveSession`` to follow, or None when a Dashboard feeds it.
        media: the ``MediaStreamer`` to show; None finds the one ``start_media`` made for the
            session (``%live mic on``, the notebook's ``stream``), whenever it starts.
    """

    part = traitlets.Unicode("media").tag(sync=True)
    present = traitlets.Bool(False, help="A streamer is attached to the session.").tag(sync=True)
    streaming = traitlets.Bool(False, help="Audio or video is arriving in the kernel now.").tag(sync=True)
    mic = traitlets.Unicode("off", help="off, on, muted or waiting (asked for, nothing arriving).").tag(sync=True)
    camera = traitlets.Unicode("off", help="off, on or waiting (asked for, nothing arriving).").tag(sync=True)
    capture_state = traitlets.Unicode(help="The browser's capture: idle, starting, streaming, stopped, error.").tag(
        sync=True
    )
    token_rate = traitlets.Float(0.0, help="Input tokens per second streaming costs (measured over 5 s).").tag(
        sync=True
    )
    nominal_rate = traitlets.Float(0.0, help="The same at the Live API's rates (25/s audio, 258 per frame).").tag(
        sync=True
    )
    chunks_received = traitlets.Int(0, help="Audio chunks received by the kernel.").tag(sync=True)
    frames_received = traitlets.Int(0, help="Video frames received by the kernel.").tag(sync=True)
    gaps = traitlets.Int(0, help="Times chunks or frames were lost.").tag(sync=True)
    missing_chunks = traitlets.Int(0, help="Audio chunks lost in all.").tag(sync=True)
    level = traitlets.Float(0.0, help="Input level (RMS 0..1) when last sent.").tag(sync=True)
    error = traitlets.Unicode(help="The streamer's error message, if any.").tag(sync=True)

    min_interval = 1.0
    """Seconds between updates of the moving numbers (counters, rate, level)."""
    _SWITCHES = ("present", "streaming", "mic", "camera", "capture_state", "gaps", "error")

    def __init__(
        self, session: SessionView | None = None, *, media: StreamerState | None = None, rate: float = 4.0,
        **kwargs: Any,
    ) -> None:
        self._last_update = 0.0
        super().__init__(None, **kwargs)
        if session is not None:
            self.sampler = Sampler(SessionFeed(session, media=media), [self.apply], rate=rate)
            self.sampler.tick()
            self.sampler.start()

    def apply(self, frame: FeedFrame) -> None:
        """Copy the streaming state: switches at once, moving numbers at most once a second."""
        values = dict(frame.media)
        if not values:
            return
        now = time.monotonic()
        switched = any(getattr(self, key) != values.get(key, getattr(self, key)) for key in self._SWITCHES)
        if not switched and now - self._last_update < self.min_interval:
            return
        self._last_update = now
        self._set({k: v for k, v in values.items() if self.has_trait(k) and k != "part"})


class TranscriptPanel(_Panel):
    """The latest turns of the conversation (input and output transcriptions, text)."""

    part = traitlets.Unicode("transcript").tag(sync=True)
    turns: traitlets.List[dict[str, Any]] = traitlets.List(help="The latest turns: {t, role, text} (bounded).").tag(
        sync=True
    )

    def apply(self, frame: FeedFrame) -> None:
        """Replace the turns when they changed (a handful of short entries)."""
        if frame.turns is not None:
            self._set({"turns": [dict(turn) for turn in frame.turns]})


class ToolsPanel(_Panel):
    """The latest tool calls: name, status (running, returned, failed, cancelled, timed_out), duration,
    arguments and result, all as text (they come from the model and the notebook's functions)."""

    part = traitlets.Unicode("tools").tag(sync=True)
    runs: traitlets.List[dict[str, Any]] = traitlets.List(
        help="The latest calls, oldest first: {id, t, name, args, status, seconds, result, behavior, scheduling}."
    ).tag(sync=True)

    def apply(self, frame: FeedFrame) -> None:
        """Replace the calls when they changed (at most ``SessionFeed.tool_runs`` short entries)."""
        if frame.tools is not None:
            self._set({"runs": [dict(run) for run in frame.tools]})


class Dashboard(ipywidgets.GridBox):  # type: ignore[misc]
    """Everything about one session at a glance, updating live while the kernel is idle.

    Args:
        session: the ``LiveSession`` to follow.
        rate: the most samples per second (each sample sends at most one chart delta).
        connection_limit: the connection lifetime in seconds shown against the connection's age.
        max_points: the most context points kept in the saved widget state.
        auto_snapshot: refresh the saved SVG picture when a cell finishes, at most this often
            (seconds); None to refresh only on ``snapshot()`` and when the session closes.
        start: start sampling now (on the running loop); False to drive ``sampler.tick()`` by hand.
        media: the ``MediaStreamer`` the streaming panel shows; None finds the session's own.
    """

    def __init__(
        self,
        session: SessionView,
        *,
        rate: float = 4.0,
        connection_limit: float = CONNECTION_LIFETIME_SECONDS,
        max_points: int = 600,
        auto_snapshot: float | None = 60.0,
        start: bool = True,
        media: StreamerState | None = None,
    ) -> None:
        self.session = session
        self.chart = ContextChart(max_points=max_points, layout=ipywidgets.Layout(grid_area="chart"))
        self.connection = ConnectionPanel(
            connection_limit=connection_limit, layout=ipywidgets.Layout(grid_area="connection")
        )
        self.usage = UsagePanel(layout=ipywidgets.Layout(grid_area="usage"))
        self.transcript = TranscriptPanel(layout=ipywidgets.Layout(grid_area="transcript"))
        self.media = MediaPanel(layout=ipywidgets.Layout(grid_area="media"))
        self.tools = ToolsPanel(layout=ipywidgets.Layout(grid_area="tools"))
        super().__init__(
            children=[self.chart, self.connection, self.usage, self.transcript, self.media, self.tools],
            layout=ipywidgets.Layout(
                grid_template_columns="minmax(0, 2fr) minmax(280px, 1fr)",
                grid_template_rows="auto auto auto auto",
                grid_template_areas='"chart connection" "chart usage" "transcript media" "tools tools"',
                grid_gap="8px",
                width="100%",
            ),
        )
        self.add_class("lnb-dashboard")
        self.feed = SessionFeed(session, media=media)
        self.last_frame: FeedFrame | None = None
        self.sampler = Sampler(
            self.feed,
            [
                self.chart.apply,
                self.connection.apply,
                self.usage.apply,
                self.transcript.apply,
                self.media.apply,
                self.tools.apply,
                self._remember,
            ],
            rate=rate,
        )
        self.auto_snapshot = auto_snapshot
        self._handle: Any = None
        self._last_snapshot = 0.0
        self._snapshot_key: Any = None
        self._hook: Any = None
        self._in_snapshot = False
        self.sampler.tick()
        if start:
            self.sampler.start()

    # Public methods.

    def snapshot(self) -> str:
        """Refresh the static SVG picture saved with the notebook, and return it."""
        if self._in_snapshot:  # called back from the tick below (the session just closed)
            return self.to_svg()
        self._in_snapshot = True
        try:
            self.sampler.tick()
            self.chart.checkpoint()
            svg = self.to_svg()
            if self._handle is not None:
                with contextlib.suppress(Exception):
                    self._handle.update(self._bundle(svg), raw=True)
            self._last_snapshot = time.monotonic()
            self._snapshot_key = self._key()
        finally:
            self._in_snapshot = False
        return svg

    def to_svg(self, width: int = 760) -> str:
        """The dashboard as one SVG: chart, connection, usage, streaming, the latest tool calls and turns."""
        frame = self.last_frame
        return render_dashboard_svg(
            self.chart.static_chart(),
            frame.connection if frame else {},
            frame.usage if frame else {},
            self.transcript.turns,
            width=width,
            media=frame.media if frame else None,
            tools=self.tools.runs,
        )

    def close(self) -> None:
        """Stop sampling, unhook from IPython and close every part."""
        self.sampler.stop()
        self._unhook()
        for child in (self.chart, self.connection, self.usage, self.transcript, self.media, self.tools):
            child.close()
        super().close()

    def __repr__(self) -> str:
        return f"Dashboard(state={getattr(self.session, 'state', '?')!r})"

    # Display: the widget view plus a static picture, under a display id so it can be refreshed.

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self._bundle(self.to_svg())

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self._handle = display(  # type: ignore[no-untyped-call]
            self._bundle(self.to_svg()), raw=True, display_id=True
        )
        self._snapshot_key = self._key()
        self._last_snapshot = time.monotonic()
        self._hook_ipython()

    # Private methods.

    def _bundle(self, svg: str) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_() or {}
        bundle = dict(bundle)
        bundle["text/plain"] = repr(self)
        bundle["image/svg+xml"] = svg
        return bundle

    def _remember(self, frame: FeedFrame) -> None:
        self.last_frame = frame
        # A closed session changes no more: keep its final picture in the saved notebook.
        closed = frame.connection.get("state") == "closed"
        if closed and self._handle is not None and not self._in_snapshot and self._snapshot_key != self._key():
            self.snapshot()

    def _key(self) -> Any:
        frame = self.last_frame
        return None if frame is None else (frame.head[1], self.chart.point_count, frame.connection.get("state"))

    def _hook_ipython(self) -> None:
        if self._hook is not None or self.auto_snapshot is None:
            return
        try:
            from IPython import get_ipython

            ip = get_ipython()
        except ImportError:
            return
        if ip is None:
            return
        ref = weakref.ref(self)

        def post_run_cell(*_args: Any) -> None:
            dashboard = ref()
            if dashboard is None:
                return
            dashboard._maybe_snapshot()

        ip.events.register("post_run_cell", post_run_cell)
        self._hook = (ip, post_run_cell)

    def _unhook(self) -> None:
        if self._hook is not None:
            ip, callback = self._hook
            with contextlib.suppress(ValueError):
                ip.events.unregister("post_run_cell", callback)
            self._hook = None

    def _maybe_snapshot(self) -> None:
        if self.auto_snapshot is None or self._handle is None:
            return
        if time.monotonic() - self._last_snapshot < self.auto_snapshot or self._key() == self._snapshot_key:
            return
        self.snapshot()
