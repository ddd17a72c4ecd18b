"""Python functions as Live API tools: declarations from signatures, responses from results, calls in flight.

Why a module of its own: a notebook's strength is its functions. The user hands ``LiveModel(tools=
[get_weather])`` a plain function; this module turns it into the ``functionDeclarations`` the setup
carries, turns the model's JSON arguments back into the Python values the function expects, shapes
whatever the function returned (or raised) into a ``FunctionResponse`` with the call's ``id``, and
keeps the book of calls in flight so each one is answered at most once, across cancellations and
reconnects. The client's tool loop, the emulator and the magics drive it; it does no I/O itself
(no asyncio, no threads, no clock): running the function is the caller's job.

Rules:
1. A declaration is the OpenAPI subset the Live API's ``parameters`` field takes (``type`` in upper
   case, ``properties``, ``required``, ``items``, ``enum``, ``description``, ``nullable``, ``anyOf``,
   ``default``), built as google-genai's ``FunctionDeclaration.from_callable`` builds it where that
   supports a type (tests compare the two), and further for dataclasses, TypedDicts, Enums and
   ``Annotated[X, "description"]``. Argument descriptions come from a Google-style ``Args:`` section.
2. What cannot be described is refused at declaration time with a ``ConfigError`` that names the
   function and the parameter: ``*args``/``**kwargs``, a missing or ``Any`` hint (the model needs a
   type to fill an argument in; a schema without one is either refused by the service or guessed by
   the model, so it is better said at once), bare ``list`` (the service wants ``items``), non-string
   ``Literal``/Enum values (the schema's ``enum`` is strings only), recursive types (the subset has
   no ``$ref``), and a lambda or other nameless callable without ``name=``.
3. Results are untrusted data: shaped into JSON, never interpreted, never HTML. A dict is the
   response as it is (the service reads a response without ``output``/``error`` keys as the whole
   output); any other value goes under ``result``; an exception becomes ``{"error": "Type: message"}``.
   What JSON cannot hold is converted (dataclass -> dict, Enum -> value, tuple/set -> list, datetime ->
   ISO text, numpy-like ``tolist()``); anything else, and non-finite floats, becomes its ``repr``,
   cut at ``MAX_REPR`` characters; nesting deeper than ``MAX_RESULT_DEPTH`` is cut the same way, so
   the frame stays inside the wire's nesting limit.
4. ``scheduling`` is sent only when asked for (``Tool.scheduling``); unset means the service's own
   default, WHEN_IDLE. Why not send WHEN_IDLE always: extended thinking refuses any ``scheduling``
   with 1007, and one probe saw plain 3.8 refuse it too (models.md section 5).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import logging
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from ..exceptions import ConfigError
from . import _wire as w
from .content import SCHEDULINGS, FunctionCall, FunctionResponse

__all__ = [
    "BEHAVIORS",
    "MAX_REPR",
    "MAX_RESULT_DEPTH",
    "SCHEDULINGS",
    "Tool",
    "as_tool",
    "jsonable",
    "response_for",
    "tool_from_callable",
    "tools_wire",
]

logger = logging.getLogger("live_nb.protocol")

BEHAVIORS = ("BLOCKING", "NON_BLOCKING")
"""``FunctionDeclaration.behavior`` values (google-genai's Behavior, without UNSPECIFIED: leave it None)."""

MAX_REPR = 2000
"""Longest ``repr`` a result value that JSON cannot hold is turned into (characters)."""

MAX_RESULT_DEPTH = 64
"""Deepest nesting kept in a result; deeper values become their ``repr``.

Why 64: a toolResponse frame wraps the result in four levels, and a peer refuses frames nested
deeper than ``_wire.MAX_NESTING`` (100, protobuf's own limit).
"""

_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
"""google-genai's FunctionDeclaration.name: a letter or underscore, then letters, digits, ``_.:-``, 128 at most."""

_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
"""google-genai's parameter names: a letter or underscore, then ASCII letters, digits, ``_``; 64 at most."""

Json = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# Tool


@dataclass(frozen=True, slots=True)
class _Param:
    """One parameter of a tool's function, as the tool loop binds it."""

    name: str
    positional_only: bool
    annotation: Any
    required: bool
    default: Any


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: its declaration and the Python callable that answers.

    Build one with ``tool_from_callable``; construct directly for a hand-written declaration.

    Attributes:
        name: the function name the model calls (``FunctionDeclaration.name``).
        function: the callable that answers (sync or async).
        description: what it does, for the model.
        parameters: the OpenAPI-subset schema of its arguments (an ``OBJECT``), or None for none.
        response: an optional schema of its result (``FunctionDeclaration.response``); not built
            from return hints, as google-genai does not send one on the Developer API either.
        behavior: ``BLOCKING``, ``NON_BLOCKING`` or None (the model's default, see the catalogue).
        scheduling: how a NON_BLOCKING result enters the conversation (``SILENT``, ``WHEN_IDLE``,
            ``INTERRUPT``); None leaves it to the service (WHEN_IDLE) and sends nothing.
        timeout: seconds the tool loop lets a call run before answering with a TimeoutError result;
            None for no limit.
        is_async: whether ``function`` is a coroutine function (run it on the loop, not in a thread).

    Raises:
        ConfigError: a name, behavior, scheduling or timeout the Live API would not take.
    """

    name: str
    function: Callable[..., Any]
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    response: Mapping[str, Any] | None = None
    behavior: str | None = None
    scheduling: str | None = None
    timeout: float | None = None
    is_async: bool = dc_field(init=False, default=False)
    _params: tuple[_Param, ...] = dc_field(init=False, default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"tools.{self.name}"
        if not isinstance(self.name, str) or not _FUNCTION_NAME.fullmatch(self.name):
            raise ConfigError(
                "tools.name", self.name,
                "a function name: a letter or _, then letters, digits, _ . : or -, at most 128 characters",
            )
        if not callable(self.function):
            raise ConfigError(f"{where}.function", self.function, "a callable")
        if self.behavior is not None:
            behavior = str(self.behavior).upper()
            if behavior not in BEHAVIORS:
                raise ConfigError(f"{where}.behavior", self.behavior, "BLOCKING, NON_BLOCKING or None")
            object.__setattr__(self, "behavior", behavior)
        if self.scheduling is not None:
            scheduling = str(self.scheduling).upper()
            if scheduling not in SCHEDULINGS:
                raise ConfigError(f"{where}.scheduling", self.scheduling, "SILENT, WHEN_IDLE, INTERRUPT or None")
            if self.behavior == "BLOCKING":
                raise ConfigError(
                    f"{where}.scheduling", self.scheduling,
                    "None for a BLOCKING function (scheduling applies to NON_BLOCKING results only)",
                )
            object.__setattr__(self, "scheduling", scheduling)
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or not 0 < self.timeout <= w.MAX_DURATION_SECONDS
        ):
            raise ConfigError(f"{where}.timeout", self.timeout, "None or a number of seconds above 0, up to a day")
        object.__setattr__(self, "is_async", _is_async(self.function))
        object.__setattr__(self, "_params", _bound_params(self.function))

    def declaration(self) -> Json:
        """The ``FunctionDeclaration`` as it goes on the wire (camelCase)."""
        return w.prune(
            {
                "name": self.name,
                "description": self.description,
                "parameters": None if self.parameters is None else dict(self.parameters),
                "response": None if self.response is None else dict(self.response),
                "behavior": self.behavior,
            }
        )

    def bind(self, args: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The positional and keyword arguments to call ``function`` with, from a call's JSON ``args``.

        JSON values are turned into what the hints ask for: Enum members, dataclass and pydantic
        instances, tuples and sets, floats from integers and integers from integral floats; a
        missing nullable argument without a default is passed as None.

        Raises:
            TypeError: an unknown or missing argument, or a value of the wrong type. The tool loop
                answers the call with it as an error result, so the model can try again.
        """
        params = self._params
        known = {p.name for p in params}
        unknown = [key for key in args if key not in known]
        if unknown:
            raise TypeError(f"{self.name}() got an unexpected argument {unknown[0]!r}")
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        for param in params:
            if param.name in args:
                value = _convert(args[param.name], param.annotation, f"{self.name}() argument {param.name!r}")
            elif not param.required:
                if param.default is inspect.Parameter.empty:
                    value = None  # nullable, no default: google-genai leaves it out of `required` too
                elif param.positional_only:
                    value = param.default
                else:
                    continue
            else:
                raise TypeError(f"{self.name}() missing required argument {param.name!r}")
            if param.positional_only:
                positional.append(value)
            else:
                keywords[param.name] = value
        return positional, keywords


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - an instance with an async __call__
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def _bound_params(fn: Callable[..., Any]) -> tuple[_Param, ...]:
    """How ``Tool.bind`` passes arguments to ``fn``: by name, converted as its hints say where it has them.

    Derived from the function itself (not from the declaration), so a Tool built by hand or copied
    with ``dataclasses.replace`` binds as one built by ``tool_from_callable``.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return ()
    try:
        hints = _hints(fn, "tools")
    except ConfigError:
        hints = {}
    out = []
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        annotation = hints.get(p.name, Any)
        required = p.default is p.empty and not _nullable(annotation)
        out.append(_Param(p.name, p.kind is p.POSITIONAL_ONLY, annotation, required, p.default))
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# Declarations from callables


def tool_from_callable(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    behavior: str | None = None,
    scheduling: str | None = None,
    timeout: float | None = None,
) -> Tool:
    """Describe a Python function as a tool, from its signature, type hints and docstring.

    Args:
        fn: a function, bound method, async function, ``functools.partial`` or callable object.
        name: the name the model calls it by (default: ``fn.__name__``; required for lambdas,
            partials and other nameless callables).
        description: what it does (default: the docstring without its ``Args:``/``Returns:``... sections).
        behavior: ``BLOCKING`` or ``NON_BLOCKING``; None takes the model's default.
        scheduling: ``SILENT``, ``WHEN_IDLE`` or ``INTERRUPT`` for its NON_BLOCKING results; None
            leaves it to the service (WHEN_IDLE) and sends nothing.
        timeout: seconds a call may run before it is answered with a TimeoutError result.

    Raises:
        ConfigError: what cannot be described, naming the function and the parameter (rule 2 of
            the module docstring).
    """
    if not callable(fn):
        raise ConfigError("tools", fn, "a function (or a Tool, or a declaration dict)")
    fn_name = name if name is not None else getattr(fn, "__name__", None)
    if not isinstance(fn_name, str) or fn_name == "<lambda>":
        raise ConfigError(
            "tools", fn, "a named function; pass name= for a lambda, a functools.partial or a callable object"
        )
    where = f"tools.{fn_name}"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError(where, fn, f"a callable with a signature ({exc})") from None
    hints = _hints(fn, where)
    summary, arg_docs = _parse_docstring(inspect.getdoc(fn))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in signature.parameters.values():
        pwhere = f"{where}.{param.name}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            stars = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise ConfigError(
                pwhere, f"{stars}{param.name}",
                "named parameters only: the model passes arguments by name, so *args and **kwargs cannot be described",
            )
        if not _PARAMETER_NAME.fullmatch(param.name):
            raise ConfigError(pwhere, param.name, "a parameter name of ASCII letters, digits and _, at most 64")
        annotation = hints.get(param.name, inspect.Parameter.empty)
        if annotation is inspect.Parameter.empty:
            raise ConfigError(
                pwhere, "no type hint",
                f"a type hint such as `{param.name}: str`: the model needs a type to fill an argument in",
            )
        schema = _schema(annotation, pwhere, ())
        doc = arg_docs.get(param.name)
        if doc:
            schema["description"] = doc
        has_default = param.default is not inspect.Parameter.empty
        if has_default and param.default is not None:
            default = _default(param.default)
            if default is not _NO_DEFAULT:
                schema["default"] = default
        nullable = bool(schema.get("nullable"))
        if not has_default and not nullable:
            required.append(param.name)
        properties[param.name] = schema
    parameters: Json | None = None
    if properties:
        parameters = {"type": "OBJECT", "properties": properties}
        if required:
            parameters["required"] = required
    return Tool(
        name=fn_name,
        function=fn,
        description=description if description is not None else summary,
        parameters=parameters,
        behavior=behavior,
        scheduling=scheduling,
        timeout=timeout,
    )


def as_tool(item: Tool | Callable[..., Any]) -> Tool:
    """A Tool as it is, a callable described by ``tool_from_callable``."""
    return item if isinstance(item, Tool) else tool_from_callable(item)


def tools_wire(tools: Iterable[Tool | Callable[..., Any]]) -> list[Json]:
    """The setup's ``tools`` entry for these tools: ``[{"functionDeclarations": [...]}]`` (camelCase).

    Raises:
        ConfigError: a tool that cannot be described, or two tools with the same name.
    """
    declarations: list[Json] = []
    seen: set[str] = set()
    for item in tools:
        tool = as_tool(item)
        if tool.name in seen:
            raise ConfigError(f"tools.{tool.name}", tool.name, "one function per name")
        seen.add(tool.name)
        declarations.append(tool.declaration())
    return [{"functionDeclarations": declarations}] if declarations else []


def _hints(fn: Callable[..., Any], where: str) -> dict[str, Any]:
    target = fn
    while not (inspect.isfunction(target) or inspect.ismethod(target)):
        inner = getattr(target, "func", None)  # functools.partial
        if inner is None:
            call = getattr(type(target), "__call__", None)  # noqa: B004
            if call is None or inspect.isbuiltin(call) or not inspect.isfunction(call):
                return {}
            target = call
            break
        target = inner
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # NameError for a hint naming what is not defined, TypeError...
        raise ConfigError(where, fn, f"type hints that can be resolved ({type(exc).__name__}: {exc})") from None


_NO_DEFAULT = object()


def _default(value: Any) -> Any:
    """A parameter's default as JSON for the schema, or _NO_DEFAULT when it has no JSON form."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NO_DEFAULT
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, bool, int, float)) for v in value):
        return list(value)
    return _NO_DEFAULT


_SCALARS: dict[Any, str] = {str: "STRING", bool: "BOOLEAN", int: "INTEGER", float: "NUMBER"}
_SEQUENCES: tuple[Any, ...] = (list, tuple, set, frozenset, Sequence)
_MAPPINGS: tuple[Any, ...] = (dict, Mapping)
_UNION_TYPES: tuple[Any, ...] = (Union, types.UnionType)


def _schema(tp: Any, where: str, seen: tuple[Any, ...]) -> Json:
    """The OpenAPI-subset schema of one annotation (module docstring, rule 1)."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *meta = get_args(tp)
        schema = _schema(base, where, seen)
        text = next((m for m in meta if isinstance(m, str)), None)
        if text:
            schema["description"] = text
        return schema
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    if tp is Any or tp is object:
        raise ConfigError(where, tp, "a concrete type: with Any the model has to guess what to pass")
    if tp is type(None) or tp is None:
        raise ConfigError(where, tp, "a type besides None (Optional[X] or X | None)")
    if origin in _UNION_TYPES:
        members = [a for a in get_args(tp) if a is not type(None)]
        nullable = len(members) < len(get_args(tp))
        schemas: list[Json] = []
        for member in members:
            sub = _schema(member, where, seen)
            if sub not in schemas:
                schemas.append(sub)
        out: Json = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        if nullable:
            out["nullable"] = True
        return out
    if origin is Literal:
        literals = get_args(tp)
        if not all(isinstance(v, str) for v in literals):
            raise ConfigError(where, tp, "Literal of strings only (the schema's enum holds strings)")
        return {"type": "STRING", "enum": list(literals)}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        if not all(isinstance(v, str) for v in values):
            raise ConfigError(where, tp, "an Enum with string values (the schema's enum holds strings)")
        return {"type": "STRING", "enum": values}
    if origin in _SEQUENCES or tp in _SEQUENCES:
        args = get_args(tp)
        if not args:
            raise ConfigError(where, tp, "an item type, e.g. list[str] (the service needs the items' schema)")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise ConfigError(where, tp, "tuple[X, ...] (fixed-length tuples have no schema in the Live API subset)")
        return {"type": "ARRAY", "items": _schema(args[0], f"{where}.items", seen)}
    if origin in _MAPPINGS or tp in _MAPPINGS:
        key = get_args(tp)[0] if get_args(tp) else str
        if key is not str:
            raise ConfigError(where, tp, "dict[str, X]: JSON object keys are strings")
        return {"type": "OBJECT"}  # as google-genai: additionalProperties is Vertex-only
    if isinstance(tp, type) and (typing.is_typeddict(tp) or dataclasses.is_dataclass(tp) or _is_pydantic(tp)):
        if tp in seen:
            raise ConfigError(where, tp, "a type that does not contain itself (the Live API schema has no $ref)")
        return _object_schema(tp, where, (*seen, tp))
    raise ConfigError(
        where, tp,
        "str, int, float, bool, list[X], dict[str, X], Optional, Literal, Enum, TypedDict, a dataclass or a "
        "pydantic model",
    )


def _nullable(tp: Any) -> bool:
    """Whether the annotation admits None (``Optional[X]``, ``X | None``, also inside ``Annotated``)."""
    if get_origin(tp) is Annotated:
        return _nullable(get_args(tp)[0])
    return get_origin(tp) in _UNION_TYPES and type(None) in get_args(tp)


def _is_pydantic(tp: type) -> bool:
    return isinstance(getattr(tp, "model_fields", None), Mapping) and callable(getattr(tp, "model_validate", None))


def _fields(tp: type, where: str) -> list[tuple[str, Any, bool]]:
    """(name, annotation, has_default) of a TypedDict's, dataclass's or pydantic model's fields."""
    if _is_pydantic(tp):
        fields = typing.cast(Mapping[str, Any], tp.model_fields)  # type: ignore[attr-defined]
        return [(n, f.annotation, not f.is_required()) for n, f in fields.items()]
    hints = _hints_of_class(tp, where)
    if typing.is_typeddict(tp):
        required_keys = getattr(tp, "__required_keys__", frozenset(hints))
        return [(n, hints[n], n not in required_keys) for n in hints]
    out = []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        out.append((f.name, hints.get(f.name, inspect.Parameter.empty), has_default))
    return out


def _hints_of_class(tp: type, where: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(tp, include_extras=True)
    except Exception as exc:
        raise ConfigError(where, tp, f"type hints that can be resolved ({type(exc).__name__}: {exc})") from None


def _object_schema(tp: type, where: str, seen: tuple[Any, ...]) -> Json:
    doc = inspect.getdoc(tp)
    if doc and (doc.startswith(f"{tp.__name__}(") or doc == inspect.getdoc(dict)):
        doc = None  # the dataclass's generated signature, or TypedDict's inherited dict docstring
    summary, field_docs = _parse_docstring(doc)
    pydantic_docs: Mapping[str, Any] = getattr(tp, "model_fields", {}) if _is_pydantic(tp) else {}
    properties: Json = {}
    required: list[str] = []
    for name, annotation, has_default in _fields(tp, where):
        fwhere = f"{where}.{name}"
        if annotation is inspect.Parameter.empty:
            raise ConfigError(fwhere, "no type hint", "a type hint on every field")
        schema = _schema(annotation, fwhere, seen)
        text = field_docs.get(name) or getattr(pydantic_docs.get(name), "description", None)
        if text:
            schema["description"] = text
        if not has_default and not schema.get("nullable"):
            required.append(name)
        properties[name] = schema
    out: Json = {"type": "OBJECT", "properties": properties}
    if required:
        out["required"] = required
    if summary:
        out["description"] = summary
    return out


_SECTION = re.compile(
    r"(args|arguments|parameters|params|attributes|keyword args|keyword arguments|other parameters|returns?|"
    r"yields?|raises|examples?|notes?|warnings?|see also|todo|references)\s*:\s*",
    re.IGNORECASE,
)
_ARG_SECTIONS = {"args", "arguments", "parameters", "params", "attributes", "keyword args", "keyword arguments",
                 "other parameters"}
_ARG_LINE = re.compile(r"\**(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)")
_SPHINX_PARAM = re.compile(r":param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)")


def _parse_docstring(doc: str | None) -> tuple[str | None, dict[str, str]]:
    """The summary (text before the first section) and the per-argument descriptions of a docstring.

    Google style (``Args:`` / ``Attributes:`` sections with ``name (type): text`` entries and indented
    continuation lines); Sphinx ``:param name: text`` lines are read too and left out of the summary.
    """
    if not doc:
        return None, {}
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    entry_indent: int | None = None
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION.fullmatch(stripped) if indent == 0 else None
        if header:
            section = stripped.rstrip(":").strip().lower()
            current, entry_indent = None, None
            continue
        sphinx = _SPHINX_PARAM.match(stripped)
        if sphinx:
            section, current = "sphinx", sphinx.group(1)
            args[current] = sphinx.group(2).strip()
            continue
        if section is None:
            summary.append(line)
        elif section in _ARG_SECTIONS or section == "sphinx":
            if not stripped:
                continue
            entry = _ARG_LINE.fullmatch(stripped)
            if section != "sphinx" and entry and (entry_indent is None or indent <= entry_indent):
                entry_indent = indent
                current = entry.group(1)
                args[current] = entry.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {stripped}".strip()
    text = "\n".join(summary).strip()
    return text or None, {k: v for k, v in args.items() if v}


# --------------------------------------------------------------------------------------------------
# Arguments in: JSON -> Python values


def _convert(value: Any, tp: Any, where: str) -> Any:
    """A call's JSON value as the annotation asks for it (``Tool.bind``). Raises TypeError."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _convert(value, get_args(tp)[0], where)
    if tp is Any or tp is object or tp is inspect.Parameter.empty:
        return value
    if origin in _UNION_TYPES:
        members = get_args(tp)
        if value is None and type(None) in members:
            return None
        for member in members:
            if member is type(None):
                continue
            try:
                return _convert(value, member, where)
            except TypeError:
                continue
        raise TypeError(f"{where}: {w.show(value)} is none of {tp}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)  # JSON has one number type: 3.0 for an int is fine (google-genai does the same)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is Literal:
        if value in get_args(tp):
            return value
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            pass
    elif origin in _SEQUENCES or tp in _SEQUENCES:
        if isinstance(value, list):
            args = get_args(tp)
            item = args[0] if args else Any
            items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
            container = origin or tp
            if container in (tuple, set, frozenset):
                return container(items)
            return items
    elif origin in _MAPPINGS or tp in _MAPPINGS:
        if isinstance(value, Mapping):
            args = get_args(tp)
            item = args[1] if len(args) == 2 else Any
            return {k: _convert(v, item, f"{where}[{k!r}]") for k, v in value.items()}
    elif isinstance(tp, type) and _is_pydantic(tp):
        if isinstance(value, Mapping):
            try:
                return tp.model_validate(value)  # type: ignore[attr-defined]
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                raise TypeError(f"{where}: {exc}") from None
    elif isinstance(tp, type) and (typing.is_typeddict(tp) or dataclasses.is_dataclass(tp)):
        if isinstance(value, Mapping):
            return _convert_object(value, tp, where)
    else:
        return value  # a hand-declared tool's hint we do not describe: pass the JSON value as it is
    raise TypeError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {w.show(value)}")


def _convert_object(value: Mapping[str, Any], tp: type, where: str) -> Any:
    fields = {name: (annotation, has_default) for name, annotation, has_default in _fields(tp, where)}
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise TypeError(f"{where}: unexpected field {unknown[0]!r}")
    out: dict[str, Any] = {}
    for name, (annotation, has_default) in fields.items():
        if name in value:
            out[name] = _convert(value[name], annotation, f"{where}.{name}")
        elif not has_default:
            if _nullable(annotation):
                out[name] = None
            else:
                raise TypeError(f"{where}: missing field {name!r}")
    return out if typing.is_typeddict(tp) else tp(**out)


# --------------------------------------------------------------------------------------------------
# Results out: Python values -> FunctionResponse


def response_for(
    call: FunctionCall,
    result: object,
    *,
    scheduling: str | None = None,
    will_continue: bool | None = None,
) -> FunctionResponse:
    """The FunctionResponse answering ``call`` with what its function returned or raised.

    The response carries the call's ``id`` and ``name``. ``result`` shaping (module rule 3): a
    FunctionResponse is taken as the answer (for ``parts``: images, audio) with the call's id and
    name; a dict is the response as it is; an exception is ``{"error": "Type: message"}``; any other
    value is ``{"result": value}``; what JSON cannot hold is converted by ``jsonable``.
    """
    if isinstance(result, FunctionResponse):
        return FunctionResponse(
            name=call.name, response=result.response, id=call.id,
            will_continue=result.will_continue if will_continue is None else will_continue,
            scheduling=result.scheduling if scheduling is None else scheduling, parts=result.parts,
        )
    if isinstance(result, BaseException):
        message = str(result)
        body: Mapping[str, Any] = {"error": f"{type(result).__name__}: {message}" if message else type(result).__name__}
    elif isinstance(result, Mapping):
        body = jsonable(result)
    else:
        body = {"result": jsonable(result)}
    return FunctionResponse(name=call.name, response=body, id=call.id, will_continue=will_continue,
                            scheduling=scheduling)


def jsonable(value: Any, _depth: int = 0, _path: frozenset[int] = frozenset()) -> Any:
    """``value`` as JSON data (dicts with str keys, lists, str, finite numbers, bools, None).

    Converts dataclasses, pydantic models, Enums, tuples and sets, dates and times, numpy-like values
    (``tolist()``); anything else, non-finite floats, cycles and nesting past ``MAX_RESULT_DEPTH``
    become a ``repr`` of at most ``MAX_REPR`` characters.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if _depth >= MAX_RESULT_DEPTH or id(value) in _path:
        return _repr(value)
    path = _path | {id(value)}
    depth = _depth + 1
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, str) else k: jsonable(v, depth, path) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v, depth, path) for v in items]
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name), depth, path) for f in dataclasses.fields(value)}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    for method in ("model_dump", "tolist"):  # pydantic models; numpy arrays and scalars
        convert = getattr(value, method, None)
        if callable(convert) and not isinstance(value, type):
            try:
                converted = convert(mode="json") if method == "model_dump" else convert()
            except Exception:
                break
            return jsonable(converted, depth, path)
    return _repr(value)


def _repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ is the user's, not a reason to lose the answer
        text = f"<{type(value).__name__} object; repr failed: {type(exc).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 1] + "…"
