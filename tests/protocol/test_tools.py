"""protocol/tools.py: declarations from Python functions, arguments back, results out.

google-genai's own ``FunctionDeclaration.from_callable_with_api_option`` is the independent
reference for every type it supports; our wire JSON must also validate against its pydantic types.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import json
import logging
import math
from typing import Annotated, Any, Literal, Optional, TypedDict

import pytest
from google.genai import types as genai_types

from live_nb.exceptions import ConfigError, LocalProtocolError
from live_nb.protocol import catalogue
from live_nb.protocol import content as c
from live_nb.protocol import messages as m
from live_nb.protocol.config import LiveGenerationConfig, ThinkingConfig
from live_nb.protocol.tools import (
    MAX_REPR,
    Tool,
    jsonable,
    response_for,
    tool_from_callable,
    tools_wire,
)

# --------------------------------------------------------------------------------------------------
# Declarations, against google-genai's from_callable


def f_scalars(city: str, days: int = 3, ratio: float = 0.5, ok: bool = True) -> dict:  # type: ignore[type-arg]
    return {}


def f_containers(tags: list[str], scores: dict[str, int], mode: Literal["x", "y"] = "x") -> None: ...


def f_optionals(limit: Optional[int] = None, name: str | None = None, n: int | None = None) -> None: ...  # noqa: UP045


def f_nested_lists(items: list[list[int]], maybe: Optional[list[str]] = None) -> None: ...  # noqa: UP045


def f_none() -> str:
    return "x"


def _sdk_parameters(fn: Any) -> Any:
    logging.getLogger("google_genai.types").setLevel(logging.ERROR)
    sdk = genai_types.FunctionDeclaration.from_callable_with_api_option(callable=fn, api_option="GEMINI_API")
    return _normalised(sdk.model_dump(mode="json", exclude_none=True).get("parameters"))


def _ours(fn: Any) -> Any:
    declaration = tool_from_callable(fn).declaration()
    # Our wire JSON is valid for the SDK's pydantic type, and reads back the same.
    parsed = genai_types.FunctionDeclaration.model_validate(declaration)
    return _normalised(parsed.model_dump(mode="json", exclude_none=True).get("parameters"))


def _normalised(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _normalised(v) for k, v in schema.items() if not (k == "required" and v == [])}
    return schema


@pytest.mark.parametrize("fn", [f_scalars, f_containers, f_optionals, f_nested_lists, f_none])
def test_parameters_match_google_genais_from_callable(fn: Any) -> None:
    assert _ours(fn) == _sdk_parameters(fn)


def test_scalars_wire_shape_and_required() -> None:
    decl = tool_from_callable(f_scalars).declaration()
    assert decl["name"] == "f_scalars"
    assert decl["parameters"] == {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING"},
            "days": {"type": "INTEGER", "default": 3},
            "ratio": {"type": "NUMBER", "default": 0.5},
            "ok": {"type": "BOOLEAN", "default": True},
        },
        "required": ["city"],
    }
    assert "description" not in decl and "behavior" not in decl


def test_no_parameters_means_no_parameters_field() -> None:
    assert tool_from_callable(f_none).declaration() == {"name": "f_none"}


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


@dataclasses.dataclass
class Place:
    """A place on Earth.

    Attributes:
        city: the city's name.
        country: ISO 3166 code,
            two letters.
    """

    city: str
    country: str | None = None


class Window(TypedDict, total=False):
    start: str
    end: str


class Span(TypedDict):
    start: int
    end: int


def get_weather(
    place: Place,
    unit: Unit = Unit.C,
    days: Annotated[int, "how many days ahead"] = 1,
    window: Window | None = None,
    spans: list[Span] | None = None,
) -> dict[str, Any]:
    """Get the weather forecast for a place.

    Uses the offline table.

    Args:
        place: where to look.
        unit (Unit): temperature unit;
            celsius unless asked.

    Returns:
        The forecast.

    Raises:
        KeyError: unknown place.
    """
    return {}


def test_docstring_summary_arg_descriptions_enums_dataclasses_typeddicts() -> None:
    decl = tool_from_callable(get_weather).declaration()
    assert decl["description"] == "Get the weather forecast for a place.\n\nUses the offline table."
    props = decl["parameters"]["properties"]
    assert props["place"] == {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "description": "the city's name."},
            "country": {"type": "STRING", "nullable": True, "description": "ISO 3166 code, two letters."},
        },
        "required": ["city"],
        "description": "where to look.",
    }
    assert props["unit"] == {
        "type": "STRING", "enum": ["celsius", "fahrenheit"], "default": "celsius",
        "description": "temperature unit; celsius unless asked.",
    }
    assert props["days"] == {"type": "INTEGER", "description": "how many days ahead", "default": 1}
    assert props["window"] == {
        "type": "OBJECT", "properties": {"start": {"type": "STRING"}, "end": {"type": "STRING"}}, "nullable": True,
    }
    assert props["spans"]["items"]["required"] == ["start", "end"]
    assert decl["parameters"]["required"] == ["place"]
    genai_types.FunctionDeclaration.model_validate(decl)


def test_sphinx_params_are_read_and_left_out_of_the_summary() -> None:
    def lookup(key: str) -> str:
        """Look a key up.

        :param key: the key to find
        """
        return key

    decl = tool_from_callable(lookup).declaration()
    assert decl["description"] == "Look a key up."
    assert decl["parameters"]["properties"]["key"]["description"] == "the key to find"


def test_name_behavior_scheduling_timeout_and_async() -> None:
    async def fetch(url: str) -> str:
        return url

    tool = tool_from_callable(fetch, name="web.fetch", behavior="non_blocking", scheduling="silent", timeout=5)
    assert (tool.name, tool.behavior, tool.scheduling, tool.timeout, tool.is_async) == (
        "web.fetch", "NON_BLOCKING", "SILENT", 5, True,
    )
    assert tool.declaration()["behavior"] == "NON_BLOCKING"
    assert not tool_from_callable(f_scalars).is_async

    class Caller:
        async def __call__(self, x: int) -> int:
            return x

    assert tool_from_callable(Caller(), name="caller").is_async


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"behavior": "SOMETIMES"}, "tools.f_none.behavior"),
        ({"scheduling": "LATER"}, "tools.f_none.scheduling"),
        ({"behavior": "BLOCKING", "scheduling": "SILENT"}, "tools.f_none.scheduling"),
        ({"timeout": 0}, "tools.f_none.timeout"),
        ({"timeout": math.inf}, "tools.f_none.timeout"),
        ({"timeout": True}, "tools.f_none.timeout"),
        ({"name": "9lives"}, "tools.name"),
        ({"name": "has space"}, "tools.name"),
    ],
)
def test_bad_tool_settings_are_config_errors(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        tool_from_callable(f_none, **kwargs)
    assert info.value.field == field


def _varargs(*names: str) -> None: ...
def _varkw(**options: str) -> None: ...
def _no_hint(city) -> None: ...  # type: ignore[no-untyped-def]
def _any(value: Any) -> None: ...
def _bare_list(values: list) -> None: ...  # type: ignore[type-arg]
def _int_literal(n: Literal[1, 2]) -> None: ...
def _int_keys(table: dict[int, str]) -> None: ...
def _fixed_tuple(pair: tuple[int, int]) -> None: ...
def _bytes(data: bytes) -> None: ...
def _unresolvable(x: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821


class IntUnit(enum.Enum):
    ONE = 1


def _int_enum(u: IntUnit) -> None: ...


@dataclasses.dataclass
class Node:
    value: int
    children: list[Node]


def _recursive(tree: Node) -> None: ...


@pytest.mark.parametrize(
    ("fn", "field", "words"),
    [
        (_varargs, "tools._varargs.names", "*args"),
        (_varkw, "tools._varkw.options", "**kwargs"),
        (_no_hint, "tools._no_hint.city", "type hint"),
        (_any, "tools._any.value", "Any"),
        (_bare_list, "tools._bare_list.values", "item type"),
        (_int_literal, "tools._int_literal.n", "Literal of strings"),
        (_int_keys, "tools._int_keys.table", "dict[str, X]"),
        (_fixed_tuple, "tools._fixed_tuple.pair", "tuple[X, ...]"),
        (_bytes, "tools._bytes.data", "str, int, float"),
        (_int_enum, "tools._int_enum.u", "string values"),
        (_recursive, "tools._recursive.tree.children.items", "$ref"),
        (_unresolvable, "tools._unresolvable", "NameError"),
    ],
)
def test_what_cannot_be_described_names_function_and_parameter(fn: Any, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        tool_from_callable(fn)
    assert info.value.field == field
    assert words in str(info.value)


def test_lambdas_and_nameless_callables_need_a_name() -> None:
    with pytest.raises(ConfigError, match="pass name="):
        tool_from_callable(lambda x: x)
    with pytest.raises(ConfigError, match="pass name="):
        tool_from_callable(functools.partial(f_scalars, days=1))
    tool = tool_from_callable(functools.partial(f_scalars, days=1), name="weather")
    assert tool.name == "weather"
    assert list(tool.declaration()["parameters"]["properties"]) == ["city", "days", "ratio", "ok"]
    with pytest.raises(ConfigError, match="not allowed"):
        tool_from_callable("not callable")  # type: ignore[arg-type]


def test_non_ascii_parameter_names_are_refused() -> None:
    def f(température: float) -> None: ...

    with pytest.raises(ConfigError, match="ASCII"):
        tool_from_callable(f)


def test_bound_methods_drop_self() -> None:
    class Notes:
        def search(self, query: str) -> list[str]:
            """Search the notes."""
            return [query]

    tool = tool_from_callable(Notes().search)
    assert tool.declaration()["parameters"] == {
        "type": "OBJECT", "properties": {"query": {"type": "STRING"}}, "required": ["query"],
    }


# --------------------------------------------------------------------------------------------------
# Arguments back to Python


def test_bind_converts_json_to_the_hinted_types() -> None:
    tool = tool_from_callable(get_weather)
    args, kwargs = tool.bind(
        {"place": {"city": "Paris"}, "unit": "fahrenheit", "days": 2.0, "spans": [{"start": 1, "end": 2}]}
    )
    assert args == []
    assert kwargs == {
        "place": Place("Paris", None), "unit": Unit.F, "days": 2, "spans": [{"start": 1, "end": 2}],
    }  # window has a default: left to the function
    assert isinstance(kwargs["days"], int)


def test_bind_fills_defaults_and_positional_only() -> None:
    def f(a: int, /, b: float = 1.5, c: tuple[str, ...] = ()) -> None: ...

    tool = tool_from_callable(f)
    assert tool.bind({"a": 1, "c": ["x", "y"]}) == ([1], {"c": ("x", "y")})
    assert tool.bind({"a": 1, "b": 2}) == ([1], {"b": 2.0})


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({}, "missing required argument 'place'"),
        ({"place": {"city": "x"}, "colour": 1}, "unexpected argument 'colour'"),
        ({"place": {"city": 3}}, "expected str"),
        ({"place": {}}, "missing field 'city'"),
        ({"place": {"city": "x", "zip": 1}}, "unexpected field 'zip'"),
        ({"place": {"city": "x"}, "unit": "kelvin"}, "expected Unit"),
        ({"place": {"city": "x"}, "days": 1.5}, "expected int"),
        ({"place": {"city": "x"}, "days": True}, "expected int"),
        ({"place": "Paris"}, "expected Place"),
    ],
)
def test_bind_refuses_bad_arguments_with_type_error(args: dict[str, Any], words: str) -> None:
    with pytest.raises(TypeError, match=words):
        tool_from_callable(get_weather).bind(args)


def test_a_copied_tool_binds_as_the_original() -> None:
    tool = dataclasses.replace(tool_from_callable(get_weather), scheduling="SILENT")
    assert tool.scheduling == "SILENT"
    assert tool.bind({"place": {"city": "Rome"}, "unit": "celsius"}) == ([], {"place": Place("Rome"), "unit": Unit.C})

    def f(x: Annotated[int | None, "maybe"]) -> None: ...

    assert tool_from_callable(f).bind({}) == ([], {"x": None})


def test_hand_declared_tool_binds_by_name() -> None:
    def raw(**kw: Any) -> None: ...

    def named(city, days=1):  # type: ignore[no-untyped-def]
        return city

    tool = Tool(name="named", function=named, parameters={"type": "OBJECT", "properties": {"city": {"type": "STRING"}}})
    assert tool.bind({"city": "Paris"}) == ([], {"city": "Paris"})
    assert tool.declaration()["parameters"]["properties"] == {"city": {"type": "STRING"}}
    assert Tool(name="raw", function=raw).bind({}) == ([], {})


# --------------------------------------------------------------------------------------------------
# Into the setup


def test_tools_wire_is_one_function_declarations_entry() -> None:
    wire = tools_wire([f_scalars, tool_from_callable(f_none, behavior="BLOCKING")])
    assert [d["name"] for d in wire[0]["functionDeclarations"]] == ["f_scalars", "f_none"]
    assert wire[0]["functionDeclarations"][1]["behavior"] == "BLOCKING"
    assert genai_types.Tool.model_validate(wire[0]).function_declarations is not None
    assert tools_wire([]) == []
    with pytest.raises(ConfigError, match="one function per name"):
        tools_wire([f_none, tool_from_callable(f_none)])


def test_config_takes_functions_tools_and_dicts_and_sends_them_in_the_setup() -> None:
    raw = {"googleSearch": {}}
    config = LiveGenerationConfig(tools=[raw, get_weather, tool_from_callable(f_none, behavior="NON_BLOCKING")])
    assert config.tools == (raw, {"functionDeclarations": [
        tool_from_callable(get_weather).declaration(), {"name": "f_none", "behavior": "NON_BLOCKING"}]})
    assert [t.name for t in config.function_tools] == ["get_weather", "f_none"]
    setup = m.Setup("models/gemini-3.8-live", config)
    frame = m.encode_client_frame(setup)
    genai_types.LiveClientMessage.model_validate(json.loads(frame))
    parsed = m.parse_client_frame(frame)
    assert parsed == setup  # function_tools are not compared: the wire carries declarations only
    assert isinstance(parsed, m.Setup) and parsed.config.function_tools == ()
    # The catalogue's setup check sees the declared behaviors of functions too.
    info = catalogue.lookup("gemini-3.8-live-extended-thinking")
    assert info is not None
    blocking = LiveGenerationConfig(
        tools=[tool_from_callable(f_none, behavior="BLOCKING")], thinking=ThinkingConfig(thinking_level="LOW")
    )
    refusal = catalogue.check_setup(info, "gemini", blocking)
    assert refusal is not None and refusal.code == 1007 and "BLOCKING" in refusal.reason


def test_config_refuses_duplicate_names_and_non_tools() -> None:
    with pytest.raises(ConfigError, match="one function per name"):
        LiveGenerationConfig(tools=[{"functionDeclarations": [{"name": "f_none"}]}, f_none])
    with pytest.raises(ConfigError):
        LiveGenerationConfig(tools=[42])
    with pytest.raises(ConfigError):
        LiveGenerationConfig(tools="f_none")
    assert LiveGenerationConfig(tools=[{"functionDeclarations": []}]).function_tools == ()


# --------------------------------------------------------------------------------------------------
# Results out


CALL = c.FunctionCall("get_weather", {"city": "Paris"}, id="fc-1")


@dataclasses.dataclass
class Forecast:
    when: datetime.date
    unit: Unit
    temps: tuple[float, ...]


@pytest.mark.parametrize(
    ("result", "response"),
    [
        ({"temp": 21}, {"temp": 21}),
        ("sunny", {"result": "sunny"}),
        (None, {"result": None}),
        ([1, 2], {"result": [1, 2]}),
        (ValueError("no such city"), {"error": "ValueError: no such city"}),
        (KeyError(), {"error": "KeyError"}),
        (TimeoutError("get_weather took more than 30 s"), {"error": "TimeoutError: get_weather took more than 30 s"}),
        ({1: "a"}, {"1": "a"}),
        (Forecast(datetime.date(2026, 9, 15), Unit.F, (1.5, math.nan)),
         {"result": {"when": "2026-09-15", "unit": "fahrenheit", "temps": [1.5, "nan"]}}),
        ({"s": {3, 1, 2}}, {"s": [1, 2, 3]}),
        (b"\x00\x01", {"result": "b'\\x00\\x01'"}),
        ("<b>bold</b>", {"result": "<b>bold</b>"}),
    ],
)
def test_response_for_shapes_results(result: object, response: dict[str, Any]) -> None:
    out = response_for(CALL, result)
    assert (out.id, out.name, dict(out.response)) == ("fc-1", "get_weather", response)
    assert out.scheduling is None and out.will_continue is None
    json.dumps(out.to_wire(), allow_nan=False)  # strict JSON, always


def test_response_for_scheduling_will_continue_and_prepared_responses() -> None:
    out = response_for(CALL, {"t": 1}, scheduling="silent", will_continue=True)
    assert (out.scheduling, out.will_continue) == ("SILENT", True)
    image = c.FunctionResponse("x", {"caption": "a chart"}, parts=(c.FunctionResponsePart(c.Blob(b"png", "image/png")),))
    out = response_for(CALL, image)
    assert (out.id, out.name, out.parts, dict(out.response)) == ("fc-1", "get_weather", image.parts, {"caption": "a chart"})
    with pytest.raises(LocalProtocolError):
        response_for(CALL, 1, scheduling="SOON")


def test_jsonable_bounds_cycles_depth_and_repr() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert jsonable(loop)[0] == 1 and isinstance(jsonable(loop)[1], str)
    deep: Any = "leaf"
    for _ in range(200):
        deep = [deep]
    encoded = json.dumps(response_for(CALL, deep).to_wire())
    m.parse_client_frame(json.dumps({"toolResponse": {"functionResponses": [json.loads(encoded)]}}))
    big = jsonable(object.__new__(type("Big", (), {"__repr__": lambda self: "x" * 10_000})))
    assert len(big) == MAX_REPR and big.endswith("…")
    broken = jsonable(object.__new__(type("Broken", (), {"__repr__": lambda self: 1 / 0})))
    assert "repr failed: ZeroDivisionError" in broken

    class Arrayish:
        def tolist(self) -> list[int]:
            return [1, 2]

    assert jsonable(Arrayish()) == [1, 2]


def test_responses_round_trip_through_the_wire_and_validate_for_the_sdk() -> None:
    responses = (
        response_for(CALL, {"temp": 21}, scheduling="WHEN_IDLE"),
        response_for(CALL, ValueError("x"), will_continue=False),
    )
    message = m.ToolResponse(responses)
    frame = m.encode_client_frame(message)
    assert m.parse_client_frame(frame) == message
    genai_types.LiveClientMessage.model_validate(json.loads(frame))
