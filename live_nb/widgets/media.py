"""Mic and camera into a live session, and the session's spoken replies out of the speakers.

Why a widget of our own: ipywebrtc's ``CameraStream`` gives a working preview and device choice in
JupyterLab 4, but its ``AudioRecorder`` cannot stream and fails on audio+video streams (media.md).
``MediaStreamer`` taps the same MediaStream in the browser (or opens its own with getUserMedia when
there is no ipywebrtc) and sends 16 kHz mono PCM16 in 100 ms chunks and ~1 fps JPEG frames to the
kernel as binary custom messages with sequence numbers. ``AudioPlayer`` plays AUDIO replies as they
stream and stops at once on ``interrupted`` (barge-in).

How the parts fit (data flows left to right; nothing here opens a socket):

    browser (media.js)            kernel comm thread (on_msg, rule 5)     session loop thread
    AudioWorklet -> PCM chunk --> MediaIntake: SequenceTracker, VAD   --> MediaFeed queue -> send_audio
    canvas -> JPEG frame ------>  (media_feed.py, sans-I/O: typed items)  -> send_video / activity signals
    player worklet <------------  AudioPlayer (binary custom msgs)   <--- session listener (ServerContent)

This module holds the widgets and the entry points (``start_media``, ``stop_media``); the
decisions live in ``media_feed.py`` (sans-I/O), the thread bridge in ``media_bridge.py``, and the
session -> streamer link in ``streamers.py`` (the dashboard reads it). The names tests and
notebooks import from here (``MediaFeed``, ``VadSettings``, ...) are re-exported.

Rules:
1. Media is custom messages with binary buffers, never traits (style rule 12); traits carry only
   state, and the kernel publishes its counters at most every ``PUBLISH_INTERVAL`` seconds, so a
   stream costs the kernel ten small messages a second and no echo traffic.
2. The kernel never blocks on the session: ``MediaFeed`` hands work to the session's loop with
   ``call_soon_threadsafe`` into one FIFO queue, so chunks keep their order even while the session
   reconnects (the session buffers and replays; the emulator's consumed log proves it).
3. The widgets take the ``LiveSession`` itself (typed: ``SessionView`` to listen, ``MediaTarget``
   to feed); the notebook passes its real session, and nothing here looks behind a stand-in.
4. Untrusted text (the ``transcript`` of replies, ``error``, ``label``, device labels) is a plain
   string trait that media.js shows as textContent: never HTML, and not Markdown, because the
   sanitiser JupyterLab applies to untrusted outputs does not run inside a widget view.
5. The mic keeps flowing while a cell runs. JupyterLab 4.6 sends widget comm messages over a
   per-comm-target subshell (JEP 91) when the kernel offers subshells, so ipykernel 7 can handle
   them in that subshell's thread while the main shell runs a cell. But ipykernel 7.4 routes a
   comm's incoming messages to the shell that sent the comm's LAST outgoing message: one reply
   chunk played from the session's loop (whose parent is the cell that connected) sent the mic
   back to the main shell, where it waited for the cell (measured: 0 chunks in a 10 s sleep).
   ``_follow_frontend_subshell`` makes this widget's comm go where the browser addressed it (its
   ``subshell_id`` header). So handlers run on the comm subshell's thread, the main thread and the
   session's loop thread at once: trait state changes under ``_state_lock`` and the feed keeps its
   order under its own lock.
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import anywidget
import traitlets
from ipywidgets import widget_serialization

from ..client.view import SessionView
from ..exceptions import InvalidState, MediaError
from ..protocol.audio import pcm16_level, sample_rate
from ..protocol.messages import ServerContent
from ..protocol.tokens import INPUT_AUDIO_RATE, OUTPUT_AUDIO_RATE
from . import streamers as registry
from .media_bridge import MediaFeed, MediaTarget
from .media_feed import FeedStats, SequenceTracker, VadSettings, VoiceActivityDetector

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

    def __init__(self, session: SessionView | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session: SessionView | None = None
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
        self._state_lock = threading.RLock()
        """Serialises trait changes made from the comm thread, the main thread and the session's loop."""
        self.on_msg(self._handle_custom_msg_dispatch)
        self.observe(self._follow_frontend_subshell, names=["comm"])
        self._follow_frontend_subshell()
        self.observe(self._log_error, names=["error"])
        if session is not None:
            self.attach(session)

    def attach(self, session: SessionView) -> None:
        """Listen to ``session`` and play its AUDIO replies (replacing any session heard before)."""
        self.detach()
        self.session = session
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

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply a state update from the browser (on the comm thread) under the state lock."""
        with self._state_lock:
            super().set_state(sync_data)

    # Private methods.

    def _follow_frontend_subshell(self, _change: object = None) -> None:
        # ipykernel 7.4 picks the shell that handles a comm message in its shell-channel thread with
        # ``comm._reply_subshell_for(data, header_subshell_id)``, which answers with the shell of
        # the comm's last outgoing message (so a cell in a subshell awaiting a widget's reply gets
        # it). This widget awaits nothing; it needs its messages handled where the browser sent
        # them, in JupyterLab's comm subshell, even after the session's loop sent a reply chunk.
        # Without that hook (other kernels, older ipykernel) this does nothing.
        comm = self.comm
        route = getattr(comm, "_reply_subshell_for", None)
        if route is None or getattr(route, "live_nb_follows_header", False):
            return

        def follow_header(data: Any, header_subshell: str | None, _kernel_choice: Any = route) -> Any:
            return header_subshell if header_subshell is not None else _kernel_choice(data, header_subshell)

        follow_header.live_nb_follows_header = True  # type: ignore[attr-defined]
        comm._reply_subshell_for = follow_header

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
                with self._state_lock:
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
            with self._state_lock:
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
        session: MediaTarget | None = None,
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
        self.arrivals: deque[tuple[float, str]] = deque(maxlen=600)
        """(``time.time()``, thread name) of the last 600 audio chunks (a minute) from the browser."""
        super().__init__(session=None, role="streamer", source=source, **kwargs)
        # What streams changes with these even when no chunk arrives (stop, mute, a closed tab).
        self.observe(self._on_switch, names=["audio", "video", "muted", "capture_state"])
        if session is not None:
            self.attach(session)

    def attach(self, session: MediaTarget) -> None:  # type: ignore[override]
        """Feed ``session`` from now on (and play its replies)."""
        super().attach(session)
        if self.feed is not None:
            self.feed.close()
        self.feed = MediaFeed(
            session, vad=self.vad_settings, manual_activity=self.manual_activity, on_error=self._on_feed_error
        )

    def stop(self) -> None:
        """Stop capturing audio and video (tracks the widget did not open are left running)."""
        with self._state_lock, self.hold_sync():
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
            self.arrivals.append((time.time(), threading.current_thread().name))
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
        with self._state_lock, self.hold_sync():
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
        with self._state_lock:
            if self.error_kind != "session":
                self.error_kind = "session"
                self.error = f"the session refused media: {exc}"
        if isinstance(exc, InvalidState) or getattr(self.session, "state", None) == "closed":
            self.stop()


# ---------------------------------------------------------------------------------------------
# Entry points for the magics (%live mic|camera on|off) and the notebook's stream().
# ---------------------------------------------------------------------------------------------

def _lookup(session: object) -> MediaStreamer | None:
    """The streamer ``start_media`` made for ``session`` (``streamers.lookup``), or None."""
    found = registry.lookup(session)
    return found if isinstance(found, MediaStreamer) else None


def start_media(
    session: MediaTarget,
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
    if session.state == "closed":
        raise InvalidState("the session is closed; connect a new one before streaming")
    streamer = _lookup(session)
    if streamer is None or streamer.comm is None:
        streamer = MediaStreamer(session, source=source, audio=bool(audio), video=bool(video), **kwargs)
        registry.register(session, streamer)
        return streamer
    with streamer._state_lock, streamer.hold_sync():
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


def stop_media(session: object, audio: bool = True, video: bool = True) -> MediaStreamer | None:
    """Stop the named kinds of capture for ``session`` (both by default).

    Returns:
        The session's streamer, or None when it never streamed.
    """
    streamer = _lookup(session)
    if streamer is None:
        return None
    with streamer._state_lock, streamer.hold_sync():
        if audio:
            streamer.audio = False
        if video:
            streamer.video = False
    if audio and streamer.feed is not None:
        streamer.feed.end_audio()
    return streamer


def streamers() -> Iterable[MediaStreamer]:
    """Every streamer made by ``start_media`` that is still alive (for the dashboard)."""
    return [s for s in registry.all_streamers() if isinstance(s, MediaStreamer)]
