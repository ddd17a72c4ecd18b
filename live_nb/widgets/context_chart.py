"""The context chart: the session's context window filling up and compressing, live.

The line is our estimate of the tokens in the context (ContextLedger), climbing at 25 tokens/s
for audio, 258 per video frame and ~len/4 for text; server-reported counts (``usageMetadata``) are
drawn as separate markers, so the two are never confused. The window limit, the compression
trigger and target are horizontal lines; a compression is an arrow where the context drops,
solid when the server's numbers showed it and dashed when only our model of the sliding window
predicted it. The header forecasts the next compression and the full window at the current rate.

Transport (anywidget's "state in traits, events in messages"):

- every sample with something new goes to the browser as one custom message
  ``{"type": "delta", "seq", "points", "compressions", "markers", "head", "forecast"}``: points
  are *appended*, never re-sent;
- the traits ``series``/``compressions``/``markers`` hold a bounded copy (``Series``) for a page
  reload or a saved notebook; they are refreshed (a "checkpoint") at most every
  ``checkpoint_interval`` seconds, and at once when a new view asks (``{"type": "resync"}``),
  so a view that missed deltas catches up.

The title and the marker labels (a reconnect's close reason comes from the server) are untrusted
text: context_chart.js sets them as textContent and static.py escapes them, never HTML; they are
plain text, not Markdown, because JupyterLab's sanitiser does not run inside a widget view.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ._feed import FeedFrame, PointJson, Series, start_sampler
from .static import StaticChart, render_chart_svg

__all__ = ["ContextChart"]

_HERE = Path(__file__).parent


def _round_forecast(forecast: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (None if v is None else round(v, 1)) for k, v in forecast.items()}


class ContextChart(anywidget.AnyWidget):
    """The context window of one session over time (usable alone or inside ``Dashboard``).

    Args:
        session: a ``LiveSession`` to follow; None to feed it ``apply(frame)`` yourself (the
            Dashboard does: one sampler drives all its parts).
        rate: the most samples (and messages) per second.
        max_points: the most points kept in the saved trait (older ones are thinned).
        checkpoint_interval: seconds between refreshes of the saved trait while streaming.
        **kwargs: traits, e.g. ``title`` or ``height``.
    """

    _esm = _HERE / "context_chart.js"
    _css = _HERE / "context_chart.css"

    title = traitlets.Unicode("Context window", help="Heading above the chart.").tag(sync=True)
    height = traitlets.Int(260, help="Height of the plot area in pixels.").tag(sync=True)
    window = traitlets.Int(128_000, help="The context window limit in tokens.").tag(sync=True)
    trigger = traitlets.Int(None, allow_none=True, help="Compression trigger (None: off).").tag(sync=True)
    target = traitlets.Int(None, allow_none=True, help="Compression target (None: off).").tag(sync=True)
    origin = traitlets.Float(0.0, help="time.time() of t=0 on the chart.").tag(sync=True)
    series: traitlets.List[list[Any]] = traitlets.List(
        help="Bounded copy of the line: [t, estimated, reported|null, kind] (0 est, 1 reported, 2 drop)."
    ).tag(sync=True)
    compressions: traitlets.List[dict[str, Any]] = traitlets.List(
        help="Compression events {i, t, before, after, by} (bounded)."
    ).tag(sync=True)
    markers: traitlets.List[dict[str, Any]] = traitlets.List(
        help="Lifecycle markers {t, kind, label}: GoAway, reconnect, resume."
    ).tag(sync=True)
    head = traitlets.List([0.0, 0, None, 0], help="The tip of the live line at the last checkpoint.").tag(sync=True)
    forecast = traitlets.Dict(help="{rate, to_trigger, to_window} at the last checkpoint.").tag(sync=True)
    seq = traitlets.Int(0, help="The last delta included in the saved traits.").tag(sync=True)

    max_compressions = 200
    max_markers = 100

    def __init__(
        self,
        session: Any = None,
        *,
        rate: float = 4.0,
        max_points: int = 600,
        checkpoint_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.checkpoint_interval = checkpoint_interval
        self._series = Series(max_points)
        self._compressions: dict[int, dict[str, Any]] = {}
        self._markers: list[dict[str, Any]] = []
        self._head: PointJson = [0.0, 0, None, 0]
        self._forecast: dict[str, float | None] = {}
        self._seq = 0
        self._dirty = False
        self._last_checkpoint = time.monotonic()  # the first checkpoint comes one interval in, whatever the uptime
        self._last_resync = 0.0
        self.deltas_sent = 0
        """Custom messages sent to the browser (for tests and the benchmark)."""
        self.on_msg(self._on_custom)
        self.sampler = None if session is None else start_sampler(session, self.apply, rate)

    # Public methods.

    def apply(self, frame: FeedFrame) -> None:
        """Take one sample: send what is new as a delta, and checkpoint the traits now and then."""
        if (frame.window, frame.trigger, frame.target, frame.origin) != (
            self.window,
            self.trigger,
            self.target,
            self.origin,
        ):
            with self.hold_sync():
                self.window, self.trigger, self.target = frame.window, frame.trigger, frame.target
                self.origin = frame.origin
        self._series.extend(frame.points)
        changed: list[list[Any]] = []
        for index, event in frame.compressions:
            item = {"i": index, **event}
            self._compressions[index] = item
            changed.append([index, event])
        while len(self._compressions) > self.max_compressions:
            del self._compressions[min(self._compressions)]
        self._markers.extend(frame.markers)
        del self._markers[: -self.max_markers]
        head_moved = frame.head[1] != self._head[1] or self._seq == 0
        self._head = frame.head
        self._forecast = _round_forecast(frame.forecast)
        if frame.points or changed or frame.markers or head_moved:
            self._seq += 1
            self._dirty = True
            self._send_delta(
                {
                    "type": "delta",
                    "seq": self._seq,
                    "points": list(frame.points),
                    "compressions": changed,
                    "markers": list(frame.markers),
                    "head": frame.head,
                    "forecast": self._forecast,
                }
            )
        if self._dirty and time.monotonic() - self._last_checkpoint >= self.checkpoint_interval:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Copy the bounded series into the traits (what a reload or a saved notebook shows)."""
        with self.hold_sync():
            self.series = list(self._series.points)
            self.compressions = [self._compressions[i] for i in sorted(self._compressions)]
            self.markers = list(self._markers)
            self.head = list(self._head)
            self.forecast = dict(self._forecast)
            self.seq = self._seq
        self._dirty = False
        self._last_checkpoint = time.monotonic()

    @property
    def point_count(self) -> int:
        """Points in the bounded series (the saved trait holds this many after a checkpoint)."""
        return len(self._series.points)

    def static_chart(self) -> StaticChart:
        """The chart's current data for a static (SVG) rendering."""
        return StaticChart(
            points=list(self._series.points),
            compressions=[self._compressions[i] for i in sorted(self._compressions)],
            markers=list(self._markers),
            head=list(self._head),
            window=self.window,
            trigger=self.trigger,
            target=self.target,
            forecast=dict(self._forecast),
            title=self.title,
        )

    def to_svg(self, width: int = 720, height: int = 300) -> str:
        """The chart as a standalone SVG document (for saved notebooks and nbconvert)."""
        return render_chart_svg(self.static_chart(), width=width, height=height)

    def close(self) -> None:
        """Stop sampling and close the widget."""
        if self.sampler is not None:
            self.sampler.stop()
        super().close()

    def __repr__(self) -> str:
        # ipywidgets' repr lists every trait; the series would make it long and slow.
        return f"ContextChart(points={len(self._series.points)}, window={self.window})"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # The widget view for JupyterLab, plus a picture for GitHub / nbconvert (anywidget returns
        # a (data, metadata) pair; ipywidgets a bare dict).
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if isinstance(data, dict):
            data["image/svg+xml"] = self.to_svg()
        return bundle

    # Private methods.

    def _send_delta(self, content: dict[str, Any]) -> None:
        if self.comm is None:
            return
        self.send(content)
        self.deltas_sent += 1

    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "resync":
            # A new view (or a reloaded page) missed the deltas since the last checkpoint.
            now = time.monotonic()
            if now - self._last_resync >= 0.5:
                self._last_resync = now
                self.checkpoint()
