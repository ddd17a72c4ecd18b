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
    "SCHEDULINGS",
    "Blob",
    "Content",
    "FunctionCall",
    "FunctionResponse",
    "FunctionResponsePart",
    "Part",
    "PartialArg",
    "as_content",
    "as_turns",
]

SCHEDULINGS = ("SILENT", "WHEN_IDLE", "INTERRUPT", "SCHEDULING_UNSPECIFIED")
"""``FunctionResponse.scheduling`` values, as google-genai's FunctionResponseScheduling names them.

Only NON_BLOCKING calls use it (the service ignores it otherwise; its default is WHEN_IDLE).
SILENT folds the result into the context without a reply, WHEN_IDLE answers after the current
turn, INTERRUPT cuts the current reply. Read case-insensitively (the SDK's enum is), written upper.
"""

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Blob:
    """Inline bytes with their MIME type (``inlineData``, ``audio``, ``video``)."""

    data: bytes
    mime_type: str
    display_name: str | None = None
    """A label for the data (``displayName``); google-genai's Blob and FunctionResponseBlob carry it."""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "blob") -> Blob:
        data = w.mapping(data, where)
        return cls(
            data=w.b64decode(w.field(data, "data", ""), f"{where}.data"),
            mime_type=w.string(w.field(data, "mime_type"), f"{where}.mimeType") or "",
            display_name=w.string(w.field(data, "display_name"), f"{where}.displayName"),
        )

    def to_wire(self) -> Json:
        out: Json = {"data": w.b64encode(self.data), "mimeType": self.mime_type}
        if self.display_name is not None:
            out["displayName"] = self.display_name
        return out


@dataclass(frozen=True, slots=True)
class PartialArg:
    """One streamed piece of a FunctionCall's arguments (``functionCall.partialArgs[]``).

    Mirrors google-genai's PartialArg: ``json_path`` (RFC 9535, e.g. ``$.location``) names the
    argument; at most one of ``string_value``, ``number_value``, ``bool_value``, ``null_value``
    carries its value; ``will_continue`` says more pieces for the same path follow (a long string
    arrives in pieces). The SDK documents the field as Vertex AI only.
    """

    json_path: str
    string_value: str | None = None
    number_value: float | int | None = None
    bool_value: bool | None = None
    null_value: bool = False
    """The value is JSON null (``"nullValue": "NULL_VALUE"`` on the wire)."""
    will_continue: bool | None = None

    @property
    def value(self) -> str | float | int | bool | None:
        """The value this piece carries (None for null or no value)."""
        for value in (self.string_value, self.number_value, self.bool_value):
            if value is not None:
                return value
        return None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "partialArg") -> PartialArg:
        data = w.mapping(data, where)
        null = w.field(data, "null_value")
        if null is not None and null != "NULL_VALUE":
            raise RemoteProtocolError(f"{where}.nullValue must be NULL_VALUE", w.show(null))
        will_continue = w.field(data, "will_continue")
        return cls(
            json_path=w.string(w.field(data, "json_path"), f"{where}.jsonPath") or "",
            string_value=w.string(w.field(data, "string_value"), f"{where}.stringValue"),
            number_value=w.number(w.field(data, "number_value"), f"{where}.numberValue"),
            bool_value=None
            if w.field(data, "bool_value") is None
            else w.boolean(w.field(data, "bool_value"), f"{where}.boolValue"),
            # Proto3 JSON writes the NullValue enum as JSON null, so a present key means null too.
            null_value=null is not None or "nullValue" in data or "null_value" in data,
            will_continue=None if will_continue is None else w.boolean(will_continue, f"{where}.willContinue"),
        )

    def to_wire(self) -> Json:
        return w.prune(
            {
                "jsonPath": self.json_path,
                "stringValue": self.string_value,
                "numberValue": self.number_value,
                "boolValue": self.bool_value,
                "nullValue": "NULL_VALUE" if self.null_value else None,
                "willContinue": self.will_continue,
            }
        )


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A call the model asks the client to run (``toolCall.functionCalls[]``).

    ``partial_args`` and ``will_continue`` are for streamed arguments (google-genai documents them
    as Vertex AI only): ``will_continue=True`` means more parts of this same call (same ``id``)
    follow, so the call is not complete yet.
    """

    name: str
    args: Mapping[str, Any] = dc_field(default_factory=dict)
    id: str | None = None
    partial_args: tuple[PartialArg, ...] = ()
    will_continue: bool | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "functionCall") -> FunctionCall:
        data = w.mapping(data, where)
        partial = w.sequence(w.field(data, "partial_args"), f"{where}.partialArgs")
        will_continue = w.field(data, "will_continue")
        return cls(
            name=w.string(w.field(data, "name"), f"{where}.name") or "",
            args=_object(w.field(data, "args"), f"{where}.args"),
            id=w.string(w.field(data, "id"), f"{where}.id"),
            partial_args=tuple(PartialArg.from_wire(p, f"{where}.partialArgs[{i}]") for i, p in enumerate(partial)),
            will_continue=None if will_continue is None else w.boolean(will_continue, f"{where}.willContinue"),
        )

    def to_wire(self) -> Json:
        return w.prune(
            {
                "id": self.id,
                "name": self.name,
                "args": dict(self.args),
                "partialArgs": [p.to_wire() for p in self.partial_args] or None,
                "willContinue": self.will_continue,
            }
        )


@dataclass(frozen=True, slots=True)
class FunctionResponsePart:
    """One media part of a FunctionResponse (``functionResponses[].parts[]``): a function's image, audio...

    ``inline_data`` is the bytes (``inlineData {mimeType, data, displayName}``); anything else the
    part carries (``fileData``, ``videoMetadata``, ``mediaResolution``...) is kept as given in ``extra``.
    """

    inline_data: Blob | None = None
    extra: Mapping[str, Any] | None = None

    _KNOWN: ClassVar[tuple[str, ...]] = ("inline_data",)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "functionResponsePart") -> FunctionResponsePart:
        data = w.mapping(data, where)
        inline = w.field(data, "inline_data")
        return cls(
            inline_data=None if inline is None else Blob.from_wire(inline, f"{where}.inlineData"),
            extra=w.extra_fields(data, cls._KNOWN, "FunctionResponsePart"),
        )

    def to_wire(self) -> Json:
        out = w.prune({"inlineData": None if self.inline_data is None else self.inline_data.to_wire()})
        if self.extra:
            out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class FunctionResponse:
    """The client's answer to a FunctionCall (``toolResponse.functionResponses[]``).

    ``id`` is the call's id (the Developer API requires it; google-genai raises without it).
    ``will_continue=True`` sends an interim result of a NON_BLOCKING call (more follow); ``scheduling``
    (one of ``SCHEDULINGS``) says how a NON_BLOCKING result enters the conversation; ``parts`` carry
    media the function returned.

    Raises:
        LocalProtocolError: a ``scheduling`` that is not one of ``SCHEDULINGS``.
    """

    name: str
    response: Mapping[str, Any] = dc_field(default_factory=dict)
    id: str | None = None
    will_continue: bool | None = None
    scheduling: str | None = None
    parts: tuple[FunctionResponsePart, ...] = ()

    def __post_init__(self) -> None:
        if self.scheduling is not None:
            upper = self.scheduling.upper() if isinstance(self.scheduling, str) else None
            if upper not in SCHEDULINGS:
                raise LocalProtocolError(f"scheduling={self.scheduling!r} is not one of {', '.join(SCHEDULINGS)}")
            object.__setattr__(self, "scheduling", upper)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], where: str = "functionResponse") -> FunctionResponse:
        data = w.mapping(data, where)
        will_continue = w.field(data, "will_continue")
        scheduling = w.string(w.field(data, "scheduling"), f"{where}.scheduling")
        if scheduling is not None and scheduling.upper() not in SCHEDULINGS:
            raise RemoteProtocolError(f"{where}.scheduling must be one of {', '.join(SCHEDULINGS)}", scheduling[:80])
        parts = w.sequence(w.field(data, "parts"), f"{where}.parts")
        return cls(
            name=w.string(w.field(data, "name"), f"{where}.name") or "",
            response=_object(w.field(data, "response"), f"{where}.response"),
            id=w.string(w.field(data, "id"), f"{where}.id"),
            will_continue=None if will_continue is None else w.boolean(will_continue, f"{where}.willContinue"),
            scheduling=scheduling,
            parts=tuple(FunctionResponsePart.from_wire(p, f"{where}.parts[{i}]") for i, p in enumerate(parts)),
        )

    def to_wire(self) -> Json:
        return w.prune(
            {
                "id": self.id,
                "name": self.name,
                "response": dict(self.response),
                "willContinue": self.will_continue,
                "scheduling": self.scheduling,
                "parts": [p.to_wire() for p in self.parts] or None,
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
