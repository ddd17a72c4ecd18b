"""One reply on its way into a cell: collected, rendered while it streams, finished at turnComplete.

Why a module of its own: this is where the kernel-loop.md rules for output live. Everything here
runs on live_nb's loop thread (session listeners run there), where no cell's parent header is
current, so ``CellRenderer`` pins every display update to the cell that asked
(``set_thread_parent`` / ``reset_thread_parent``) and never uses ``with out:``. ``Router`` is a
session's single listener: it hands content to the one request waiting for a turn, and keeps the
rest of a cancelled reply out of the next cell.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import wave
from collections.abc import Callable
from typing import Any

from IPython.display import Audio as _Audio
from IPython.display import Markdown as _Markdown
from IPython.display import display as _display

from ..exceptions import InvalidState
from ..protocol.events import Reconnecting, Resumed, SessionClosed
from ..protocol.messages import GoAway, ServerContent, SessionResumptionUpdate
from ..protocol.tokens import OUTPUT_AUDIO_RATE

__all__ = ["RENDER_INTERVAL", "CellRenderer", "Renderer", "Router", "StreamRenderer", "Turn", "wav_bytes"]

logger = logging.getLogger("live_nb.notebook")

# IPython's display helpers are untyped; typed aliases keep mypy --strict meaningful here.
display: Callable[..., Any] = _display
Markdown: Callable[[str], Any] = _Markdown
Audio: Callable[..., Any] = _Audio

RENDER_INTERVAL = 0.05
"""Seconds between display updates while a reply streams in (chunks in between are batched)."""


def wav_bytes(pcm: bytes, rate: int = OUTPUT_AUDIO_RATE) -> bytes:
    """16-bit mono PCM wrapped in a WAV file, for ``IPython.display.Audio``."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm[: len(pcm) - len(pcm) % 2])
    return buffer.getvalue()


# Rendering.


class Renderer:
    """Shows one reply: updated while it streams, finished at turnComplete. Called on the loop thread."""

    def update(self, text: str, notes: list[str]) -> None:
        raise NotImplementedError

    def finish(self, text: str, notes: list[str], audio: bytes) -> None:
        raise NotImplementedError


def _markdown(text: str, notes: list[str]) -> str:
    body = text if text else "…"
    if notes:
        body += "\n\n" + "\n\n".join(f"*{n}*" for n in notes)
    return body


class CellRenderer(Renderer):
    """Renders into a display created in the cell; every update is pinned to that cell's parent.

    The display handle is made on the main thread (so its first output has the cell's parent);
    updates come from the loop thread, which inherits no parent, hence ``set_thread_parent``.
    """

    def __init__(self, ip: Any) -> None:
        self.ip = ip
        self.parent = ip.get_parent() if hasattr(ip, "get_parent") else None
        self.handle = display(Markdown("…"), display_id=True)

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

    def update(self, text: str, notes: list[str]) -> None:
        with self.pinned():
            if self.handle is not None:
                self.handle.update(Markdown(_markdown(text, notes)))

    def finish(self, text: str, notes: list[str], audio: bytes) -> None:
        with self.pinned():
            if self.handle is not None:
                self.handle.update(Markdown(_markdown(text, notes)))
            if audio:
                display(Audio(data=wav_bytes(audio), rate=OUTPUT_AUDIO_RATE, autoplay=False))


class StreamRenderer(Renderer):
    """Writes the reply to stdout as it arrives (terminal IPython, scripts)."""

    def __init__(self) -> None:
        self.shown = 0
        self.notes_shown = 0

    def update(self, text: str, notes: list[str]) -> None:
        if text.startswith(text[: self.shown]) and len(text) > self.shown:
            sys.stdout.write(text[self.shown :])
            self.shown = len(text)
        for note in notes[self.notes_shown :]:
            sys.stdout.write(f"\n[{note}]\n")
        self.notes_shown = len(notes)
        sys.stdout.flush()

    def finish(self, text: str, notes: list[str], audio: bytes) -> None:
        self.update(text, notes)
        if audio:
            sys.stdout.write(f"\n[{len(audio) / (2 * OUTPUT_AUDIO_RATE):.1f} s of audio]")
        sys.stdout.write("\n")
        sys.stdout.flush()


class Turn:
    """One model turn being collected for one request. Lives on the loop thread."""

    def __init__(self, renderer: Renderer, loop: asyncio.AbstractEventLoop) -> None:
        self.renderer = renderer
        self.loop = loop
        self.done: asyncio.Future[str] = loop.create_future()
        self.text_parts: list[str] = []
        self.transcript_parts: list[str] = []
        self.audio = bytearray()
        self.notes: list[str] = []
        self._last_render = 0.0
        self._pending: asyncio.TimerHandle | None = None

    @property
    def text(self) -> str:
        return "".join(self.text_parts) or "".join(self.transcript_parts)

    def feed(self, content: ServerContent) -> None:
        if content.text:
            self.text_parts.append(content.text)
        if content.output_transcription is not None and content.output_transcription.text:
            self.transcript_parts.append(content.output_transcription.text)
        audio = content.audio
        if audio:
            self.audio.extend(audio)
        if content.interrupted:
            self.notes.append("interrupted")
        if content.turn_complete or content.interrupted:
            self.complete()
        else:
            self._render_soon()

    def note(self, text: str) -> None:
        self.notes.append(text)
        self._render_soon()

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def complete(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if not self.done.done():
            self._safely(self.renderer.finish, self.text, self.notes, bytes(self.audio))
            self.done.set_result(self.text)

    def render_now(self) -> None:
        self._pending = None
        self._last_render = self.loop.time()
        self._safely(self.renderer.update, self.text, list(self.notes))

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
    """The one listener of a named session: hands server content to the request waiting for it.

    Runs on the loop thread (listeners run on the session's loop). A request that was cancelled
    after its turn was sent leaves that turn's reply still coming; ``discard`` counts such turns
    so their content is dropped instead of showing up in the next cell.
    """

    def __init__(self, on_handle: Callable[[str], None] | None = None) -> None:
        self.on_handle = on_handle
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
                if item.turn_complete or item.interrupted:
                    self.discard -= 1
                return
            if self.current is not None:
                self.current.feed(item)
        elif isinstance(item, SessionResumptionUpdate):
            if item.new_handle and self.on_handle is not None:
                self.on_handle(item.new_handle)
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
