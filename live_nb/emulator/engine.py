"""The emulator's sans-I/O session logic: one connection's turns, replies and checkpoints over a session's state.

Rules (h11-style):

1. Nothing here awaits, reads a clock, opens a socket or touches SQLite. Client messages go in
   through ``ServerEngine.receive(message)``; what the session does comes out as a list of
   actions (``Send``, ``Stream``, ``Checkpoint``, ``Close``) that ``ServerProtocol``
   (server_protocol.py) turns, in order, into frames, handles and events. Setup and resume
   admission are the protocol's, not the engine's: an engine is only built for an admitted setup.
2. ``SessionState`` is everything that survives a connection: context turns, system instruction,
   tools, compression bookkeeping, the half-built user turn and VAD state. It serialises to JSON
   (``to_json``/``from_json``) and a ``Checkpoint`` carries that JSON *as of the moment it was
   made*: a resumption handle names exactly that snapshot.
3. A reply is a ``ReplyPlan`` of ready-made chunks. The server streams them and reports each one
   with ``chunk_sent``; the model turn in the context grows chunk by chunk, so after a barge-in
   only what was really sent stays in history (live-protocol.md section 4, activity detection).
4. Client message indexes follow live-protocol.md section 8: ``setup`` is 0, the first message after
   it on a connection is 1; a checkpoint's index names the last message of *this* connection folded
   into its snapshot. Every message is folded in as soon as it is received.
5. A checkpoint's snapshot contains every message up to its index, and no later one. So a checkpoint
   is only ever made at a message boundary: between messages (``finish_reply``, ``periodic``), or
   while message N is being handled, either *before* it is counted (index N-1, snapshot without it)
   or after it is wholly folded in (index N). A barge-in is such a boundary: ``receive`` asks
   ``_barges_in`` first and, when message N interrupts the reply or the pending function calls,
   interrupts them and checkpoints (index N-1, snapshot with the reply cut to what was sent) before
   counting N; then N is folded in, and if it starts a new turn the usual ``resumable: false`` goes
   out. Why not "after N, index N": N may start a reply, and a snapshot taken while generating would
   hold a half-made model turn no one will finish (the service says ``resumable: false`` then). A
   barge-in that only a later part of N causes (a turn N itself started, e.g. several audio chunks
   in one message) checkpoints after N, if the session is resumable then (``_interrupt_midway``).
   Breaking this rule loses a message silently: the client drops from its replay buffer every message
   up to the index, and a resume from the snapshot lacks the one it dropped.

Service behaviours reproduced here (live-protocol.md sections 2-5, field.md): close 1007 for an
invalid message, ``activityStart``/``activityEnd`` while automatic VAD is on, ``audioStreamEnd``
while it is off; ``triggerTokens`` checked before a turn runs; the kept window starts at a user
turn; the system instruction is never dropped; without compression an exhausted window ends the
session; ``resumable: false`` with an empty handle while generating or waiting on a BLOCKING call.

Function calls (models.md section 2, catalogue rules): a call's ``behavior`` is its declaration's,
else the model's default. BLOCKING: the model waits, silent; new input cancels the call
(``toolCallCancellation``). NON_BLOCKING: the model keeps speaking, the session stays resumable,
and the final result's ``scheduling`` decides how it comes in: SILENT folds it into the context,
WHEN_IDLE (the default) answers once the current turn ends, INTERRUPT cuts the current turn (a
barge-in, Rule 5) and answers at once. ``willContinue`` results are interim (the call stays open).
On extended thinking every finished turn ends with ``interactionStatus``: IN_PROGRESS while more
is to come (the answer after a filler, a running call, an owed result), IDLE at the end. Pending
calls and owed results are in the snapshot; a resume asks for pending calls again with their ids.

Offline speech (``EngineSettings.hearing`` / ``speaking``; speech.py does the work, server.py runs it
in worker threads). Recognition and synthesis are blocking CPU work, so the engine never calls them:
it says what to hear and what to say, and is told the results.

* Hearing: every audio chunk that joins a user turn (VAD speech and the silence that ends it, or a
  manual activity; plus the chunk just before speech started, as the service's prefix padding) comes
  out as a ``Listen`` action; the end of a spoken turn comes out as ``EndListening`` instead of a
  reply. The I/O layer feeds the chunks to the session's recogniser off the loop, reports partial
  text with ``partial(turn, text)`` (streamed as ``inputTranscription`` when it is on) and the final
  text with ``heard(text)``, which the I/O layer calls *before it feeds the next client frame*: so
  the turn's reply starts from the same sequence of client messages whatever the recogniser's
  timing, and the message indexes and snapshots (Rules 4-5) are unchanged. Between the turn's end
  and ``heard`` the session is not resumable (a snapshot there would hold a turn no one answers).
* Speaking: an AUDIO reply's plan comes with the sentences to voice (``ReplyPlan.to_voice``); the
  I/O layer synthesises them in order and hands each one's audio back, cut into chunks with the
  words spoken in each, to ``voice(plan, pieces)``, which appends ready chunks to the plan. Barge-in
  and history work on chunks as before: what was sent is what counts.
* Off (the defaults): no ``Listen``, a spoken turn is answered at once from its length, and replies
  are a tone (``reply_tone``).
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..protocol import catalogue
from ..protocol import tokens as tok
from ..protocol.audio import pcm16_level, sample_rate
from ..protocol.config import SpeechConfig
from ..protocol.content import Blob, Content, FunctionCall, FunctionResponse, Part
from ..protocol.messages import (
    ClientContent,
    ClientMessage,
    ContextUpdate,
    ModalityTokenCount,
    RealtimeInput,
    ServerContent,
    ServerMessage,
    SessionResumptionUpdate,
    Setup,
    SetupComplete,
    ToolCall,
    ToolCallCancellation,
    ToolResponse,
    Transcription,
    UsageMetadata,
)
from .responder import Reply, RequestContext, Responder, ToolResult, Turn

__all__ = [
    "Action",
    "Checkpoint",
    "Close",
    "EndListening",
    "EngineSettings",
    "Listen",
    "ReplyPlan",
    "Send",
    "ServerEngine",
    "SessionState",
    "Stream",
    "sentences",
    "tone_pieces",
]

BLOCKING = "BLOCKING"
NON_BLOCKING = "NON_BLOCKING"
OUTPUT_CHUNK_SECONDS = 0.04  # 40 ms of 24 kHz PCM16 = 1,920 bytes per chunk: far below 1 MiB
SPEECH_CHUNK_SECONDS = 0.1
"""Voiced replies go out in 100 ms chunks (4,800 bytes). Why not the tone's 40 ms: speech takes about
0.35 s a word against the tone's 0.15 s, so at the same chunk size a reply would have 2.3x the
chunks and, paced per chunk (``chunk_delay``), last 2.3x as long on the wire. 100 ms chunks keep a
reply's chunk count (and so its streaming time and how often a barge-in can land) close to the
tone's: about 3.5 chunks a word against 3.75."""
SECONDS_PER_WORD = 0.15  # reply tone per word of reply text (brisk: it is a placeholder for speech)
WORDS_PER_TEXT_CHUNK = 4
SETTLE_PARTIALS = 3
"""A recognised word goes out as inputTranscription once this many partials in a row agree on it..."""
SETTLE_TAIL = 3
"""... and it is not among the newest partial's last this many words (the recogniser revises those most)."""
_SENTENCE = re.compile(r"[^.!?…]*(?:[.!?…]+[\"'”)\]]*)?\s*", re.DOTALL)


# Actions: what the asyncio layer must do, in order.


@dataclass(frozen=True, slots=True)
class Send:
    """Send one server message (with usage riding along, if any)."""

    message: ServerMessage
    usage: UsageMetadata | None = None


@dataclass(frozen=True, slots=True)
class Stream:
    """Stream a reply's chunks (with the configured delay between them), then call ``finish_reply``."""

    plan: ReplyPlan


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Store ``state`` as a snapshot and send a resumable ``SessionResumptionUpdate`` naming it.

    ``index`` is the ``lastConsumedClientMessageIndex`` to send (None unless transparent mode).
    """

    state: Mapping[str, Any]
    index: int | None


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this code and reason."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Listen:
    """Feed this audio (PCM16 mono at ``rate``) to the session's recogniser, as part of listening turn ``turn``."""

    pcm: bytes
    rate: int
    turn: int


@dataclass(frozen=True, slots=True)
class EndListening:
    """Listening turn ``turn`` ended: finish its recognition and call ``heard(text)`` before the next
    client frame; with ``discard`` drop it unheard (no ``heard`` call: the turn was taken as it was)."""

    turn: int
    discard: bool = False


Action = Union[Send, Stream, Checkpoint, Close, Listen, EndListening]  # noqa: UP007 - a runtime alias, py3.10 target


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Per-emulator knobs the engine needs (times already in service seconds of audio, not wall time).

    Attributes:
        context_window: the window in tokens; None takes the model's input window from the
            catalogue (131,072 on 3.x, 128k on 2.5), as the service does.
        vad_threshold: RMS (int16 scale) above which a 16 kHz chunk counts as speech.
        silence_seconds: seconds of audio silence after speech that end a VAD turn (unless the
            setup's ``silenceDurationMs`` says otherwise).
        hearing: spoken turns are recognised offline (``Listen``/``EndListening``, ``heard``);
            off: answered from their length alone.
        speaking: AUDIO replies are voiced by the I/O layer (``ReplyPlan.to_voice``, ``voice``);
            off: a tone.
    """

    context_window: int | None = None
    vad_threshold: float = 500.0
    silence_seconds: float = 0.8
    hearing: bool = False
    speaking: bool = False


@dataclass
class SessionState:
    """Everything a session keeps across connections (what a snapshot holds).

    Change ``turns`` only through the methods below (``add_turn``, ``replace_turn``,
    ``drop_oldest_turn``, ``remove_turn``): they keep the cached token sum right, which the audio
    hot path reads on every chunk.
    """

    session_id: str
    model: str
    system_instruction: str = ""
    setup_system_instruction: str = ""
    tools: list[Mapping[str, Any]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    next_number: int = 1
    requests: int = 0
    compressions: int = 0
    forgotten_turns: int = 0
    forgotten_tokens: float = 0.0
    last_forgotten: str | None = None
    pending_audio_tokens: float = 0.0
    pending_speech_seconds: float = 0.0
    pending_video_frames: int = 0
    pending_texts: list[str] = field(default_factory=list)
    in_speech: bool = False
    silence_seconds: float = 0.0
    in_activity: bool = False
    tool_seq: int = 0
    consumed_count: int = 0
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Function calls asked and not finally answered nor cancelled, by id, oldest first:
    ``{"name", "args", "behavior", "interim"}`` (a resume asks for them again, with the same ids)."""
    owed: list[dict[str, Any]] = field(default_factory=list)
    """Final results folded into the context that the model has not answered yet (WHEN_IDLE while it
    speaks, BLOCKING ones while another BLOCKING call runs): ``{"name", "response", "interim",
    "parts", "id"}``. A snapshot keeps them, so a resume still answers them."""
    response_parts: int = 0
    """Media parts (``FunctionResponse.parts``) received with function results."""
    frame_tokens: int = tok.VIDEO_TOKENS_PER_FRAME
    """Tokens a video frame costs (the model's rate at the setup's media resolution; set per connection)."""
    _totals: dict[str, float] | None = field(default=None, compare=False, repr=False)

    def _modality_totals(self) -> dict[str, float]:
        """Tokens of the turns by modality, kept as running sums.

        Why: usage is reported on every turn and the window checked on every request; walking every
        turn each time made a long session quadratic. Turns adjust the sums as they come and go.
        """
        if self._totals is None:
            totals: dict[str, float] = {}
            for turn in self.turns:
                for modality, count in turn.modalities.items():
                    totals[modality] = totals.get(modality, 0.0) + count
            self._totals = totals
        return self._totals

    def _adjust(self, modalities: Mapping[str, float], sign: float) -> None:
        totals = self._totals
        if totals is not None:
            for modality, count in modalities.items():
                totals[modality] = totals.get(modality, 0.0) + sign * count

    @property
    def turn_tokens(self) -> float:
        """Tokens of the turns."""
        return math.fsum(self._modality_totals().values())

    @property
    def pending_tokens(self) -> float:
        """Tokens of the user turn being built from realtime input."""
        return (
            self.pending_audio_tokens
            + self.pending_video_frames * self.frame_tokens
            + sum(tok.text_tokens(t) for t in self.pending_texts)
        )

    @property
    def system_tokens(self) -> int:
        """Tokens of the system instruction (never dropped)."""
        return tok.text_tokens(self.system_instruction)

    @property
    def context_tokens(self) -> float:
        """Tokens in the window: system instruction, turns and the half-built user turn."""
        return self.system_tokens + self.turn_tokens + self.pending_tokens

    def modality_tokens(self) -> dict[str, float]:
        """Context tokens by modality (system instruction counted as TEXT)."""
        out: dict[str, float] = {"TEXT": float(self.system_tokens)}
        for modality, count in self._modality_totals().items():
            out[modality] = out.get(modality, 0.0) + count
        if self.pending_audio_tokens:
            out["AUDIO"] = out.get("AUDIO", 0.0) + self.pending_audio_tokens
        if self.pending_video_frames:
            out["VIDEO"] = out.get("VIDEO", 0.0) + self.pending_video_frames * self.frame_tokens
        if self.pending_texts:
            out["TEXT"] += sum(tok.text_tokens(t) for t in self.pending_texts)
        return out

    def add_turn(self, role: str, text: str, modalities: Mapping[str, float]) -> Turn:
        """Append a turn to the context and return it."""
        turn = Turn(self.next_number, role, text, float(sum(modalities.values())), dict(modalities))
        self.next_number += 1
        self.turns.append(turn)
        self._adjust(turn.modalities, 1.0)
        return turn

    def replace_turn(self, number: int, text: str, modalities: Mapping[str, float]) -> None:
        """Rewrite turn ``number`` (a reply growing chunk by chunk)."""
        for i in range(len(self.turns) - 1, -1, -1):
            if self.turns[i].number == number:
                old = self.turns[i]
                self.turns[i] = Turn(number, old.role, text, float(sum(modalities.values())), dict(modalities))
                self._adjust(old.modalities, -1.0)
                self._adjust(modalities, 1.0)
                return

    def drop_oldest_turn(self) -> Turn:
        """Remove and return the oldest turn (the sliding window)."""
        turn = self.turns.pop(0)
        self._adjust(turn.modalities, -1.0)
        return turn

    def remove_turn(self, number: int) -> None:
        """Remove turn ``number`` (a reply interrupted before its first chunk went out)."""
        self.turns = [t for t in self.turns if t.number != number]
        self._totals = None

    def to_json(self) -> dict[str, Any]:
        """The snapshot form (plain JSON)."""
        return {
            "v": 1,
            "session_id": self.session_id,
            "model": self.model,
            "system_instruction": self.system_instruction,
            "setup_system_instruction": self.setup_system_instruction,
            "tools": [dict(t) for t in self.tools],
            "turns": [t.to_json() for t in self.turns],
            "next_number": self.next_number,
            "requests": self.requests,
            "compressions": self.compressions,
            "forgotten_turns": self.forgotten_turns,
            "forgotten_tokens": self.forgotten_tokens,
            "last_forgotten": self.last_forgotten,
            "pending_audio_tokens": self.pending_audio_tokens,
            "pending_speech_seconds": self.pending_speech_seconds,
            "pending_video_frames": self.pending_video_frames,
            "pending_texts": list(self.pending_texts),
            "in_speech": self.in_speech,
            "silence_seconds": self.silence_seconds,
            "in_activity": self.in_activity,
            "tool_seq": self.tool_seq,
            "consumed_count": self.consumed_count,
            "calls": {call_id: dict(call) for call_id, call in self.calls.items()},
            "owed": [dict(result) for result in self.owed],
            "response_parts": self.response_parts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SessionState:
        """Rebuild a state from its snapshot form."""
        fields = dict(data)
        fields.pop("v", None)
        fields.pop("_totals", None)
        fields["turns"] = [Turn.from_json(t) for t in fields.get("turns", [])]
        fields["tools"] = list(fields.get("tools", []))
        fields["pending_texts"] = list(fields.get("pending_texts", []))
        fields["calls"] = {str(k): dict(v) for k, v in dict(fields.get("calls") or {}).items()}
        fields["owed"] = [dict(r) for r in fields.get("owed") or ()]
        return cls(**fields)


@dataclass(eq=False)
class ReplyPlan:
    """One reply, cut into ready-to-send chunks.

    Attributes:
        chunks: server messages to stream, in order.
        chunk_texts: the part of the reply text each chunk carries (audio chunks: the words whose
            sound starts in it), so an interrupted reply leaves exactly the sent words in history.
        chunk_tokens: output tokens each chunk costs.
        modality: ``TEXT`` or ``AUDIO``.
        prompt_tokens, prompt_details: the context at the start of the turn (for usageMetadata).
        turn_number: the number of the model turn this reply fills.
        sent: how many chunks went out.
        cancelled: set by a barge-in; the server stops streaming.
        to_voice: sentences still to synthesise, in order (speaking on): the I/O layer takes
            them with ``next_sentence``, voices them and hands the chunks to ``ServerEngine.voice``.
        voice, language: the setup's ``speechConfig`` voice name and language code.
    """

    chunks: list[ServerMessage]
    chunk_texts: list[str]
    chunk_tokens: list[float]
    modality: str
    prompt_tokens: int
    prompt_details: tuple[ModalityTokenCount, ...]
    turn_number: int
    text: str
    sent: int = 0
    cancelled: bool = False
    to_voice: list[str] = field(default_factory=list)
    voice: str | None = None
    language: str | None = None

    @property
    def sent_tokens(self) -> float:
        """Output tokens of the chunks sent so far."""
        return sum(self.chunk_tokens[: self.sent])

    @property
    def complete(self) -> bool:
        """Every chunk is made (nothing left to voice) and sent."""
        return not self.to_voice and self.sent == len(self.chunks)

    def next_sentence(self) -> str | None:
        """The next sentence to synthesise (taken off ``to_voice``), or None."""
        return self.to_voice.pop(0) if self.to_voice else None


def sentences(text: str) -> list[str]:
    """``text`` cut after each sentence's end (``.``, ``?``, ``!``, ``…``); ``"".join`` gives it back."""
    pieces = [m.group(0) for m in _SENTENCE.finditer(text) if m.group(0)]
    return pieces if "".join(pieces) == text and pieces else [text]


def _rms(pcm: bytes) -> float:
    """RMS on the int16 scale the ``vad_threshold`` setting is written in."""
    return pcm16_level(pcm) * 32768.0


def reply_tone(text: str) -> bytes:
    """A deterministic 24 kHz PCM16 tone for a reply: one pitch per word, length following the text."""
    words = text.split() or [""]
    per_word = int(tok.OUTPUT_AUDIO_RATE * SECONDS_PER_WORD)
    t = np.arange(per_word, dtype=np.float32) / tok.OUTPUT_AUDIO_RATE
    fade = np.minimum(1.0, np.minimum(np.arange(per_word), np.arange(per_word)[::-1]) / 240.0).astype(np.float32)
    pieces = []
    for word in words:
        freq = 180.0 + 20.0 * (sum(map(ord, word)) % 16)
        pieces.append(np.sin(2 * math.pi * freq * t) * fade * 6000.0)
    return np.concatenate(pieces).astype("<i2").tobytes()


def tone_pieces(text: str) -> list[tuple[bytes, str]]:
    """``reply_tone(text)`` cut into ``OUTPUT_CHUNK_SECONDS`` chunks, each with the words whose tone starts in it."""
    words = text.split()
    pcm = reply_tone(text)
    size = int(tok.OUTPUT_AUDIO_RATE * OUTPUT_CHUNK_SECONDS) * 2
    per_word = int(tok.OUTPUT_AUDIO_RATE * SECONDS_PER_WORD) * 2
    word_index = 0
    pieces: list[tuple[bytes, str]] = []
    for start in range(0, len(pcm), size):
        data = pcm[start : start + size]
        spoken: list[str] = []
        while word_index < len(words) and word_index * per_word < start + len(data):
            spoken.append(words[word_index])
            word_index += 1
        pieces.append((data, " ".join(spoken) + (" " if spoken else "")))
    return pieces


def _usage(prompt: int, details: tuple[ModalityTokenCount, ...], response: int, modality: str) -> UsageMetadata:
    return UsageMetadata(
        prompt_token_count=prompt,
        response_token_count=response,
        total_token_count=prompt + response,
        prompt_tokens_details=details,
        response_tokens_details=(ModalityTokenCount(modality, response),),
    )


def _content_modalities(content: Content, frame_tokens: int) -> tuple[str, dict[str, float]]:
    """Summary text and tokens by modality of a client turn."""
    texts: list[str] = []
    out: dict[str, float] = {}
    for part in content.parts:
        if part.text:
            texts.append(part.text)
            out["TEXT"] = out.get("TEXT", 0.0) + tok.text_tokens(part.text)
        elif part.inline_data is not None:
            blob = part.inline_data
            if blob.mime_type.startswith("audio/"):
                seconds = tok.audio_seconds(len(blob.data))
                texts.append(f"[{seconds:.1f} s of audio]")
                out["AUDIO"] = out.get("AUDIO", 0.0) + tok.audio_tokens(len(blob.data))
            else:
                texts.append(f"[{blob.mime_type} image]")
                out["VIDEO"] = out.get("VIDEO", 0.0) + frame_tokens
        elif part.function_response is not None:
            text = f"[{part.function_response.name} returned {json.dumps(dict(part.function_response.response))}]"
            texts.append(text)
            out["TEXT"] = out.get("TEXT", 0.0) + tok.text_tokens(text)
        elif part.function_call is not None:
            text = f"[call {part.function_call.name}]"
            texts.append(text)
            out["TEXT"] = out.get("TEXT", 0.0) + tok.text_tokens(text)
    return " ".join(texts), out


class ServerEngine:
    """One connection of one session, sans-I/O.

    Args:
        setup: the connection's setup (already checked with ``check_setup``).
        state: the session state (new, or restored from a snapshot); the engine mutates it.
        consumed: the session's log of consumed client messages; the engine appends to it.
        responder: the model.
        settings: emulator-wide knobs.
        resumed: this connection resumes a handle (the setup's system instruction then applies only
            if it differs from the one the session was created with).
        flavor: ``gemini`` or ``vertex``: the path the client dialled, whose backend rules apply
            (catalogue.BACKEND_OFFERS: system-instruction updates, contextUpdate).
    """

    def __init__(
        self,
        setup: Setup,
        state: SessionState,
        consumed: list[ClientMessage],
        responder: Responder,
        settings: EngineSettings | None = None,
        resumed: bool = False,
        flavor: str = "vertex",
    ) -> None:
        self.setup = setup
        self.state = state
        self.flavor = flavor
        self.info = catalogue.lookup(setup.model)
        self.history_gate = catalogue.ClientContentGate(open=not resumed)
        state.frame_tokens = (
            self.info.frame_tokens(setup.config.media_resolution) if self.info else tok.VIDEO_TOKENS_PER_FRAME
        )
        self.consumed = consumed
        self.responder = responder
        self.settings = settings or EngineSettings()
        config = setup.config
        self.modality = config.response_modality
        self.resumption = setup.session_resumption is not None
        self.transparent = bool(setup.session_resumption and setup.session_resumption.transparent)
        self.automatic_vad = config.automatic_activity_detection
        self.turn_coverage = config.turn_coverage or (
            self.info.turn_coverage if self.info is not None else catalogue.TURN_ONLY_ACTIVITY
        )
        """What joins a user turn: the setup's realtimeInputConfig.turnCoverage, else the model's default."""
        self.input_transcription = config.input_audio_transcription
        self.output_transcription = config.output_audio_transcription
        speech_config = config.speech_config if isinstance(config.speech_config, SpeechConfig) else None
        self.voice_name = speech_config.voice_name if speech_config else None
        self.language_code = speech_config.language_code if speech_config else None
        self.hearing = self.settings.hearing
        self.speaking = self.settings.speaking
        self.listen_turn = 1
        """The number of the listening turn that audio is fed to now (``Listen.turn``)."""
        self.listening = False
        """Audio of the current listening turn went out as ``Listen``."""
        self.awaiting: deque[dict[str, Any]] = deque()
        """Spoken turns that ended and wait for ``heard``: ``{"turn", "number", "typed", "seconds"}``."""
        self.heard_sent: list[str] = []
        """Words of the current listening turn already sent as ``inputTranscription``."""
        self._recent_partials: list[list[str]] = []
        self._before_speech: bytes | None = None
        self._before_rate = tok.INPUT_AUDIO_RATE
        ric = config.realtime_input_config or {}
        handling = ric.get("activityHandling", ric.get("activity_handling"))
        self.barge_in = handling != "NO_INTERRUPTION"
        aad = ric.get("automaticActivityDetection", ric.get("automatic_activity_detection")) or {}
        silence_ms = aad.get("silenceDurationMs", aad.get("silence_duration_ms")) if isinstance(aad, Mapping) else None
        self.silence_limit = float(silence_ms) / 1000.0 if silence_ms else self.settings.silence_seconds
        cwc = config.context_window_compression
        self.trigger = cwc.effective_trigger_tokens if cwc else None
        self.target = cwc.effective_target_tokens if cwc else None
        self.index = 0  # setup is message 0 (live-protocol.md section 8)
        self.plan: ReplyPlan | None = None
        self.queued: list[str] = []
        self.queued_prompt: tuple[int, tuple[ModalityTokenCount, ...]] | None = None
        """Turns the model says after the current reply (a thinking model's answer after its filler)."""
        self.resumed = resumed
        self.ignored_responses = 0
        """Function responses ignored: unknown id, an answered or a cancelled call (the service's
        reaction is undocumented; the emulator ignores them quietly, as a late answer)."""
        self.dirty = False
        self.checkpoint_due = False
        """A barge-in midway through the message being handled: checkpoint once it is folded in (Rule 5)."""
        self.closed = False
        self.last_usage: UsageMetadata | None = None
        self.tool_call_usage: UsageMetadata | None = None  # reported if the call is cancelled
        setup_si = config.system_instruction_text
        if not resumed:
            state.system_instruction = state.setup_system_instruction = setup_si
            state.tools = [dict(t) for t in config.tools or ()]
        else:
            if setup_si and setup_si != state.setup_system_instruction:
                state.system_instruction = state.setup_system_instruction = setup_si
            if config.tools:
                state.tools = [dict(t) for t in config.tools]

    # Public: state for the asyncio layer.

    @property
    def window(self) -> int:
        """The context window in tokens: the emulator's setting, else the model's input window."""
        if self.settings.context_window:
            return self.settings.context_window
        return self.info.input_window if self.info is not None else catalogue.DEFAULT_INPUT_WINDOW

    @property
    def generating(self) -> bool:
        """A reply is being streamed."""
        return self.plan is not None and not self.plan.cancelled

    @property
    def waiting_calls(self) -> dict[str, str]:
        """BLOCKING calls the model waits on (id -> function name)."""
        return {i: c["name"] for i, c in self.state.calls.items() if c["behavior"] == BLOCKING}

    @property
    def pending_calls(self) -> dict[str, str]:
        """Every call not finally answered nor cancelled (id -> function name), BLOCKING or not."""
        return {i: c["name"] for i, c in self.state.calls.items()}

    def _blocking(self) -> bool:
        calls = self.state.calls
        return bool(calls) and any(c["behavior"] == BLOCKING for c in calls.values())

    @property
    def resumable(self) -> bool:
        """Whether now is a resumable point: not generating, no BLOCKING call outstanding.

        A NON_BLOCKING call does not stop checkpoints: the snapshot keeps it (``SessionState.calls``)
        and a resume asks for it again with the same id (``start``).
        """
        return not self.generating and not self._blocking() and not self.awaiting

    def start(self) -> list[Action]:
        """The actions that open the connection: ``setupComplete``; on a resume, the calls the
        snapshot still waits on, asked again with their ids (the client answers each once: a
        ``ToolCallTracker`` re-sends a stored answer instead of running the function again)."""
        actions: list[Action] = [Send(SetupComplete(session_id=self.state.session_id))]
        if self.resumed and self.state.calls:
            calls = tuple(
                FunctionCall(name=c["name"], args=dict(c["args"]), id=i) for i, c in self.state.calls.items()
            )
            actions.append(Send(ToolCall(calls)))
        return actions

    # Public: receiving client messages.

    def receive(self, message: ClientMessage) -> list[Action]:
        """Fold one client message (after setup) into the session and say what to do."""
        if self.closed:
            return []
        if isinstance(message, Setup):
            return self._close(
                1007, "Request contains an invalid argument: setup must be the first and only setup message."
            )
        refusal = catalogue.check_client_message(
            self.info, self.flavor, self.setup.config, message, self.history_gate
        )
        if refusal is not None:
            return self._close(refusal.code, refusal.reason)
        self.history_gate.observe(message)
        # Rule 5: a barge-in comes before the message that causes it is counted, and so does its
        # checkpoint (index N-1, a snapshot without message N).
        actions: list[Action] = []
        if (self.generating or self._blocking()) and self._barges_in(message):
            actions += self._interrupt()
            if actions and self.resumption:
                actions.append(self._checkpoint())
        self.index += 1
        self.consumed.append(message)
        self.state.consumed_count += 1
        self.dirty = True
        self.checkpoint_due = False
        if isinstance(message, ClientContent):
            actions += self._client_content(message)
        elif isinstance(message, RealtimeInput):
            actions += self._realtime_input(message)
        elif isinstance(message, ToolResponse):
            actions += self._tool_response(message)
        elif isinstance(message, ContextUpdate):
            actions += self._context_update(message)
        else:  # pragma: no cover
            return actions + self._close(1007, "Request contains an invalid argument.")
        if self.state.owed and not self.closed:
            actions += self._answer_owed_if_idle()
        if self.checkpoint_due:
            # A barge-in midway through message N: checkpoint once N is folded in (index N), if the
            # session is resumable now (else the next resumable point makes one).
            self.checkpoint_due = False
            if self.resumption and not self.closed and self.resumable:
                actions.append(self._checkpoint())
        return actions

    def invalid_message(self, reason: str) -> list[Action]:
        """A frame that did not parse: close 1007 naming the problem."""
        return self._close(1007, f"Request contains an invalid argument: {reason}")

    def periodic(self) -> list[Action]:
        """A periodic resumption update (the server calls this every ``resumption_update_interval``)."""
        if self.state.owed and not self.closed:
            answer = self._answer_owed_if_idle()
            if answer:
                return answer
        if not self.resumption or self.closed or not self.dirty:
            return []
        if not self.resumable:
            return [Send(SessionResumptionUpdate(new_handle=None, resumable=False))]
        return [self._checkpoint()]

    # Public: the reply stream, driven by the asyncio layer.

    def chunk_sent(self, plan: ReplyPlan) -> None:
        """Record that the next chunk of ``plan`` went out: the model turn grows by its words."""
        plan.sent += 1
        text = "".join(plan.chunk_texts[: plan.sent]).strip()
        self.state.replace_turn(plan.turn_number, text, {plan.modality: plan.sent_tokens})

    def finish_reply(self, plan: ReplyPlan) -> list[Action]:
        """The stream ended: ``generationComplete``, ``turnComplete`` with usage, and a checkpoint."""
        if plan is not self.plan or plan.cancelled or self.closed:
            return []
        self.plan = None
        # The final model turn holds the whole reply text; its tokens are what was produced.
        response = round(plan.sent_tokens) if plan.modality == "AUDIO" else tok.text_tokens(plan.text)
        self.state.replace_turn(plan.turn_number, plan.text, {plan.modality: float(response)})
        usage = _usage(plan.prompt_tokens, plan.prompt_details, response, plan.modality)
        self.last_usage = usage
        status = None
        if self.info is not None and self.info.interaction_status:
            # Extended thinking: IN_PROGRESS while the model has more to say (its answer after a
            # filler, a call running, a result to answer); IDLE ends the whole answer.
            more = self.queued or self.state.calls or self.state.owed
            status = "IN_PROGRESS" if more else "IDLE"
        actions: list[Action] = [
            Send(ServerContent(generation_complete=True)),
            Send(ServerContent(turn_complete=True, interaction_status=status), usage),
        ]
        if self.queued:
            text = self.queued.pop(0)
            return actions + self._speak(text, self.queued_prompt)
        if self.state.owed:
            answer = self._answer_owed_if_idle()
            if answer:  # the next turn starts at once: no resumable point in between
                return actions + answer
        if self.resumption:
            actions.append(self._checkpoint())
        return actions

    # Public: offline speech, driven by the asyncio layer (module docstring, "Offline speech").

    def partial(self, turn: int, text: str) -> list[Action]:
        """Partial text the recogniser heard so far in listening turn ``turn``.

        With input transcription on, the words that are new and settled go out as an
        ``inputTranscription`` piece; pieces join into the turn's text. Settled: the same in the
        last ``SETTLE_PARTIALS`` partials and not among the newest partial's last ``SETTLE_TAIL``
        words (the recogniser revises recent words: "what is that whether" became "what is the
        weather"). Sent words stand: ``heard`` keeps them if the final text revised them.
        A partial for a turn that already ended is ignored.
        """
        if self.closed or turn != self.listen_turn or not self.input_transcription:
            return []
        latest = text.split()
        recent = self._recent_partials = [*self._recent_partials[-(SETTLE_PARTIALS - 1) :], latest]
        if len(recent) < SETTLE_PARTIALS:
            return []
        # Settled: the words the last few partials agree on, short of the newest partial's tail.
        words: list[str] = []
        for column in zip(*recent, strict=False):
            if any(word != column[0] for word in column):
                break
            words.append(column[0])
        words = words[: max(0, len(latest) - SETTLE_TAIL)]
        sent = self.heard_sent
        if len(words) <= len(sent) or words[: len(sent)] != sent:
            return []
        new = words[len(sent) :]
        piece = (" " if sent else "") + " ".join(new)
        self.heard_sent = words
        return [Send(ServerContent(input_transcription=Transcription(piece)))]

    def heard(self, text: str) -> list[Action]:
        """The recogniser's final text for the oldest spoken turn waiting (``EndListening``): the
        turn's ``inputTranscription`` is finished, the user turn says what was heard, the model answers."""
        if not self.awaiting:
            return []
        waiting = self.awaiting.popleft()
        if self.closed:
            return []
        words = text.split()
        text = " ".join(words)
        seconds = float(waiting["seconds"])
        sent: list[str] = waiting["sent"]
        actions: list[Action] = []
        if sent and words[: len(sent)] != sent:
            # The recogniser revised words already sent: pieces cannot be taken back, so the sent words
            # stand and the rest follows. The transcription, the user turn and the reply all agree.
            words = sent + words[len(sent) :]
            text = " ".join(words)
        if self.input_transcription:
            if words:
                rest = words[len(sent) :]
                piece = (" " if sent and rest else "") + " ".join(rest)
            else:
                piece = f"[{seconds:.1f} s of speech: offline recognition heard no words]"
            actions.append(Send(ServerContent(input_transcription=Transcription(piece, finished=True))))
        summary = (
            f"[{seconds:.1f} s of speech; offline recognition heard: {text}]" if text
            else f"[{seconds:.1f} s of speech; offline recognition heard nothing]"
        )
        request = summary
        turn = next((t for t in reversed(self.state.turns) if t.number == waiting["number"]), None)
        if turn is not None and turn.text.startswith(waiting["placeholder"]):
            request = summary + turn.text[len(waiting["placeholder"]) :]
            self.state.replace_turn(turn.number, request, turn.modalities)
        typed: list[str] = waiting["typed"]
        if typed:
            return actions + self._request(" ".join(typed), is_audio=False)
        return actions + self._request(request, is_audio=True, heard=text, speech_seconds=seconds)

    def voice(self, plan: ReplyPlan, pieces: Sequence[tuple[bytes, str]]) -> None:
        """Append one voiced sentence to ``plan``: ``(pcm, text)`` pieces (24 kHz PCM16, and the
        words whose sound starts in that piece; the texts join into the sentence)."""
        if plan.cancelled:
            return
        self._add_audio(plan, pieces)

    # Handlers.

    def _client_content(self, message: ClientContent) -> list[Action]:
        # "A message here interrupts current generation" (Vertex reference): ``receive`` did that
        # already, before counting the message (``_barges_in``, Rule 5).
        listening = self.hearing and self.listening
        actions = self._commit_pending()
        if listening:  # the speech so far joins the context as it is, unheard
            actions.append(self._end_listening(discard=True)[0])
        for content in message.turns:
            role = (content.role or "user").lower()
            if role == "system":
                self.state.system_instruction = content.text
                continue
            summary, modalities = _content_modalities(content, self.state.frame_tokens)
            if not modalities:
                continue
            self.state.add_turn("model" if role == "model" else "user", summary, modalities)
        actions += self._check_exhausted()
        if self.info is not None and self.info.client_content == "initial_history":
            # Accepted clientContent on such a model is initial history: it "will not trigger a
            # model call" (historyConfig docs); the conversation starts with realtime input.
            return actions
        if message.turn_complete and not self.closed:
            last_user = next((t for t in reversed(self.state.turns) if t.role == "user"), None)
            actions += self._request(last_user.text if last_user else "", is_audio=False)
        return actions

    def _realtime_input(self, message: RealtimeInput) -> list[Action]:
        actions: list[Action] = []
        audio: list[Blob] = []
        if message.audio is not None:
            audio.append(message.audio)
        if message.video is not None and self._video_counts():
            self.state.pending_video_frames += 1
        for chunk in message.media_chunks:
            if chunk.mime_type.startswith("audio/"):
                audio.append(chunk)
            else:
                self.state.pending_video_frames += int(self._video_counts())
        for blob in audio:
            actions += self._audio(blob.data, sample_rate(blob.mime_type, tok.INPUT_AUDIO_RATE))
            if self.closed:
                return actions
        if message.text is not None:
            self.state.pending_texts.append(message.text)
            if self.automatic_vad or not self.state.in_activity:
                actions += self._interrupt_midway()
                actions += self._end_user_turn()
        if message.audio_stream_end:
            if not self.automatic_vad:
                return actions + self._close(
                    1007,
                    "Request contains an invalid argument: audioStreamEnd is only valid while automatic "
                    "activity detection is on.",
                )
            if self.state.in_speech:
                actions += self._end_user_turn()
        if message.activity_start or message.activity_end:
            if self.automatic_vad:
                which = "activityStart" if message.activity_start else "activityEnd"
                return actions + self._close(
                    1007,
                    f"Request contains an invalid argument: {which} needs "
                    "automaticActivityDetection.disabled=true.",
                )
            if message.activity_start:
                if self.barge_in:
                    actions += self._interrupt_midway()
                self.state.in_activity = True
            else:
                self.state.in_activity = False
                actions += self._end_user_turn()
        return actions + self._check_exhausted()

    def _audio(self, pcm: bytes, rate: int = tok.INPUT_AUDIO_RATE) -> list[Action]:
        state = self.state
        seconds = tok.audio_seconds(len(pcm), rate)
        tokens = seconds * tok.AUDIO_TOKENS_PER_SECOND
        if not self.automatic_vad:
            if state.in_activity or self.turn_coverage == catalogue.TURN_ALL_INPUT:
                state.pending_audio_tokens += tokens
            if state.in_activity:
                state.pending_speech_seconds += seconds
                if self.hearing:
                    self.listening = True
                    return [Listen(pcm, rate, self.listen_turn)]
            return []
        speech = _rms(pcm) >= self.settings.vad_threshold
        # Turn coverage: outside ALL_INPUT only audio within activity (speech and the silence that
        # ends it) joins the user turn (realtimeInputConfig.turnCoverage).
        if speech or state.in_speech or self.turn_coverage == catalogue.TURN_ALL_INPUT:
            state.pending_audio_tokens += tokens
        actions: list[Action] = []
        if self.hearing:
            if speech or state.in_speech:
                # The chunk before speech began too (prefix padding: a word's soft start is in it).
                before, self._before_speech = self._before_speech, None
                if before is not None and not self.listening:
                    actions.append(Listen(before, self._before_rate, self.listen_turn))
                actions.append(Listen(pcm, rate, self.listen_turn))
                self.listening = True
            else:
                self._before_speech, self._before_rate = pcm, rate
        if speech:
            if not state.in_speech:
                state.in_speech = True
                if self.barge_in:
                    actions += self._interrupt_midway()
            state.silence_seconds = 0.0
            state.pending_speech_seconds += seconds
        elif state.in_speech:
            state.silence_seconds += seconds
            if state.silence_seconds >= self.silence_limit - 1e-9:  # float sums of 0.1 s chunks
                actions += self._end_user_turn()
        return actions

    def _video_counts(self) -> bool:
        """Whether a video frame joins the user turn now (TURN_INCLUDES_ONLY_ACTIVITY: only during activity)."""
        if self.turn_coverage != catalogue.TURN_ONLY_ACTIVITY:
            return True
        return self.state.in_speech or self.state.in_activity

    def _match(self, response: FunctionResponse) -> str | None:
        """The pending call a response answers: by id, else (no id) the oldest call of that name."""
        if response.id is not None:
            return response.id if response.id in self.state.calls else None
        # The Developer API insists on ids (the SDK raises without one); Vertex does not.
        return next((i for i, c in self.state.calls.items() if c["name"] == response.name), None)

    def _tool_response(self, message: ToolResponse) -> list[Action]:
        """Fold results in: interim ones keep the call open; a final one closes it and, unless
        SILENT, is owed an answer (given when the model is idle: ``_answer_owed_if_idle``)."""
        state = self.state
        for response in message.function_responses:
            call_id = self._match(response)
            if call_id is None:
                # Unknown id, an answered or a cancelled call: undocumented; ignored quietly.
                self.ignored_responses += 1
                continue
            call = state.calls[call_id]
            name = str(call["name"])
            result = json.dumps(dict(response.response), sort_keys=True)
            modalities: dict[str, float] = {}
            extra = ""
            if response.parts:
                state.response_parts += len(response.parts)
                for part in response.parts:
                    blob = part.inline_data
                    if blob is None:
                        continue
                    if blob.mime_type.startswith("audio/"):
                        modalities["AUDIO"] = modalities.get("AUDIO", 0.0) + tok.audio_tokens(len(blob.data))
                    else:
                        modalities["VIDEO"] = modalities.get("VIDEO", 0.0) + state.frame_tokens
                kinds = ", ".join(p.inline_data.mime_type if p.inline_data else "part" for p in response.parts)
                extra = f" with {len(response.parts)} part{'s' if len(response.parts) != 1 else ''} ({kinds})"
            if response.will_continue:
                call["interim"] = int(call.get("interim", 0)) + 1
                text = f"[{name} interim result {result}{extra}]"
            else:
                del state.calls[call_id]
                text = f"[{name} returned {result}{extra}]"
            modalities["TEXT"] = float(tok.text_tokens(text))
            state.add_turn("user", text, modalities)
            if response.will_continue:
                continue
            nonblocking = call["behavior"] == NON_BLOCKING
            if nonblocking and response.scheduling == "SILENT":
                continue  # folded into the context; no new reply
            state.owed.append({
                "name": name, "response": dict(response.response), "interim": int(call.get("interim", 0)),
                "parts": len(response.parts), "id": call_id,
            })
        return []

    def _answer_owed_if_idle(self) -> list[Action]:
        """Answer the owed results now if the model is idle (not speaking, no BLOCKING call running,
        the user not mid-turn): WHEN_IDLE results wait for the current turn to end; INTERRUPT ones
        cut it first (``_barges_in``) and so find the model idle. A spoken turn waiting for its
        heard text (``awaiting``) comes first: its answer is the next turn."""
        state = self.state
        if (not state.owed or self.generating or self._blocking() or state.in_speech or state.in_activity
                or self.awaiting):
            return []
        results = tuple(
            ToolResult(str(r["name"]), dict(r["response"]), int(r.get("interim", 0)), int(r.get("parts", 0)),
                       r.get("id"))
            for r in state.owed
        )
        state.owed = []
        asked = [t for t in state.turns if t.role == "user" and not t.text.startswith("[")]
        last_user = asked[-1] if asked else None
        return self._request(last_user.text if last_user else "", is_audio=False, tool_results=results, count=False)

    def _context_update(self, message: ContextUpdate) -> list[Action]:
        if message.system_instruction is not None:
            self.state.system_instruction = message.system_instruction.text
        if message.tools is not None:
            self.state.tools = [dict(t) for t in message.tools]
        return self._check_exhausted()

    # Turns, compression and replies.

    def _commit_pending(self) -> list[Action]:
        """Turn buffered realtime input into a user turn (returns the transcription, if asked)."""
        state = self.state
        if not (state.pending_audio_tokens or state.pending_video_frames or state.pending_texts):
            return []
        modalities: dict[str, float] = {}
        parts: list[str] = []
        actions: list[Action] = []
        if state.pending_audio_tokens:
            modalities["AUDIO"] = state.pending_audio_tokens
            speech = state.pending_speech_seconds
            if speech > 0 and self.hearing:
                heard = f"[{speech:.1f} s of speech]"  # completed by ``heard`` (or left so: discarded)
            elif speech > 0:
                heard = f"[{speech:.1f} s of speech: offline speech recognition is off]"
                if self.input_transcription:
                    actions.append(Send(ServerContent(input_transcription=Transcription(heard, finished=True))))
            else:
                seconds = state.pending_audio_tokens / tok.AUDIO_TOKENS_PER_SECOND
                heard = f"[{seconds:.1f} s of audio without speech]"
            parts.append(heard)
        if state.pending_video_frames:
            modalities["VIDEO"] = float(state.pending_video_frames * state.frame_tokens)
            parts.append(f"[{state.pending_video_frames} video frame{'s' if state.pending_video_frames != 1 else ''}]")
        if state.pending_texts:
            modalities["TEXT"] = float(sum(tok.text_tokens(t) for t in state.pending_texts))
            parts.append(" ".join(state.pending_texts))
        state.add_turn("user", " ".join(parts), modalities)
        state.pending_audio_tokens = state.pending_speech_seconds = 0.0
        state.pending_video_frames = 0
        state.pending_texts = []
        state.in_speech = False
        state.silence_seconds = 0.0
        return actions

    def _end_listening(self, discard: bool) -> tuple[EndListening, list[str]]:
        """Close the listening turn (its recognition is finished, or dropped with ``discard``);
        also returns the words already sent as ``inputTranscription`` pieces."""
        turn, self.listen_turn = self.listen_turn, self.listen_turn + 1
        self.listening = False
        self._before_speech = None
        sent, self.heard_sent = self.heard_sent, []
        self._recent_partials = []
        return EndListening(turn, discard=discard), sent

    def _end_user_turn(self) -> list[Action]:
        state = self.state
        spoken = state.pending_speech_seconds > 0
        seconds = state.pending_speech_seconds
        typed = list(state.pending_texts)
        actions = self._commit_pending()
        if not self.state.turns or self.state.turns[-1].role != "user":
            return actions
        if spoken and self.hearing:
            # Answered once the recogniser's final text comes back (``heard``).
            ending, sent = self._end_listening(discard=False)
            self.awaiting.append({
                "number": self.state.turns[-1].number, "typed": typed, "seconds": seconds, "sent": sent,
                "placeholder": f"[{seconds:.1f} s of speech]",
            })
            return [*actions, ending]
        request = " ".join(typed) if typed and not spoken else self.state.turns[-1].text
        return actions + self._request(request, is_audio=spoken and not typed)

    def _compress(self) -> None:
        """Sliding window: drop oldest turns until at or below the target; keep a user turn first."""
        assert self.trigger is not None and self.target is not None
        state = self.state
        if state.context_tokens <= self.trigger:
            return
        dropped: list[Turn] = []
        total = state.context_tokens
        # Never drop the current request (the last turn).
        while len(state.turns) > 1 and total > self.target:
            dropped.append(state.drop_oldest_turn())
            total -= dropped[-1].tokens
        while len(state.turns) > 1 and state.turns[0].role != "user":
            dropped.append(state.drop_oldest_turn())
        if dropped:
            state.compressions += 1
            state.forgotten_turns += len(dropped)
            state.forgotten_tokens += sum(t.tokens for t in dropped)
            state.last_forgotten = dropped[-1].text

    def _check_exhausted(self) -> list[Action]:
        if self.trigger is not None or self.closed:
            return []
        if self.state.context_tokens > self.window:
            return self._close(
                1007,
                f"Context window exhausted: {self.state.context_tokens:,.0f} tokens > "
                f"{self.window:,}. Enable contextWindowCompression.",
            )
        return []

    def _request(
        self,
        request: str,
        is_audio: bool,
        tool_results: Sequence[ToolResult] = (),
        count: bool = True,
        heard: str | None = None,
        speech_seconds: float = 0.0,
    ) -> list[Action]:
        """Run one model turn: compression check, the responder, then a reply stream or a tool call."""
        state = self.state
        if count:
            state.requests += 1
        if self.trigger is not None:
            self._compress()
            if state.context_tokens > self.window:
                return self._close(1007, "Context window exhausted even after compression.")
        else:
            exhausted = self._check_exhausted()
            if exhausted:
                return exhausted
        context = RequestContext(
            turn_number=state.requests,
            request=request,
            request_is_audio=is_audio,
            system_instruction=state.system_instruction,
            turns=tuple(state.turns),
            context_tokens=state.context_tokens,
            forgotten_turns=state.forgotten_turns,
            compressions=state.compressions,
            last_forgotten=state.last_forgotten,
            functions=tuple(state.tools),
            tool_results=tuple(tool_results),
            modality=self.modality,
            thinking=self.info is not None and self.info.interaction_status,
            heard=heard,
            speech_seconds=speech_seconds,
        )
        reply = self.responder.respond(context)
        actions: list[Action] = []
        if self.resumption:
            actions.append(Send(SessionResumptionUpdate(new_handle=None, resumable=False)))
        if reply.function_call is not None:
            return actions + self._tool_call(reply)
        texts = [t for t in (*reply.fillers, reply.text) if t]
        self.queued = texts[1:]
        # One request, one prompt: the fillers and the answer all report the context the model was given.
        self.queued_prompt = self._prompt()
        return actions + self._speak(texts[0] if texts else "", self.queued_prompt)

    def _prompt(self) -> tuple[int, tuple[ModalityTokenCount, ...]]:
        """The context now, for a turn's usageMetadata: tokens, and tokens by modality."""
        state = self.state
        details = tuple(
            ModalityTokenCount(m, round(c)) for m, c in sorted(state.modality_tokens().items()) if round(c)
        )
        return round(state.context_tokens), details

    def _speak(self, text: str, prompt_now: tuple[int, tuple[ModalityTokenCount, ...]] | None = None) -> list[Action]:
        """Start one model turn saying ``text`` (a reply stream); its usage reports ``prompt_now``
        (default: the context now)."""
        prompt, details = prompt_now or self._prompt()
        turn = self.state.add_turn("model", "", {self.modality: 0.0})
        plan = self._plan(text, prompt, details, turn.number)
        self.plan = plan
        return [Stream(plan)]

    def _behavior(self, name: str) -> str:
        """How the model runs calls to ``name``: its declaration's ``behavior``, else the model's default."""
        for tool in self.state.tools:
            for key in ("functionDeclarations", "function_declarations"):
                for decl in tool.get(key) or ():
                    if isinstance(decl, Mapping) and decl.get("name") == name:
                        behavior = decl.get("behavior")
                        if isinstance(behavior, str) and behavior.upper() in (BLOCKING, NON_BLOCKING):
                            return behavior.upper()
        return self.info.function_behavior if self.info is not None else BLOCKING

    def _tool_call(self, reply: Reply) -> list[Action]:
        """Call a function: BLOCKING, the model waits for the result; NON_BLOCKING, it keeps
        speaking (``reply.text``) and the result's ``scheduling`` decides how it comes in."""
        assert reply.function_call is not None
        name, args = reply.function_call
        state = self.state
        prompt, details = self._prompt()
        state.tool_seq += 1
        call_id = f"fc-{state.tool_seq}"
        behavior = self._behavior(name)
        state.calls[call_id] = {"name": name, "args": dict(args), "behavior": behavior, "interim": 0}
        text = f"[call {name}({json.dumps(dict(args), sort_keys=True)})]"
        self.tool_call_usage = _usage(prompt, details, tok.text_tokens(text), "TEXT")
        state.add_turn("model", text, {"TEXT": float(tok.text_tokens(text))})
        actions: list[Action] = [Send(ToolCall((FunctionCall(name=name, args=dict(args), id=call_id),)))]
        if behavior == NON_BLOCKING and reply.text:
            self.queued = []
            actions += self._speak(reply.text)
        return actions

    def _plan(self, text: str, prompt: int, details: tuple[ModalityTokenCount, ...], number: int) -> ReplyPlan:
        chunks: list[ServerMessage] = []
        chunk_texts: list[str] = []
        chunk_tokens: list[float] = []
        words = text.split()
        plan = ReplyPlan(chunks, chunk_texts, chunk_tokens, self.modality, prompt, details, number, text)
        if self.modality == "TEXT":
            for i in range(0, len(words), WORDS_PER_TEXT_CHUNK):
                piece = " ".join(words[i : i + WORDS_PER_TEXT_CHUNK])
                piece = piece + " " if i + WORDS_PER_TEXT_CHUNK < len(words) else piece
                chunks.append(ServerContent(model_turn=Content("model", (Part(text=piece),))))
                chunk_texts.append(piece)
                chunk_tokens.append(float(tok.text_tokens(piece)))
        elif self.speaking and text.strip():
            # Voiced by the I/O layer, sentence by sentence (``voice``): the first is heard soonest.
            # A trailing space, as the tone's words have: one turn's transcription never runs into the next.
            plan.to_voice = sentences(text if text.endswith(" ") else text + " ")
            plan.voice, plan.language = self.voice_name, self.language_code
        else:
            self._add_audio(plan, tone_pieces(text))
        return plan

    def _add_audio(self, plan: ReplyPlan, pieces: Sequence[tuple[bytes, str]]) -> None:
        """Append audio chunks, each with the words whose sound starts in it, to an AUDIO reply.

        3.x models send an audio chunk and its words in one serverContent (models.md section 2): a
        barge-in can then never fall between a word's sound and its text. Others send the words in
        a serverContent of their own right after the audio.
        """
        together = self.info is not None and self.info.audio_with_transcription
        for data, said in pieces:
            transcription = Transcription(said) if self.output_transcription and said else None
            plan.chunks.append(
                ServerContent(
                    model_turn=Content("model", (Part(inline_data=Blob(data, "audio/pcm;rate=24000")),)),
                    output_transcription=transcription if together else None,
                )
            )
            plan.chunk_tokens.append(tok.audio_tokens(len(data), tok.OUTPUT_AUDIO_RATE))
            plan.chunk_texts.append(said)
            if transcription is not None and not together:
                plan.chunks.append(ServerContent(output_transcription=transcription))
                plan.chunk_texts.append("")
                plan.chunk_tokens.append(0.0)

    def _barges_in(self, message: ClientMessage) -> bool:
        """Whether ``message`` interrupts the reply or the function calls in flight (decided before
        it is folded in, so the interruption's checkpoint can leave it out: Rule 5).

        It mirrors the handlers: a clientContent with turns or ``turnComplete``; realtime text that
        ends a turn (automatic VAD, or outside manual activity); ``activityStart`` (manual VAD); an
        audio chunk with speech while none was heard (automatic VAD); a final NON_BLOCKING result
        with ``scheduling: INTERRUPT`` while the model speaks. Not other tool responses (they
        answer the calls) nor contextUpdate. With ``activityHandling: NO_INTERRUPTION`` speech and
        ``activityStart`` do not interrupt; clientContent and turn-ending realtime text still do.
        """
        if isinstance(message, ClientContent):
            return bool(message.turns or message.turn_complete)
        if isinstance(message, ToolResponse):
            if not self.generating:
                return False
            for response in message.function_responses:
                call_id = self._match(response)
                if (call_id is not None and response.scheduling == "INTERRUPT" and not response.will_continue
                        and self.state.calls[call_id]["behavior"] == NON_BLOCKING):
                    return True
            return False
        if not isinstance(message, RealtimeInput):
            return False
        if message.text is not None and (self.automatic_vad or not self.state.in_activity):
            return True
        if not self.barge_in:
            return False
        if not self.automatic_vad:
            return message.activity_start
        if self.state.in_speech:
            return False
        blobs = ([message.audio] if message.audio is not None else []) + [
            c for c in message.media_chunks if c.mime_type.startswith("audio/")
        ]
        return any(_rms(blob.data) >= self.settings.vad_threshold for blob in blobs)

    def _interrupt_midway(self) -> list[Action]:
        """A barge-in from inside a handler: a no-op when ``receive`` already interrupted; else it
        stops a turn the message itself started, and the checkpoint waits for the message's end."""
        actions = self._interrupt()
        if actions:
            self.checkpoint_due = True
        return actions

    def _interrupt(self) -> list[Action]:
        """Barge-in: stop the reply (keeping what was sent) or cancel the BLOCKING calls the model
        waits on (``toolCallCancellation``). NON_BLOCKING calls keep running: their results still
        come in by their scheduling.

        No checkpoint here: the caller makes it at a message boundary (Rule 5).
        """
        actions: list[Action] = []
        plan = self.plan
        if plan is not None and not plan.cancelled:
            plan.cancelled = True
            self.plan = None
            self.queued = []
            if plan.sent == 0:
                self.state.remove_turn(plan.turn_number)
            response = round(plan.sent_tokens)
            usage = _usage(plan.prompt_tokens, plan.prompt_details, response, plan.modality)
            self.last_usage = usage
            actions += [
                Send(ServerContent(interrupted=True)),
                Send(ServerContent(turn_complete=True), usage),
            ]
        elif self._blocking():
            ids = tuple(self.waiting_calls)
            for call_id in ids:
                del self.state.calls[call_id]
            actions += [
                Send(ToolCallCancellation(ids)),
                Send(ServerContent(interrupted=True)),
                Send(ServerContent(turn_complete=True), self.tool_call_usage),
            ]
            self.last_usage = self.tool_call_usage
        return actions

    def _checkpoint(self) -> Checkpoint:
        self.dirty = False
        return Checkpoint(self.state.to_json(), self.index if self.transparent else None)

    def _close(self, code: int, reason: str) -> list[Action]:
        self.closed = True
        if self.plan is not None:
            self.plan.cancelled = True
        return [Close(code, reason)]
