"""The thread bridge: media pushed on the kernel's thread, sent by the session's loop, in order.

Why a bridge: ``session.send_*`` are coroutines on the session's private loop thread; a widget's
``on_msg`` runs on a kernel thread (a JupyterLab comm subshell's, or the main shell's) and must not
wait. Each push is decided by the
sans-I/O ``MediaIntake`` (media_feed.py) and its typed items go, with one
``call_soon_threadsafe`` each, into one FIFO queue drained by one task on the session's loop, so
chunks keep their order even while a send waits (a reconnect), which ``run_coroutine_threadsafe``
per chunk would not promise.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from ..client.view import SessionView
from ..exceptions import InvalidState
from .media_feed import (
    FeedItem,
    FeedStats,
    MediaIntake,
    SendAudio,
    SendSignal,
    SendVideo,
    SequenceTracker,
    TokenWindow,
    VadSettings,
    VoiceActivityDetector,
)

__all__ = ["MediaFeed", "MediaTarget"]

log = logging.getLogger("live_nb.media")


class MediaTarget(SessionView, Protocol):
    """What a media feed needs of a session: its view, its loop and its media senders."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the session's socket lives on (where its coroutines run)."""
        ...

    async def send_audio(self, pcm16: bytes) -> float: ...

    async def send_video(self, jpeg: bytes) -> float: ...

    async def send_activity_start(self) -> None: ...

    async def send_activity_end(self) -> None: ...

    async def send_audio_stream_end(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Drained:
    """Queue marker: everything before it was handed to the session."""

    done: Future[None]


_Queued = FeedItem | _Drained | None  # None: stop


class MediaFeed:
    """Feeds PCM chunks and JPEG frames from the kernel's thread into a session, in order.

    Activity signals follow the session's config: with automatic activity detection (the default)
    a pause of ``vad.silence_seconds`` after speech sends ``audioStreamEnd`` (not on Vertex AI,
    whose own detection ends the turn); with it disabled the feed brackets speech with
    ``activityStart`` / ``activityEnd``.

    Args:
        session: the ``LiveSession`` to feed (a ``MediaTarget``).
        vad: client-side voice activity settings.
        manual_activity: force manual (True) or automatic (False) activity signals; None reads the
            session's config.
        loop: the session's loop; ``session.loop`` when None.
        on_error: called (on the session's loop) with each exception a send raised.
    """

    def __init__(
        self,
        session: MediaTarget,
        *,
        vad: VadSettings | None = None,
        manual_activity: bool | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.session = session
        self.loop = loop or session.loop
        if manual_activity is None:
            manual_activity = not session.generation_config.automatic_activity_detection
        self.intake = MediaIntake(vad, manual_activity)
        self.tokens = TokenWindow()
        """Input tokens the sends cost, as the session counted them."""
        self.on_error = on_error
        self.chunks_sent = 0
        self.frames_sent = 0
        self.signals_sent: list[str] = []
        self.audio_sent_at: deque[float] = deque(maxlen=600)
        """Wall-clock times (``time.time()``) the last 600 audio chunks (a minute) went to the session."""
        self.errors: deque[BaseException] = deque(maxlen=50)
        """The latest send errors (at most 50; ``error_count`` counts them all)."""
        self.error_count = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._order = threading.Lock()
        """Held from the intake's decision to the enqueue: pushes from two threads (the widget's
        handler in a subshell, ``feed_recorded`` or ``stop_media`` in a cell) keep one order."""
        self._queue: asyncio.Queue[_Queued] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # The intake's parts, for readers of the counters.

    @property
    def manual_activity(self) -> bool:
        """Whether speech is bracketed by activityStart/activityEnd (else audioStreamEnd after it)."""
        return self.intake.manual_activity

    @property
    def vad(self) -> VoiceActivityDetector:
        return self.intake.vad

    @property
    def audio_seq(self) -> SequenceTracker:
        return self.intake.audio_seq

    @property
    def video_seq(self) -> SequenceTracker:
        return self.intake.video_seq

    @property
    def level(self) -> float:
        return self.intake.level

    @property
    def frame_tokens(self) -> float:
        """Tokens a video frame costs on the session's model (258 on 2.5; 256, or 64 at LOW, on 3.x)."""
        return float(self.session.frame_tokens)

    # Feeding media (any thread, never blocking for long: one short lock keeps the order).

    def push_audio(self, pcm: bytes | memoryview, seq: int | None = None, epoch: str | None = None) -> int:
        """Queue one PCM16 16 kHz mono chunk for the session (after any earlier ones still missing).

        Returns:
            How many chunks this one released to the session (0 while it waits for an earlier one).

        Raises:
            InvalidState: the feed was closed.
        """
        self._check_open()
        with self._order:
            items = self.intake.push_audio(bytes(pcm), seq, epoch)
            self._put_all(items)
        return sum(isinstance(item, SendAudio) for item in items)

    def push_video(self, jpeg: bytes | memoryview, seq: int | None = None, epoch: str | None = None) -> int:
        """Queue one JPEG frame for the session; returns how many frames it released.

        Raises:
            InvalidState: the feed was closed.
        """
        self._check_open()
        with self._order:
            items = self.intake.push_video(bytes(jpeg), seq, epoch)
            self._put_all(items)
        return len(items)

    def end_audio(self) -> None:
        """The mic paused (muted or stopped): send what waited for a lost chunk, close the speech turn.

        Raises:
            InvalidState: the feed was closed.
        """
        with self._order:
            self._put_all(self.intake.end_audio())

    def token_rate(self, now: float | None = None) -> float:
        """Input tokens per second this feed cost over the last 5 s (``time.monotonic()`` clock)."""
        return self.tokens.rate(time.monotonic() if now is None else now)

    def stats(self) -> FeedStats:
        """A snapshot of the counters."""
        intake = self.intake
        audio, video = intake.audio_seq, intake.video_seq
        return FeedStats(
            chunks_received=audio.received,
            frames_received=video.received,
            audio_seconds=intake.audio_seconds,
            gaps=audio.gaps + video.gaps,
            missing_chunks=audio.missing,
            duplicates=audio.duplicates + video.duplicates,
            reordered=audio.reordered + video.reordered,
            chunks_sent=self.chunks_sent,
            frames_sent=self.frames_sent,
            signals_sent=tuple(self.signals_sent),
            backlog=self._pending,
            errors=self.error_count,
            level=intake.level,
            speaking=intake.vad.speaking,
        )

    def drain(self) -> Future[None]:
        """A future that completes once everything pushed so far was handed to the session."""
        done: Future[None] = Future()
        self._put(_Drained(done))
        return done

    def close(self) -> None:
        """Stop the feed after what is queued has been sent. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._enqueue, None)

    # Private methods.

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidState("this media feed is closed; start the media again")

    def _put_all(self, items: list[FeedItem]) -> None:
        for item in items:
            self._put(item)

    def _put(self, item: FeedItem | _Drained) -> None:
        self._check_open()
        with self._lock:
            self._pending += 1
        self.loop.call_soon_threadsafe(self._enqueue, item)

    def _enqueue(self, item: _Queued) -> None:
        # Runs on the session's loop: the queue and its task are created there, lazily.
        if self._queue is None:
            if item is None:  # closed before anything was pushed
                return
            self._queue = asyncio.Queue()
            self._task = self.loop.create_task(self._run(self._queue), name="live_nb media feed")
        self._queue.put_nowait(item)

    async def _run(self, queue: asyncio.Queue[_Queued]) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            try:
                await self._send(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a closed session, a lost connection: report, keep draining
                previous = self.errors[-1] if self.errors else None
                self.errors.append(exc)
                self.error_count += 1
                if previous is None or type(previous) is not type(exc):  # once per kind of failure
                    log.warning("media feed: %s failed: %s", _describe(item), exc)
                if self.on_error is not None:
                    self.on_error(exc)
            finally:
                with self._lock:
                    self._pending -= 1

    async def _send(self, item: FeedItem | _Drained) -> None:
        session = self.session
        if isinstance(item, SendAudio):
            self.tokens.add(await session.send_audio(item.pcm), time.monotonic())
            self.chunks_sent += 1
            self.audio_sent_at.append(time.time())
        elif isinstance(item, SendVideo):
            self.tokens.add(await session.send_video(item.jpeg), time.monotonic())
            self.frames_sent += 1
        elif isinstance(item, SendSignal):
            if item.kind == "activity_start":
                await session.send_activity_start()
            elif item.kind == "activity_end":
                await session.send_activity_end()
            elif not session.offers_audio_stream_end:
                return  # Vertex AI has no audioStreamEnd: its own voice activity detection ends the turn
            else:
                await session.send_audio_stream_end()
            self.signals_sent.append(item.kind)
        else:
            item.done.set_result(None)


def _describe(item: FeedItem | _Drained) -> str:
    if isinstance(item, SendSignal):
        return item.kind
    return "audio" if isinstance(item, SendAudio) else "video" if isinstance(item, SendVideo) else "drain"
