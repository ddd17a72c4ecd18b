"""The emulator's "model": a deterministic responder that tells the truth about its context.

Why this and not canned text: live_nb exists to make session management visible (context filling
up, compression dropping old turns, resumption bringing context back). A reader can only *see* that
if the model's replies say what the model still holds. So every reply states the turn number, what
was asked, how many turns and tokens the context holds, the earliest turn still remembered (quoted),
and, once compression has run, how much was forgotten and the last thing forgotten. Questions like
"what did I say first?" are answered from the context, so after compression the answer changes.

Function calls: when the user's latest text names a declared function (case-insensitive; the
name as written, or with underscores read as spaces, e.g. "get_time" or "get time"), the reply is
a call to that function. Arguments are taken from ``param=value`` words in the text for declared
parameter names. Speech heard offline counts like typed text, a little more loosely (up to two words
may sit between the parts of a name, "get the weather"; ``param value`` words give an argument, "city
paris"), because recognition of spoken underscores and equals signs is hopeless. The reply's
``text`` is what the model says while a NON_BLOCKING call runs
("Let me check that for you."; the engine drops it for a BLOCKING call, where the model waits).
After the tool responds, the reply says what the function returned, in the form
``get_weather returned {"city": "Paris", "temp_c": 21}`` (JSON with sorted keys), with the parts
and interim results it came with, so a reader sees the round trip.

Speech: with offline recognition on (``RequestContext.heard`` is not None) a spoken request is
answered from what the recogniser heard, and the reply says so plainly: ``You spoke to me [2.1 s of
speech]. Offline recognition heard: "what is the weather like today".``, or ``I heard nothing I
could recognise.`` when it heard no words. Without recognition (speech off or not installed) the
reply only says how long the user spoke.

Thinking aloud: on a model that thinks before it answers (``RequestContext.thinking``: extended
thinking), a reply first speaks a filler ("Let me think about that."), each filler its own short
turn; the engine marks the end of each with ``interactionStatus: IN_PROGRESS``.

Responders are pluggable: anything with ``respond(RequestContext) -> Reply`` (the ``Responder``
protocol) can be passed to ``Emulator(responder=...)``. A responder must be deterministic and fast:
it runs on the emulator's event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "CHECKING", "THINKING", "ContextResponder", "Reply", "RequestContext", "Responder", "ToolResult", "Turn", "quote",
]

CHECKING = "Let me check that for you."
"""What the model says while a NON_BLOCKING call runs."""
THINKING = "Let me think about that."
"""The filler a thinking model speaks before its answer."""


@dataclass(frozen=True, slots=True)
class Turn:
    """One entry of a session's context window.

    Attributes:
        number: position in the session's whole history (1-based; survives compression, so a
            reply can say "the earliest turn I remember is turn 7").
        role: ``user`` or ``model`` (the system instruction is kept apart and never dropped).
        text: the turn's text, or a bracketed summary for audio/video (``[2.3 s of speech ...]``).
        tokens: tokens this turn occupies (fractional for audio: 2.5 per 100 ms).
        modalities: tokens by modality (``TEXT``, ``AUDIO``, ``VIDEO``).
    """

    number: int
    role: str
    text: str
    tokens: float
    modalities: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for snapshots."""
        return {"n": self.number, "r": self.role, "t": self.text, "k": self.tokens, "m": dict(self.modalities)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Turn:
        """Inverse of ``to_json``."""
        return cls(int(data["n"]), str(data["r"]), str(data["t"]), float(data["k"]), dict(data["m"]))


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A function's final result, as the model answers from it.

    Attributes:
        name: the function.
        response: its ``response`` object.
        interim: interim results (``willContinue: true``) that came before this final one.
        parts: media parts (``FunctionResponse.parts``) the final result carried.
        call_id: the call's id.
    """

    name: str
    response: Mapping[str, Any]
    interim: int = 0
    parts: int = 0
    call_id: str | None = None

    def describe(self) -> str:
        """``NAME returned {JSON}``, with the parts and interim results it came with."""
        text = f"{self.name} returned {json.dumps(dict(self.response), sort_keys=True)}"
        if self.parts:
            text += f" with {self.parts} part{'s' if self.parts != 1 else ''}"
        if self.interim:
            text += f", after {self.interim} interim result{'s' if self.interim != 1 else ''}"
        return text


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Everything the responder may look at to answer one request.

    Attributes:
        turn_number: the number of this request among the session's requests (1-based).
        request: the user's latest input as text (or the bracketed audio summary).
        request_is_audio: the request was spoken (VAD or activity turn), not typed.
        system_instruction: the instruction in force ('' when none).
        turns: the context window now, oldest first, the current request last.
        context_tokens: tokens in the window including the system instruction.
        forgotten_turns: turns dropped by compression so far.
        compressions: how many times the sliding window ran.
        last_forgotten: the text of the most recently dropped turn (None before any compression).
        functions: declared function declarations (wire dicts), in order.
        tool_results: final function results to answer from (after a tool call).
        modality: ``TEXT`` or ``AUDIO``.
        thinking: the model thinks aloud before it answers (extended thinking): say fillers first.
        heard: for a spoken request with offline recognition on, what the recogniser heard
            (``""``: no words); None when recognition is off or the request was typed.
        speech_seconds: seconds of speech in a spoken request.
    """

    turn_number: int
    request: str
    request_is_audio: bool
    system_instruction: str
    turns: Sequence[Turn]
    context_tokens: float
    forgotten_turns: int = 0
    compressions: int = 0
    last_forgotten: str | None = None
    functions: Sequence[Mapping[str, Any]] = ()
    tool_results: Sequence[ToolResult] = ()
    modality: str = "TEXT"
    thinking: bool = False
    heard: str | None = None
    speech_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Reply:
    """What the model says: text, or a function call to make first.

    Attributes:
        text: the reply text (spoken in AUDIO sessions: synthesised speech, or a tone when offline
            speech is off; and sent as its transcription);
            with a ``function_call``, what the model says while a NON_BLOCKING call runs.
        function_call: ``(name, args)`` to call instead of answering now.
        fillers: short turns spoken before ``text`` (a thinking model's "Let me think about that.").
    """

    text: str = ""
    function_call: tuple[str, Mapping[str, Any]] | None = None
    fillers: tuple[str, ...] = ()


class Responder(Protocol):
    """A pluggable emulator model."""

    def respond(self, context: RequestContext) -> Reply:
        """Answer one request (deterministically, quickly)."""
        ...


def quote(text: str, words: int = 8) -> str:
    """The first few words of a text, in quotes, with an ellipsis when cut."""
    parts = text.split()
    cut = " ".join(parts[:words])
    return f'"{cut}…"' if len(parts) > words else f'"{cut}"'


def _end(sentence: str) -> str:
    """End a sentence with a full stop, unless it ends in a quote that already has one."""
    return sentence if sentence.endswith(('."', '?"', '!"', '…"')) else sentence + "."


_FIRST_QUESTION = re.compile(
    r"\b(what did i (say|ask|tell you) first|first thing i (said|asked|told)|what was my first|"
    r"earliest (thing|message|turn)|what do you remember)\b",
    re.IGNORECASE,
)
_SYSTEM_QUESTION = re.compile(r"\b(system instruction|your instructions?)\b", re.IGNORECASE)
_PARAM = re.compile(r"(\w+)=(\"[^\"]*\"|'[^']*'|\S+)")


def _function_declarations(tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    decls: list[Mapping[str, Any]] = []
    for tool in tools:
        for key in ("functionDeclarations", "function_declarations"):
            for decl in tool.get(key) or ():
                if isinstance(decl, Mapping) and decl.get("name"):
                    decls.append(decl)
    return decls


def called_function(
    text: str, functions: Sequence[Mapping[str, Any]], spoken: bool = False
) -> tuple[str, dict[str, Any]] | None:
    """The first declared function the text names, with ``param=value`` arguments, or None.

    ``spoken`` (text heard by offline recognition): up to two words may come between the parts of
    the name ("get the weather" names get_weather), and ``param value`` gives an argument.
    """
    lowered = text.lower()
    for decl in functions:
        name = str(decl["name"])
        spellings = [re.escape(name.lower()), re.escape(name.lower().replace("_", " "))]
        parts = [re.escape(p) for p in re.split(r"[_\s]+", name.lower()) if p]
        if spoken and len(parts) > 1:
            spellings.append(r"\s+(?:\w+\s+){0,2}".join(parts))
        if any(re.search(rf"(?<![\w]){s}(?![\w])", lowered) for s in spellings):
            params = decl.get("parameters") or {}
            declared = set((params.get("properties") or {}).keys()) if isinstance(params, Mapping) else set()
            args = {k: v.strip("\"'") for k, v in _PARAM.findall(text) if k in declared}
            if spoken:
                for key in sorted(declared):
                    pattern = rf"(?<![\w]){re.escape(str(key).lower())}\s+(?:is\s+|equals\s+)?([\w']+)"
                    value = re.search(pattern, lowered)
                    if value and key not in args:
                        args[key] = value.group(1)
            return name, args
    return None


class ContextResponder:
    """The default responder: reports its context honestly, in a few plain sentences.

    Args:
        max_quote_words: how many words of a turn to quote.
    """

    def __init__(self, max_quote_words: int = 8) -> None:
        self.max_quote_words = max_quote_words

    def respond(self, context: RequestContext) -> Reply:
        """Answer from the context (see the module docstring for the rules)."""
        q = self.max_quote_words
        if context.tool_results:
            results = "; ".join(result.describe() for result in context.tool_results)
            return Reply(text=f"Turn {context.turn_number}. The tool answered: {results}. {self._summary(context)}")
        heard = context.heard if context.request_is_audio else None
        said = heard if heard is not None else context.request
        call = None
        if not context.request_is_audio or heard:
            call = called_function(said, _function_declarations(context.functions), spoken=heard is not None)
        if call is not None:
            return Reply(text=CHECKING, function_call=call)

        if context.request_is_audio and heard is None:
            asked = f"You spoke to me {context.request}."
        elif context.request_is_audio:
            asked = f"You spoke to me [{context.speech_seconds:.1f} s of speech]."
            if heard:
                asked += " " + _end(f"Offline recognition heard: {quote(heard, 2 * q)}")
            else:
                asked += " I heard nothing I could recognise."
        else:
            asked = _end(f"You asked: {quote(context.request, q)}")
        sentences = [f"Turn {context.turn_number}.", asked]
        if _FIRST_QUESTION.search(said):
            earliest = next((t for t in context.turns if t.role == "user"), None)
            if earliest is not None:
                sentences.append(
                    _end(
                        f"The first thing you said that I still remember (turn {earliest.number}) was "
                        f"{quote(earliest.text, 2 * q)}"
                    )
                )
            if context.forgotten_turns:
                sentences.append(f"Anything before that was compressed away ({context.forgotten_turns} turns).")
        if _SYSTEM_QUESTION.search(said):
            if context.system_instruction:
                sentences.append(_end(f"My system instruction is {quote(context.system_instruction, 2 * q)}"))
            else:
                sentences.append("I have no system instruction.")
        sentences.append(self._summary(context))
        return Reply(text=" ".join(sentences), fillers=(THINKING,) if context.thinking else ())

    def _summary(self, context: RequestContext) -> str:
        q = self.max_quote_words
        turns = list(context.turns)
        parts = [f"I hold {len(turns)} turn{'s' if len(turns) != 1 else ''} and {context.context_tokens:,.0f} tokens."]
        # The current request is the last turn: "earliest remembered" means before it.
        if len(turns) > 1:
            first = turns[0]
            who = "you" if first.role == "user" else "me"
            parts.append(_end(f"The earliest turn I remember is turn {first.number} ({who}): {quote(first.text, q)}"))
        if context.system_instruction:
            parts.append(_end(f"I follow the instruction {quote(context.system_instruction, q)}"))
        if context.compressions:
            forgot = f"Compression ran {context.compressions} time{'s' if context.compressions != 1 else ''}"
            forgot += f" and I forgot {context.forgotten_turns} turns"
            if context.last_forgotten:
                forgot += f", the last of them {quote(context.last_forgotten, q)}"
            parts.append(_end(forgot))
        return " ".join(parts)
