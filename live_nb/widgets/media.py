"""Mic and camera into a live session, and the session's spoken replies out of the speakers.

Why a widget of our own: ipywebrtc's ``CameraStream`` gives a working preview and device choice in
JupyterLab 4, but its ``AudioRecorder`` cannot stream and fails on audio+video streams (media.md).
``MediaStreamer`` taps the same MediaStream in the browser (or opens its own with getUserMedia when
there is no ipywebrtc) and sends 16 kHz mono PCM16 in 100 ms chunks and ~1 fps JPEG frames to the
kernel as binary custom messages with sequence numbers. ``AudioPlayer`` plays AUDIO replies as they
stream and stops at once on ``interrupted`` (barge-in).

How the parts fit (data flows left to right; nothing here opens a socket):

    browser (media.js)            kernel main thread (on_msg)           session loop thread
    AudioWorklet -> PCM chunk --> SequenceTracker (gaps)            --> MediaFeed queue -> send_audio
    canvas -> JPEG frame ------>  VoiceActivityDetector (levels)     -> send_video / activity signals
    player worklet <------------  AudioPlayer (binary custom msgs) <--- session listener (ServerContent)

Rules:
1. Media is custom messages with binary buffers, never traits (style rule 12); traits carry only
   state, and the kernel publishes its counters at most every ``PUBLISH_INTERVAL`` seconds, so a
   stream costs the kernel ten small messages a second and no echo traffic.
2. The kernel never blocks on the session: ``MediaFeed`` hands work to the session's loop with
   ``call_soon_threadsafe`` into one FIFO queue, so chunks keep their order even while the session
   reconnects (the session buffers and replays; the emulator's consumed log proves it).
3. ``SequenceTracker`` and ``VoiceActivityDetector`` are sans-I/O: callers pass the numbers and the
   durations; nothing in them reads a clock.
4. Untrusted text (the ``transcript`` of replies, ``error``, ``label``, device labels) is a plain
   string trait that media.js shows as textContent: never HTML, and not Markdown, because the
   sanitiser JupyterLab applies to untrusted outputs does not run inside a widget view.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

import anywidget
import traitlets
from ipywidgets import widget_serialization

from ..exceptions import InvalidState, MediaError
from ..protocol.audio import pcm16_level, sample_rate
from ..protocol.messages import ServerContent
from ..protocol.tokens import AUDIO_TOKENS_PER_SECOND, INPUT_AUDIO_RATE, OUTPUT_AUDIO_RATE, VIDEO_TOKENS_PER_FRAME

try:  # ipywebrtc is optional: without it the widget calls getUserMedia itself.
    from ipywebrtc import MediaStream as _WebRTCMediaStream
except ImportError:  # pragma: no cover - exercised only where ipywebrtc is absent
    _WebRTCMediaStream = None

__all__ = [
    "AudioPlayer",
    "FeedStats",
    "MediaFeed",
    "MediaStreamer",
    "SequenceTracker",
    "VadSettings",
    "VoiceActivityDetector",
    "pcm16_level",
    "start_media",
    "stop_media",
]

log = logging.getLogger("live_nb.media")

_HERE = pathlib.Path(__file__).parent
PUBLISH_INTERVAL = 0.5
"""Seconds between publications of the kernel-side counters to the synced traits."""
TOKEN_RATE_WINDOW = 5.0
"""Seconds of history behind ``token_rate``."""


# ---------------------------------------------------------------------------------------------
# Sans-I/O pieces: sequence numbers and voice activity.
# ---------------------------------------------------------------------------------------------


class SequenceTracker:
    """Puts the chunks of one stream back in order, and counts the ones that never came.

    The browser numbers each stream from 0 per capture ``epoch`` (a new epoch each time capture
    starts: stop/start, a page reload, a new source). The websocket keeps them in order, but the
    kernel might not: ipykernel 7 dispatches a comm message that arrives while another shell
    message holds its lock in a task of its own. Once, under heavy load, the browser test saw two
    chunks counted missing that the page had sent (whether lost or swapped was not determined;
    not seen again). So a chunk that arrives early waits here until the ones before it come, for
    at most ``hold`` chunks; then the missing ones are declared lost and a straggler that comes
    later still is dropped (sending it late would garble the audio more than the gap does).

    Args:
        hold: how many early chunks may wait for a missing one (5 audio chunks = 500 ms).
    """

    def __init__(self, hold: int = 5) -> None:
        self.hold = hold
        self.epoch: str | None = None
        self.next_seq = 0
        self._held: dict[int, Any] = {}
        self.received = 0
        """Chunks accepted (released in order)."""
        self.reordered = 0
        """Chunks that arrived before an earlier one and had to wait."""
        self.gaps = 0
        """How many times one or more chunks were declared lost."""
        self.missing = 0
        """How many chunks were declared lost in all."""
        self.duplicates = 0
        """Chunks dropped as repeats or as stragglers after their gap was declared."""
        self.recent_gaps: deque[tuple[str | None, int, int]] = deque(maxlen=20)
        """The latest gaps as (epoch, first lost seq, next seq released), for diagnosis."""

    @property
    def held(self) -> int:
        """Chunks waiting for an earlier one."""
        return len(self._held)

    def receive(self, seq: int, epoch: str | None, item: Any) -> list[Any]:
        """Take chunk ``seq`` of ``epoch``; return the chunks now ready, in order (maybe none)."""
        ready: list[Any] = []
        if epoch != self.epoch:
            ready += self.flush()
            self.epoch = epoch
            self.next_seq = 0
        if seq < self.next_seq or seq in self._held:
            self.duplicates += 1
            return ready
        if seq > self.next_seq:
            self.reordered += 1
            self._held[seq] = item
            if len(self._held) > self.hold:
                self._skip_to(min(self._held))
                ready += self._release()
            return ready
        self._held[seq] = item
        return ready + self._release()

    def flush(self) -> list[Any]:
        """Give up waiting (the stream paused or ended): release every held chunk, holes counted."""
        ready: list[Any] = []
        while self._held:
            self._skip_to(min(self._held))
            ready += self._release()
        return ready

    def _skip_to(self, seq: int) -> None:
        if seq > self.next_seq:
            self.gaps += 1
            self.missing += seq - self.next_seq
            self.recent_gaps.append((self.epoch, self.next_seq, seq))
            self.next_seq = seq

    def _release(self) -> list[Any]:
        ready = []
        while self.next_seq in self._held:
            ready.append(self._held.pop(self.next_seq))
            self.next_seq += 1
            self.received += 1
        return ready


@dataclass(frozen=True, slots=True)
class VadSettings:
    """Client-side voice activity detection, by energy.

    Args:
        threshold: RMS level (0..1 of full scale) above which a chunk counts as speech.
        silence_seconds: how long the level must stay below the threshold to end a speech turn.
            The Live API docs ask for ``audioStreamEnd`` when the mic pauses for more than 1 s.
        min_speech_seconds: how much speech opens a turn, so a click does not.
    """

    threshold: float = 0.02
    silence_seconds: float = 1.0
    min_speech_seconds: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold={self.threshold!r} must be between 0 and 1")
        if self.silence_seconds <= 0 or self.min_speech_seconds < 0:
            raise ValueError("silence_seconds must be > 0 and min_speech_seconds >= 0")


VadSignal = Literal["speech_start", "speech_end"]


class VoiceActivityDetector:
    """Turns a stream of (level, duration) pairs into speech start and end signals.

    Why client-side at all when the server has VAD: the service asks the client to send
    ``audioStreamEnd`` after a pause (automatic mode) or to bracket speech with ``activityStart`` /
    ``activityEnd`` (manual mode); both need the client to know when speech starts and stops.
    """

    def __init__(self, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        self.speaking = False
        self._voiced = 0.0
        self._silent = 0.0

    def process(self, level: float, seconds: float) -> VadSignal | None:
        """Feed one chunk's RMS level and duration; return the signal it triggers, if any."""
        s = self.settings
        if level >= s.threshold:
            self._silent = 0.0
            self._voiced += seconds
            if not self.speaking and self._voiced >= s.min_speech_seconds - 1e-9:
                self.speaking = True
                return "speech_start"
            return None
        self._voiced = 0.0
        if self.speaking:
            self._silent += seconds
            if self._silent >= s.silence_seconds - 1e-9:
                self.speaking = False
                self._silent = 0.0
                return "speech_end"
        return None

    def reset(self) -> VadSignal | None:
        """End any open speech turn (the mic was muted or stopped)."""
        was = self.speaking
        self.speaking = False
        self._voiced = self._silent = 0.0
        return "speech_end" if was else None


# ---------------------------------------------------------------------------------------------
# The kernel-side feed: chunks in from any thread, session calls out on the session's loop.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedStats:
    """What a ``MediaFeed`` has taken in and handed to the session (a snapshot)."""

    chunks_received: int
    frames_received: int
    audio_seconds: float
    gaps: int
    missing_chunks: int
    duplicates: int
    reordered: int
    chunks_sent: int
    frames_sent: int
    signals_sent: tuple[str, ...]
    backlog: int
    errors: int
    level: float
    speaking: bool


def _unwrap(session: Any) -> Any:
    """The ``LiveSession`` behind a notebook ``KernelSession`` proxy (``s = %live session``).

    Why: the proxy's coroutine methods hop to the session's loop and wait; the feed already runs
    there, and one streamer per session needs one key for the proxy and the session alike.
    """
    inner = getattr(session, "__dict__", {}).get("session") if type(session).__name__ == "KernelSession" else None
    return inner if inner is not None else session


def _session_loop(session: Any) -> asyncio.AbstractEventLoop:
    """The event loop the session's socket lives on (where its coroutines must run)."""
    loop = getattr(session, "loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop):
        return loop
    from .._loop import live_loop

    return live_loop()


def _automatic_activity(session: Any) -> bool:
    """Whether the session's server-side VAD is on (the Live API default)."""
    for owner in (session, getattr(session, "_live_model", None), getattr(session, "live_model", None)):
        for name in ("generation_config", "config"):
            config = getattr(owner, name, None)
            if config is not None and hasattr(config, "automatic_activity_detection"):
                return bool(config.automatic_activity_detection)
    return True


class MediaFeed:
    """Feeds PCM chunks and JPEG frames from the kernel's thread into a session, in order.

    Why a queue and a task: ``session.send_*`` are coroutines on the session's private loop thread;
    the widget's ``on_msg`` runs on the kernel's main thread and must not wait. Each push is one
    ``call_soon_threadsafe`` into a FIFO queue drained by one task, so chunks keep their order even
    when a send waits (a reconnect), which ``run_coroutine_threadsafe`` per chunk would not promise.

    Activity signals follow the session's config: with automatic activity detection (the default)
    a pause of ``vad.silence_seconds`` after speech sends ``audioStreamEnd``; with it disabled the
    feed brackets speech with ``activityStart`` / ``activityEnd``.

    Args:
        session: a ``LiveSession`` (anything with ``send_audio``, ``send_video`` and the activity
            senders).
        vad: client-side voice activity settings.
        manual_activity: force manual (True) or automatic (False) activity signals; None reads the
            session's config.
        loop: the session's loop; found from the session when None.
        on_error: called (on the session's loop) with each exception a send raised.
    """

    def __init__(
        self,
        session: Any,
        *,
        vad: VadSettings | None = None,
        manual_activity: bool | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        session = _unwrap(session)
        self.session = session
        self.loop = loop or _session_loop(session)
        self.manual_activity = (not _automatic_activity(session)) if manual_activity is None else manual_activity
        self.vad = VoiceActivityDetector(vad)
        self.audio_seq = SequenceTracker()
        self.video_seq = SequenceTracker(hold=2)
        self.on_error = on_error
        self.level = 0.0
        self.audio_seconds = 0.0
        self.chunks_sent = 0
        self.frames_sent = 0
        self.signals_sent: list[str] = []
        self.errors: deque[BaseException] = deque(maxlen=50)
        """The latest send errors (at most 50; ``error_count`` counts them all)."""
        self.error_count = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._queue: asyncio.Queue[tuple[str, bytes] | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._tokens: deque[tuple[float, float]] = deque()

    # Public methods for feeding media (any thread, never blocking).


    @property
    def frame_tokens(self) -> float:
        """Tokens a video frame costs on the session's model (258 on 2.5; 256, or 64 at LOW, on 3.x)."""
        return float(getattr(self.session, "frame_tokens", VIDEO_TOKENS_PER_FRAME))
    def push_audio(self, pcm: bytes | memoryview, seq: int | None = None, epoch: str | None = None,
                   now: float | None = None) -> int:
        """Queue one PCM16 16 kHz mono chunk for the session (after any earlier ones still missing).

        Returns:
            How many chunks this one released to the session (0 while it waits for an earlier one).

        Raises:
            InvalidState: the feed was closed.
        """
        if self._closed:
            raise InvalidState("this media feed is closed; start the media again")
        data = bytes(pcm)
        if seq is None:
            self.audio_seq.received += 1
            self._accept_audio(data, now)
            return 1
        ready = self.audio_seq.receive(seq, epoch, data)
        for chunk in ready:
            self._accept_audio(chunk, now)
        return len(ready)

    def push_video(self, jpeg: bytes | memoryview, seq: int | None = None, epoch: str | None = None,
                   now: float | None = None) -> int:
        """Queue one JPEG frame for the session; returns how many frames it released.

        Raises:
            InvalidState: the feed was closed.
        """
        if self._closed:
            raise InvalidState("this media feed is closed; start the media again")
        data = bytes(jpeg)
        ready = [data] if seq is None else self.video_seq.receive(seq, epoch, data)
        if seq is None:
            self.video_seq.received += 1
        for frame in ready:
            self._count_tokens(self.frame_tokens, now)
            self._put("video", frame)
        return len(ready)

    def end_audio(self) -> None:
        """The mic paused (muted or stopped): send what waited for a lost chunk, close the speech turn.

        Raises:
            InvalidState: the feed was closed.
        """
        for chunk in self.audio_seq.flush():
            self._accept_audio(chunk, None)
        if self.vad.reset() == "speech_end":
            self._put("activity_end" if self.manual_activity else "audio_stream_end", b"")

    def token_rate(self, now: float | None = None) -> float:
        """Input tokens per second this feed costs, over the last ``TOKEN_RATE_WINDOW`` seconds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._tokens and self._tokens[0][0] < now - TOKEN_RATE_WINDOW:
                self._tokens.popleft()
            return sum(t for _, t in self._tokens) / TOKEN_RATE_WINDOW

    def stats(self) -> FeedStats:
        """A snapshot of the counters."""
        return FeedStats(
            chunks_received=self.audio_seq.received,
            frames_received=self.video_seq.received,
            audio_seconds=self.audio_seconds,
            gaps=self.audio_seq.gaps + self.video_seq.gaps,
            missing_chunks=self.audio_seq.missing,
            duplicates=self.audio_seq.duplicates + self.video_seq.duplicates,
            reordered=self.audio_seq.reordered + self.video_seq.reordered,
            chunks_sent=self.chunks_sent,
            frames_sent=self.frames_sent,
            signals_sent=tuple(self.signals_sent),
            backlog=self._pending,
            errors=self.error_count,
            level=self.level,
            speaking=self.vad.speaking,
        )

    def drain(self) -> Future[None]:
        """A future that completes once everything pushed so far was handed to the session."""
        done: Future[None] = Future()
        self._put("marker", b"", done)
        return done

    def close(self) -> None:
        """Stop the feed after what is queued has been sent. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._enqueue, None)

    # Private methods.

    def _accept_audio(self, data: bytes, now: float | None) -> None:
        seconds = len(data) / (2 * INPUT_AUDIO_RATE)
        self.level = pcm16_level(data)
        self.audio_seconds += seconds
        self._count_tokens(seconds * AUDIO_TOKENS_PER_SECOND, now)
        signal = self.vad.process(self.level, seconds)
        if signal == "speech_start" and self.manual_activity:
            self._put("activity_start", b"")
        self._put("audio", data)
        if signal == "speech_end":
            self._put("activity_end" if self.manual_activity else "audio_stream_end", b"")

    def _count_tokens(self, tokens: float, now: float | None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._tokens.append((now, tokens))
            while self._tokens[0][0] < now - TOKEN_RATE_WINDOW:
                self._tokens.popleft()

    def _put(self, kind: str, data: bytes, marker: Future[None] | None = None) -> None:
        if self._closed:
            raise InvalidState("this media feed is closed; start the media again")
        with self._lock:
            self._pending += 1
        item: Any = (kind, marker) if marker is not None else (kind, data)
        self.loop.call_soon_threadsafe(self._enqueue, item)

    def _enqueue(self, item: tuple[str, Any] | None) -> None:
        # Runs on the session's loop: the queue and its task are created there, lazily.
        if self._queue is None:
            if item is None:  # closed before anything was pushed
                return
            self._queue = asyncio.Queue()
            self._task = self.loop.create_task(self._run(self._queue), name="live_nb media feed")
        self._queue.put_nowait(item)

    async def _run(self, queue: asyncio.Queue[tuple[str, Any] | None]) -> None:
        session = self.session
        while True:
            item = await queue.get()
            if item is None:
                return
            kind, data = item
            try:
                if kind == "audio":
                    await session.send_audio(data)
                    self.chunks_sent += 1
                elif kind == "video":
                    await session.send_video(data)
                    self.frames_sent += 1
                elif kind == "activity_start":
                    await session.send_activity_start()
                elif kind == "activity_end":
                    await session.send_activity_end()
                elif kind == "audio_stream_end":
                    # Vertex AI has no audioStreamEnd: its own voice activity detection ends the turn.
                    if not getattr(session, "offers_audio_stream_end", True):
                        continue
                    await session.send_audio_stream_end()
                elif kind == "marker":
                    data.set_result(None)
                if kind in ("activity_start", "activity_end", "audio_stream_end"):
                    self.signals_sent.append(kind)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a closed session, a lost connection: report, keep draining
                previous = self.errors[-1] if self.errors else None
                self.errors.append(exc)
                self.error_count += 1
                if previous is None or type(previous) is not type(exc):  # once per kind of failure
                    log.warning("media feed: %s failed: %s", kind, exc)
                if self.on_error is not None:
                    self.on_error(exc)
            finally:
                with self._lock:
                    self._pending -= 1


# ---------------------------------------------------------------------------------------------
# Widgets.
# ---------------------------------------------------------------------------------------------

if _WebRTCMediaStream is not None:
    _SourceTrait: traitlets.TraitType[Any, Any] = traitlets.Instance(_WebRTCMediaStream, allow_none=True)
else:  # pragma: no cover
    _SourceTrait = traitlets.Any(None, allow_none=True)

ERROR_KINDS = ("permission", "no_device", "device_busy", "unsupported", "suspended_audio", "source", "session")


class _Playback(anywidget.AnyWidget):  # type: ignore[misc]
    """What both widgets share: AUDIO replies from a session, played in the browser."""

    _esm = _HERE / "media.js"
    _css = _HERE / "media.css"

    role = traitlets.Unicode("player", help="Which parts the front end builds: 'player' or 'streamer'.").tag(
        sync=True
    )
    label = traitlets.Unicode("", help="A name shown in the widget (the session's name).").tag(sync=True)
    instance_id = traitlets.Unicode(
        help="Identifies the model in the browser: anywidget hands each view a different proxy object."
    ).tag(sync=True)
    playback = traitlets.Bool(True, help="Play the session's AUDIO replies in the browser.").tag(sync=True)
    transcript = traitlets.Unicode("", help="Output transcription of the reply being played.").tag(sync=True)
    player_state = traitlets.Unicode(
        "idle", help="Browser player: idle, buffering, playing, interrupted, suspended (needs a click), error."
    ).tag(sync=True)
    played_samples = traitlets.Int(0, help="Reply samples (24 kHz) the browser has played.").tag(sync=True)
    output_context_state = traitlets.Unicode("", help="State of the browser's playback AudioContext.").tag(
        sync=True
    )
    error = traitlets.Unicode("", help="The last error, in plain words ('' when none).").tag(sync=True)
    error_kind = traitlets.Unicode("", help=f"One of {', '.join(ERROR_KINDS)}, or ''.").tag(sync=True)

    @traitlets.default("instance_id")
    def _default_instance_id(self) -> str:
        return uuid.uuid4().hex

    def __init__(self, session: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session: Any = None
        self.reply_chunks_sent = 0
        """Reply audio chunks sent to the browser."""
        self.reply_samples_sent = 0
        self.interruptions = 0
        self.turns_completed = 0
        """Model turns that ended (complete or interrupted) since the widget was made."""
        self._reply_seq = 0
        self._generation = 0
        self._turn_ended = True
        self._remove_listener: Callable[[], Any] | None = None
        self._send_lock = threading.Lock()
        self.on_msg(self._handle_custom_msg_dispatch)
        self.observe(self._log_error, names=["error"])
        if session is not None:
            self.attach(session)

    def attach(self, session: Any) -> None:
        """Listen to ``session`` and play its AUDIO replies (replacing any session heard before)."""
        self.detach()
        session = _unwrap(session)
        self.session = session
        if hasattr(session, "add_listener"):
            self._remove_listener = session.add_listener(self._on_session_item)

    def detach(self) -> None:
        """Stop listening to the session. Idempotent."""
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None

    def raise_for_error(self) -> None:
        """Raise the browser-side problem, if there is one, as a ``MediaError``.

        Raises:
            MediaError: permission refused, no device, a device in use, an unsupported browser,
                or a suspended AudioContext waiting for a click.
        """
        if self.error:
            raise MediaError(self.error_kind or "unsupported", self.error)
        if "suspended" in (self.output_context_state, getattr(self, "input_context_state", "")):
            raise MediaError(
                "suspended_audio",
                'the browser is holding audio until you click: press "Enable audio" in the widget',
            )

    def play(self, pcm: bytes, rate: int = OUTPUT_AUDIO_RATE) -> None:
        """Send PCM16 mono audio to the browser's player (any thread)."""
        if not self.playback or not pcm:
            return
        with self._send_lock:
            seq = self._reply_seq
            self._reply_seq += 1
            self.reply_chunks_sent += 1
            self.reply_samples_sent += len(pcm) // 2
            # ``generation`` lets the browser drop a chunk that reaches it after a later interrupt.
            self.send({"type": "play", "seq": seq, "rate": rate, "generation": self._generation}, [pcm])

    def interrupt(self) -> None:
        """Silence the browser's player now and drop what it has queued (barge-in)."""
        with self._send_lock:
            self.interruptions += 1
            self._generation += 1
            self.send({"type": "interrupt", "generation": self._generation})

    def close(self) -> None:
        """Detach from the session and close the widget."""
        self.detach()
        super().close()

    # Private methods.

    def _on_session_item(self, item: Any) -> None:
        # Runs on the session's loop thread for every received item; must not block.
        if not isinstance(item, ServerContent):
            return
        try:
            if item.interrupted:
                self.interrupt()
            audio = item.audio
            if audio:
                self.play(audio, _rate_of(item))
            if item.output_transcription is not None and item.output_transcription.text:
                # The widget shows what is being said now: a new turn replaces the last one's text.
                before = "" if self._turn_ended else self.transcript
                self.transcript = (before + item.output_transcription.text)[-2000:]
                self._turn_ended = False
            if item.turn_complete:
                self.turns_completed += 1
                self._turn_ended = True
                self.send({"type": "turn_complete"})
        except Exception:  # a closed comm must not break the session's listener chain
            log.exception("media player: could not forward a reply")

    def _log_error(self, change: dict[str, Any]) -> None:
        if change["new"]:
            log.warning("media: %s", change["new"])

    def _handle_custom_msg_dispatch(self, _widget: Any, content: dict[str, Any], buffers: list[Any]) -> None:
        self._handle_front_end_msg(content, buffers)

    def _handle_front_end_msg(self, content: dict[str, Any], buffers: list[Any]) -> None:
        if content.get("type") == "turn_start":
            self.transcript = ""


def _rate_of(content: ServerContent) -> int:
    """The sample rate in the reply's mime type (``audio/pcm;rate=24000``), 24 kHz when absent."""
    if content.model_turn is not None:
        for part in content.model_turn.parts:
            if part.inline_data is not None:
                return sample_rate(part.inline_data.mime_type, OUTPUT_AUDIO_RATE)
    return OUTPUT_AUDIO_RATE


class AudioPlayer(_Playback):
    """Plays a session's AUDIO replies in the browser as they stream.

    Chunks go kernel -> browser as binary custom messages; the browser queues them gaplessly in an
    AudioWorklet at 24 kHz and silences it within one audio block on ``interrupted``. If the
    browser keeps the AudioContext suspended (autoplay policy), the widget shows "Enable audio".

    Args:
        session: the ``LiveSession`` whose replies to play (or call ``attach`` later).
    """


class MediaStreamer(_Playback):
    """Streams the microphone and camera into a live session, and plays its spoken replies.

    The source is an ipywebrtc ``CameraStream`` (its preview and device choice), tapped in the
    browser; with no source, the widget opens its own getUserMedia stream. Audio leaves the browser
    as 16 kHz mono PCM16 in 100 ms chunks, video as JPEG frames every ``frame_interval`` seconds,
    each with a sequence number; the kernel counts gaps and feeds the session through a
    ``MediaFeed``.

    Observable state (traits, published at most every half second): ``audio_on``, ``video_on``,
    ``chunks_received``, ``frames_received``, ``gaps``, ``missing_chunks``, ``level``,
    ``speaking``, ``token_rate``, ``capture_state``, ``error``/``error_kind``.

    Args:
        session: the ``LiveSession`` to feed (or call ``attach`` later).
        source: an ipywebrtc ``MediaStream`` (e.g. ``CameraStream.facing_user(audio=True)``).
        vad: client-side voice activity settings.
        manual_activity: True to send ``activityStart``/``activityEnd`` yourself; None reads the
            session's config (manual when it disables automatic activity detection).
        **kwargs: trait values (``audio``, ``video``, ``frame_size``, ``jpeg_quality``, ...).
    """

    source = _SourceTrait.tag(sync=True, **widget_serialization)
    audio = traitlets.Bool(True, help="Capture the microphone.").tag(sync=True)
    video = traitlets.Bool(False, help="Capture the camera.").tag(sync=True)
    muted = traitlets.Bool(False, help="Pause sending audio (the stream stays open).").tag(sync=True)
    frame_size = traitlets.Int(768, help="Longest edge of a JPEG frame in pixels (never upscaled).").tag(
        sync=True
    )
    jpeg_quality = traitlets.Float(0.8, help="JPEG quality, 0..1.").tag(sync=True)
    frame_interval = traitlets.Float(1.0, help="Seconds between frames (the Live API samples 1 fps).").tag(
        sync=True
    )

    capture_state = traitlets.Unicode(
        "idle", help="Browser capture: idle, starting, streaming, stopped, error."
    ).tag(sync=True)
    input_context_state = traitlets.Unicode("", help="State of the browser's capture AudioContext.").tag(
        sync=True
    )
    capture_rate = traitlets.Int(0, help="Sample rate the browser captures at before resampling to 16 kHz.").tag(
        sync=True
    )
    audio_device = traitlets.Unicode(
        "", help="deviceId of the microphone to open ('' = the browser's default); only without a source."
    ).tag(sync=True)
    video_device = traitlets.Unicode(
        "", help="deviceId of the camera to open ('' = the browser's default); only without a source."
    ).tag(sync=True)
    devices = traitlets.List(
        traitlets.Dict(),
        help="Media inputs the browser offers: [{'kind', 'deviceId', 'label'}] (labels once permission is given).",
    ).tag(sync=True)
    capture_context_rate = traitlets.Int(
        16_000,
        help="Sample rate asked of the capture AudioContext; 0 = the device's own rate (the worklet then "
        "resamples to 16 kHz, as it does when a browser refuses a 16 kHz context).",
    ).tag(sync=True)

    audio_on = traitlets.Bool(False, help="Audio chunks are arriving in the kernel.").tag(sync=True)
    video_on = traitlets.Bool(False, help="Video frames are arriving in the kernel.").tag(sync=True)
    chunks_received = traitlets.Int(0, help="Audio chunks received by the kernel.").tag(sync=True)
    frames_received = traitlets.Int(0, help="Video frames received by the kernel.").tag(sync=True)
    gaps = traitlets.Int(0, help="Times one or more chunks or frames were missing.").tag(sync=True)
    missing_chunks = traitlets.Int(0, help="Audio chunks missing in all.").tag(sync=True)
    level = traitlets.Float(0.0, help="RMS input level of the last chunk, 0..1.").tag(sync=True)
    speaking = traitlets.Bool(False, help="The client-side VAD hears speech.").tag(sync=True)
    token_rate = traitlets.Float(0.0, help="Input tokens per second the stream costs (25/s audio, 258/frame).").tag(
        sync=True
    )

    def __init__(
        self,
        session: Any = None,
        source: Any = None,
        *,
        vad: VadSettings | None = None,
        manual_activity: bool | None = None,
        **kwargs: Any,
    ) -> None:
        self.vad_settings = vad
        self.manual_activity = manual_activity
        self.feed: MediaFeed | None = None
        self._last_publish = 0.0
        self._last_audio = 0.0
        self._last_video = 0.0
        super().__init__(session=None, role="streamer", source=source, **kwargs)
        # What streams changes with these even when no chunk arrives (stop, mute, a closed tab).
        self.observe(self._on_switch, names=["audio", "video", "muted", "capture_state"])
        if session is not None:
            self.attach(session)

    def attach(self, session: Any) -> None:
        """Feed ``session`` from now on (and play its replies)."""
        super().attach(session)
        if self.feed is not None:
            self.feed.close()
        self.feed = MediaFeed(
            session, vad=self.vad_settings, manual_activity=self.manual_activity, on_error=self._on_feed_error
        )

    def stop(self) -> None:
        """Stop capturing audio and video (tracks the widget did not open are left running)."""
        self.audio = False
        self.video = False

    def close(self) -> None:
        """Stop capture, flush the feed and close the widget."""
        if self.feed is not None:
            self.feed.close()
        super().close()

    def feed_recorded(self, pcm: bytes, chunk_seconds: float = 0.1) -> int:
        """Push recorded PCM16 16 kHz mono audio through the same kernel path as the browser's chunks.

        Why: a notebook run without a browser (nbclient, CI) can still show the whole path: gap
        accounting, VAD, the session's token count, the reply. Returns the number of chunks pushed.

        Raises:
            InvalidState: no session is attached.
        """
        if self.feed is None:
            raise InvalidState("attach a session first")
        step = int(INPUT_AUDIO_RATE * chunk_seconds) * 2
        epoch = f"recorded-{time.monotonic_ns()}"
        n = 0
        for n, offset in enumerate(range(0, len(pcm), step), start=1):
            self._handle_front_end_msg({"type": "audio", "seq": n - 1, "epoch": epoch}, [pcm[offset:offset + step]])
        self._publish(force=True)
        return n

    # Private methods.

    def _handle_front_end_msg(self, content: dict[str, Any], buffers: list[Any]) -> None:
        kind = content.get("type")
        feed = self.feed
        if kind == "audio" and buffers:
            if feed is not None and not self.muted:
                feed.push_audio(buffers[0], content.get("seq"), content.get("epoch"))
                self._last_audio = time.monotonic()
            self._publish()
        elif kind == "video" and buffers:
            if feed is not None:
                feed.push_video(buffers[0], content.get("seq"), content.get("epoch"))
                self._last_video = time.monotonic()
            self._publish()
        elif kind == "audio_end":
            if feed is not None:
                feed.end_audio()
            self._publish(force=True)
        else:
            super()._handle_front_end_msg(content, buffers)

    def _publish(self, force: bool = False) -> None:
        # Traits are synced to the browser: update them at a bounded rate, not per chunk (rule 1).
        now = time.monotonic()
        if not force and now - self._last_publish < PUBLISH_INTERVAL:
            return
        self._last_publish = now
        feed = self.feed
        if feed is None:
            return
        stats = feed.stats()
        with self.hold_sync():
            self.chunks_received = stats.chunks_received
            self.frames_received = stats.frames_received
            self.gaps = stats.gaps
            self.missing_chunks = stats.missing_chunks
            self.level = round(stats.level, 4)
            self.speaking = stats.speaking
            self.audio_on = self.audio and not self.muted and now - self._last_audio < 1.0
            self.video_on = self.video and now - self._last_video < 3 * self.frame_interval
            # What streaming costs from now on: nothing once both kinds are off.
            self.token_rate = round(feed.token_rate(now), 1) if (self.audio_on or self.video_on) else 0.0

    def _on_switch(self, _change: dict[str, Any]) -> None:
        self._publish(force=True)

    def _on_feed_error(self, exc: BaseException) -> None:
        # Runs on the session's loop. A closed session will refuse every later chunk too: say so
        # once and turn capture off, so the browser's mic and camera lights go out.
        if self.error_kind != "session":
            self.error_kind = "session"
            self.error = f"the session refused media: {exc}"
        if isinstance(exc, InvalidState) or getattr(self.session, "state", None) == "closed":
            self.stop()


# ---------------------------------------------------------------------------------------------
# Entry points for the magics (%live mic|camera on|off) and session.stream().
# ---------------------------------------------------------------------------------------------

_streamers: weakref.WeakKeyDictionary[Any, MediaStreamer] = weakref.WeakKeyDictionary()
_streamers_by_id: dict[int, MediaStreamer] = {}


def _lookup(session: Any) -> MediaStreamer | None:
    try:
        return _streamers.get(session)
    except TypeError:
        return _streamers_by_id.get(id(session))


def _remember(session: Any, streamer: MediaStreamer) -> None:
    try:
        _streamers[session] = streamer
    except TypeError:
        _streamers_by_id[id(session)] = streamer


def start_media(
    session: Any,
    audio: bool | None = True,
    video: bool | None = None,
    source: Any = None,
    **kwargs: Any,
) -> MediaStreamer:
    """Start (or change) what streams into ``session``; one streamer per session.

    This only ever starts things: a kind given as False or None is left as it is (off for a new
    streamer), so ``%live mic on`` (``audio=True, video=False``) leaves a running camera alone;
    ``stop_media`` stops. The caller displays the returned widget: capture runs in the widget
    model (once), so displaying it again only adds a view.

    Args:
        session: the ``LiveSession`` to feed.
        audio, video: True to capture; False or None to leave as is.
        source: an ipywebrtc ``MediaStream``; None keeps the current one (or uses getUserMedia).
        **kwargs: trait values and ``vad`` / ``manual_activity`` for a new streamer.

    Returns:
        The session's ``MediaStreamer``.

    Raises:
        InvalidState: the session is closed.
    """
    session = _unwrap(session)
    if getattr(session, "state", None) == "closed":
        raise InvalidState("the session is closed; connect a new one before streaming")
    streamer = _lookup(session)
    if streamer is None or streamer.comm is None:
        streamer = MediaStreamer(session, source=source, audio=bool(audio), video=bool(video), **kwargs)
        _remember(session, streamer)
        return streamer
    with streamer.hold_sync():
        if source is not None and source is not streamer.source:
            streamer.source = source
        if audio:
            streamer.audio = True
            streamer.muted = False
        if video:
            streamer.video = True
        if streamer.error:
            streamer.error = ""
            streamer.error_kind = ""
    return streamer


def stop_media(session: Any, audio: bool = True, video: bool = True) -> MediaStreamer | None:
    """Stop the named kinds of capture for ``session`` (both by default).

    Returns:
        The session's streamer, or None when it never streamed.
    """
    streamer = _lookup(_unwrap(session))
    if streamer is None:
        return None
    with streamer.hold_sync():
        if audio:
            streamer.audio = False
        if video:
            streamer.video = False
    if audio and streamer.feed is not None:
        streamer.feed.end_audio()
    return streamer


def streamers() -> Iterable[MediaStreamer]:
    """Every streamer made by ``start_media`` that is still alive (for the dashboard)."""
    return [*_streamers.values(), *_streamers_by_id.values()]
