"""ServerProtocol without sockets: live_nb's ClientProtocol against it in memory (tests/protocol_pair.py).

Every decision the service makes about a connection is checked here on plain values: setup
admission, resume admission (handle, model, another connection, retention on a clock the test
moves), checkpoint -> handle, the wire spelling of usage per flavour, GoAway and the deadline.
"""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pytest
from protocol_pair import ProtocolPair

import live_nb.emulator.server_protocol as server_protocol_module
from live_nb.emulator.engine import EngineSettings
from live_nb.emulator.responder import ContextResponder
from live_nb.emulator.server_protocol import (
    AWAITING_RESUME,
    CLOSED,
    DEADLINE_EXPIRED,
    OPEN,
    STILL_OPEN,
    Closing,
    ServerProtocol,
    parse_frame,
    usage_to_wire,
)
from live_nb.exceptions import InvalidState
from live_nb.protocol.client_protocol import GOING_AWAY, ClientProtocol
from live_nb.protocol.config import LiveGenerationConfig, SessionResumptionConfig
from live_nb.protocol.messages import (
    GoAway,
    ModalityTokenCount,
    RealtimeInput,
    ServerContent,
    SessionResumptionUpdate,
    SetupComplete,
    UsageMetadata,
)

MODEL = "models/gemini-3.8-live"
CONFIG = LiveGenerationConfig(response_modalities=["AUDIO"], output_audio_transcription=True)


def client(resumption: SessionResumptionConfig | None = None, model: str = MODEL) -> ClientProtocol:
    return ClientProtocol(model, CONFIG, resumption)


def updates(pair: ProtocolPair) -> list[SessionResumptionUpdate]:
    return [m for m in pair.received if isinstance(m, SessionResumptionUpdate)]


def refuse_first(frame: str, flavor: str = "gemini") -> Closing:
    """What a fresh connection answers to ``frame`` as its first message."""
    pair = ProtocolPair(client(), flavor=flavor)
    server = ServerProtocol(pair.book, flavor, pair.api_version, ContextResponder(), EngineSettings())
    server.receive(frame, pair.now)
    assert server.phase is CLOSED and server.session is None and server.data_to_send() == []
    (closing,) = server.events_received()
    assert isinstance(closing, Closing)
    return closing


# Setup admission.


def test_a_new_session_is_admitted_with_its_id() -> None:
    pair = ProtocolPair(client())
    server = pair.connect()
    assert server.phase is OPEN and not server.resumed
    assert server.session is not None and pair.book.sessions[server.session.session_id] is server.session
    assert pair.received == [SetupComplete(session_id=server.session.session_id)]
    assert pair.client.session_id == server.session.session_id and pair.client.state.public_name == "active"


def test_setup_refusals_carry_the_services_code_and_reason() -> None:
    assert refuse_first('{"clientContent": {"turnComplete": true}}') == Closing(
        1007, "Request contains an invalid argument: the first message must be setup."
    )
    assert refuse_first("not json").code == 1007
    long = refuse_first(json.dumps({"setup": {"model": "m" * 600}}))
    assert long.code == 1007 and "setup.model is too long (600 characters" in long.reason
    unknown = refuse_first(json.dumps({"setup": {"model": "models/gemini-9"}}))
    assert unknown.code == 1008 and "models/gemini-9 is not found for API version v1beta" in unknown.reason
    text = refuse_first(json.dumps({"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["TEXT"]}}}))
    assert text.code == 1007
    # Transparent resumption is Vertex's: the Developer API's path refuses it, Vertex's admits it.
    transparent = json.dumps({"setup": {"model": MODEL, "sessionResumption": {"transparent": True}}})
    assert refuse_first(transparent, "gemini").code == 1007
    pair = ProtocolPair(client(SessionResumptionConfig(transparent=True)), flavor="vertex")
    assert pair.connect().phase is OPEN


def test_models_outside_the_served_set_are_unknown() -> None:
    pair = ProtocolPair(client())
    server = ServerProtocol(
        pair.book, "gemini", "v1beta", ContextResponder(), EngineSettings(),
        models=frozenset({"gemini-3.1-flash-live-preview"}),
    )
    server.receive(json.dumps({"setup": {"model": MODEL}}), pair.now)
    (closing,) = server.events_received()
    assert isinstance(closing, Closing) and closing.code == 1008


def test_the_close_reason_is_cut_for_the_wire_but_kept_whole() -> None:
    closing = refuse_first(json.dumps({"setup": {"model": "models/" + "é" * 200}}))
    assert len(closing.wire_reason.encode()) <= 123 and closing.reason.startswith(closing.wire_reason)
    assert len(closing.reason.encode()) > 123


# Turns, handles, usage.


def test_a_turn_comes_back_with_a_handle_the_client_keeps() -> None:
    pair = ProtocolPair(client(SessionResumptionConfig(transparent=True)))
    server = pair.connect()
    pair.client.send_content("hello there")
    pair.pump()
    assert server.session is not None
    contents = [m for m in pair.received if isinstance(m, ServerContent)]
    assert contents[-1].turn_complete and any(c.generation_complete for c in contents)
    said = "".join(c.output_transcription.text for c in contents if c.output_transcription is not None)
    assert 'You asked: "hello there".' in said
    assert [u.resumable for u in updates(pair)] == [False, True]
    assert pair.client.handle == server.session.handles[-1] and pair.client.resumable
    assert updates(pair)[-1].last_consumed_client_message_index == 1
    assert pair.client.replay_depth == 0  # the handle's index confirmed the turn


@pytest.mark.parametrize(("flavor", "name"), [("vertex", "candidatesTokenCount"), ("gemini", "responseTokenCount")])
def test_usage_is_spelled_as_the_flavour_spells_it(flavor: str, name: str) -> None:
    pair = ProtocolPair(client(), flavor=flavor)
    pair.connect()
    pair.client.send_content("count my tokens")
    pair.pump()
    (frame,) = [f for f in pair.raw if b"usageMetadata" in (f if isinstance(f, bytes) else f.encode())]
    usage = json.loads(frame)["usageMetadata"]
    assert name in usage and usage[name] > 0 and usage["promptTokenCount"] > 0
    other = "responseTokenCount" if name == "candidatesTokenCount" else "candidatesTokenCount"
    assert other not in usage
    typed = [m for m in pair.received if isinstance(m, UsageMetadata)]
    assert typed and typed[-1].response_token_count == usage[name]  # the client reads both spellings


def test_usage_to_wire_renames_only_the_response_side_on_vertex() -> None:
    usage = UsageMetadata(
        prompt_token_count=3, response_token_count=2, total_token_count=5,
        response_tokens_details=(ModalityTokenCount("AUDIO", 2),),
    )
    assert usage_to_wire(usage, "gemini") == usage.to_wire()
    vertex = usage_to_wire(usage, "vertex")
    assert vertex["candidatesTokenCount"] == 2 and vertex["promptTokenCount"] == 3
    assert vertex["candidatesTokensDetails"] == [{"modality": "AUDIO", "tokenCount": 2}]
    assert "responseTokenCount" not in vertex


def test_text_frames_are_str_and_binary_frames_bytes() -> None:
    pair = ProtocolPair(client())
    for text_frames, kind in ((True, str), (False, bytes)):
        server = ServerProtocol(pair.book, "vertex", "v1beta1", ContextResponder(), EngineSettings(),
                                text_frames=text_frames)
        server.receive(json.dumps({"setup": {"model": MODEL}}), pair.now)
        (frame,) = server.data_to_send()
        assert isinstance(frame, kind) and "setupComplete" in json.loads(frame)


def test_a_reply_brings_the_models_empty_frames_and_a_barge_in_stops_it() -> None:
    pair = ProtocolPair(client(SessionResumptionConfig(transparent=True)), hold_replies=True)
    server = pair.connect()
    pair.client.send_content("tell me a long story about the sea and the ships upon it")
    pair.pump()
    (plan,) = pair.replies
    pair.stream(chunks=8)
    assert plan.sent == 8
    assert pair.raw.count(b"{}") == 2  # gemini-3.8-live sends {} between content messages
    pair.client.send_content("stop")
    pair.pump()
    assert plan.cancelled and not server.send_chunk(plan)
    interrupted = [m for m in pair.received if isinstance(m, ServerContent) and m.interrupted]
    assert len(interrupted) == 1
    # The barge-in checkpoint names message 1 (the story), not 2 (the "stop" that interrupted it).
    assert next(u.last_consumed_client_message_index for u in updates(pair) if u.resumable) == 1


# Resume admission.


def test_a_resume_restores_the_snapshot_on_a_new_connection() -> None:
    pair = ProtocolPair(client(SessionResumptionConfig(transparent=True)))
    first = pair.connect()
    pair.client.send_content("remember the word marmalade")
    pair.pump()
    assert first.session is not None
    session_id, turns = first.session.session_id, list(first.session.state.turns)
    pair.drop()
    second = pair.connect()
    assert second.phase is OPEN and second.resumed and second.session is first.session
    assert second.session.session_id == session_id and second.session.state.turns == turns
    assert pair.client.resume_report() is not None and pair.client.resume_report().state_restored  # type: ignore[union-attr]


def test_a_resume_waits_for_the_other_connection_then_gives_up_1011() -> None:
    pair = ProtocolPair(client(SessionResumptionConfig(transparent=True)))
    pair.connect()
    pair.client.send_content("hello")
    pair.pump()
    handle = pair.client.handle
    assert handle is not None
    # A second client resumes while the first connection is still open.
    other = ProtocolPair(client(SessionResumptionConfig(handle=handle, transparent=True)), book=pair.book)
    server = other.connect()
    assert server.phase is AWAITING_RESUME and server.resume_blocked and server.session is None
    with pytest.raises(InvalidState):
        server.receive("{}", other.now)
    server.retry_resume(other.now)
    assert server.resume_blocked  # still open: keep waiting
    server.retry_resume(other.now, give_up=True)
    assert server.events_received() == [Closing(1011, STILL_OPEN)]


def test_a_resume_waiting_is_admitted_once_the_other_connection_ends() -> None:
    pair = ProtocolPair(client(SessionResumptionConfig(transparent=True)))
    pair.connect()
    pair.client.send_content("hello")
    pair.pump()
    other = ProtocolPair(client(SessionResumptionConfig(handle=pair.client.handle, transparent=True)), book=pair.book)
    server = other.connect()
    assert server.resume_blocked
    pair.drop()
    server.retry_resume(other.now)
    assert server.phase is OPEN and server.resumed
    other.deliver()
    assert isinstance(other.received[0], SetupComplete)


def test_handles_expire_after_the_flavours_retention_on_the_callers_clock() -> None:
    for flavor, hours in (("gemini", 2), ("vertex", 24)):
        pair = ProtocolPair(client(SessionResumptionConfig()), flavor=flavor)
        pair.connect()
        pair.client.send_content("hello")
        pair.pump()
        pair.drop()
        pair.now += hours * 3600 - 1
        assert pair.connect().phase is OPEN  # within retention
        pair.drop()
        pair.now += hours * 3600 + 1
        server = pair.connect()
        assert server.phase is CLOSED
        assert pair.closes[-1].code == 1008
        assert f"the resumption handle expired ({hours:g} h after" in pair.closes[-1].reason


def test_forged_handles_and_a_changed_model_are_refused() -> None:
    pair = ProtocolPair(client(SessionResumptionConfig(handle="not-a-handle")))
    assert pair.connect().phase is CLOSED
    assert pair.closes == [Closing(1008, "BidiGenerateContent session not found")]
    first = ProtocolPair(client(SessionResumptionConfig()), flavor="gemini")
    first.connect()
    first.client.send_content("hello")
    first.pump()
    first.drop()
    other = ProtocolPair(
        client(SessionResumptionConfig(handle=first.client.handle), model="models/gemini-3.1-flash-live-preview"),
        book=first.book, flavor="gemini",
    )
    assert other.connect().phase is CLOSED
    assert other.closes[-1].code == 1007 and "the model cannot change on resume" in other.closes[-1].reason


@pytest.mark.parametrize("seed", range(6))
def test_messages_lost_in_flight_are_replayed_exactly_once(seed: int) -> None:
    """Random drops between client and server: after each resume the session holds every message once, in order."""
    rng = random.Random(seed)
    pair = ProtocolPair(client(SessionResumptionConfig(transparent=True)))
    pair.connect()
    sent: list[str] = []
    drops = 0
    for n in range(30):
        text = f"message {n}"
        sent.append(text)
        pair.client.send_realtime_text(text)
        if rng.random() < 0.2:
            server = pair.server
            assert server is not None
            server.periodic(pair.now)
            pair.deliver()
        if rng.random() < 0.15 or n == 15:
            pair.pump(keep=rng.randrange(0, 2))
            pair.drop()
            drops += 1
            pair.connect()  # the replay waits in the client's output for the next pump
    pair.pump()
    server = pair.server
    assert server is not None and server.session is not None
    texts = [m.text for m in server.session.consumed if isinstance(m, RealtimeInput)]
    assert texts == sent
    assert drops > 0


# GoAway, deadline, failure.


def test_go_away_sends_a_fresh_handle_first_then_the_time_left() -> None:
    pair = ProtocolPair(client(SessionResumptionConfig(transparent=True)))
    server = pair.connect()
    pair.client.send_realtime_text("something new")  # realtime text ends a turn: a reply, then a handle
    pair.pump()
    pair.client.send_audio(b"\x00\x00" * 1600)
    pair.pump()
    before = len(updates(pair))
    server.send_go_away(12.5, pair.now)
    pair.deliver()
    assert len(updates(pair)) == before + 1 and updates(pair)[-1].resumable
    assert pair.received[-1] == GoAway(time_left=12.5)
    assert pair.client.state is GOING_AWAY and pair.client.go_away_deadline == pair.now + 12.5


def test_expire_and_fail_close_once() -> None:
    pair = ProtocolPair(client())
    server = pair.connect()
    server.expire()
    server.fail()
    assert server.events_received() == [Closing(1011, DEADLINE_EXPIRED)]
    assert server.engine is not None and server.engine.closed
    server.periodic(pair.now)
    server.send_go_away(1.0, pair.now)
    assert server.data_to_send() == [] and not server.has_output


def test_an_unreadable_frame_after_setup_is_1007() -> None:
    pair = ProtocolPair(client())
    server = pair.connect()
    server.receive('{"realtimeInput": {"audio": {"data": "***", "mimeType": "audio/pcm"}}}', pair.now)
    (closing,) = server.events_received()
    assert isinstance(closing, Closing) and closing.code == 1007
    assert closing.reason.startswith("Request contains an invalid argument: ")


def test_the_audio_fast_path_parses_what_the_general_parser_does() -> None:
    frame = '{"realtimeInput": {"audio": {"data": "AAABAA==", "mimeType": "audio/pcm;rate=16000"}}}'
    message = parse_frame(frame)
    assert isinstance(message, RealtimeInput) and message.audio is not None
    assert message.audio.data == b"\x00\x00\x01\x00" and message.audio.mime_type == "audio/pcm;rate=16000"


def test_server_protocol_is_sans_io() -> None:
    """server_protocol.py and sessions.py import no socket, event loop, clock or database module."""
    banned = {"asyncio", "websockets", "socket", "sqlite3", "time", "threading", "IPython", "ipywidgets"}
    folder = Path(server_protocol_module.__file__).parent
    for name in ("server_protocol.py", "sessions.py"):
        tree = ast.parse((folder / name).read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & banned, (name, imported & banned)
