"""Content: the turns and parts both directions carry (text, inline media, function calls and responses).

Why a module of its own: the config (system instruction, initial history) and the messages both hold
Content, so it sits below both and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, ClassVar

from ..exceptions import LocalProtocolError, RemoteProtocolError
from . import _wire as w

__all__ = [
    "Blob",
    "Content",
    "FunctionCall",
    "FunctionResponse",
    "Part",
    "as_content",
    "as_turns",
]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Blob:
    """Inline bytes with their MIME type (``inlineData``, ``audio``, ``video``)."""

    data: bytes
    mime_type: str

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "blob") -> Blob:
        data = w.mapping(data, where)
        return cls(
            data=w.b64decode(w.field(data, "data", ""), f"{where}.data"),
            mime_type=w.string(w.field(data, "mime_type"), f"{where}.mimeType") or "",
        )

    def to_wire(self) -> Json:
        return {"data": w.b64encode(self.data), "mimeType": self.mime_type}


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A call the model asks the client to run (``toolCall.functionCalls[]``)."""

    name: str
    args: Mapping[str, Any] = dc_field(default_factory=dict)
    id: str | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "functionCall") -> FunctionCall:
        data = w.mapping(data, where)
        return cls(
            name=w.string(w.field(data, "name"), f"{where}.name") or "",
            args=_object(w.field(data, "args"), f"{where}.args"),
            id=w.string(w.field(data, "id"), f"{where}.id"),
        )

    def to_wire(self) -> Json:
        return w.prune({"id": self.id, "name": self.name, "args": dict(self.args)})


@dataclass(frozen=True, slots=True)
class FunctionResponse:
    """The client's answer to a FunctionCall (``toolResponse.functionResponses[]``)."""

    name: str
    response: Mapping[str, Any] = dc_field(default_factory=dict)
    id: str | None = None
    will_continue: bool | None = None
    scheduling: str | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "functionResponse") -> FunctionResponse:
        data = w.mapping(data, where)
        will_continue = w.field(data, "will_continue")
        return cls(
            name=w.string(w.field(data, "name"), f"{where}.name") or "",
            response=_object(w.field(data, "response"), f"{where}.response"),
            id=w.string(w.field(data, "id"), f"{where}.id"),
            will_continue=None if will_continue is None else w.boolean(will_continue, f"{where}.willContinue"),
            scheduling=w.string(w.field(data, "scheduling"), f"{where}.scheduling"),
        )

    def to_wire(self) -> Json:
        return w.prune(
            {
                "id": self.id,
                "name": self.name,
                "response": dict(self.response),
                "willContinue": self.will_continue,
                "scheduling": self.scheduling,
            }
        )


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a Content: text, inline data, a function call or response."""

    text: str | None = None
    inline_data: Blob | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    thought: bool | None = None
    extra: Mapping[str, Any] | None = None

    _KNOWN: ClassVar[tuple[str, ...]] = ("text", "inline_data", "function_call", "function_response", "thought")

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "part") -> Part:
        data = w.mapping(data, where)
        inline = w.field(data, "inline_data")
        call = w.field(data, "function_call")
        resp = w.field(data, "function_response")
        thought = w.field(data, "thought")
        return cls(
            text=w.string(w.field(data, "text"), f"{where}.text"),
            inline_data=None if inline is None else Blob.from_wire(inline, f"{where}.inlineData"),
            function_call=None if call is None else FunctionCall.from_wire(call, f"{where}.functionCall"),
            function_response=None
            if resp is None
            else FunctionResponse.from_wire(resp, f"{where}.functionResponse"),
            thought=None if thought is None else w.boolean(thought, f"{where}.thought"),
            extra=w.extra_fields(data, cls._KNOWN, "Part"),
        )

    def to_wire(self) -> Json:
        out = w.prune(
            {
                "text": self.text,
                "inlineData": None if self.inline_data is None else self.inline_data.to_wire(),
                "functionCall": None if self.function_call is None else self.function_call.to_wire(),
                "functionResponse": None
                if self.function_response is None
                else self.function_response.to_wire(),
                "thought": self.thought,
            }
        )
        if self.extra:
            out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class Content:
    """A turn: a role (``user``, ``model`` or ``system``) and its parts."""

    role: str | None
    parts: tuple[Part, ...]

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "content") -> Content:
        data = w.mapping(data, where)
        parts = w.sequence(w.field(data, "parts"), f"{where}.parts")
        return cls(
            role=w.string(w.field(data, "role"), f"{where}.role"),
            parts=tuple(Part.from_wire(p, f"{where}.parts[{i}]") for i, p in enumerate(parts)),
        )

    def to_wire(self) -> Json:
        return w.prune({"role": self.role, "parts": [p.to_wire() for p in self.parts]})

    @property
    def text(self) -> str:
        """All text parts joined (thoughts excluded)."""
        return "".join(p.text for p in self.parts if p.text and not p.thought)


def as_content(turn: Content | Mapping[str, Any] | str, role: str = "user") -> Content:
    """Turn what a user passes (a Content, a wire dict in either casing, or plain text) into a Content."""
    if isinstance(turn, Content):
        return turn
    if isinstance(turn, str):
        return Content(role=role, parts=(Part(text=turn),))
    if isinstance(turn, Mapping):
        try:
            content = Content.from_wire(turn, "turn")
        except RemoteProtocolError as exc:
            raise LocalProtocolError(f"not a valid turn: {exc}") from None
        return content if content.role else Content(role=role, parts=content.parts)
    raise LocalProtocolError(f"a turn must be a Content, a dict or a str, not {type(turn).__name__}")


def as_turns(
    turns: Content | Mapping[str, Any] | str | Sequence[Content | Mapping[str, Any] | str],
    role: str = "user",
) -> tuple[Content, ...]:
    """Normalise one turn or a list of turns (see ``as_content``)."""
    if isinstance(turns, (Content, Mapping, str)):
        return (as_content(turns, role),)
    if isinstance(turns, Sequence):
        return tuple(as_content(t, role) for t in turns)
    raise LocalProtocolError(f"turns must be a Content, dict, str or a list of them, not {type(turns).__name__}")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    """An opaque user object (function args, a function response): absent reads as ``{}``."""
    return {} if value is None else w.mapping(value, where)
