"""The media feed's decisions, sans-I/O: chunk order, voice activity, what to send, and its counts.

Why a module of its own: everything the kernel decides about a microphone or camera stream can
be decided without a browser, a thread or a session: which chunks are ready (``SequenceTracker``),
when speech starts and stops (``VoiceActivityDetector``), and therefore which session calls to
make, in which order. ``MediaIntake`` takes what the browser sent and returns typed ``FeedItem``s
(``SendAudio``, ``SendVideo``, ``SendSignal``); the thread bridge (``media_bridge.MediaFeed``)
carries them to the session's loop and the widgets (``media.py``) show the counters. Nothing here
reads a clock, awaits or imports a widget: callers pass durations and times.

Tokens are counted once: the session records each chunk's cost in its ledger when it sends it
and returns that figure (``LiveSession.send_audio``); the bridge hands it to ``TokenWindow``,
which only adds up what it is told over the last ``TOKEN_RATE_WINDOW`` seconds.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from ..protocol.audio import pcm16_level
from ..protocol.tokens import INPUT_AUDIO_RATE

__all__ = [
    "TOKEN_RATE_WINDOW",
    "FeedItem",
    "FeedStats",
    "MediaIntake",
    "SendAudio",
    "SendSignal",
    "SendVideo",
    "SequenceTracker",
    "SignalKind",
    "TokenWindow",
    "VadSettings",
    "VadSignal",
    "VoiceActivityDetector",
]

TOKEN_RATE_WINDOW = 5.0
"""Seconds of history behind a feed's token rate."""


# Sequence numbers.


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


# Voice activity.


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


# What the feed asks of the session: typed items, one per session call.

SignalKind = Literal["activity_start", "activity_end", "audio_stream_end"]


@dataclass(frozen=True, slots=True)
class SendAudio:
    """``session.send_audio(pcm)``: one chunk of 16 kHz mono PCM16."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class SendVideo:
    """``session.send_video(jpeg)``: one JPEG frame."""

    jpeg: bytes


@dataclass(frozen=True, slots=True)
class SendSignal:
    """An activity signal: ``send_activity_start``/``send_activity_end`` (manual activity
    detection) or ``send_audio_stream_end`` (automatic: the mic paused)."""

    kind: SignalKind


FeedItem = SendAudio | SendVideo | SendSignal


# Token rate.


class TokenWindow:
    """Tokens per second over the last ``span`` seconds, from costs it is told (it counts nothing).

    Written on the session's loop (as sends return their cost) and read on the kernel's thread
    (the widgets), hence the lock.
    """

    def __init__(self, span: float = TOKEN_RATE_WINDOW) -> None:
        self.span = span
        self._entries: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def add(self, tokens: float, now: float) -> None:
        """Note ``tokens`` spent at ``now`` (any monotonic clock, the same for ``rate``)."""
        with self._lock:
            self._entries.append((now, tokens))
            self._forget(now)

    def rate(self, now: float) -> float:
        """Tokens per second over the ``span`` before ``now``."""
        with self._lock:
            self._forget(now)
            return sum(t for _, t in self._entries) / self.span

    def _forget(self, now: float) -> None:
        entries = self._entries
        while entries and entries[0][0] < now - self.span:
            entries.popleft()


# The intake: what arrived -> what to send.


@dataclass(frozen=True, slots=True)
class FeedStats:
    """What a media feed has taken in and handed to the session (a snapshot)."""

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


class MediaIntake:
    """Takes numbered chunks and frames as the browser sent them; returns the session calls to make.

    Activity signals follow ``manual_activity``: with automatic activity detection (the Live API
    default) a pause of ``vad.silence_seconds`` after speech asks for ``audioStreamEnd``; with it
    off, speech is bracketed by ``activityStart`` / ``activityEnd``.

    Args:
        vad: client-side voice activity settings.
        manual_activity: send ``activityStart``/``activityEnd`` (True) or ``audioStreamEnd`` (False).
    """

    def __init__(self, vad: VadSettings | None = None, manual_activity: bool = False) -> None:
        self.manual_activity = manual_activity
        self.vad = VoiceActivityDetector(vad)
        self.audio_seq = SequenceTracker()
        self.video_seq = SequenceTracker(hold=2)
        self.level = 0.0
        """RMS level (0..1) of the last chunk accepted."""
        self.audio_seconds = 0.0
        """Seconds of audio accepted."""

    def push_audio(self, pcm: bytes, seq: int | None = None, epoch: str | None = None) -> list[FeedItem]:
        """Take one PCM16 16 kHz mono chunk (``seq`` None: unnumbered, taken as it comes)."""
        if seq is None:
            self.audio_seq.received += 1
            return self._accept_audio(pcm)
        items: list[FeedItem] = []
        for chunk in self.audio_seq.receive(seq, epoch, pcm):
            items += self._accept_audio(chunk)
        return items

    def push_video(self, jpeg: bytes, seq: int | None = None, epoch: str | None = None) -> list[FeedItem]:
        """Take one JPEG frame (``seq`` None: unnumbered)."""
        if seq is None:
            self.video_seq.received += 1
            return [SendVideo(jpeg)]
        return [SendVideo(frame) for frame in self.video_seq.receive(seq, epoch, jpeg)]

    def end_audio(self) -> list[FeedItem]:
        """The mic paused (muted or stopped): release what waited for a lost chunk, close the speech turn."""
        items: list[FeedItem] = []
        for chunk in self.audio_seq.flush():
            items += self._accept_audio(chunk)
        if self.vad.reset() == "speech_end":
            items.append(self._end_signal())
        return items

    def _accept_audio(self, pcm: bytes) -> list[FeedItem]:
        seconds = len(pcm) / (2 * INPUT_AUDIO_RATE)
        self.level = pcm16_level(pcm)
        self.audio_seconds += seconds
        signal = self.vad.process(self.level, seconds)
        items: list[FeedItem] = []
        if signal == "speech_start" and self.manual_activity:
            items.append(SendSignal("activity_start"))
        items.append(SendAudio(pcm))
        if signal == "speech_end":
            items.append(self._end_signal())
        return items

    def _end_signal(self) -> SendSignal:
        return SendSignal("activity_end" if self.manual_activity else "audio_stream_end")
