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

Memory: a ``Turn`` holds one reply's audio (at most ``MAX_REPLY_AUDIO_SECONDS``) until it is shown,
then lets it go; nothing here keeps audio across replies.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import sys
import wave
from collections.abc import Callable
from typing import Any

from IPython.display import display as _display

from ..exceptions import InvalidState
from ..protocol.events import Reconnecting, Resumed, SessionClosed
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
    "plain_text",
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


def wav_bytes(pcm: bytes, rate: int = OUTPUT_AUDIO_RATE) -> bytes:
    """16-bit mono PCM wrapped in a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm[: len(pcm) - len(pcm) % 2])
    return buffer.getvalue()


def plain_text(text: str, notes: list[str]) -> dict[str, str]:
    """The ``text/plain`` bundle of a reply and its notes (never HTML or Markdown: model text is untrusted)."""
    body = text if text else PLACEHOLDER
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
    """Shows one reply: updated while it streams, finished at turnComplete. Called on the loop thread."""

    def update(self, text: str, notes: list[str]) -> None:
        raise NotImplementedError

    def finish(self, text: str, notes: list[str], audio: bytes) -> None:
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

    def update(self, text: str, notes: list[str]) -> None:
        with self.pinned():
            if self.handle is not None:
                self.handle.update(plain_text(text, notes), raw=True)

    def finish(self, text: str, notes: list[str], audio: bytes) -> None:
        if not text and audio:
            text = "(no transcription of this reply: listen below)"
        with self.pinned():
            if self.handle is not None:
                self.handle.update(plain_text(text, notes), raw=True)
            if audio:
                display(audio_player(audio, OUTPUT_AUDIO_RATE, autoplay=self.speak), raw=True)


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
            sys.stdout.write(f"\n[{len(audio) / (2 * OUTPUT_AUDIO_RATE):.1f} s of reply audio]")
        sys.stdout.write("\n")
        sys.stdout.flush()


class Turn:
    """One model turn being collected for one request. Lives on the loop thread.

    Args:
        renderer: where the reply goes.
        loop: the loop the session lives on.
        max_audio_seconds: reply audio kept for the player; beyond it the audio is dropped (noted).
    """

    def __init__(
        self, renderer: Renderer, loop: asyncio.AbstractEventLoop, max_audio_seconds: float = MAX_REPLY_AUDIO_SECONDS
    ) -> None:
        self.renderer = renderer
        self.loop = loop
        self.done: asyncio.Future[str] = loop.create_future()
        self.text_parts: list[str] = []
        self.transcript_parts: list[str] = []
        self.audio = bytearray()
        self.max_audio_bytes = int(max_audio_seconds * OUTPUT_AUDIO_RATE) * 2
        self.audio_dropped = 0
        self.notes: list[str] = []
        self._last_render = 0.0
        self._pending: asyncio.TimerHandle | None = None

    @property
    def text(self) -> str:
        """The reply as text: its text parts, else the transcription of its audio."""
        return "".join(self.text_parts) or "".join(self.transcript_parts)

    def feed(self, content: ServerContent) -> None:
        changed = False
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
            self.complete()
        elif changed:  # audio alone changes nothing on screen until the player appears
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
            if self.audio_dropped:
                kept = len(self.audio) / (2 * OUTPUT_AUDIO_RATE)
                self.notes.append(f"the player holds the first {kept:.3g} s of this reply's audio")
            audio, self.audio = bytes(self.audio), bytearray()  # handed over: the Turn keeps none of it
            self._safely(self.renderer.finish, self.text, self.notes, audio)
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
                if item.turn_complete or item.interrupted:
                    self.discard -= 1
                return
            if self.current is not None:
                self.current.feed(item)
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
