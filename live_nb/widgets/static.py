"""Static pictures of the context window: SVG for saved notebooks, matplotlib for ``plot_context``.

Why: a widget view needs a live kernel and the widget's JavaScript; a notebook read on GitHub or
converted by nbconvert has neither. The dashboard therefore puts an ``image/svg+xml`` rendering
next to its widget view (JupyterLab shows the view, everything else the picture). The SVG is drawn
here in plain Python (no matplotlib import on the hot path, no fonts or CDN), with the same scales,
colours and dash patterns as the browser chart (context_chart.js), in a colour-blind-safe palette
(Okabe & Ito) on a white card, so it reads on light and dark pages alike.

Untrusted text: model replies, transcriptions, tool calls, close reasons and titles reach the picture,
and the picture is saved in the .ipynb, where viewers may inline it (nbconvert's HTML does). So the
SVG is built element by element (``_element``) with every attribute value and every text escaped
(``xml_attr`` / ``xml_text``), and text stays plain text: Markdown is not rendered anywhere, because
no sanitiser we could rely on runs on every viewer of a saved notebook.

``plot_context(session)`` is the one-off figure (matplotlib, imported lazily) from the session's
pandas-free ledger data; the notebook layer offers it as ``plot_context(session)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from ..client.view import SessionView

NONE = "\u2013"  # en dash: "no value"
MINUS = "\u2212"

__all__ = [
    "PALETTE",
    "StaticChart",
    "format_duration",
    "format_tokens",
    "media_line",
    "nice_ticks",
    "plot_context",
    "render_chart_svg",
    "render_dashboard_svg",
    "tool_line",
    "xml_attr",
    "xml_text",
    "y_domain",
]

# Okabe-Ito, the colour-blind-safe palette; every series also differs by shape or dash.
PALETTE = {
    "estimate": "#0072B2",  # blue: our estimate (line)
    "reported": "#E69F00",  # orange: server-reported counts (diamonds)
    "window": "#D55E00",  # vermillion: the hard limit
    "trigger": "#CC79A7",  # reddish purple: compression trigger (dashed)
    "target": "#009E73",  # bluish green: compression target (dotted)
    "compression": "#D55E00",
    "marker": "#666666",
    "text": "#1f1f1f",
    "muted": "#5f6368",
    "grid": "#e6e6e6",
}


@dataclass
class StaticChart:
    """The data a static chart needs: the same shapes the widget keeps in its traits."""

    points: list[list[Any]]
    compressions: list[dict[str, Any]]
    markers: list[dict[str, Any]] = field(default_factory=list)
    head: list[Any] | None = None
    window: int = 128_000
    trigger: int | None = None
    target: int | None = None
    forecast: dict[str, float | None] = field(default_factory=dict)
    title: str = "Context window"


def format_tokens(value: float) -> str:
    """12,345 -> "12.3k"; 128,000 -> "128k"."""
    value = float(value)
    if abs(value) >= 1000:
        text = f"{value / 1000:.1f}".rstrip("0").rstrip(".")
        return text + "k"
    return f"{value:.0f}"


def format_duration(seconds: float | None) -> str:
    """Seconds as m:ss (or h:mm:ss); an en dash for None."""
    if seconds is None or not math.isfinite(seconds):
        return NONE
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5, 5 x 10^n steps)."""
    span = max(high - low, 1e-9)
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    return ticks


def y_domain(chart: StaticChart) -> tuple[float, bool]:
    """The top of the y axis, and whether the window line fits on it.

    The window (128k) would flatten a session that compresses at 10k, so the axis covers what
    happened plus the trigger, and takes in the window only when it is within reach.
    """
    seen = [float(p[1]) for p in chart.points] + [float(p[2]) for p in chart.points if p[2] is not None]
    seen += [float(c["before"]) for c in chart.compressions]
    if chart.head:
        seen.append(float(chart.head[1]))
    top = max([*seen, float(chart.trigger or 0), 1000.0]) * 1.12
    show_window = chart.window <= top * 1.6 or (chart.trigger is None and not seen)
    if show_window:
        top = max(top, chart.window * 1.05)
    return top, show_window


def _x_domain(chart: StaticChart) -> float:
    times = [float(p[0]) for p in chart.points]
    if chart.head:
        times.append(float(chart.head[0]))
    return max([*times, 10.0])


# SVG building. Every element goes through `_element`/`_start`, which escape every attribute value
# and all text: the picture is saved into the .ipynb and shown by viewers (nbconvert's HTML inlines
# SVG) that would otherwise run markup hidden in model replies, transcripts, close reasons or titles.

# Characters XML 1.0 cannot hold at all (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/U+FFFF):
# one of them in a transcript would make the whole saved picture unreadable.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTR_ENTITIES = {'"': "&quot;", "'": "&apos;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


def xml_text(value: object) -> str:
    """``value`` as XML character data: ``&``, ``<`` and ``>`` escaped, characters XML cannot hold as U+FFFD."""
    return escape(_XML_INVALID.sub("\ufffd", str(value)))


def xml_attr(value: object) -> str:
    """``value`` for a double- or single-quoted XML attribute (quotes and whitespace escaped too)."""
    return escape(_XML_INVALID.sub("\ufffd", str(value)), _ATTR_ENTITIES)


def _number(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _start(tag: str, attrs: Mapping[str, object]) -> str:
    """An opening tag; attribute values escaped, names checked (they come from this module only)."""
    parts = [tag]
    for name, value in attrs.items():
        if not _NAME.match(name):
            raise ValueError(f"bad SVG attribute name {name!r}")
        if value is not None:
            parts.append(f'{name}="{xml_attr(_number(value))}"')
    return "<" + " ".join(parts) + ">"


def _element(tag: str, attrs: Mapping[str, object], text: object = None) -> str:
    """One SVG element: empty (``<line .../>``) or holding ``text`` (escaped: never markup)."""
    start = _start(tag, attrs)
    if text is None:
        return start[:-1] + "/>"
    return f"{start}{xml_text(text)}</{tag}>"


def _svg_start(width: int, height: int) -> str:
    return _start(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "width": width,
            "height": height,
            "viewBox": f"0 0 {width} {height}",
            "font-family": "Helvetica, Arial, sans-serif",
            "font-size": 11,
        },
    )


def _card(width: int, height: int) -> str:
    return _element(
        "rect", {"x": 0, "y": 0, "width": width, "height": height, "rx": 6, "fill": "#ffffff", "stroke": "#d0d0d0"}
    )


def render_chart_svg(chart: StaticChart, width: int = 720, height: int = 300) -> str:
    """The context chart as a standalone SVG document (all text escaped)."""
    return "\n".join([_svg_start(width, height), *_chart_elements(chart, width, height), "</svg>"])


def _chart_elements(chart: StaticChart, width: int, height: int) -> list[str]:
    """The chart's elements, its white card first (without the enclosing ``<svg>``)."""
    left, right, top_pad, bottom = 58, 16, 44, 30
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    x_max = _x_domain(chart)
    y_max, show_window = y_domain(chart)

    def sx(t: float) -> float:
        return left + plot_w * float(t) / x_max

    def sy(v: float) -> float:
        return top_pad + plot_h * (1 - float(v) / y_max)

    c = PALETTE
    out: list[str] = [
        _card(width, height),
        _element("text", {"x": left, "y": 18, "font-size": 13, "font-weight": 600, "fill": c["text"]}, chart.title),
    ]
    # Subtitle: now, rate and forecast.
    head_value = float(chart.head[1]) if chart.head else (float(chart.points[-1][1]) if chart.points else 0.0)
    forecast = chart.forecast or {}
    parts = [f"now {format_tokens(head_value)} tokens"]
    rate = forecast.get("rate")
    if rate:
        parts.append(f"{rate:.0f} tok/s")
    if chart.trigger is not None and head_value >= chart.trigger:
        parts.append("above the trigger: compresses when the next turn starts")
    elif forecast.get("to_trigger") is not None:
        parts.append(f"next compression in ~{format_duration(forecast['to_trigger'])}")
    if forecast.get("to_window") is not None:
        parts.append(f"window full in ~{format_duration(forecast['to_window'])}")
    parts.append(f"{len(chart.compressions)} compression{'s' if len(chart.compressions) != 1 else ''}")
    out.append(_element("text", {"x": left, "y": 34, "fill": c["muted"]}, " · ".join(parts)))

    # Grid and axes.
    for tick in nice_ticks(0, y_max, 5):
        y = sy(tick)
        out.append(_element("line", {"x1": left, "x2": left + plot_w, "y1": y, "y2": y, "stroke": c["grid"]}))
        out.append(
            _element("text", {"x": left - 6, "y": y + 4, "text-anchor": "end", "fill": c["muted"]}, format_tokens(tick))
        )
    for tick in nice_ticks(0, x_max, 6):
        out.append(
            _element(
                "text",
                {"x": sx(tick), "y": top_pad + plot_h + 16, "text-anchor": "middle", "fill": c["muted"]},
                format_duration(tick),
            )
        )
    out.append(
        _element(
            "line",
            {"x1": left, "x2": left + plot_w, "y1": top_pad + plot_h, "y2": top_pad + plot_h, "stroke": "#9e9e9e"},
        )
    )

    # Limits.
    limits: list[tuple[str, float | None, str | None]] = [
        ("window", chart.window if show_window else None, None),
        ("trigger", chart.trigger, "6 4"),
        ("target", chart.target, "2 3"),
    ]
    for name, value, dash in limits:
        if value is None:
            continue
        y = sy(value)
        out.append(
            _element(
                "line",
                {
                    "x1": left,
                    "x2": left + plot_w,
                    "y1": y,
                    "y2": y,
                    "stroke": c[name],
                    "stroke-width": 1.5,
                    "stroke-dasharray": dash,
                },
            )
        )
        out.append(_element("text", {"x": left + 4, "y": y - 4, "fill": c[name]}, f"{name} {format_tokens(value)}"))
    if not show_window:
        out.append(
            _element(
                "text",
                {"x": left + plot_w - 4, "y": top_pad - 2, "text-anchor": "end", "fill": c["window"]},
                f"window {format_tokens(chart.window)} ↑ (above the chart)",
            )
        )

    # Lifecycle markers (their labels can carry a server's close reason: text, escaped).
    for row, marker in enumerate(chart.markers[-30:]):
        x = sx(marker["t"])
        out.append(
            _element(
                "line",
                {
                    "x1": x,
                    "x2": x,
                    "y1": top_pad,
                    "y2": top_pad + plot_h,
                    "stroke": c["marker"],
                    "stroke-dasharray": "1 3",
                },
            )
        )
        out.append(
            _element(
                "text",
                {"x": x + 3, "y": top_pad + 10 + 11 * (row % 3), "fill": c["marker"], "font-size": 10},
                marker.get("label", ""),
            )
        )

    # The estimate line.
    line = [(float(p[0]), float(p[1])) for p in chart.points]
    if chart.head:
        line.append((float(chart.head[0]), float(chart.head[1])))
    if line:
        d = " ".join(f"{'M' if i == 0 else 'L'}{sx(t):.1f},{sy(v):.1f}" for i, (t, v) in enumerate(line))
        out.append(
            _element(
                "path",
                {"d": d, "fill": "none", "stroke": c["estimate"], "stroke-width": 2, "stroke-linejoin": "round"},
            )
        )

    # Server-reported counts: diamonds.
    for p in chart.points:
        if p[2] is None:
            continue
        x, y = sx(p[0]), sy(p[2])
        d = f"M{x:.1f},{y - 4:.1f} L{x + 4:.1f},{y:.1f} L{x:.1f},{y + 4:.1f} L{x - 4:.1f},{y:.1f} Z"
        out.append(_element("path", {"d": d, "fill": c["reported"], "stroke": "#ffffff", "stroke-width": 0.8}))

    # Compressions: arrows down from before to after.
    for event in chart.compressions:
        x, y1, y2 = sx(event["t"]), sy(event["before"]), sy(event["after"])
        dash = None if event.get("by") == "reported" else "3 2"
        out.append(
            _element(
                "line",
                {
                    "x1": x,
                    "x2": x,
                    "y1": y1,
                    "y2": y2 - 5,
                    "stroke": c["compression"],
                    "stroke-width": 1.5,
                    "stroke-dasharray": dash,
                },
            )
        )
        d = f"M{x - 4:.1f},{y2 - 6:.1f} L{x + 4:.1f},{y2 - 6:.1f} L{x:.1f},{y2:.1f} Z"
        out.append(_element("path", {"d": d, "fill": c["compression"]}))
        drop = float(event["before"]) - float(event["after"])
        out.append(
            _element(
                "text",
                {"x": x + 5, "y": (y1 + y2) / 2, "fill": c["compression"], "font-size": 10},
                f"{MINUS}{format_tokens(drop)}",
            )
        )

    # Legend.
    x = left + plot_w - 270
    for label, shape in (("estimate", "line"), ("server count", "diamond"), ("compression", "arrow")):
        if shape == "line":
            out.append(
                _element(
                    "line", {"x1": x, "x2": x + 16, "y1": 14, "y2": 14, "stroke": c["estimate"], "stroke-width": 2}
                )
            )
        elif shape == "diamond":
            d = f"M{x + 8},10 L{x + 12},14 L{x + 8},18 L{x + 4},14 Z"
            out.append(_element("path", {"d": d, "fill": c["reported"]}))
        else:
            out.append(_element("path", {"d": f"M{x + 4},10 L{x + 12},10 L{x + 8},18 Z", "fill": c["compression"]}))
        out.append(_element("text", {"x": x + 20, "y": 18, "fill": c["text"]}, label))
        x += 24 + 7 * len(label)
    return out


def render_dashboard_svg(
    chart: StaticChart,
    connection: dict[str, Any],
    usage: dict[str, Any],
    turns: Sequence[dict[str, Any]] = (),
    width: int = 720,
    media: dict[str, Any] | None = None,
    tools: Sequence[dict[str, Any]] = (),
) -> str:
    """The whole dashboard as one SVG: the chart, then connection, usage, streaming and the latest turns.

    Every value is written as escaped text (turns hold model replies and transcriptions).
    ``media`` is a ``_feed.media_state`` dict; None (an older caller) leaves the streaming line out.
    ``tools`` are the tools panel's calls (``_feed.tool_run_json``): the last four get a line each.
    """
    chart_h = 300
    lines: list[str] = []
    conn = connection
    lines.append(
        f"{conn.get('backend', '?')} · {conn.get('model', '?')} · state {conn.get('state', '?')} · "
        f"reconnects {conn.get('reconnects', 0)} · resumable {'yes' if conn.get('resumable') else 'no'}"
    )
    handle = str(conn.get("handle") or "")
    short = handle if len(handle) <= 13 else f"{handle[:6]}…{handle[-6:]}"
    lines.append(
        f"handle {short or NONE} · last consumed index {conn.get('last_consumed_index', NONE)} · "
        f"replay buffer {conn.get('replay_depth', 0)}"
    )
    sent = ", ".join(f"{k.lower()} {format_tokens(v)}" for k, v in usage.get("input_by_modality", {}).items())
    received = ", ".join(f"{k.lower()} {format_tokens(v)}" for k, v in usage.get("output_by_modality", {}).items())
    lines.append(f"tokens in: {sent or NONE} · out: {received or NONE} (estimates)")
    if usage.get("prompt_tokens") is not None:
        lines.append(
            f"server: prompt {format_tokens(usage['prompt_tokens'])}, response "
            f"{format_tokens(usage.get('response_tokens') or 0)}, total {format_tokens(usage.get('total_tokens') or 0)}"
        )
    if media is not None:
        lines.append(media_line(media))
    for run in list(tools)[-4:]:
        lines.append(tool_line(run))
    for turn in list(turns)[-4:]:
        text = str(turn.get("text", "")).replace("\n", " ")
        if len(text) > 100:
            text = text[:99] + "…"
        lines.append(f"{turn.get('role', '?')}: {text}")
    height = chart_h + 16 + 18 * len(lines) + 8
    out = [_svg_start(width, height), _card(width, height), *_chart_elements(chart, width, chart_h)]
    y = chart_h + 20
    for text in lines:
        out.append(_element("text", {"x": 16, "y": y, "fill": PALETTE["text"]}, text))
        y += 18
    out.append("</svg>")
    return "\n".join(out)


def tool_line(run: dict[str, Any]) -> str:
    """One line on a tool call, as the tools panel says it: name(args), status, duration, result."""
    args = str(run.get("args", ""))
    if len(args) > 40:
        args = args[:39] + "…"
    line = f"tool {run.get('name', '?')}({args}) {run.get('status', '?')}"
    if run.get("status") != "running":
        line += f" in {float(run.get('seconds') or 0.0):.2f} s"
    result = str(run.get("result", "")).replace("\n", " ")
    if result and run.get("status") != "running":
        line += f": {result[:60] + '…' if len(result) > 60 else result}"
    return line


def media_line(media: dict[str, Any]) -> str:
    """One line on what streams and what it costs, as the streaming panel says it."""
    if not media.get("present"):
        return "streaming: not streaming"
    rate = float(media.get("token_rate") or 0.0)
    return (
        f"streaming: mic {media.get('mic', 'off')} · camera {media.get('camera', 'off')} · "
        f"{rate:.0f} tokens/s · {media.get('chunks_received', 0)} chunks, {media.get('frames_received', 0)} frames, "
        f"{media.get('gaps', 0)} gaps"
    )


def plot_context(session: SessionView, ax: Any = None) -> Any:
    """A matplotlib figure of the session's context window over time.

    Args:
        session: a ``LiveSession`` (anything with a ``ledger``: ContextLedger).
        ax: an existing matplotlib Axes to draw into; a new figure when None.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    ledger = session.ledger
    points = list(ledger.points)
    started = getattr(session, "connection_started", None)
    origin = min([p.time for p in points[:1]] + ([started] if started else [])) if (points or started) else 0.0
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.4), layout="constrained")
    else:
        fig = ax.figure
    c = PALETTE
    times = [p.time - origin for p in points]
    ax.plot(times, [p.estimated for p in points], color=c["estimate"], lw=2, label="estimate")
    reported = [(p.time - origin, p.reported) for p in points if p.reported is not None]
    if reported:
        ax.scatter(*zip(*reported, strict=True), marker="D", s=22, color=c["reported"], zorder=3, label="server count")
    for value, name, style in ((ledger.trigger, "trigger", "--"), (ledger.target, "target", ":")):
        if value is not None:
            ax.axhline(value, color=c[name], ls=style, lw=1.3, label=f"{name} {format_tokens(value)}")
    top = max([p.estimated for p in points] + [float(ledger.trigger or 0), 1000.0]) * 1.12
    if ledger.window <= top * 1.6:
        ax.axhline(ledger.window, color=c["window"], lw=1.5, label=f"window {format_tokens(ledger.window)}")
        top = max(top, ledger.window * 1.05)
    for i, event in enumerate(ledger.compressions):
        ax.annotate(
            "",
            xy=(event.time - origin, event.after),
            xytext=(event.time - origin, event.before),
            arrowprops={
                "arrowstyle": "-|>",
                "color": c["compression"],
                "lw": 1.5,
                "ls": "-" if event.detected_by == "reported" else "--",
            },
        )
        if i == 0:
            ax.plot([], [], color=c["compression"], label="compression")
    ax.set_ylim(0, top)
    ax.set_xlim(left=0)
    ax.set_xlabel("seconds since the session started")
    ax.set_ylabel("tokens in context")
    ax.set_title("Context window")
    ax.grid(True, color=c["grid"])
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return fig
