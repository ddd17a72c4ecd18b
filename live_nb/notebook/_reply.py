"""One reply on its way into a cell: collected, rendered while it streams, finished at turnComplete.

Why a module of its own: this is where the kernel-loop.md rules for output live. Everything here
runs on live_nb's loop thread (session listeners run there), where no cell's parent header is
current, so ``CellRenderer`` pins every display update to the cell that asked
(``set_thread_parent`` / ``reset_thread_parent``) and never uses ``with out:``. ``Router`` is a
session's single listener: it hands content to the one request waiting for a turn, and keeps the
rest of a cancelled reply out of the next cell.

What a cell shows (today's Live models answer in audio, models.md):

- the reply's text as it streams: the model's text parts when a model answers in TEXT, else the
  output transcription of its audio. Always ``text/plain``: model text is untrusted, so it never
  goes into HTML or Markdown (a reply could otherwise carry markup, links or script into the page);
- once the reply is complete, its audio as a player: the inline 24 kHz PCM16 parts wrapped as WAV
  in an ``<audio>`` element whose HTML holds nothing but fixed attributes and base64, never model
  text. ``autoplay`` when the cell asked to speak.

A reply is the model's whole answer to the cell, which may take several model turns:

- tool calls (the client's tool loop runs the notebook's functions and reports ``ToolRun`` events):
  the cell shows each as a line of text as it happens (``→ get_weather(city='Paris') …``, then
  ``← get_weather returned {...} in 0.02 s``, failed, cancelled or timed out) above the reply, and
  keeps waiting while a call it asked runs, and, once a result went back with a spoken answer to
  come (any result but a SILENT one or a cancelled call), until that answer's turn is complete;
- extended thinking's fillers: a turn that completes with ``interactionStatus: IN_PROGRESS`` is a
  filler and more follows; ``IDLE`` ends the whole answer. The cell shows the filler's words, a
  line saying it was one, and ends at IDLE, not at the first turnComplete.

Memory: a ``Turn`` holds one reply's audio (at most ``MAX_REPLY_AUDIO_SECONDS``) until it is shown,
then lets it go; nothing here keeps audio across replies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import sys
import wave
from collections.abc import Callable, Sequence
from typing import Any

from IPython.display import display as _display

from ..exceptions import InvalidState
from ..protocol.events import Reconnecting, Resumed, SessionClosed, ToolRun
from ..protocol.messages import GoAway, ServerContent
from ..protocol.tokens import OUTPUT_AUDIO_RATE

__all__ = [
    "MAX_REPLY_AUDIO_SECONDS",
    "RENDER_INTERVAL",
    "CellRenderer",
    "Renderer",
    "Router",
    "StreamRenderer",
    "Turn",
    "audio_player",
    "call_text",
    "plain_text",
    "tool_line",
    "wav_bytes",
]

logger = logging.getLogger("live_nb.notebook")

# IPython's display helper is untyped; a typed alias keeps mypy --strict meaningful here.
display: Callable[..., Any] = _display

RENDER_INTERVAL = 0.05
"""Seconds between display updates while a reply streams in (chunks in between are batched)."""
MAX_REPLY_AUDIO_SECONDS = 300.0
"""Reply audio kept for a cell's player (24 kHz PCM16: 48 KB a second, 14 MB at most); the rest is
dropped with a note, so a runaway reply cannot fill the kernel's memory."""
PLACEHOLDER = "…"
ANSWER_WAIT = 20.0
"""Seconds a cell waits, after the model's turn ended, for the spoken answer to a tool result it sent
(WHEN_IDLE answers right after the turn, INTERRUPT at once): past that it ends with a note."""
ACTIVITY_CHARS = 300
"""A tool line shows at most this many characters of arguments or result."""


def _cut(text: str, limit: int = ACTIVITY_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_text(run: ToolRun) -> str:
    """``get_weather(city='Paris')``: the call as Python would read it (its JSON arguments, shortened)."""
    try:
        args = json.loads(run.args) if run.args else {}
    except ValueError:
        args = None
    shown = ", ".join(f"{key}={value!r}" for key, value in args.items()) if isinstance(args, dict) else run.args
    return f"{run.name}({_cut(shown)})"


_SCHEDULING_SAID = {
    "SILENT": "SILENT: taken in without a new turn",
    "WHEN_IDLE": "WHEN_IDLE: answered after the current turn",
    "INTERRUPT": "INTERRUPT: cuts into the reply",
}


def tool_line(run: ToolRun) -> str:
    """One line of tool activity for a cell: the call as it starts, or how it ended (text only)."""
    if run.status == "running":
        how = f" [{run.behavior}]" if run.behavior else ""
        return f"→ {call_text(run)} …{how}"
    took = f"{run.seconds:.2f} s"
    if run.status == "returned":
        line = f"← {run.name} returned {_cut(run.result)} in {took}"
    elif run.status == "failed":
        line = f"← {run.name} failed after {took}: {_cut(run.result)}"
    elif run.status == "timed_out":
        line = f"← {run.name} timed out after {took}" + (f": {_cut(run.result)}" if run.result else "")
    elif run.status == "cancelled":
        line = f"← {run.name} cancelled after {took} (the model no longer waits for it)"
    else:
        line = f"← {run.name} {run.status} after {took}"
    said = _SCHEDULING_SAID.get(run.scheduling or "")
    return f"{line} ({said})" if said and run.status != "cancelled" else line


def wav_bytes(pcm: bytes, rate: int = OUTPUT_AUDIO_RATE) -> bytes:
    """16-bit mono PCM wrapped in a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm[: len(pcm) - len(pcm) % 2])
    return buffer.getvalue()


def plain_text(text: str, notes: list[str], activity: Sequence[str] = ()) -> dict[str, str]:
    """The ``text/plain`` bundle of a reply, its tool activity above it and its notes below.

    Never HTML or Markdown: model text, tool arguments and results are untrusted.
    """
    body = text if text else PLACEHOLDER
    if activity:
        body = "\n".join(activity) + "\n" + body
    if notes:
        body += "\n" + "\n".join(f"[{note}]" for note in notes)
    return {"text/plain": body}


def audio_player(pcm: bytes, rate: int = OUTPUT_AUDIO_RATE, autoplay: bool = False) -> dict[str, str]:
    """A player for reply audio as a display bundle: an ``<audio>`` element holding a WAV data URI.

    The HTML is built from fixed text and base64 only (no model text can reach it); ``text/plain``
    says what it is for frontends that show no HTML.
    """
    seconds = len(pcm) / (2 * rate)
    data = base64.b64encode(wav_bytes(pcm, rate)).decode("ascii")
    play = " autoplay" if autoplay else ""
    return {
        "text/html": f'<audio controls{play} preload="auto" src="data:audio/wav;base64,{data}"></audio>',
        "text/plain": f"[reply audio: {seconds:.1f} s at {rate // 1000} kHz]",
    }


# Rendering.


class Renderer:
    """Shows one reply: updated while it streams, finished when the answer is complete (loop thread).

    ``activity`` holds the tool lines (``tool_line``) and filler markers so far; it is passed only
    when there are some, so a renderer written before tools still works for replies without them.
    """

    def update(self, text: str, notes: list[str], activity: Sequence[str] = ()) -> None:
        raise NotImplementedError

    def finish(self, text: str, notes: list[str], audio: bytes, activity: Sequence[str] = ()) -> None:
        raise NotImplementedError


class CellRenderer(Renderer):
    """Renders into a display created in the cell; every update is pinned to that cell's parent.

    The display handle is made on the main thread (so its first output has the cell's parent);
    updates come from the loop thread, which inherits no parent, hence ``set_thread_parent``.

    Args:
        ip: the shell.
        speak: play the reply aloud when it is complete (the player gets ``autoplay``).
    """

    def __init__(self, ip: Any, speak: bool = False) -> None:
        self.ip = ip
        self.speak = speak
        self.parent = ip.get_parent() if hasattr(ip, "get_parent") else None
        self.handle = display(plain_text("", []), raw=True, display_id=True)

    @contextlib.contextmanager
    def pinned(self) -> Any:
        setter = getattr(self.ip, "set_thread_parent", None)
        if self.parent is None or setter is None:
            yield
            return
        tokens = setter(self.parent)
        try:
            yield
        finally:
            self.ip.reset_thread_parent(tokens)

    def update(self, text: str, notes: list[str], activity: Sequence[str] = ()) -> None:
        with self.pinned():
            if self.handle is not None:
                self.handle.update(plain_text(text, notes, activity), raw=True)

    def finish(self, text: str, notes: list[str], audio: bytes, activity: Sequence[str] = ()) -> None:
        if not text and audio:
            text = "(no transcription of this reply: listen below)"
        with self.pinned():
            if self.handle is not None:
                self.handle.update(plain_text(text, notes, activity), raw=True)
            if audio:
                display(audio_player(audio, OUTPUT_AUDIO_RATE, autoplay=self.speak), raw=True)


class StreamRenderer(Renderer):
    """Writes the reply to stdout as it arrives (terminal IPython, scripts)."""

    def __init__(self) -> None:
        self.shown = 0
        self.notes_shown = 0
        self.activity_shown = 0

    def update(self, text: str, notes: list[str], activity: Sequence[str] = ()) -> None:
        for line in activity[self.activity_shown :]:  # tool lines as they happen, each on its own line
            sys.stdout.write(("\n" if self.shown else "") + line + "\n")
        self.activity_shown = max(self.activity_shown, len(activity))
        if text.startswith(text[: self.shown]) and len(text) > self.shown:
            sys.stdout.write(text[self.shown :])
            self.shown = len(text)
        for note in notes[self.notes_shown :]:
            sys.stdout.write(f"\n[{note}]\n")
        self.notes_shown = len(notes)
        sys.stdout.flush()

    def finish(self, text: str, notes: list[str], audio: bytes, activity: Sequence[str] = ()) -> None:
        self.update(text, notes, activity)
        if audio:
            sys.stdout.write(f"\n[{len(audio) / (2 * OUTPUT_AUDIO_RATE):.1f} s of reply audio]")
        sys.stdout.write("\n")
        sys.stdout.flush()


class Turn:
    """One request's answer being collected: one model turn, or several (tool calls, fillers). Loop thread.

    Args:
        renderer: where the reply goes.
        loop: the loop the session lives on.
        max_audio_seconds: reply audio kept for the player; beyond it the audio is dropped (noted).
        answer_wait: seconds to wait, after the model's turn ended, for the spoken answer to a tool
            result (``ANSWER_WAIT``).
        answering: the session's ``answering`` (the client's account of whether the model owes more
            of its answer: calls pending, results not yet answered, IN_PROGRESS). At each turn's end
            the cell waits on while it, or the Turn's own account from the ToolRun events it saw, says
            more is owed (bounded by ``answer_wait`` once the model is quiet and no call runs).
    """

    def __init__(
        self,
        renderer: Renderer,
        loop: asyncio.AbstractEventLoop,
        max_audio_seconds: float = MAX_REPLY_AUDIO_SECONDS,
        answer_wait: float = ANSWER_WAIT,
        answering: Callable[[], bool] | None = None,
    ) -> None:
        self.renderer = renderer
        self.answering = answering
        self.loop = loop
        self.done: asyncio.Future[str] = loop.create_future()
        self.text_parts: list[str] = []
        self.transcript_parts: list[str] = []
        self.audio = bytearray()
        self.max_audio_bytes = int(max_audio_seconds * OUTPUT_AUDIO_RATE) * 2
        self.audio_dropped = 0
        self.notes: list[str] = []
        self.activity: list[str] = []
        """Tool lines and filler markers, in the order they happened (shown above the reply)."""
        self.runs: dict[str, ToolRun] = {}
        """Calls asked during this answer that are still running, by call id."""
        self.tool_runs: list[ToolRun] = []
        """Every ToolRun this answer saw (running and final), in order."""
        self.turns_ended = 0
        """Model turns that ended (turnComplete or interrupted) within this answer."""
        self.in_turn = False
        """The model is speaking a turn now (content arrived since the last turn ended)."""
        self._call_turn: dict[str, int] = {}  # call id -> the model turn (turns_ended) it came in
        self.answer_due: int | None = None
        """A result went back and its spoken answer is to come, in turn number >= this (None: none due)."""
        self.answer_wait = answer_wait
        self.fillers = 0
        self._last_render = 0.0
        self._pending: asyncio.TimerHandle | None = None
        self._waiting: asyncio.TimerHandle | None = None

    @property
    def text(self) -> str:
        """The reply as text: its text parts, else the transcription of its audio (turns on their own lines)."""
        return "".join(self.text_parts) or "".join(self.transcript_parts)

    @property
    def waiting_for_tools(self) -> bool:
        """A call is running, or a result's spoken answer has not begun: the answer is not complete."""
        return bool(self.runs) or self.answer_due is not None

    def feed(self, content: ServerContent) -> None:
        changed = False
        speaks = bool(
            content.text
            or (content.output_transcription is not None and content.output_transcription.text)
            or content.audio
        )
        if speaks and not self.in_turn:
            self._turn_starts()
        if content.text:
            self.text_parts.append(content.text)
            changed = True
        if content.output_transcription is not None and content.output_transcription.text:
            self.transcript_parts.append(content.output_transcription.text)
            changed = True
        audio = content.audio
        if audio:
            room = self.max_audio_bytes - len(self.audio)
            if room > 0:
                self.audio.extend(audio[:room])
            self.audio_dropped += max(0, len(audio) - max(room, 0))
        if content.interrupted:
            self.notes.append("interrupted")
        if content.turn_complete or content.interrupted:
            self._turn_ends(content.interaction_status)
        elif changed:  # audio alone changes nothing on screen until the player appears
            self._render_soon()

    def tool(self, run: ToolRun) -> None:
        """A ``ToolRun`` from the session's tool loop: show it; keep the answer open while it matters."""
        self.tool_runs.append(run)
        self.activity.append(tool_line(run))
        if run.status == "running":
            self.runs[run.call_id] = run
            self._call_turn[run.call_id] = self.turns_ended
        else:
            asked_here = self.runs.pop(run.call_id, None) is not None
            call_turn = self._call_turn.pop(run.call_id, self.turns_ended)
            spoken = run.status in ("returned", "failed", "timed_out") and run.scheduling != "SILENT"
            if asked_here and spoken:
                # The call belongs to the model turn it came in (it ends with a turnComplete after the
                # call). BLOCKING: the model waited, its answer continues that turn. NON_BLOCKING: the
                # answer is a later turn (WHEN_IDLE after that one; INTERRUPT cuts it first), also when
                # the result is back before the model's first word of that turn.
                due = call_turn if run.behavior == "BLOCKING" else call_turn + 1
                self.answer_due = due if self.answer_due is None else max(self.answer_due, due)
            if self.turns_ended and not self.in_turn:
                self._settle()  # the model's turn already ended: this may have been the last thing awaited
                if self.done.done():
                    return
        self._render_soon()

    def note(self, text: str) -> None:
        self.notes.append(text)
        self._render_soon()

    def fail(self, exc: BaseException) -> None:
        self._stop_waiting()
        if not self.done.done():
            self.done.set_exception(exc)

    def complete(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._stop_waiting()
        if not self.done.done():
            if self.audio_dropped:
                kept = len(self.audio) / (2 * OUTPUT_AUDIO_RATE)
                self.notes.append(f"the player holds the first {kept:.3g} s of this reply's audio")
            audio, self.audio = bytes(self.audio), bytearray()  # handed over: the Turn keeps none of it
            if self.activity:
                self._safely(self.renderer.finish, self.text, self.notes, audio, list(self.activity))
            else:
                self._safely(self.renderer.finish, self.text, self.notes, audio)
            self.done.set_result(self.text)

    def render_now(self) -> None:
        self._pending = None
        self._last_render = self.loop.time()
        if self.activity:
            self._safely(self.renderer.update, self.text, list(self.notes), list(self.activity))
        else:
            self._safely(self.renderer.update, self.text, list(self.notes))

    # The answer's turns.

    def _turn_starts(self) -> None:
        self.in_turn = True
        self._stop_waiting()  # the model speaks: whatever comes is part of the answer
        if self.turns_ended:  # a later turn of the same answer starts on a line of its own
            for parts in (self.text_parts, self.transcript_parts):
                if parts and not parts[-1].endswith("\n"):
                    parts.append("\n")
        if self.answer_due is not None and self.turns_ended >= self.answer_due:
            self.answer_due = None  # the answer to the tool result is being spoken

    def _turn_ends(self, status: str | None) -> None:
        self.in_turn = False
        self.turns_ended += 1
        if status == "IN_PROGRESS":
            self.fillers += 1
            self.activity.append("· that was a filler (interactionStatus IN_PROGRESS): the answer follows")
            self._render_soon()
            return
        if status == "IDLE":
            if self.fillers:
                self.activity.append("· interactionStatus IDLE: the answer is complete")
            self.complete()  # IDLE ends the whole answer, whatever else we thought was to come
            return
        self._settle()
        if not self.done.done():
            self._render_soon()

    def _settle(self) -> None:
        """The model is between turns: complete, or keep waiting for a call or for an answer (bounded)."""
        # Either account keeps the cell open: the session's, and this answer's own from its ToolRuns
        # (the session's counts a result as owing the *next* turn when it comes back before the
        # model's first word of the turn that made the call; this one counts from that turn).
        waiting = self.waiting_for_tools or (self.answering is not None and self.answering())
        if not waiting:
            self.complete()
        elif not self.runs and self._waiting is None:
            self._waiting = self.loop.call_later(self.answer_wait, self._stop_waiting_for_answer)

    def _stop_waiting_for_answer(self) -> None:
        self._waiting = None
        if self.done.done() or self.in_turn:
            return
        self.notes.append(f"no spoken answer to the tool result within {self.answer_wait:g} s")
        self.answer_due = None
        self.complete()

    def _stop_waiting(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
            self._waiting = None

    def _render_soon(self) -> None:
        if self._pending is not None:
            return
        delay = RENDER_INTERVAL - (self.loop.time() - self._last_render)
        if delay <= 0:
            self.render_now()
        else:
            self._pending = self.loop.call_later(delay, self.render_now)

    @staticmethod
    def _safely(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a display failure must not take the session's reader down
            logger.exception("live_nb: could not render a reply")


class Router:
    """Hands a named session's server content to the request waiting for it.

    The session registry's one listener calls it for every item (``sessions.py``), on the loop
    thread. A request that was cancelled after its turn was sent leaves that turn's reply still
    coming; ``discard`` counts such turns so their content is dropped instead of showing up in the
    next cell.
    """

    def __init__(self) -> None:
        self.current: Turn | None = None
        self.discard = 0
        self.after_interrupt = False

    def __call__(self, item: object) -> None:
        try:
            self.route(item)
        except Exception:
            logger.exception("live_nb: listener failed on %r", type(item).__name__)

    def route(self, item: object) -> None:
        if isinstance(item, ServerContent):
            has_content = item.model_turn is not None or item.output_transcription is not None
            if self.after_interrupt and item.turn_complete and not has_content and not item.interrupted:
                # The service (and the emulator) close an interrupted turn with interrupted, then a
                # bare turnComplete: the turn already ended at "interrupted".
                self.after_interrupt = False
                return
            self.after_interrupt = item.interrupted and not item.turn_complete
            if self.discard:
                if (item.turn_complete and item.interaction_status != "IN_PROGRESS") or item.interrupted:
                    self.discard -= 1  # a filler's turnComplete is not the end of the discarded answer
                return
            if self.current is not None:
                self.current.feed(item)
        elif isinstance(item, ToolRun):
            if self.current is not None and not self.discard:
                self.current.tool(item)
        elif self.current is not None:
            if isinstance(item, GoAway):
                left = "" if item.time_left is None else f" ({item.time_left:.0f} s left)"
                self.current.note(f"GoAway{left}: moving to a new connection")
            elif isinstance(item, Reconnecting):
                pass
            elif isinstance(item, Resumed):
                kept = "context kept" if item.state_restored else "context LOST (fresh session)"
                self.current.note(f"resumed on a new connection: {kept}")
            elif isinstance(item, SessionClosed):
                reason = item.error or item.reason or f"close {item.code}"
                self.current.fail(InvalidState(f"the session ended: {reason}"))
