"""The model catalogue (live_nb/protocol/catalogue.py): today's Live models and the rules each enforces.

Three layers, one source of truth (docs: /work/shared/docs/models.md sections 1-3):

1. ``check_setup`` / ``check_client_message`` as plain functions: every rule of models.md sections
   2 and 3, refused and accepted, with the close code and the service's reason.
2. The emulator over a real socket (plain ``websockets``, a setup JSON as the SDK sends it): each
   refusal closes the connection with that code and reason; and every usable catalogue model, on
   each backend that serves it, answers a text turn in AUDIO with its output transcription.
3. No default, README, doc, notebook or benchmark example names a model the catalogue lists as
   shut down (the list is read from the catalogue, never written out here).
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from emulator_constants import GEMINI_PATH, TEST_CHUNK_DELAY, VERTEX_PATH
from websockets.exceptions import ConnectionClosed

from live_nb.emulator import Emulator
from live_nb.emulator.server import clip_reason
from live_nb.protocol import catalogue
from live_nb.protocol.catalogue import (
    BACKEND_OFFERS,
    CATALOGUE,
    DEFAULT_MODEL,
    ClientContentGate,
    ModelInfo,
    Refusal,
    check_client_message,
    check_setup,
    lookup,
)
from live_nb.protocol.config import (
    HistoryConfig,
    LiveGenerationConfig,
    ProactivityConfig,
    SessionResumptionConfig,
    ThinkingConfig,
)
from live_nb.protocol.content import Content, FunctionResponse, Part
from live_nb.protocol.messages import ClientContent, ClientMessage, ContextUpdate, RealtimeInput, ToolResponse

ROOT = Path(__file__).resolve().parents[2]
Json = dict[str, Any]


def model(name: str) -> ModelInfo:
    info = lookup(name)
    assert info is not None, name
    return info


M38 = model("gemini-3.8-live")
EXT = model("gemini-3.8-live-extended-thinking")
M31 = model("gemini-3.1-flash-live-preview")
N25 = model("gemini-2.5-flash-native-audio-preview-12-2025")
N25_09 = model("gemini-2.5-flash-native-audio-preview-09-2025")
V25 = model("gemini-live-2.5-flash-native-audio")
NATIVE_25 = (N25, N25_09, V25)
GEN3 = (M38, EXT, M31)
USABLE = tuple(info for info in CATALOGUE if info.usable)
SHUT_DOWN = tuple(info for info in CATALOGUE if info.status == catalogue.SHUT_DOWN)

INVALID = "Request contains an invalid argument"
TEXT_REFUSED_3X = "The requested combination of response modalities (TEXT) is not supported by the model."
TEXT_REFUSED_25 = "Cannot extract voices from a non-audio request."


def config(modality: str = "AUDIO", **fields: Any) -> LiveGenerationConfig:
    return LiveGenerationConfig(response_modalities=[modality], **fields)


def home(info: ModelInfo) -> str:
    """A backend that serves the model (the Developer API when both do)."""
    return "gemini" if "gemini" in info.backends else info.backends[0]


def setup_check(info: ModelInfo, flavor: str | None = "home", **fields: Any) -> Refusal | None:
    """``check_setup`` on an AUDIO config (with the level extended thinking needs), on the model's home backend
    unless ``flavor`` names one (None: a flavour the client cannot tell)."""
    resumption = fields.pop("resumption", None)
    modality = fields.pop("modality", "AUDIO")
    if info.thinking == "level_required" and "thinking" not in fields:
        fields["thinking"] = ThinkingConfig(thinking_level="LOW")
    return check_setup(info, home(info) if flavor == "home" else flavor, config(modality, **fields), resumption)


def refused(result: Refusal | None, code: int = 1007) -> Refusal:
    assert result is not None, "expected a refusal"
    assert result.code == code, result
    return result


def tools(behavior: str | None, spelling: str = "functionDeclarations") -> list[Json]:
    decl: Json = {"name": "lookup"}
    if behavior is not None:
        decl["behavior"] = behavior
    return [{spelling: [decl]}]


def text_turn(text: str, role: str = "user", complete: bool = True) -> ClientContent:
    return ClientContent((Content(role, (Part(text=text),)),), complete)


# 1. The catalogue as data.


def test_catalogue_rows_are_consistent() -> None:
    names = [name for info in CATALOGUE for name in (info.id, *info.aliases)]
    assert len(names) == len(set(names))  # one row per name
    for info in CATALOGUE:
        assert set(info.backends) <= set(BACKEND_OFFERS), info.id
        if info.usable:
            assert info.response_modalities == ("AUDIO",), info.id  # no current Live model answers in TEXT
        else:
            assert info.shut_down and info.replacement, info.id
            assert model(info.replacement).usable and info.replacement in [m.id for m in USABLE]
        if info.replacement:
            assert lookup(info.replacement) is not None
    for flavor in BACKEND_OFFERS:  # each backend serves a current model
        assert any(flavor in info.backends and info.status == catalogue.CURRENT for info in CATALOGUE)
    assert SHUT_DOWN, "the catalogue lists the models shut down on 2025-12-09"


def test_default_model_is_current_on_both_backends() -> None:
    info = model(DEFAULT_MODEL)
    assert DEFAULT_MODEL == "gemini-3.8-live" and info.status == catalogue.CURRENT
    assert set(info.backends) == {"gemini", "vertex"}


def test_lookup_reads_prefixes_and_aliases() -> None:
    for name in ("gemini-3.8-live", "models/gemini-3.8-live", "publishers/google/models/gemini-3.8-live",
                 "projects/p/locations/us-central1/publishers/google/models/gemini-3.8-live"):
        assert lookup(name) is M38
    assert lookup("models/gemini-2.5-flash-native-audio-latest") is N25
    assert lookup("gemini-9-live") is None  # unknown: not refused here (the client warns, the emulator 1008s)


# 2. Setup rules, model by model (models.md section 2).


@pytest.mark.parametrize("info", USABLE, ids=lambda i: i.id)
def test_audio_setup_accepted_on_every_usable_model(info: ModelInfo) -> None:
    for flavor in info.backends:
        assert setup_check(info, flavor) is None
        assert setup_check(info, flavor, output_audio_transcription=True, input_audio_transcription=True) is None


@pytest.mark.parametrize("info", USABLE, ids=lambda i: i.id)
def test_text_refused_on_every_audio_only_model_with_its_reason(info: ModelInfo) -> None:
    expected = TEXT_REFUSED_25 if info in NATIVE_25 else TEXT_REFUSED_3X
    refusal = refused(setup_check(info, modality="TEXT"))
    assert refusal.reason == expected and refusal.field == "response_modalities"
    assert info.id in refusal.advice and "output_audio_transcription" in refusal.advice


@pytest.mark.parametrize("level", ["MINIMAL", "LOW", "MEDIUM", "HIGH"])
def test_38_has_no_thinking_knob(level: str) -> None:
    refusal = refused(setup_check(M38, thinking=ThinkingConfig(thinking_level=level)))
    assert refusal.reason == "Thinking level is not supported for this model."
    assert "extended-thinking" in refusal.advice
    assert refused(setup_check(M38, thinking=ThinkingConfig(thinking_budget=512))).reason == refusal.reason
    assert setup_check(M38, thinking=ThinkingConfig(include_thoughts=True)) is None  # no level, no budget: fine


def test_extended_thinking_needs_low_medium_or_high() -> None:
    for thinking in (None, ThinkingConfig(), ThinkingConfig(include_thoughts=True)):
        refusal = refused(check_setup(EXT, "gemini", config(thinking=thinking)))
        assert refusal.reason == "Thinking level must be specified for this model."
        assert "LOW, MEDIUM, HIGH" in refusal.advice
    minimal = refused(setup_check(EXT, thinking=ThinkingConfig(thinking_level="minimal")))
    assert minimal.reason == "Thinking level MINIMAL is not supported for this model." and minimal.value == "MINIMAL"
    for level in ("LOW", "low", "MEDIUM", "HIGH"):
        assert setup_check(EXT, thinking=ThinkingConfig(thinking_level=level)) is None
    budget = refused(setup_check(EXT, thinking=ThinkingConfig(thinking_level="LOW", thinking_budget=100)))
    assert "budget" in budget.reason


def test_31_takes_every_level_and_no_budget() -> None:
    assert M31.default_thinking_level == "MINIMAL"
    assert setup_check(M31) is None
    for level in ("MINIMAL", "LOW", "MEDIUM", "HIGH"):
        assert setup_check(M31, thinking=ThinkingConfig(thinking_level=level)) is None
    refusal = refused(setup_check(M31, thinking=ThinkingConfig(thinking_budget=1024)))
    assert refusal.reason == "Thinking budget is not supported for this model; use thinkingLevel."


@pytest.mark.parametrize("info", NATIVE_25, ids=lambda i: i.id)
def test_25_takes_a_budget_not_a_level(info: ModelInfo) -> None:
    for budget in (0, 1024, -1):  # 0 turns thinking off, -1 lets the model decide
        assert setup_check(info, thinking=ThinkingConfig(thinking_budget=budget)) is None
    refusal = refused(setup_check(info, thinking=ThinkingConfig(thinking_level="LOW")))
    assert refusal.reason == "Thinking level is not supported for this model."
    assert "thinking_budget" in refusal.advice


@pytest.mark.parametrize("info", USABLE, ids=lambda i: i.id)
def test_affective_dialog_only_on_25(info: ModelInfo) -> None:
    for value in (True, False):
        result = setup_check(info, enable_affective_dialog=value)
        if info in NATIVE_25:
            assert result is None
        else:
            refusal = refused(result)
            assert refusal.reason == f"{INVALID}: enableAffectiveDialog is not supported for this model."
            assert refusal.field == "enable_affective_dialog" and "gemini-2.5-flash-native-audio" in refusal.advice
    assert setup_check(info) is None


def test_proactive_audio_rules() -> None:
    # 3.8: always on; turning it off is an error, asking for it is fine.
    off = refused(setup_check(M38, proactivity=ProactivityConfig(proactive_audio=False)))
    assert off.reason == f"{INVALID}: proactive audio cannot be turned off for this model."
    assert off.field == "proactivity.proactive_audio"
    assert setup_check(M38, proactivity=ProactivityConfig(proactive_audio=True)) is None
    # Extended thinking and 3.1: any proactivity setting is refused.
    for info in (EXT, M31):
        for value in (True, False):
            refusal = refused(setup_check(info, proactivity=ProactivityConfig(proactive_audio=value)))
            assert refusal.reason == f"{INVALID}: proactivity is not supported for this model."
    # 2.5 native audio: optional either way.
    for info in NATIVE_25:
        for value in (True, False):
            assert setup_check(info, proactivity=ProactivityConfig(proactive_audio=value)) is None
    # An empty proactivity block sets nothing: accepted everywhere.
    for info in USABLE:
        assert setup_check(info, proactivity=ProactivityConfig()) is None


def test_function_behaviour_rules() -> None:
    blocking = refused(setup_check(EXT, tools=tools("BLOCKING")))
    assert blocking.reason == "BLOCKING function calls are not supported for this model"
    assert blocking.field == "tools" and blocking.value == "lookup"
    assert refused(setup_check(EXT, tools=tools("blocking", "function_declarations"))).reason == blocking.reason
    assert setup_check(EXT, tools=tools("NON_BLOCKING")) is None and setup_check(EXT, tools=tools(None)) is None
    non_blocking = refused(setup_check(M31, tools=tools("NON_BLOCKING")))
    assert non_blocking.reason == f"{INVALID}: NON_BLOCKING function calls are not supported for this model."
    assert setup_check(M31, tools=tools("BLOCKING")) is None and setup_check(M31, tools=tools(None)) is None
    for info in (M38, *NATIVE_25):
        for behavior in ("BLOCKING", "NON_BLOCKING", None):
            assert setup_check(info, tools=tools(behavior)) is None, (info.id, behavior)
    assert M38.function_behavior == "NON_BLOCKING" and EXT.function_behavior == "NON_BLOCKING"


def test_shut_down_models_get_1008_naming_the_replacement() -> None:
    for info in SHUT_DOWN:
        for modality in ("TEXT", "AUDIO"):  # refused for being gone, whatever is asked
            refusal = refused(check_setup(info, "gemini", config(modality), model_as_sent=f"models/{info.id}"), 1008)
            assert refusal.reason == (
                f"models/{info.id} is not found for API version v1beta, or is not supported for bidiGenerateContent. "
                "Call ListModels to see the list of available models and their supported methods."
            )
            assert refusal.field == "model"
            assert info.replacement is not None and info.replacement in refusal.advice
            assert info.shut_down is not None and info.shut_down in refusal.advice and "shut down" in refusal.advice
        vertex = refused(check_setup(info, "vertex", config()), 1008)
        assert vertex.reason.startswith(f"Publisher Model `{info.id}` was not found")


def test_models_refused_on_a_backend_that_does_not_serve_them() -> None:
    ext = refused(check_setup(EXT, "vertex", config(thinking=ThinkingConfig(thinking_level="LOW"))), 1008)
    assert ext.reason == (
        "Publisher Model `gemini-3.8-live-extended-thinking` was not found or your project does not have access to it."
    )
    assert "not served on Vertex AI" in ext.advice and "gemini-3.8-live" in ext.advice
    for info in CATALOGUE:
        for flavor in BACKEND_OFFERS:
            if info.usable and flavor not in info.backends:
                refusal = refused(setup_check(info, flavor), 1008)
                where = "Vertex AI" if flavor == "vertex" else "the Gemini Developer API"
                assert f"not served on {where}" in refusal.advice, (info.id, flavor)
    # With no flavour (a bare emulator URL the client cannot place), backend rules wait for the server.
    assert check_setup(EXT, None, config(thinking=ThinkingConfig(thinking_level="LOW"))) is None


# 3. Backend rules (models.md section 3).


def test_transparent_resumption_is_vertex_only() -> None:
    transparent = SessionResumptionConfig(transparent=True)
    refusal = refused(setup_check(M38, "gemini", resumption=transparent))
    assert refusal.reason == f"{INVALID}: transparent session resumption is not supported."
    assert refusal.field == "session_resumption.transparent" and "Vertex AI" in refusal.advice
    assert setup_check(M38, "vertex", resumption=transparent) is None
    assert setup_check(M38, None, resumption=transparent) is None
    assert setup_check(M38, "gemini", resumption=SessionResumptionConfig()) is None
    assert setup_check(M38, "gemini", resumption=SessionResumptionConfig(handle="h")) is None
    assert BACKEND_OFFERS["gemini"].handle_retention_seconds == 2 * 3600
    assert BACKEND_OFFERS["vertex"].handle_retention_seconds == 24 * 3600


def message_check(info: ModelInfo | None, flavor: str | None, message: ClientMessage, **fields: Any) -> Refusal | None:
    gate = fields.pop("gate", None)
    return check_client_message(info, flavor, config(**fields), message, gate)


def test_system_role_turn_is_vertex_only() -> None:
    for role in ("system", "SYSTEM"):
        refusal = refused(message_check(M38, "gemini", text_turn("be a pirate", role, False)))
        assert refusal.reason == f'{INVALID}: role "system" is not supported in clientContent.'
        assert "Vertex AI" in refusal.advice
        assert message_check(M38, "vertex", text_turn("be a pirate", role, False)) is None
        assert message_check(M38, None, text_turn("be a pirate", role, False)) is None
    for role in ("user", "model"):
        assert message_check(M38, "gemini", text_turn("hi", role)) is None


def test_context_update_is_vertex_only() -> None:
    update = ContextUpdate(system_instruction=Content("user", (Part(text="be kind"),)), tools=tuple(tools(None)))
    refusal = refused(message_check(M38, "gemini", update))
    assert refusal.reason == f"{INVALID}: contextUpdate is not supported." and refusal.field == "context_update"
    assert message_check(M38, "vertex", update) is None and message_check(M38, None, update) is None


def test_scheduling_refused_on_extended_thinking() -> None:
    scheduled = ToolResponse((FunctionResponse("lookup", {"ok": True}, id="fc-1", scheduling="WHEN_IDLE"),))
    plain = ToolResponse((FunctionResponse("lookup", {"ok": True}, id="fc-1"),))
    refusal = refused(message_check(EXT, "gemini", scheduled))
    assert refusal.reason == f"{INVALID}: scheduling is not supported for this model." and EXT.id in refusal.advice
    assert message_check(EXT, "gemini", plain) is None
    for info in (M38, *NATIVE_25):  # 3.8: SILENT / WHEN_IDLE / INTERRUPT; 2.5: NON_BLOCKING optional
        for scheduling in ("SILENT", "WHEN_IDLE", "INTERRUPT"):
            response = ToolResponse((FunctionResponse("lookup", {}, id="fc-1", scheduling=scheduling),))
            assert message_check(info, home(info), response) is None


def test_31_client_content_only_as_initial_history() -> None:
    history = text_turn("my name is Ada", complete=False)
    refusal = refused(message_check(M31, "gemini", history))  # no historyConfig: never
    assert refusal.reason == f"{INVALID}: clientContent is only accepted as initial history for this model."
    assert "send_realtime_text" in refusal.advice
    with_history = {"history_config": HistoryConfig(initial_history_in_client_content=True)}
    assert message_check(M31, "gemini", history, **with_history) is None  # no gate: nothing seen yet
    # The gate stays open through history and closes when the conversation starts.
    for starter in (RealtimeInput(text="hello"), text_turn("go on"), ToolResponse((FunctionResponse("f", {}),))):
        gate = ClientContentGate()
        for _ in range(2):
            assert message_check(M31, "gemini", history, gate=gate, **with_history) is None
            gate.observe(history)
        assert gate.open
        assert message_check(M31, "gemini", starter, gate=gate, **with_history) is None  # the starter itself is fine
        gate.observe(starter)
        assert not gate.open
        late = refused(message_check(M31, "gemini", history, gate=gate, **with_history))
        assert late.reason == refusal.reason
        assert message_check(M31, "gemini", RealtimeInput(text="more"), gate=gate, **with_history) is None
    # Other models take clientContent any time.
    closed = ClientContentGate(open=False)
    for info in (M38, EXT, *NATIVE_25):
        assert message_check(info, home(info), history, gate=closed) is None


# 4. The emulator refuses on the wire, with the same codes and reasons.


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """``Emulator()`` as shipped (Vertex flavour on its bare URL), started on a free port."""
    emulator = Emulator(port=0, chunk_delay=TEST_CHUNK_DELAY)
    await emulator.start()
    try:
        yield emulator
    finally:
        await emulator.stop()
        emulator.cleanup()


def open_ws(emulator: Emulator, path: str) -> Any:
    return websockets.connect(emulator.url + path, additional_headers={"x-goog-api-key": "test-key"})


async def recv(ws: Any, timeout: float = 5.0) -> Json:
    data = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert isinstance(data, dict)
    return data


async def close_of(ws: Any, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; (code, reason) as the client saw them."""
    with pytest.raises(ConnectionClosed) as closed:
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
    rcvd = closed.value.rcvd
    assert rcvd is not None, "closed without a close frame"
    return rcvd.code, rcvd.reason


def setup_body(name: str, modality: str = "AUDIO", **fields: Any) -> Json:
    generation: Json = {"responseModalities": [modality], **fields.pop("generation", {})}
    return {"setup": {"model": name, "generationConfig": generation, **fields}}


LOW: Json = {"thinkingConfig": {"thinkingLevel": "LOW"}}
HISTORY: Json = {"historyConfig": {"initialHistoryInClientContent": True}}


def user_turn(text: str, complete: bool = True, role: str = "user") -> Json:
    return {"clientContent": {"turns": [{"role": role, "parts": [{"text": text}]}], "turnComplete": complete}}


def unknown_gemini(name: str) -> str:
    return (f"{name} is not found for API version v1beta, or is not supported for bidiGenerateContent. "
            "Call ListModels to see the list of available models and their supported methods.")


def unknown_vertex(name: str) -> str:
    return f"Publisher Model `{name}` was not found or your project does not have access to it."


WIRE_REFUSALS: list[tuple[str, str, Json, list[Json], int, str]] = [
    # (case, path, setup, messages after setupComplete, code, reason as the service words it)
    ("text-3.8", GEMINI_PATH, setup_body("models/gemini-3.8-live", "TEXT"), [], 1007, TEXT_REFUSED_3X),
    ("text-3.8-vertex", VERTEX_PATH, setup_body("publishers/google/models/gemini-3.8-live", "TEXT"), [], 1007,
     TEXT_REFUSED_3X),
    ("text-extended", GEMINI_PATH, setup_body(f"models/{EXT.id}", "TEXT", generation=LOW), [], 1007, TEXT_REFUSED_3X),
    ("text-3.1", GEMINI_PATH, setup_body(f"models/{M31.id}", "TEXT"), [], 1007, TEXT_REFUSED_3X),
    ("text-2.5-12", GEMINI_PATH, setup_body(f"models/{N25.id}", "TEXT"), [], 1007, TEXT_REFUSED_25),
    ("text-2.5-latest", GEMINI_PATH, setup_body("models/gemini-2.5-flash-native-audio-latest", "TEXT"), [], 1007,
     TEXT_REFUSED_25),
    ("text-2.5-09", GEMINI_PATH, setup_body(f"models/{N25_09.id}", "TEXT"), [], 1007, TEXT_REFUSED_25),
    ("text-2.5-vertex", VERTEX_PATH, setup_body(f"publishers/google/models/{V25.id}", "TEXT"), [], 1007,
     TEXT_REFUSED_25),
    ("thinking-3.8", GEMINI_PATH, setup_body("models/gemini-3.8-live", generation=LOW), [], 1007,
     "Thinking level is not supported for this model."),
    ("extended-no-level", GEMINI_PATH, setup_body(f"models/{EXT.id}"), [], 1007,
     "Thinking level must be specified for this model."),
    ("extended-minimal", GEMINI_PATH,
     setup_body(f"models/{EXT.id}", generation={"thinkingConfig": {"thinkingLevel": "MINIMAL"}}), [], 1007,
     "Thinking level MINIMAL is not supported for this model."),
    ("budget-3.1", GEMINI_PATH, setup_body(f"models/{M31.id}", generation={"thinkingConfig": {"thinkingBudget": 512}}),
     [], 1007, "Thinking budget is not supported for this model; use thinkingLevel."),
    ("level-2.5", GEMINI_PATH, setup_body(f"models/{N25.id}", generation=LOW), [], 1007,
     "Thinking level is not supported for this model."),
    ("affective-3.8", GEMINI_PATH, setup_body("models/gemini-3.8-live", generation={"enableAffectiveDialog": True}),
     [], 1007, f"{INVALID}: enableAffectiveDialog is not supported for this model."),
    ("affective-extended", GEMINI_PATH,
     setup_body(f"models/{EXT.id}", generation={**LOW, "enableAffectiveDialog": True}), [], 1007,
     f"{INVALID}: enableAffectiveDialog is not supported for this model."),
    ("affective-3.1", GEMINI_PATH, setup_body(f"models/{M31.id}", generation={"enableAffectiveDialog": False}), [],
     1007, f"{INVALID}: enableAffectiveDialog is not supported for this model."),
    ("proactive-off-3.8", GEMINI_PATH, setup_body("models/gemini-3.8-live", proactivity={"proactiveAudio": False}),
     [], 1007, f"{INVALID}: proactive audio cannot be turned off for this model."),
    ("proactive-extended", GEMINI_PATH,
     setup_body(f"models/{EXT.id}", generation=LOW, proactivity={"proactiveAudio": True}), [], 1007,
     f"{INVALID}: proactivity is not supported for this model."),
    ("proactive-3.1", GEMINI_PATH, setup_body(f"models/{M31.id}", proactivity={"proactiveAudio": True}), [], 1007,
     f"{INVALID}: proactivity is not supported for this model."),
    ("blocking-extended", GEMINI_PATH,
     setup_body(f"models/{EXT.id}", generation=LOW, tools=tools("BLOCKING")), [], 1007,
     "BLOCKING function calls are not supported for this model"),
    ("non-blocking-3.1", GEMINI_PATH, setup_body(f"models/{M31.id}", tools=tools("NON_BLOCKING")), [], 1007,
     f"{INVALID}: NON_BLOCKING function calls are not supported for this model."),
    ("transparent-gemini", GEMINI_PATH,
     setup_body("models/gemini-3.8-live", sessionResumption={"transparent": True}), [], 1007,
     f"{INVALID}: transparent session resumption is not supported."),
    ("extended-on-vertex", VERTEX_PATH, setup_body(f"publishers/google/models/{EXT.id}", generation=LOW), [], 1008,
     unknown_vertex(f"publishers/google/models/{EXT.id}")),
    ("extended-on-bare-url", "/", setup_body(f"models/{EXT.id}", generation=LOW), [], 1008,
     unknown_vertex(f"models/{EXT.id}")),
    ("3.1-on-vertex", VERTEX_PATH, setup_body(f"publishers/google/models/{M31.id}"), [], 1008,
     unknown_vertex(f"publishers/google/models/{M31.id}")),
    ("vertex-2.5-on-gemini", GEMINI_PATH, setup_body(f"models/{V25.id}"), [], 1008, unknown_gemini(f"models/{V25.id}")),
    # After setup: client messages.
    ("scheduling-extended", GEMINI_PATH, setup_body(f"models/{EXT.id}", generation=LOW, tools=tools(None)),
     [user_turn("lookup it"),
      {"toolResponse": {"functionResponses": [{"id": "fc-1", "name": "lookup", "response": {"ok": True},
                                               "scheduling": "WHEN_IDLE"}]}}],
     1007, f"{INVALID}: scheduling is not supported for this model."),
    ("client-content-3.1", GEMINI_PATH, setup_body(f"models/{M31.id}"), [user_turn("hello")], 1007,
     f"{INVALID}: clientContent is only accepted as initial history for this model."),
    ("client-content-3.1-after-start", GEMINI_PATH, setup_body(f"models/{M31.id}", **HISTORY),
     [user_turn("my name is Ada", complete=False), {"realtimeInput": {"text": "hello"}}, user_turn("more")], 1007,
     f"{INVALID}: clientContent is only accepted as initial history for this model."),
    ("system-role-gemini", GEMINI_PATH, setup_body("models/gemini-3.8-live"),
     [user_turn("be a pirate", complete=False, role="system")], 1007,
     f'{INVALID}: role "system" is not supported in clientContent.'),
    ("context-update-gemini", GEMINI_PATH, setup_body("models/gemini-3.8-live"),
     [{"contextUpdate": {"systemInstruction": {"parts": [{"text": "be kind"}]}}}], 1007,
     f"{INVALID}: contextUpdate is not supported."),
]
WIRE_REFUSALS += [
    (f"shut-down-{info.id}-{modality.lower()}-{where}", path, setup_body(name, modality), [], 1008, reason)
    for info in SHUT_DOWN
    for modality in ("TEXT", "AUDIO")
    for where, path, name, reason in (
        ("gemini", GEMINI_PATH, f"models/{info.id}", unknown_gemini(f"models/{info.id}")),
        ("bare-url", "/", f"models/{info.id}", unknown_vertex(f"models/{info.id}")),
    )
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("path", "setup", "messages", "code", "reason"),
                         [case[1:] for case in WIRE_REFUSALS], ids=[case[0] for case in WIRE_REFUSALS])
async def test_emulator_refuses_on_the_wire(
    emu: Emulator, path: str, setup: Json, messages: list[Json], code: int, reason: str
) -> None:
    async with open_ws(emu, path) as ws:
        await ws.send(json.dumps(setup))
        if messages:
            first = await recv(ws)
            assert "setupComplete" in first, first
            for message in messages:
                await ws.send(json.dumps(message))
        seen = await close_of(ws)
    assert seen == (code, clip_reason(reason))
    assert emu.refused[-1] == (code, reason)  # the whole reason, before the close frame cut it to 123 bytes


# 5. Every usable model answers, on every backend that serves it.

POSITIVE = [
    (info, flavor, name)
    for info in USABLE
    for flavor in info.backends
    for name in (info.id, *info.aliases)
]


def wire_name(name: str, flavor: str) -> str:
    """The model as the SDK sends it: ``models/x`` to the Developer API, the full resource name to Vertex."""
    return f"models/{name}" if flavor == "gemini" else f"projects/p/locations/us-central1/publishers/google/models/{name}"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("info", "flavor", "name"), POSITIVE, ids=[f"{n}-{f}" for _, f, n in POSITIVE])
async def test_every_usable_model_answers_in_audio_with_transcription(
    emu: Emulator, info: ModelInfo, flavor: str, name: str
) -> None:
    generation: Json = {"speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}}
    if info.thinking == "level_required":
        generation.update(LOW)
    extra: Json = {"outputAudioTranscription": {}, "inputAudioTranscription": {}}
    if info.client_content == "initial_history":
        extra.update(HISTORY)
    path = GEMINI_PATH if flavor == "gemini" else VERTEX_PATH
    frames: list[Json] = []
    async with open_ws(emu, path) as ws:
        await ws.send(json.dumps(setup_body(wire_name(name, flavor), generation=generation, **extra)))
        hello = await recv(ws)
        assert "setupComplete" in hello and hello["setupComplete"]["sessionId"], hello
        if info.client_content == "initial_history":
            # 3.1: history first as clientContent, then the conversation as realtime text.
            await ws.send(json.dumps(user_turn("my name is Ada", complete=False)))
            await ws.send(json.dumps({"realtimeInput": {"text": "what is the weather like"}}))
        else:
            await ws.send(json.dumps(user_turn("what is the weather like")))
        # Extended thinking thinks aloud first: a filler turn ending interactionStatus IN_PROGRESS.
        while not frames or not frames[-1].get("serverContent", {}).get("turnComplete") or (
            frames[-1]["serverContent"].get("interactionStatus") == "IN_PROGRESS"
        ):
            frames.append(await recv(ws))
    assert emu.paths[-1] == (path, flavor) and not emu.refused
    contents = [f["serverContent"] for f in frames if "serverContent" in f]
    parts = [p for c in contents for p in c.get("modelTurn", {}).get("parts", [])]
    assert parts and all(set(p) == {"inlineData"} for p in parts)  # AUDIO only: no text parts
    assert {p["inlineData"]["mimeType"] for p in parts} == {"audio/pcm;rate=24000"}
    assert sum(len(base64.b64decode(p["inlineData"]["data"])) for p in parts) > 24_000  # over half a second
    said = "".join(c.get("outputTranscription", {}).get("text", "") for c in contents)
    filler = "Let me think about that. " if info.interaction_status else ""
    assert said.startswith(f"{filler}Turn 1.") and 'You asked: "what is the weather like"' in said
    assert contents[-2] == {"generationComplete": True} and contents[-1]["turnComplete"] is True
    assert contents[-1].get("interactionStatus") == ("IDLE" if info.interaction_status else None)
    usage = frames[-1]["usageMetadata"]
    response_details = usage["responseTokensDetails" if flavor == "gemini" else "candidatesTokensDetails"]
    assert response_details[0]["modality"] == "AUDIO"
    empty = [f for f in frames if f == {}]
    assert bool(empty) == info.empty_frames  # 3.8 sends {} between content messages; the others do not


# 6. No example or default names a shut-down model.

SHUT_DOWN_NAMES = tuple(name for info in SHUT_DOWN for name in (info.id, *info.aliases))
_NAME = re.compile("|".join(rf"(?<![\w-]){re.escape(name)}(?![\w-])" for name in SHUT_DOWN_NAMES))
_SAYS_SHUT_DOWN = re.compile(r"shut[ -]?down", re.IGNORECASE)


def _markdown_hits(text: str, where: str) -> list[str]:
    """Lines naming a shut-down model. Prose that says the model is shut down is allowed (a table of what
    gets refused is documentation, not an example); inside a fenced code block nothing is allowed."""
    hits: list[str] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if _NAME.search(line) and (fenced or not _SAYS_SHUT_DOWN.search(line)):
            hits.append(f"{where}:{number}: {line.strip()[:160]}")
    return hits


def _code_hits(text: str, where: str) -> list[str]:
    return [f"{where}:{number}: {line.strip()[:160]}"
            for number, line in enumerate(text.splitlines(), 1) if _NAME.search(line)]


def _notebook_hits(path: Path) -> list[str]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    hits: list[str] = []
    for index, cell in enumerate(notebook.get("cells", [])):
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        where = f"{path.relative_to(ROOT)} cell {index}"
        hits += _markdown_hits(text, where) if cell.get("cell_type") == "markdown" else _code_hits(text, where)
    return hits


def _scan(group: str) -> list[str]:
    hits: list[str] = []
    if group == "README.md":
        readme = ROOT / "README.md"
        hits += _markdown_hits(readme.read_text(encoding="utf-8"), "README.md")
    elif group == "docs":
        for path in sorted((ROOT / "docs").glob("*.md")):
            hits += _markdown_hits(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    elif group == "notebooks":
        for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
            hits += _notebook_hits(path)
    elif group == "bench":
        for path in sorted((ROOT / "bench").glob("*.py")):
            hits += _code_hits(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    else:  # live_nb: every module but the catalogue, which is where the shut-down models are listed
        catalogue_file = Path(inspect.getfile(catalogue)).resolve()
        for path in sorted((ROOT / "live_nb").rglob("*.py")):
            if path.resolve() != catalogue_file:
                hits += _code_hits(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    return hits


def test_scan_finds_what_it_should() -> None:
    """The scanner itself: it flags examples and code, and lets prose saying "shut down" through."""
    dead = SHUT_DOWN_NAMES[0]
    assert _code_hits(f'MODEL = "{dead}"', "x") and _code_hits(f"LiveModel('models/{dead}')", "x")
    assert _markdown_hits(f"```python\nLiveModel('{dead}')  # shut down\n```", "x")
    assert not _markdown_hits(f"| `{dead}` | shut down 2025-12-09 | refused |", "x")
    assert _markdown_hits(f"Try `{dead}` for text replies.", "x")
    assert not _code_hits(f'MODEL = "{dead}-but-longer"', "x") and not _code_hits("gemini-3.8-live", "x")


@pytest.mark.parametrize("group", ["README.md", "docs", "notebooks", "bench", "live_nb"])
def test_no_example_or_default_names_a_shut_down_model(group: str) -> None:
    hits = _scan(group)
    assert not hits, (
        f"{len(hits)} place(s) name a model the catalogue lists as shut down ({', '.join(SHUT_DOWN_NAMES)}); "
        f"use {DEFAULT_MODEL} (AUDIO + output_audio_transcription for reply text):\n" + "\n".join(hits)
    )


def test_defaults_name_usable_models() -> None:
    assert model(DEFAULT_MODEL).usable
    from live_nb.client.session import LiveModel

    default = inspect.signature(LiveModel.__init__).parameters["model_name"].default
    assert default == DEFAULT_MODEL
    pytest.importorskip("IPython")
    from live_nb.notebook.magics import LiveMagics

    trait = LiveMagics.class_traits()["model"].default_value
    assert model(trait).usable and trait == DEFAULT_MODEL
